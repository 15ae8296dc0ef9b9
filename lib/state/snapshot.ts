/**
 * The snapshot: an owner's runs and undelivered notifications, durable under
 * `status/owners/<ownerId>.json`, so that whoever adopts the owner's runs carries on from it.
 * Written atomically (see `files.ts`); read back with every field checked, because the file
 * crosses processes, versions and crashes. A file that fails the check is set aside
 * (`<name>.corrupt-<time>`) and reported with `AIM_STATUS_CORRUPT_FILE`, never a crash.
 * @module
 */
import { readFile } from 'node:fs/promises'
import type { RunInfo, RunStatus } from '../notify/contract.js'
import { checkRunHash } from '../repo.js'
import { AimStatusError, ErrorCodes, describeValue } from '../errors.js'
import { CorruptFileError, setAside, unreadableError, writeFileAtomic } from './files.js'
import type { AtomicWriteOptions } from './files.js'
import { parseOwnerInfo } from './owner.js'
import type { OwnerInfo } from './owner.js'

/** The `format` tag of a snapshot file. */
export const SNAPSHOT_FORMAT = 'aim-status/snapshot'
/** The snapshot format version this code writes and reads. */
export const SNAPSHOT_VERSION = 1

/** A snapshot as stored. Times are epoch milliseconds. */
export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT
  version: typeof SNAPSHOT_VERSION
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
  return run
}

/** Thrown for a snapshot of a later format version: not corrupt, so not set aside. */
class NewerVersion extends Error {}

/** Checks a parsed snapshot, field by field; throws a plain message naming the first bad field. */
export function parseSnapshot(value: unknown): Snapshot {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('the top level is not an object')
  const s = value as Record<string, unknown>
  if (s['format'] !== SNAPSHOT_FORMAT) fail(`format is ${describeValue(s['format'])}`)
  if (typeof s['version'] === 'number' && s['version'] > SNAPSHOT_VERSION) throw new NewerVersion(`version ${s['version']} is newer than this program's ${SNAPSHOT_VERSION}`)
  if (s['version'] !== SNAPSHOT_VERSION) fail(`version is ${describeValue(s['version'])}`)
  const generation = s['generation']
  if (!Number.isSafeInteger(generation) || (generation as number) < 1) fail(`generation is ${describeValue(generation)}`)
  if (!Array.isArray(s['runs'])) fail(`runs is ${describeValue(s['runs'])}`)
  const seen = new Set<string>()
  const runs = s['runs'].map((run: unknown, i: number) => {
    const parsed = parseRunInfo(run, `runs[${i}]`)
    if (seen.has(parsed.hash)) fail(`runs[${i}].hash ${parsed.hash} appears twice`)
    seen.add(parsed.hash)
    return parsed
  })
  const extra = s['extra']
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) fail(`extra is ${describeValue(extra)}`)
  if (!('outbox' in s)) fail('outbox is missing')
  const snapshot: Snapshot = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    owner: parseOwnerInfo(s['owner'], 'owner'),
    generation: generation as number,
    writtenAt: finite(s['writtenAt'], 'writtenAt'),
    runs,
    outbox: s['outbox'],
    extra: extra as Record<string, unknown>,
  }
  if (s['adoptedBy'] !== undefined) snapshot.adoptedBy = parseOwnerInfo(s['adoptedBy'], 'adoptedBy')
  return snapshot
}

/** The file text of a snapshot. */
export function serializeSnapshot(snapshot: Snapshot): string {
  return JSON.stringify(snapshot)
}

/**
 * Writes a snapshot atomically and durably (temp file in the same folder, fsync, rename, fsync
 * of the folder; mode 0600). Resolves when it is durable. `options.beforeRename` is where the
 * lease's generation check goes.
 */
export async function writeSnapshotAtomic(path: string, snapshot: Snapshot, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, serializeSnapshot(snapshot), options)
}

/**
 * Reads and checks a snapshot. Resolves null when there is no file. A truncated, unparsable or
 * invalid file is renamed to `<name>.corrupt-<time>` and the promise rejects with a
 * {@link CorruptFileError} (`AIM_STATUS_CORRUPT_FILE`, with `setAsidePath`). A file of a newer
 * format version rejects with the same code but stays where it is. A file that cannot be read
 * (permissions, a parent that is not a folder) rejects with `AIM_STATUS_INVALID_PATH`.
 */
export async function readSnapshot(path: string): Promise<Snapshot | null> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw unreadableError(path, error)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw await setAside(path, text.length === 0 ? 'empty' : `not JSON, truncated? ${(error as Error).message}`)
  }
  try {
    return parseSnapshot(parsed)
  } catch (error) {
    if (error instanceof NewerVersion) throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${path}: ${error.message}; left in place`)
    throw await setAside(path, (error as Error).message)
  }
}

export { CorruptFileError }
