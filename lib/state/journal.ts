/**
 * The journal beside a snapshot: what changed since the snapshot's last full write, one record
 * per write, so that a change costs bytes in proportion to the change instead of a rewrite of
 * the whole file. A daemon watching 10k Python runs keeps a 1.5 MB snapshot; one run's new idx
 * is a record of a few hundred bytes.
 *
 * ```
 * owners/<ownerId>.json             the full snapshot; `journalSeq` says which records it holds
 * owners/<ownerId>.json.journal-<g> records appended under fencing generation g, one a line:
 *                                    <crc32 of the JSON, 8 hex> <JSON of a JournalRecord>\n
 * ```
 * - **Fencing.** A journal's name carries the generation of the lease it was appended under, and
 *   a snapshot is replayed only with the journal of its own generation. An adopter writes the
 *   snapshot back at a raised generation, so a frozen owner that wakes and appends to its old
 *   journal cannot change what anyone reads: as strong as the atomic rename of a full write.
 * - **Order.** Records carry a sequence number, one more each; a full write records the last
 *   one it includes (`journalSeq`), then removes the journal. A crash between the two leaves
 *   records the snapshot already holds: skipped, never applied twice.
 * - **Damage.** A torn last record (a crash mid-append: a line without its newline, a bad
 *   checksum) is ignored: it was never acknowledged. A bad record before others cannot come
 *   from a crash: the journal is set aside (`AIM_STATUS_CORRUPT_FILE`) and the snapshot alone
 *   is used.
 * - **Files.** A journal is created exclusively and never through a link
 *   (`O_CREAT|O_EXCL|O_NOFOLLOW`); later appends open it without creating it (a journal removed
 *   meanwhile must not be started again from the middle), never through a link, and only while
 *   it is a plain file with one link and the size its writer left.
 *
 * What a record holds is the snapshot's shape, cut where it grows with the repo: runs by hash,
 * the daemon's check-in runs (`extra.checkins.runs`) by hash, the outbox's list of settled keys
 * as a window (how many of the oldest left, which were added: it only ever grows at its end and
 * is cut at its start) with the rest of the outbox whole, and every other `extra` key as one value. See `journal-delta.ts` for how a writer finds the change and
 * `snapshot.ts` for the replay.
 * @module
 */
import { constants, type Stats } from 'node:fs'
import { lstat, open, rm, type FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { highestGeneration } from './fence.js'
import { STATE_FILE_MODE } from './files.js'
import { openExclusive, stateError, stateWriteError } from './safe-fs.js'
import { ErrorCodes } from '../errors.js'

/** An outbox change said by its `settled` list's window; see {@link JournalRecord.outbox}. */
export interface OutboxWindow {
  /** The outbox's fields but `settled`, whole. */
  rest: Record<string, unknown>
  /** How many of the oldest settled entries left the list. */
  drop: number
  /** The settled entries appended at the list's end. */
  add: unknown[]
}

/** The `extra` key whose `runs` the journal keeps per run (the daemon's check-in reader state). */
export const KEYED_EXTRA = 'checkins'

/** One record: the change of one write. Each part is present only when it changed. */
export interface JournalRecord {
  /** The fencing generation it was written under (the journal file's own). */
  generation: number
  /** One more than the record before; the first after a full write is its `journalSeq` + 1. */
  seq: number
  /** The snapshot's `writtenAt` as of this record. */
  writtenAt: number
  /** Runs (by hash) added or changed, as run objects, and hashes dropped. */
  runs?: { set?: unknown[]; del?: string[] }
  /** `extra.checkins`: its runs added or changed (by hash) and dropped, and its other fields. */
  checkins?: { set?: Record<string, unknown>; del?: string[]; rest?: Record<string, unknown> }
  /**
   * The outbox when it changed: whole (`value`), or as its `settled` list's window (the `drop`
   * oldest entries gone, `add` appended) with its other fields whole (`rest`).
   */
  outbox?: { value: unknown } | OutboxWindow
  /** Other `extra` keys set (whole values) and removed. */
  extra?: { set?: Record<string, unknown>; del?: string[] }
}

/** The journal appended under generation `generation` of a snapshot's lease. */
export function journalPath(snapshotPath: string, generation: number): string {
  return `${snapshotPath}.journal-${generation}`
}

/** One record as its line: the checksum of the JSON, a space, the JSON, a newline. */
export function encodeRecord(record: JournalRecord): string {
  const json = JSON.stringify(record)
  return `${checksum(json)} ${json}\n`
}

function checksum(json: string): string {
  return crc32(json).toString(16).padStart(8, '0')
}

/** What a journal's text holds. */
export interface ParsedJournal {
  /** The good records, in order. */
  records: JournalRecord[]
  /** Whether a torn last record was ignored (a crash mid-append). */
  torn: boolean
  /** Set when a record other than the last is bad: the journal was damaged from outside. */
  damage: string | null
}

function parseLine(line: string): JournalRecord | string {
  const space = line.indexOf(' ')
  if (space !== 8) return 'no checksum'
  const json = line.slice(9)
  if (checksum(json) !== line.slice(0, 8)) return 'bad checksum'
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return 'not JSON'
  }
  const r = value as Partial<JournalRecord> | null
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'not an object'
  if (!Number.isSafeInteger(r.generation) || !Number.isSafeInteger(r.seq) || typeof r.writtenAt !== 'number' || !Number.isFinite(r.writtenAt)) return 'no generation, seq or writtenAt'
  return r as JournalRecord
}

/**
 * Splits a journal's text into records and checks each line's checksum and frame (generation,
 * seq, writtenAt; the parts are checked when applied). The last line may be torn; any other bad
 * line is damage.
 */
export function parseJournal(text: string): ParsedJournal {
  const lines = text.split('\n')
  // Text after the last newline is a record whose append never finished.
  const tail = lines.pop() as string
  const records: JournalRecord[] = []
  let torn = tail.length > 0
  for (let i = 0; i < lines.length; i++) {
    const parsed = parseLine(lines[i] as string)
    if (typeof parsed !== 'string') {
      records.push(parsed)
      continue
    }
    // The last complete line with a bad checksum: written in part before a crash of the machine.
    if (i === lines.length - 1 && !torn) {
      torn = true
      break
    }
    return { records, torn, damage: `record ${i + 1}: ${parsed}` }
  }
  return { records, torn, damage: null }
}

/**
 * A cheap freshness stamp of a snapshot and its journal of `generation` (the one the caller's
 * cached copy was read with; null: the snapshot alone): inode, size and mtime of each. Equal
 * stamps mean nothing was written since. Null when there is no snapshot.
 */
export async function snapshotStamp(snapshotPath: string, generation: number | null): Promise<string | null> {
  const snapshot = await lstatOrNull(snapshotPath)
  if (snapshot === null) return null
  const journal = generation === null ? null : await lstatOrNull(journalPath(snapshotPath, generation))
  return `${stampOf(snapshot)}|${journal === null ? '-' : stampOf(journal)}`
}

function stampOf(info: Stats): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}`
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path)
  } catch {
    return null
  }
}

/**
 * Removes a snapshot's journals, every generation's: when it is adopted (written back whole at a
 * new generation) and with the snapshot when it is retired. Only names of the exact form are
 * touched; an entry is removed itself, never what a link points to.
 */
export async function removeJournals(snapshotPath: string): Promise<void> {
  // Appends happen only under a claimed generation: probing those costs a retire what the
  // snapshot's own history holds, where a listing of `owners/` would cost what every owner does.
  const highest = highestGeneration(snapshotPath)
  for (let generation = 1; generation <= highest; generation++) await rm(journalPath(snapshotPath, generation), { force: true })
}

const NOFOLLOW = constants.O_NOFOLLOW ?? 0
const APPEND_EXISTING = constants.O_WRONLY | constants.O_APPEND | NOFOLLOW | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0)

/**
 * The writer's side of one journal file: created on the first append, appended to after, its
 * length tracked so that anything found past it (or a file that shrank, was replaced or gained
 * a link) is refused instead of appended to. A refusal or failure leaves the writer to make a
 * full write, which replaces the journal.
 */
export class JournalFile {
  readonly path: string
  #bytes = 0
  #created = false

  constructor(path: string) {
    this.path = path
  }

  /** Bytes appended so far. */
  get bytes(): number {
    return this.#bytes
  }

  /**
   * Appends one record's line; `sync` makes it durable before resolving (an awaited write).
   * `beforeWrite` is the fence check, asked after the file is open and just before the bytes
   * go out: throwing cancels the append.
   */
  async append(line: string, options: { sync: boolean; beforeWrite: () => void }): Promise<void> {
    const data = Buffer.from(line)
    const handle = this.#created ? await this.#openExisting() : await openExclusive(this.path, STATE_FILE_MODE)
    this.#created = true
    try {
      options.beforeWrite()
      await handle.write(data)
      if (options.sync) await handle.sync()
    } catch (error) {
      throw stateWriteError(this.path, error)
    } finally {
      await handle.close()
    }
    this.#bytes += data.length
  }

  async #openExisting(): Promise<FileHandle> {
    let handle: FileHandle
    try {
      handle = await open(this.path, APPEND_EXISTING)
    } catch (error) {
      throw stateWriteError(this.path, error)
    }
    try {
      const info = await handle.stat()
      if (!info.isFile() || info.nlink !== 1 || info.size !== this.#bytes) {
        throw stateError(
          ErrorCodes.UNSAFE_FILE,
          this.path,
          `Refusing to append to ${this.path}: it is not the journal this writer left (${info.isFile() ? `${info.nlink} links, ${info.size} bytes, ${this.#bytes} expected` : 'not a plain file'})`,
        )
      }
    } catch (error) {
      await handle.close()
      throw error
    }
    return handle
  }
}
