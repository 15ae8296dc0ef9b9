/**
 * The snapshot: an owner's runs and undelivered notifications, durable under
 * `status/owners/<ownerId>.json`, so that whoever adopts the owner's runs carries on from it.
 * Written atomically (see `files.ts`); read back with every field checked, because the file
 * crosses processes, versions and crashes. A file that fails the check is set aside
 * (`<name>.corrupt-<time>`) and reported with `AIM_STATUS_CORRUPT_FILE`, never a crash.
 * @module
 */
import { lstat } from 'node:fs/promises'
import type { RunInfo, RunStatus } from '../model.js'
import { checkRunHash } from '../repo.js'
import { AimStatusError, CorruptFileError, ErrorCodes, describeValue } from '../errors.js'
import { setAside, unreadableError, writeFileAtomic } from './files.js'
import { KEYED_EXTRA, journalPath, parseJournal, type JournalRecord, type OutboxWindow } from './journal.js'
import type { AtomicWriteOptions } from './files.js'
import { MAX_SNAPSHOT_BYTES, readStateFile } from './safe-fs.js'
import { parseOwnerInfo } from './owner.js'
import { readSessionFields, sessionFieldsOf, type SessionFields } from './run-sessions.js'
import type { OwnerInfo } from './owner.js'

/** The `format` tag of a snapshot file. */
export const SNAPSHOT_FORMAT = 'aim-status/snapshot'
/** The snapshot format version this code writes. */
export const SNAPSHOT_VERSION = 2
/**
 * The format versions this code reads: 1 (runs as objects) is still read so that snapshots
 * left on disk by an older program are adopted after an upgrade.
 */
export type SnapshotVersion = 1 | typeof SNAPSHOT_VERSION

/**
 * A snapshot as held in memory, whatever its encoding on disk. Times are epoch milliseconds.
 *
 * On disk, version 2 stores `runs` as columns ({@link RunColumns}) with times and durations in
 * whole milliseconds; version 1 stored an array of {@link RunInfo} objects.
 */
export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT
  /** The version of the file it was read from; ignored when writing (always {@link SNAPSHOT_VERSION}). */
  version: SnapshotVersion
  /** The owner that created the snapshot (its file is named after `owner.id`). */
  owner: OwnerInfo
  /** Who holds it now, when it was adopted (a daemon, after `owner` died or froze). */
  adoptedBy?: OwnerInfo
  /** The fencing generation of the lease under which it was written: 1 for the owner, +1 per adoption. */
  generation: number
  writtenAt: number
  runs: RunInfo[]
  /** The delivery engine's outbox: opaque JSON, kept as written. */
  outbox: unknown
  /** Room for state of later features, kept as written. */
  extra: Record<string, unknown>
  /**
   * The last journal record (`journal.ts`) this state holds: in a file, the records a full write
   * included; after a replay, the last record applied. Absent: none (an older file, or a
   * snapshot small enough to be always written whole).
   */
  journalSeq?: number
}

/** What a snapshot's producer gives; the writer adds `format`, `version`, `generation` and `writtenAt`. */
export type SnapshotContent = Pick<Snapshot, 'owner' | 'runs' | 'outbox' | 'extra'> & Pick<Partial<Snapshot>, 'adoptedBy'>

const RUN_STATUSES: readonly RunStatus[] = ['running', 'stalled', 'finished', 'failed']
// Guards the reader against a file that would take unbounded memory to hold as strings.
const MAX_TEXT = 4096

function fail(message: string): never {
  throw new Error(message)
}

function finite(value: unknown, label: string, min = -Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) fail(`${label} is ${describeValue(value)}`)
  return value
}

function optionalText(value: unknown, label: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length > MAX_TEXT) fail(`${label} is ${describeValue(value)}`)
  return value
}

/** Checks one run read from a file; throws a plain message naming the field. */
export function parseRunInfo(value: unknown, label: string): RunInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${label} is not an object`)
  const r = value as Record<string, unknown>
  let hash: string
  try {
    hash = checkRunHash(r['hash'], `${label}.hash`)
  } catch (error) {
    fail((error as Error).message)
  }
  const status = r['status']
  if (!RUN_STATUSES.includes(status as RunStatus)) fail(`${label}.status is ${describeValue(status)}`)
  const deadlineAt = r['deadlineAt']
  if (deadlineAt !== null) finite(deadlineAt, `${label}.deadlineAt`)
  const episode = r['episode']
  if (!Number.isSafeInteger(episode) || (episode as number) < 0) fail(`${label}.episode is ${describeValue(episode)}`)
  const run: RunInfo = {
    hash,
    status: status as RunStatus,
    startedAt: finite(r['startedAt'], `${label}.startedAt`),
    lastProgressAt: finite(r['lastProgressAt'], `${label}.lastProgressAt`),
    expectNextIn: finite(r['expectNextIn'], `${label}.expectNextIn`, 0),
    deadlineAt: deadlineAt as number | null,
    grace: finite(r['grace'], `${label}.grace`, 0),
    episode: episode as number,
  }
  const name = optionalText(r['name'], `${label}.name`)
  const experiment = optionalText(r['experiment'], `${label}.experiment`)
  const reason = optionalText(r['reason'], `${label}.reason`)
  if (name !== undefined) run.name = name
  if (experiment !== undefined) run.experiment = experiment
  if (reason !== undefined) run.reason = reason
  readSessionFields(r, label, run)
  return run
}

/**
 * `runs` in a version 2 file: one array per field, all `count` long, run `i` at index `i` of
 * each. At 100k runs this is what makes the snapshot cheap: a few long arrays of small
 * integers are much faster for `JSON.stringify` and `JSON.parse` than 100k objects repeating
 * their keys, and half the size.
 * - Times (`startedAt`, `lastProgressAt`, `deadlineAt`) are whole milliseconds counted from
 *   `timeBase` (itself whole milliseconds, near `writtenAt`): offsets of live runs fit V8's
 *   small integers, which serialise several times faster than full epoch times.
 * - Durations (`expectNextIn`, `grace`) are whole milliseconds, though {@link RunInfo} keeps
 *   them in seconds.
 * - Rounding to the millisecond loses nothing that matters: deadlines and grace are seconds.
 * - `status` is the index of the status in {@link RUN_STATUSES}.
 * - The optional text columns hold null for a run without the field, and are left out when no
 *   run has it.
 */
export interface RunColumns {
  count: number
  timeBase: number
  hash: string[]
  status: number[]
  startedAt: number[]
  lastProgressAt: number[]
  expectNextIn: number[]
  deadlineAt: (number | null)[]
  grace: number[]
  episode: number[]
  name?: (string | null)[]
  experiment?: (string | null)[]
  reason?: (string | null)[]
  /** The session fields of runs reporting over a session ({@link SessionFields}); null for the others; left out when no run has any. */
  sessions?: (SessionFields | null)[]
}

/** Thrown for a snapshot of a later format version: not corrupt, so not set aside. */
class NewerVersion extends Error {}

/** Checks a parsed snapshot file (version 1 or 2), field by field; throws a plain message naming the first bad field. */
export function parseSnapshot(value: unknown): Snapshot {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('the top level is not an object')
  const s = value as Record<string, unknown>
  if (s['format'] !== SNAPSHOT_FORMAT) fail(`format is ${describeValue(s['format'])}`)
  const version = s['version']
  if (typeof version === 'number' && version > SNAPSHOT_VERSION) throw new NewerVersion(`version ${version} is newer than this program's ${SNAPSHOT_VERSION}`)
  if (version !== 1 && version !== SNAPSHOT_VERSION) fail(`version is ${describeValue(version)}`)
  const generation = s['generation']
  if (!Number.isSafeInteger(generation) || (generation as number) < 1) fail(`generation is ${describeValue(generation)}`)
  const runs = version === 1 ? parseRunObjects(s['runs']) : parseRunColumns(s['runs'])
  const extra = s['extra']
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) fail(`extra is ${describeValue(extra)}`)
  if (!('outbox' in s)) fail('outbox is missing')
  const snapshot: Snapshot = {
    format: SNAPSHOT_FORMAT,
    version,
    owner: parseOwnerInfo(s['owner'], 'owner'),
    generation: generation as number,
    writtenAt: finite(s['writtenAt'], 'writtenAt'),
    runs,
    outbox: s['outbox'],
    extra: decodeKeyedColumns(extra as Record<string, unknown>),
  }
  if (s['adoptedBy'] !== undefined) snapshot.adoptedBy = parseOwnerInfo(s['adoptedBy'], 'adoptedBy')
  const journalSeq = s['journalSeq']
  if (journalSeq !== undefined) {
    if (!Number.isSafeInteger(journalSeq) || (journalSeq as number) < 0) fail(`journalSeq is ${describeValue(journalSeq)}`)
    snapshot.journalSeq = journalSeq as number
  }
  return snapshot
}

/** Version 1 `runs`: an array of run objects. */
function parseRunObjects(value: unknown): RunInfo[] {
  if (!Array.isArray(value)) fail(`runs is ${describeValue(value)}`)
  const seen = new Set<string>()
  return value.map((run: unknown, i: number) => {
    const parsed = parseRunInfo(run, `runs[${i}]`)
    if (seen.has(parsed.hash)) fail(`runs[${i}].hash ${parsed.hash} appears twice`)
    seen.add(parsed.hash)
    return parsed
  })
}

function column(runs: Record<string, unknown>, key: string, count: number, optional: boolean): unknown[] | undefined {
  const value = runs[key]
  if (value === undefined && optional) return undefined
  if (!Array.isArray(value) || value.length !== count) fail(`runs.${key} is ${describeValue(value)}, expected an array of ${count}`)
  return value
}

/**
 * Version 2 `runs` ({@link RunColumns}), checked in one pass that builds the {@link RunInfo}
 * objects directly. Labels are built only for the message of a bad field: at 100k runs, a
 * label per field would cost more than the checks.
 */
function parseRunColumns(value: unknown): RunInfo[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`runs is ${describeValue(value)}`)
  const c = value as Record<string, unknown>
  const count = c['count']
  if (!Number.isSafeInteger(count) || (count as number) < 0) fail(`runs.count is ${describeValue(count)}`)
  const n = count as number
  const timeBase = c['timeBase']
  if (!Number.isSafeInteger(timeBase)) fail(`runs.timeBase is ${describeValue(timeBase)}`)
  const base = timeBase as number
  const hashes = column(c, 'hash', n, false) as unknown[]
  const statuses = column(c, 'status', n, false) as unknown[]
  const started = column(c, 'startedAt', n, false) as unknown[]
  const progressed = column(c, 'lastProgressAt', n, false) as unknown[]
  const expects = column(c, 'expectNextIn', n, false) as unknown[]
  const deadlines = column(c, 'deadlineAt', n, false) as unknown[]
  const graces = column(c, 'grace', n, false) as unknown[]
  const episodes = column(c, 'episode', n, false) as unknown[]
  const names = column(c, 'name', n, true)
  const experiments = column(c, 'experiment', n, true)
  const reasons = column(c, 'reason', n, true)
  const sessions = column(c, 'sessions', n, true)
  const bad = (key: string, i: number, v: unknown): never => fail(`runs.${key}[${i}] is ${describeValue(v)}`)
  const runs = new Array<RunInfo>(n)
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const hash = runHashAt(hashes, i)
    if (seen.has(hash)) fail(`runs.hash[${i}] ${hash} appears twice`)
    seen.add(hash)
    const status = RUN_STATUSES[statuses[i] as number]
    if (typeof statuses[i] !== 'number' || status === undefined) bad('status', i, statuses[i])
    const startedAt = started[i]
    if (!Number.isFinite(startedAt)) bad('startedAt', i, startedAt)
    const lastProgressAt = progressed[i]
    if (!Number.isFinite(lastProgressAt)) bad('lastProgressAt', i, lastProgressAt)
    const expectNextIn = expects[i]
    if (!Number.isFinite(expectNextIn) || (expectNextIn as number) < 0) bad('expectNextIn', i, expectNextIn)
    const deadlineAt = deadlines[i]
    if (deadlineAt !== null && !Number.isFinite(deadlineAt)) bad('deadlineAt', i, deadlineAt)
    const grace = graces[i]
    if (!Number.isFinite(grace) || (grace as number) < 0) bad('grace', i, grace)
    const episode = episodes[i]
    if (!Number.isSafeInteger(episode) || (episode as number) < 0) bad('episode', i, episode)
    const run: RunInfo = {
      hash,
      status: status as RunStatus,
      startedAt: base + (startedAt as number),
      lastProgressAt: base + (lastProgressAt as number),
      expectNextIn: (expectNextIn as number) / 1000,
      deadlineAt: deadlineAt === null ? null : base + (deadlineAt as number),
      grace: (grace as number) / 1000,
      episode: episode as number,
    }
    if (names !== undefined && names[i] !== null) run.name = columnText(names[i], 'name', i)
    if (experiments !== undefined && experiments[i] !== null) run.experiment = columnText(experiments[i], 'experiment', i)
    if (reasons !== undefined && reasons[i] !== null) run.reason = columnText(reasons[i], 'reason', i)
    const fields = sessions?.[i]
    if (fields !== undefined && fields !== null) {
      if (typeof fields !== 'object' || Array.isArray(fields)) bad('sessions', i, fields)
      readSessionFields(fields as Record<string, unknown>, `runs.sessions[${i}]`, run)
    }
    runs[i] = run
  }
  return runs
}

function runHashAt(hashes: unknown[], i: number): string {
  try {
    return checkRunHash(hashes[i], 'hash')
  } catch {
    fail(`runs.hash[${i}] is ${describeValue(hashes[i])}`)
  }
}

function columnText(value: unknown, key: string, i: number): string {
  if (typeof value !== 'string' || value.length > MAX_TEXT) fail(`runs.${key}[${i}] is ${describeValue(value)}`)
  return value
}

const STATUS_CODES: Readonly<Record<RunStatus, number>> = { running: 0, stalled: 1, finished: 2, failed: 3 }

/**
 * Encodes runs as {@link RunColumns}. Throws on a time that is not a finite number rather than
 * writing it: JSON would turn it into null, and the reader would then set the whole snapshot
 * aside; refusing the write keeps the last good one.
 */
export function encodeRuns(runs: readonly RunInfo[], timeBase: number): RunColumns {
  const base = Math.round(timeBase)
  const n = runs.length
  const hash = new Array<string>(n)
  const status = new Array<number>(n)
  const startedAt = new Array<number>(n)
  const lastProgressAt = new Array<number>(n)
  const expectNextIn = new Array<number>(n)
  const deadlineAt = new Array<number | null>(n)
  const grace = new Array<number>(n)
  const episode = new Array<number>(n)
  let name: (string | null)[] | undefined
  let experiment: (string | null)[] | undefined
  let reason: (string | null)[] | undefined
  let sessions: (SessionFields | null)[] | undefined
  for (let i = 0; i < n; i++) {
    const r = runs[i] as RunInfo
    hash[i] = r.hash
    const code = STATUS_CODES[r.status]
    status[i] = code
    const s = (startedAt[i] = Math.round(r.startedAt) - base)
    const p = (lastProgressAt[i] = Math.round(r.lastProgressAt) - base)
    const e = (expectNextIn[i] = Math.round(r.expectNextIn * 1000))
    const d = (deadlineAt[i] = r.deadlineAt === null ? null : Math.round(r.deadlineAt) - base)
    const g = (grace[i] = Math.round(r.grace * 1000))
    episode[i] = r.episode
    // One check for all: a sum of finite numbers of this size is finite, and NaN spreads.
    if (!Number.isFinite(code + s + p + e + (d ?? 0) + g + r.episode)) throw new Error(`run ${r.hash} has a field that is not a finite number: ${JSON.stringify(r)}`)
    if (r.name !== undefined) (name ??= new Array<string | null>(n).fill(null))[i] = r.name
    if (r.experiment !== undefined) (experiment ??= new Array<string | null>(n).fill(null))[i] = r.experiment
    if (r.reason !== undefined) (reason ??= new Array<string | null>(n).fill(null))[i] = r.reason
    const fields = sessionFieldsOf(r)
    if (fields !== null) (sessions ??= new Array<SessionFields | null>(n).fill(null))[i] = fields
  }
  const columns: RunColumns = { count: n, timeBase: base, hash, status, startedAt, lastProgressAt, expectNextIn, deadlineAt, grace, episode }
  if (name !== undefined) columns.name = name
  if (experiment !== undefined) columns.experiment = experiment
  if (reason !== undefined) columns.reason = reason
  if (sessions !== undefined) columns.sessions = sessions
  return columns
}

type Primitive = string | number | boolean | null

/**
 * `extra.checkins.runs` (the daemon's Python runs, 10k records of the same few fields) as
 * columns on disk: `runColumns: { hash: [...], fields: { <name>: [values...] } }` in place of
 * `runs`. A third of the JSON, and at a full write a handful of arrays to build instead of a
 * string of 1.4 MB: what a daemon's peak memory is made of. In memory (and in journal records)
 * the runs stay kept by hash. Records that are not all flat and of the same fields are written
 * as they are.
 */
function encodeKeyedColumns(extra: Record<string, unknown>): Record<string, unknown> {
  const keyed = extra[KEYED_EXTRA]
  if (typeof keyed !== 'object' || keyed === null || Array.isArray(keyed)) return extra
  const { runs, ...rest } = keyed as Record<string, unknown>
  if (typeof runs !== 'object' || runs === null || Array.isArray(runs)) return extra
  const records = runs as Record<string, unknown>
  const hashes = Object.keys(records)
  const first = records[hashes[0] as string]
  if (hashes.length === 0 || typeof first !== 'object' || first === null) return extra
  const names = Object.keys(first)
  const fields: Record<string, Primitive[]> = {}
  for (const name of names) fields[name] = new Array<Primitive>(hashes.length)
  for (let i = 0; i < hashes.length; i++) {
    const record = records[hashes[i] as string] as Record<string, unknown> | null
    if (typeof record !== 'object' || record === null || Object.keys(record).length !== names.length) return extra
    for (const name of names) {
      const value = record[name]
      if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return extra
      ;(fields[name] as Primitive[])[i] = value
    }
  }
  return { ...extra, [KEYED_EXTRA]: { ...rest, runColumns: { hash: hashes, fields } } }
}

/** The inverse of {@link encodeKeyedColumns}, checked: throws a plain message naming what is wrong. */
function decodeKeyedColumns(extra: Record<string, unknown>): Record<string, unknown> {
  const keyed = extra[KEYED_EXTRA]
  if (typeof keyed !== 'object' || keyed === null || !('runColumns' in keyed)) return extra
  const { runColumns, ...rest } = keyed as Record<string, unknown>
  const label = `extra.${KEYED_EXTRA}.runColumns`
  if (typeof runColumns !== 'object' || runColumns === null) fail(`${label} is ${describeValue(runColumns)}`)
  const { hash, fields } = runColumns as { hash?: unknown; fields?: unknown }
  if (!Array.isArray(hash)) fail(`${label}.hash is ${describeValue(hash)}`)
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) fail(`${label}.fields is ${describeValue(fields)}`)
  const columns = Object.entries(fields as Record<string, unknown>)
  for (const [name, column] of columns) if (!Array.isArray(column) || column.length !== hash.length) fail(`${label}.fields.${name} is not ${hash.length} long`)
  const runs: Record<string, Record<string, unknown>> = {}
  hash.forEach((value, i) => {
    let id: string
    try {
      id = checkRunHash(value, `${label}.hash[${i}]`)
    } catch (error) {
      fail((error as Error).message)
    }
    const record: Record<string, unknown> = {}
    for (const [name, column] of columns) record[name] = (column as unknown[])[i]
    runs[id] = record
  })
  return { ...extra, [KEYED_EXTRA]: { ...rest, runs } }
}

/** The file text of a snapshot, always in format version {@link SNAPSHOT_VERSION}. */
export function serializeSnapshot(snapshot: Snapshot): string {
  const file: Record<string, unknown> = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    owner: snapshot.owner,
  }
  if (snapshot.adoptedBy !== undefined) file['adoptedBy'] = snapshot.adoptedBy
  file['generation'] = snapshot.generation
  file['writtenAt'] = snapshot.writtenAt
  if (snapshot.journalSeq !== undefined) file['journalSeq'] = snapshot.journalSeq
  file['outbox'] = snapshot.outbox
  file['extra'] = encodeKeyedColumns(snapshot.extra)
  // Last, so that the small header stays readable at the top of a large file.
  file['runs'] = encodeRuns(snapshot.runs, snapshot.writtenAt)
  return JSON.stringify(file)
}

/**
 * Writes a snapshot atomically and durably (temp file in the same folder, fsync, rename, fsync
 * of the folder; mode 0600). Resolves when it is durable. `options.beforeRename` is where the
 * lease's generation check goes.
 */
export async function writeSnapshotAtomic(path: string, snapshot: Snapshot, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, serializeSnapshot(snapshot), options)
}

/** Options of {@link readSnapshot}. */
export interface ReadSnapshotOptions {
  /**
   * Rename a bad snapshot or journal aside (`<name>.corrupt-<time>`), as its owner or adopter
   * does. False for readers that only look (`status`, queries across owners): the error is
   * thrown (or the journal passed over) and the files stay. Default true.
   */
  setAside?: boolean
  /**
   * Told when the journal was damaged (a bad record before others) and the snapshot alone was
   * used; the error is `AIM_STATUS_CORRUPT_FILE`, with where the journal was set aside.
   * Default: a process warning with that code.
   */
  onJournalProblem?: (error: CorruptFileError) => void
}

// A snapshot rewritten while it and its journal were read is read again, this many times at most.
const MAX_READ_ATTEMPTS = 4

/**
 * Reads and checks a snapshot, and replays its journal (`journal.ts`): the state as of its
 * owner's last write, whether that was a full write or an append. Resolves null when there is no
 * file. A truncated, unparsable or invalid file, and anything that is not a plain file (a
 * folder, a symbolic link, a FIFO: never opened through, never waited on) or is larger than
 * {@link MAX_SNAPSHOT_BYTES}, is renamed to `<name>.corrupt-<time>` and the promise rejects with
 * a `CorruptFileError` (`AIM_STATUS_CORRUPT_FILE`, with `setAsidePath`). A file of a newer
 * format version rejects with the same code but stays where it is. A file that cannot be read
 * (permissions, a parent that is not a folder) rejects with `AIM_STATUS_INVALID_PATH`.
 *
 * Only the journal of the snapshot's own generation is replayed, from the record after its
 * `journalSeq`. A torn last record is ignored; a journal damaged anywhere else is set aside
 * and the snapshot alone is used ({@link ReadSnapshotOptions.onJournalProblem} is told). A
 * snapshot rewritten while its journal was read is read again.
 */
export async function readSnapshot(path: string, options: ReadSnapshotOptions = {}): Promise<Snapshot | null> {
  const moveAside = options.setAside ?? true
  for (let attempt = 1; ; attempt++) {
    const before = await fileStamp(path)
    const snapshot = await readSnapshotFile(path, moveAside)
    if (snapshot === null) return null
    const journal = journalPath(path, snapshot.generation)
    let text: string | null
    try {
      text = await readStateFile(journal, { maxBytes: MAX_SNAPSHOT_BYTES })
    } catch (error) {
      text = null
      await journalProblem(journal, (error as Error).message, moveAside, options)
    }
    // A full write renames a new snapshot in, then removes the journal it holds: a snapshot
    // changed meanwhile may not go with the journal read (or with its absence).
    if (before !== (await fileStamp(path)) && attempt < MAX_READ_ATTEMPTS) continue
    if (text === null) return snapshot
    const parsed = parseJournal(text)
    try {
      const merged = replay(snapshot, parsed.records)
      if (parsed.damage !== null) fail(parsed.damage)
      return merged
    } catch (error) {
      await journalProblem(journal, (error as Error).message, moveAside, options)
      return snapshot
    }
  }
}

async function fileStamp(path: string): Promise<string> {
  try {
    const info = await lstat(path)
    return `${info.ino}:${info.size}:${info.mtimeMs}`
  } catch {
    return '-'
  }
}

async function journalProblem(path: string, problem: string, moveAside: boolean, options: ReadSnapshotOptions): Promise<void> {
  const error = moveAside ? await setAside(path, problem) : new CorruptFileError(`${path} is not a valid journal (${problem}); left in place`, { path })
  const wording = `${error.message}; the snapshot alone is used`
  if (options.onJournalProblem !== undefined) options.onJournalProblem(error)
  else process.emitWarning(wording, { code: ErrorCodes.CORRUPT_FILE })
}

/**
 * A snapshot with journal records applied in order: those its `journalSeq` holds are skipped,
 * the next must follow one by one under the snapshot's generation. Throws a plain message naming
 * the first bad record or field.
 */
export function replay(snapshot: Snapshot, records: readonly JournalRecord[]): Snapshot {
  let seq = snapshot.journalSeq ?? 0
  let runs: Map<string, RunInfo> | null = null
  let extra = snapshot.extra
  let outbox = snapshot.outbox
  let writtenAt = snapshot.writtenAt
  for (const record of records) {
    if (record.seq <= (snapshot.journalSeq ?? 0)) continue
    const label = `record ${record.seq}`
    if (record.generation !== snapshot.generation) fail(`${label} is of generation ${record.generation}, the snapshot of ${snapshot.generation}`)
    if (record.seq !== seq + 1) fail(`${label} follows record ${seq}`)
    seq = record.seq
    writtenAt = record.writtenAt
    if (record.runs !== undefined) {
      runs ??= new Map(snapshot.runs.map((run) => [run.hash, run]))
      for (const hash of hashList(record.runs.del, `${label} runs.del`)) runs.delete(hash)
      const set = record.runs.set ?? []
      if (!Array.isArray(set)) fail(`${label} runs.set is ${describeValue(set)}`)
      set.forEach((value, i) => {
        const run = parseRunInfo(value, `${label} runs.set[${i}]`)
        runs?.set(run.hash, run)
      })
    }
    if (record.checkins !== undefined) extra = { ...extra, [KEYED_EXTRA]: replayKeyed(extra[KEYED_EXTRA], record.checkins, label) }
    if (record.outbox !== undefined) outbox = replayOutbox(outbox, record.outbox, label)
    if (record.extra !== undefined) {
      const set = record.extra.set ?? {}
      if (typeof set !== 'object' || set === null || Array.isArray(set)) fail(`${label} extra.set is ${describeValue(set)}`)
      extra = { ...extra, ...set }
      for (const key of hashList(record.extra.del, `${label} extra.del`)) delete extra[key]
    }
  }
  if (seq === (snapshot.journalSeq ?? 0)) return snapshot
  return { ...snapshot, runs: runs === null ? snapshot.runs : [...runs.values()], outbox, extra, writtenAt, journalSeq: seq }
}

function hashList(value: unknown, label: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) fail(`${label} is ${describeValue(value)}`)
  return value as string[]
}

/** The outbox with one record's change: whole, or its settled list's window (see `OutboxWindow`). */
function replayOutbox(current: unknown, change: unknown, label: string): unknown {
  if (typeof change !== 'object' || change === null) fail(`${label} outbox is ${describeValue(change)}`)
  if ('value' in change) return change.value
  const { rest, drop, add } = change as Partial<OutboxWindow>
  const settled = typeof current === 'object' && current !== null ? (current as { settled?: unknown }).settled : undefined
  if (!Array.isArray(settled)) fail(`${label} outbox.drop/add follow an outbox without a settled list`)
  if (typeof rest !== 'object' || rest === null || Array.isArray(rest)) fail(`${label} outbox.rest is ${describeValue(rest)}`)
  if (!Number.isSafeInteger(drop) || (drop as number) < 0 || (drop as number) > settled.length) fail(`${label} outbox.drop is ${describeValue(drop)}`)
  if (!Array.isArray(add)) fail(`${label} outbox.add is ${describeValue(add)}`)
  return { ...rest, settled: [...settled.slice(drop), ...add] }
}

/** `extra.checkins` with one record's change: its runs by hash, its other fields whole. */
function replayKeyed(current: unknown, change: NonNullable<JournalRecord['checkins']>, label: string): Record<string, unknown> {
  const base = typeof current === 'object' && current !== null && !Array.isArray(current) ? (current as Record<string, unknown>) : {}
  const baseRuns = base['runs']
  const runs: Record<string, unknown> = typeof baseRuns === 'object' && baseRuns !== null && !Array.isArray(baseRuns) ? { ...(baseRuns as Record<string, unknown>) } : {}
  for (const hash of hashList(change.del, `${label} checkins.del`)) delete runs[hash]
  const set = change.set ?? {}
  if (typeof set !== 'object' || set === null || Array.isArray(set)) fail(`${label} checkins.set is ${describeValue(set)}`)
  Object.assign(runs, set)
  const rest = change.rest ?? {}
  if (typeof rest !== 'object' || rest === null || Array.isArray(rest)) fail(`${label} checkins.rest is ${describeValue(rest)}`)
  return { ...base, ...rest, runs }
}

/** The snapshot file alone: read, parsed and checked (see {@link readSnapshot}). */
async function readSnapshotFile(path: string, moveAside: boolean): Promise<Snapshot | null> {
  const corrupt = async (problem: string): Promise<CorruptFileError> => (moveAside ? await setAside(path, problem) : new CorruptFileError(`${path} is not a valid state file (${problem}); left in place`, { path }))
  let text: string | null
  try {
    text = await readStateFile(path, { maxBytes: MAX_SNAPSHOT_BYTES })
  } catch (error) {
    // Not a plain file (a folder, a link, a FIFO) or huge: never ours, never read; set aside.
    if ((error as { code?: unknown }).code === ErrorCodes.UNSAFE_FILE) throw await corrupt((error as Error).message)
    throw unreadableError(path, error)
  }
  if (text === null) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw await corrupt(text.length === 0 ? 'empty' : `not JSON, truncated? ${(error as Error).message}`)
  }
  try {
    return parseSnapshot(parsed)
  } catch (error) {
    if (error instanceof NewerVersion) throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${path}: ${error.message}; left in place`)
    throw await corrupt((error as Error).message)
  }
}
