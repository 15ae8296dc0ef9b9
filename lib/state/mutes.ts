/**
 * Mutes: runs whose transitions are recorded, shown and counted, but not sent. They live in the
 * repo (`<root>/.aim/status/mutes.json`), so every process and daemon of the repo sees the same
 * ones; a mute may name a run that has not started yet.
 *
 * A mute lasts either until a time (`--for 2h`) or until the run is healthy again
 * (`--until-healthy`, the "paused until healthy" of Dead Man's Snitch): the next recovery or
 * finish is the last transition it covers, and whichever owner sees that transition removes it.
 *
 * Writes are read-modify-write under a proper-lockfile lock, through the atomic writer of
 * `files.ts`. Readers on the hot side (an event being accepted) use {@link MuteView}: one `stat`
 * per look, the file parsed again only when it changed. All of this module's file I/O is here.
 * @module
 */
import { readFileSync, statSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import lockfile from 'proper-lockfile'
import { AimStatusError, CorruptFileError, ErrorCodes, InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import { checkRunHash, type RepoPaths } from '../repo.js'
import { STATE_FOLDER_MODE, writeFileAtomic } from './files.js'

/** One mute of one run. Times are epoch milliseconds. */
export interface Mute {
  hash: string
  /** When it ends, for a mute of a fixed length; null for a mute until healthy. */
  until: number | null
  /** Ends at the run's next recovery or finish (that transition is still muted). */
  untilHealthy: boolean
  /** When it was set. */
  createdAt: number
  /** Why, as given by whoever muted (shown on the page and in `mutes`). */
  reason?: string
}

/** What a mute request says: exactly one of `forSeconds` and `untilHealthy`. */
export interface MuteRequest {
  /** Mute for this many seconds (or a duration such as `'90m'`, `'2h'`, `'1d'`, `'1h30m'`). */
  for?: number | string
  /** Mute until the run's next recovery or finish. */
  untilHealthy?: boolean
  /** Why (at most 200 characters). */
  reason?: string
}

const FORMAT = 'aim-status/mutes'
/** The longest mute of a fixed length: 30 days, as the longest promise. */
export const MAX_MUTE_SECONDS = 30 * 24 * 3600
const MAX_REASON = 200
/** A file this large is not ours: refused rather than parsed. */
const MAX_FILE_BYTES = 4 * 1024 * 1024

/** The mutes file of a repo. */
export function mutesPath(paths: Pick<RepoPaths, 'status'>): string {
  return join(paths.status, 'mutes.json')
}

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }

/** Seconds of a duration: a number of seconds, or `90s`, `15m`, `2h`, `1d`, `1w`, `1h30m`. Throws a coded error. */
export function parseDuration(value: unknown, label = 'for'): number {
  let seconds: number
  if (typeof value === 'number') seconds = value
  else if (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) seconds = Number(value)
  else if (typeof value === 'string' && /^(\d+(\.\d+)?[smhdw])+$/.test(value.trim())) {
    seconds = 0
    for (const [, amount, unit] of value.trim().matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) seconds += Number(amount) * (UNITS[unit as string] as number)
  } else throw new InvalidOptionError(`Expected \`${label}\` to be a duration such as 90s, 15m, 2h, 1d or a number of seconds, got ${describeValue(value)}`)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_MUTE_SECONDS) throw new OutOfRangeError(`Expected \`${label}\` to be more than 0 and at most 30 days, got ${describeValue(value)}`)
  return seconds
}

/** Checks a request and turns it into the mute to store. Throws coded errors, naming the field. */
export function muteFromRequest(hash: unknown, request: unknown, now: number): Mute {
  const checked = checkRunHash(hash)
  if (request === null || typeof request !== 'object' || Array.isArray(request)) throw new InvalidOptionError(`Expected a mute request object, got ${describeValue(request)}`)
  const { for: forValue, untilHealthy, reason, ...rest } = request as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new InvalidOptionError(`Unknown mute option \`${unknown[0]}\``)
  if (untilHealthy !== undefined && typeof untilHealthy !== 'boolean') throw new InvalidOptionError(`Expected \`untilHealthy\` to be a boolean, got ${describeValue(untilHealthy)}`)
  const healthy = untilHealthy === true
  if (healthy === (forValue !== undefined)) throw new InvalidOptionError('A mute needs exactly one of `for` (a duration) and `untilHealthy: true`')
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON))
    throw new InvalidOptionError(`Expected \`reason\` to be a string of at most ${MAX_REASON} characters, got ${describeValue(reason)}`)
  const mute: Mute = { hash: checked, until: healthy ? null : now + Math.round(parseDuration(forValue) * 1000), untilHealthy: healthy, createdAt: now }
  if (reason !== undefined && reason !== '') mute.reason = reason
  return mute
}

/** Whether a mute still covers a transition at `at`. */
export function muteCovers(mute: Mute, at: number): boolean {
  return mute.untilHealthy || (mute.until !== null && at < mute.until)
}

/** The mutes in force, by hash. */
export type MuteMap = ReadonlyMap<string, Mute>

function parseMutes(path: string, text: string): Map<string, Mute> {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new CorruptFileError(`${path}: not valid JSON (${(error as Error).message})`, { path, cause: error })
  }
  const file = raw as { format?: unknown; mutes?: unknown }
  if (raw === null || typeof raw !== 'object' || file.format !== FORMAT || file.mutes === null || typeof file.mutes !== 'object' || Array.isArray(file.mutes)) {
    throw new CorruptFileError(`${path}: not a mutes file (expected {"format": "${FORMAT}", "mutes": {…}})`, { path })
  }
  const mutes = new Map<string, Mute>()
  for (const [hash, value] of Object.entries(file.mutes as Record<string, unknown>)) {
    const entry = value as Partial<Mute> | null
    // An entry that does not read is skipped: one bad mute must not unmute or break the others.
    if (entry === null || typeof entry !== 'object' || !/^[A-Za-z0-9_]{1,64}$/.test(hash)) continue
    const untilHealthy = entry.untilHealthy === true
    const until = typeof entry.until === 'number' && Number.isFinite(entry.until) ? entry.until : null
    if (!untilHealthy && until === null) continue
    const mute: Mute = { hash, until: untilHealthy ? null : until, untilHealthy, createdAt: typeof entry.createdAt === 'number' ? entry.createdAt : 0 }
    if (typeof entry.reason === 'string') mute.reason = entry.reason.slice(0, MAX_REASON)
    mutes.set(hash, mute)
  }
  return mutes
}

function serialise(mutes: Iterable<Mute>): string {
  const out: Record<string, Omit<Mute, 'hash'>> = {}
  for (const { hash, ...rest } of mutes) out[hash] = rest
  return `${JSON.stringify({ format: FORMAT, version: 1, mutes: out }, null, 2)}\n`
}

/** Reads the mutes (expired ones left out). A missing file: none. A corrupt one: `AIM_STATUS_CORRUPT_FILE`. */
export async function readMutes(path: string, now: number): Promise<Map<string, Mute>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw error
  }
  return live(parseMutes(path, text), now)
}

function live(mutes: Map<string, Mute>, now: number): Map<string, Mute> {
  for (const [hash, mute] of mutes) if (!muteCovers(mute, now)) mutes.delete(hash)
  return mutes
}

/**
 * Changes the mutes under the file's lock: `change` edits the map (expired mutes already
 * removed); the result is written atomically. A corrupt file is replaced (its mutes cannot be
 * read anyway, and refusing every mute would be worse). Resolves with the mutes now in force.
 */
export async function updateMutes(path: string, now: number, change: (mutes: Map<string, Mute>) => void): Promise<Map<string, Mute>> {
  let release: () => Promise<void>
  try {
    // The status folder, not the repo: a mute for a folder that is not a repo fails (ENOENT).
    await mkdir(dirname(path), { mode: STATE_FOLDER_MODE }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error
    })
    release = await lockfile.lock(path, {
      realpath: false,
      stale: 10_000,
      retries: { retries: 80, factor: 1.4, minTimeout: 5, maxTimeout: 250, randomize: true },
      // The default handler throws from a timer, which would crash the process.
      onCompromised: () => undefined,
    })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') throw new AimStatusError(ErrorCodes.LOCKED, `${path} is locked by another process; try again`, { cause: error })
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new AimStatusError(ErrorCodes.INVALID_PATH, `Cannot write mutes: ${path}'s folder does not exist (not a repo?)`, { cause: error })
    throw error
  }
  try {
    let mutes: Map<string, Mute>
    try {
      mutes = await readMutes(path, now)
    } catch (error) {
      if ((error as { code?: unknown }).code !== ErrorCodes.CORRUPT_FILE) throw error
      mutes = new Map()
    }
    change(mutes)
    await writeFileAtomic(path, serialise(mutes.values()))
    return mutes
  } finally {
    await release().catch(() => undefined)
  }
}

/** Sets (or replaces) a mute. */
export async function setMute(path: string, mute: Mute): Promise<Map<string, Mute>> {
  return updateMutes(path, mute.createdAt, (mutes) => void mutes.set(mute.hash, mute))
}

/** Removes a run's mute; resolves with whether there was one. */
export async function removeMute(path: string, hash: string, now: number): Promise<boolean> {
  checkRunHash(hash)
  let had = false
  await updateMutes(path, now, (mutes) => {
    had = mutes.delete(hash)
  })
  return had
}

/**
 * Ends a mute until healthy once its run is healthy. Only the mute that covered the transition
 * is removed (same `createdAt`): a newer mute set meanwhile stays.
 */
export async function endMuteUntilHealthy(path: string, mute: Mute, now: number): Promise<void> {
  await updateMutes(path, now, (mutes) => {
    const current = mutes.get(mute.hash)
    if (current !== undefined && current.untilHealthy && current.createdAt === mute.createdAt) mutes.delete(mute.hash)
  })
}

/**
 * The mutes as last written, for synchronous looks at the moment an event is accepted: a `stat`
 * each look, the file read again only when it changed. A file that cannot be read counts as no
 * mutes (a transition is then sent: failing open is the safe side for an alert), and `onError`
 * hears about it once per change of the file.
 */
export class MuteView {
  readonly path: string
  readonly #onError: (error: Error) => void
  #stamp = ''
  #mutes = new Map<string, Mute>()

  constructor(path: string, onError: (error: Error) => void = () => undefined) {
    this.path = path
    this.#onError = onError
  }

  /** The mute covering `hash` at `at`, or null. */
  covering(hash: string, at: number): Mute | null {
    const mute = this.current().get(hash)
    return mute !== undefined && muteCovers(mute, at) ? mute : null
  }

  /** Every mute in the file (expired ones included until the next write prunes them). */
  current(): MuteMap {
    let stamp: string
    try {
      // No file (the usual case) is an answer, not an error: a thrown ENOENT costs a stack trace
      // per look, and every transition looks (10k runs seen at a daemon's start: 10 MB of them).
      const info = statSync(this.path, { throwIfNoEntry: false })
      if (info === undefined) {
        if (this.#stamp !== '') {
          this.#stamp = ''
          this.#mutes = new Map()
        }
        return this.#mutes
      }
      stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
      if (stamp !== this.#stamp) {
        this.#stamp = stamp
        this.#mutes = new Map()
        if (info.size > MAX_FILE_BYTES) throw new CorruptFileError(`${this.path}: larger than ${MAX_FILE_BYTES} bytes`, { path: this.path })
        this.#mutes = parseMutes(this.path, readFileSync(this.path, 'utf8'))
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#stamp = ''
        this.#mutes = new Map()
      } else this.#onError(error instanceof Error ? error : new Error(String(error)))
    }
    return this.#mutes
  }
}
