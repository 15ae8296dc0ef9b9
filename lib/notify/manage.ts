/**
 * The notifier registry of a repo, as a program reaches it (the `Watcher` object exposes these,
 * and `aim-watcher notifiers …` is a thin shell over them): add, list, enable, disable, remove,
 * test, and Aim's log level. Every change goes through {@link updateNotificationsConfig}: locked,
 * validated whole, written atomically, never half-applied.
 * @module
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { AimStatusError, ErrorCodes, InvalidIdError, InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import { repoPaths, resolveRepoRoot, type RepoPaths } from '../repo.js'
import type { DeliveryOutcome, NotifierEntry } from './contract.js'
import { eventKey, type RunEvent, type RunEventKind } from '../model.js'
import { AIM_DEFAULT_MESSAGE, DEFAULT_NOTIFIER_EVENTS } from './contract.js'
import { readNotificationsConfig, updateNotificationsConfig } from './config.js'
import { NOTIFIER_ID_PATTERN, createNotifier, isAimType, redactEntry, validateEntry } from './registry.js'
import { sendOnce } from './send-once.js'
import { scrub } from './redact.js'
import { readNotifierStatus, writeNotifierStatus, type NotifierStatusMap } from './status-file.js'
import { emptyStats, type NotifierStats } from './delivery-record.js'

/** What {@link addNotifier} needs to configure a notifier. */
export interface NotifierSpec {
  /** The id to store it under. Default: a new uuid4 (as Aim makes them). An id in use is an error. */
  id?: string
  /** A registered type: `slack`, `workplace`, `logger`, `webhook`, or a custom one. */
  type: string
  /** The type's arguments, in Aim's names (`url`, `group_id`, `access_token`, `message`, …). Default: `{}`. */
  arguments?: Record<string, unknown>
  /** Which events it receives. Default: `stalled`, `failed`, `recovered`. */
  events?: RunEventKind[]
  /** A template per event, overriding `arguments.message`. Default: none. */
  messages?: Partial<Record<RunEventKind, string>>
  /** Default: `enabled`. */
  status?: 'enabled' | 'disabled'
  /**
   * For {@link addNotifier}: when a notifier of the same `type` with the same `arguments` is
   * configured already, return it instead of adding another, so that a script that sets up its
   * notifiers can run again without duplicating them. Its `events`, `messages` and `status` are
   * left as they are. Default: false (every call adds a notifier).
   */
  ifMissing?: boolean
}

/** One notifier as listed: secrets redacted, with how its deliveries went. */
export interface NotifierListing {
  id: string
  type: string
  status: 'enabled' | 'disabled'
  /** The events it receives (its own list, or the default). */
  events: RunEventKind[]
  /** The entry with every secret argument redacted: safe to print. */
  entry: NotifierEntry
  /** False when the watcher skips it: unknown type, or invalid arguments (see `problem`). */
  usable: boolean
  /** Why it is skipped, or null. */
  problem: string | null
  delivery: NotifierStats
}

/** The result of testing one notifier. */
export interface NotifierTestResult {
  id: string
  type: string
  outcome: DeliveryOutcome
}

/** Options of {@link testNotifiers}. */
export interface TestNotifiersOptions {
  /** Where the `logger` notifier (and custom ones that print) write. Default: standard output. */
  writeLine?: (line: string) => void
  /** How long one notifier may take, in ms. Default: 10000. */
  timeoutMs?: number
}

/** Python logging levels by name, as Aim stores `log_level` (an int). */
export const LOG_LEVELS: Readonly<Record<string, number>> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 }
/** The level when `log_level` is not set: Python logging's default, WARNING. */
export const DEFAULT_LOG_LEVEL = 30
// Python's logging accepts these aliases too.
const LEVEL_BY_NAME = new Map<string, number>([...Object.entries(LOG_LEVELS), ['WARN', 30], ['FATAL', 50]])

function pathsOf(root: string): RepoPaths {
  if (typeof root !== 'string' || root === '') throw new InvalidOptionError(`Expected \`root\` to be a folder path, got ${describeValue(root)}`)
  return repoPaths(resolveRepoRoot(root))
}

/** Throws AIM_STATUS_INVALID_ID unless `id` could be a notifier id (so a hostile string never reaches a path or a key). */
export function checkNotifierId(id: unknown): string {
  if (typeof id !== 'string' || !NOTIFIER_ID_PATTERN.test(id)) {
    throw new InvalidIdError(`Expected a notifier id of 1 to 64 characters of [A-Za-z0-9_-], got ${describeValue(id)}`)
  }
  return id
}

const unknownNotifier = (id: string): AimStatusError => new AimStatusError(ErrorCodes.UNKNOWN_NOTIFIER, `No notifier with id ${id}`)

/** Builds and validates the entry a spec describes (a new uuid4 id unless one is given). Nothing is stored. */
export function entryFromSpec(spec: NotifierSpec): NotifierEntry {
  if (spec === null || typeof spec !== 'object') throw new InvalidOptionError(`Expected a notifier spec object, got ${describeValue(spec)}`)
  if (typeof spec.type !== 'string') throw new InvalidOptionError(`Expected \`type\` to be a string, got ${describeValue(spec.type)}`)
  const args = spec.arguments ?? {}
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new InvalidOptionError(`Expected \`arguments\` to be an object, got ${describeValue(args)}`)
  const entry: NotifierEntry = {
    id: spec.id === undefined ? randomUUID() : checkNotifierId(spec.id),
    type: spec.type,
    // Aim's types read `arguments.message` unconditionally (a missing one is a KeyError in
    // Python Aim's watcher), so entries of the types Aim knows always get one.
    arguments: isAimType(spec.type) && args['message'] === undefined ? { ...args, message: AIM_DEFAULT_MESSAGE } : { ...args },
    status: spec.status ?? 'enabled',
  }
  if (spec.events !== undefined) entry.events = spec.events
  if (spec.messages !== undefined) entry.messages = spec.messages
  return validateEntry(entry)
}

/** JSON with every object's keys in order: equal for arguments that differ only in key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  )
}

/** The configured entry of the same type with the same arguments (both normalised), if any. */
function sameNotifier(entries: readonly NotifierEntry[], wanted: NotifierEntry): NotifierEntry | undefined {
  const key = canonicalJson(wanted.arguments)
  return entries.find((entry) => {
    if (entry.type !== wanted.type) return false
    try {
      return canonicalJson(validateEntry(structuredClone(entry)).arguments) === key
    } catch {
      return false // an entry that does not validate is nobody's twin
    }
  })
}

/**
 * The configured notifier that `addNotifier(root, { ...spec, ifMissing: true })` would return
 * instead of adding one: same type, same arguments. Undefined when there is none.
 */
export async function findSameNotifier(root: string, spec: NotifierSpec): Promise<NotifierEntry | undefined> {
  const paths = pathsOf(root)
  return sameNotifier((await readNotificationsConfig(paths)).notifiers, entryFromSpec(spec))
}

/**
 * Adds a notifier and returns its stored entry (not redacted: the caller gave the secrets).
 * With `ifMissing: true`, an entry of the same type and arguments already configured is
 * returned instead, and nothing is written.
 */
export async function addNotifier(root: string, spec: NotifierSpec): Promise<NotifierEntry> {
  const paths = pathsOf(root)
  const entry = entryFromSpec(spec)
  if (spec.ifMissing !== undefined && typeof spec.ifMissing !== 'boolean') throw new InvalidOptionError(`Expected \`ifMissing\` to be a boolean, got ${describeValue(spec.ifMissing)}`)
  if (spec.ifMissing === true) {
    // Read first so that a script run again writes nothing; checked again under the lock below.
    const existing = await findSameNotifier(root, spec)
    if (existing !== undefined) return existing
  }
  return updateNotificationsConfig(paths, (draft) => {
    const existing = spec.ifMissing === true ? sameNotifier(draft.notifiers, entry) : undefined
    if (existing !== undefined) return existing
    draft.notifiers.push(entry)
    return entry
  })
}

async function readStatusLeniently(paths: RepoPaths): Promise<NotifierStatusMap> {
  try {
    return await readNotifierStatus(paths)
  } catch {
    // Delivery bookkeeping is informative; a listing must not fail because of it.
    return Object.create(null) as NotifierStatusMap
  }
}

/** Every configured notifier, secrets redacted, with its delivery status. */
export async function listNotifiers(root: string): Promise<NotifierListing[]> {
  const paths = pathsOf(root)
  const [config, statuses] = await Promise.all([readNotificationsConfig(paths), readStatusLeniently(paths)])
  // Stored entries that failed validation keep whatever shape the file gave them: each field is
  // read for what it is (a status of 1 lists as invalid, it does not crash the listing).
  const listing = (entry: NotifierEntry, problem: string | null): NotifierListing => ({
    id: entry.id,
    type: entry.type,
    status: entry.status === 'enabled' || entry.status === 'disabled' ? entry.status : 'disabled',
    events: Array.isArray(entry.events) ? entry.events.filter((e): e is RunEventKind => typeof e === 'string') : [...DEFAULT_NOTIFIER_EVENTS],
    entry: entry.arguments !== null && typeof entry.arguments === 'object' && !Array.isArray(entry.arguments) ? redactEntry(entry) : { ...entry, arguments: {} },
    usable: problem === null,
    problem: problem === null ? null : scrub(problem),
    delivery: statuses[entry.id] ?? emptyStats(),
  })
  const stub = (id: string, type: string | undefined): NotifierEntry => ({ id, type: type ?? '?', status: 'disabled', arguments: {} })
  return [
    ...config.notifiers.map((entry) => listing(entry, null)),
    ...config.unknownTypes.map((entry) => listing(entry, `unknown notifier type "${entry.type}": skipped`)),
    ...config.invalid.map((problem) => listing(problem.entry ?? stub(problem.id, problem.type), problem.error)),
  ]
}

async function setStatus(root: string, id: string, status: 'enabled' | 'disabled'): Promise<void> {
  checkNotifierId(id)
  await updateNotificationsConfig(pathsOf(root), (draft) => {
    const entry = draft.notifiers.find((e) => e.id === id)
    if (entry === undefined) throw unknownNotifier(id)
    entry.status = status
  })
}

/** Enables a notifier. Unknown id: AIM_STATUS_UNKNOWN_NOTIFIER. */
export async function enableNotifier(root: string, id: string): Promise<void> {
  await setStatus(root, id, 'enabled')
}

/** Disables a notifier (it stays configured). Unknown id: AIM_STATUS_UNKNOWN_NOTIFIER. */
export async function disableNotifier(root: string, id: string): Promise<void> {
  await setStatus(root, id, 'disabled')
}

/** Removes a notifier and its delivery status. Unknown id: AIM_STATUS_UNKNOWN_NOTIFIER. */
export async function removeNotifier(root: string, id: string): Promise<void> {
  checkNotifierId(id)
  const paths = pathsOf(root)
  await updateNotificationsConfig(paths, (draft) => {
    const index = draft.notifiers.findIndex((e) => e.id === id)
    if (index < 0) throw unknownNotifier(id)
    draft.notifiers.splice(index, 1)
  })
  // The configuration is what matters; stale bookkeeping is harmless if this fails.
  await writeNotifierStatus(paths, { [id]: null }).catch(() => undefined)
}

/** The event a test sends: a stall of a run that does not exist, clearly named as a test. */
function testEvent(root: string): RunEvent {
  const at = Date.now()
  return {
    kind: 'stalled',
    // A key of the documented format, new for every test, so a receiver can handle it as any other.
    key: eventKey({ source: 'node', hash: 'notifier_test', startedAt: at, kind: 'stalled', episode: 1 }),
    at,
    run: {
      hash: 'notifier_test',
      name: 'aim-watcher notifier test',
      status: 'stalled',
      startedAt: at,
      lastProgressAt: at,
      expectNextIn: 0,
      deadlineAt: null,
      grace: 0,
      episode: 1,
    },
    repo: root,
    host: hostname(),
    pid: process.pid,
    overdueSeconds: 0,
  }
}

/**
 * One bounded attempt through one entry (sendOnce's rules). Kept alive: the answer, even "no
 * answer within N ms", is what the command exists to print.
 */
async function sendTest(entry: NotifierEntry, event: RunEvent, writeLine: (line: string) => void, timeoutMs: number, rendered?: string): Promise<DeliveryOutcome> {
  let notifier
  try {
    notifier = createNotifier(entry, { writeLine })
  } catch (error) {
    return { kind: 'permanent', error: scrub(error instanceof Error ? error.message : String(error)) }
  }
  const result = await sendOnce(notifier, event, { timeoutMs, keepsProcessAlive: true, ...(rendered !== undefined ? { rendered } : {}) })
  return result.outcome
}

/**
 * Sends a test message through every enabled notifier, or through the one given (even when
 * disabled), all at once, and returns each outcome. Test sends are not recorded in the
 * delivery status. Unknown id: AIM_STATUS_UNKNOWN_NOTIFIER.
 */
export async function testNotifiers(root: string, id?: string, options: TestNotifiersOptions = {}): Promise<NotifierTestResult[]> {
  if (id !== undefined) checkNotifierId(id)
  const timeoutMs = options.timeoutMs ?? 10_000
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OutOfRangeError(`Expected \`timeoutMs\` to be a positive number, got ${describeValue(timeoutMs)}`)
  const writeLine = options.writeLine ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const paths = pathsOf(root)
  const config = await readNotificationsConfig(paths)
  let chosen: NotifierEntry[]
  if (id === undefined) {
    chosen = config.notifiers.filter((e) => e.status === 'enabled')
  } else {
    const entry = config.notifiers.find((e) => e.id === id)
    if (entry === undefined) {
      const skipped = [...config.unknownTypes.map((e) => ({ id: e.id, why: `its type "${e.type}" is unknown here` })), ...config.invalid.map((p) => ({ id: p.id, why: p.error }))].find((s) => s.id === id)
      if (skipped !== undefined) throw new AimStatusError(ErrorCodes.INVALID_NOTIFIER, `Notifier ${id} cannot be tested: ${skipped.why}`)
      throw unknownNotifier(id)
    }
    chosen = [entry]
  }
  const event = testEvent(paths.root)
  return Promise.all(
    chosen.map(async (entry) => {
      const outcome = await sendTest(entry, event, writeLine, timeoutMs)
      return { id: entry.id, type: entry.type, outcome }
    }),
  )
}

/** Aim's watcher's start message. */
export const WATCHER_RUNNING_MESSAGE = "Watcher is running for repo '{repo}'"

/**
 * Sends Aim's "Watcher is running for repo '<path>'" through every enabled notifier, as Python's
 * watcher does on every start (our daemon only when asked: `start --announce`). Not recorded in
 * the delivery status; each outcome is returned.
 */
export async function announceWatcher(root: string, options: TestNotifiersOptions = {}): Promise<NotifierTestResult[]> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const writeLine = options.writeLine ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const paths = pathsOf(root)
  const config = await readNotificationsConfig(paths)
  const text = WATCHER_RUNNING_MESSAGE.replace('{repo}', paths.root)
  const event: RunEvent = { ...testEvent(paths.root), kind: 'started', key: `aim-watcher/started/${Date.now()}` }
  event.run = { ...event.run, hash: 'aim_watcher', name: 'aim-watcher', status: 'running' }
  return Promise.all(
    config.notifiers
      .filter((entry) => entry.status === 'enabled')
      .map(async (entry) => {
        const outcome = await sendTest(entry, event, writeLine, timeoutMs, text)
        return { id: entry.id, type: entry.type, outcome }
      }),
  )
}

/** Reads a log level given as a Python level name (any case) or an integer 0–50. */
export function parseLogLevel(level: string | number): number {
  if (typeof level === 'number' || (typeof level === 'string' && /^\d+$/.test(level.trim()))) {
    const value = Number(level)
    if (!Number.isInteger(value) || value < 0 || value > 50) throw new OutOfRangeError(`Expected a log level from 0 to 50, got ${describeValue(level)}`)
    return value
  }
  const name = typeof level === 'string' ? level.trim().toUpperCase() : ''
  const value = LEVEL_BY_NAME.get(name)
  if (value === undefined) {
    throw new InvalidOptionError(`Expected a log level (${Object.keys(LOG_LEVELS).join(', ')} or 0 to 50), got ${describeValue(level)}`)
  }
  return value
}

/** The name of a level (`ERROR`), or `Level N` as Python names a level it has no name for. */
export function logLevelName(level: number): string {
  return Object.entries(LOG_LEVELS).find(([, value]) => value === level)?.[0] ?? `Level ${level}`
}

/** Aim's `log_level` (a Python logging level), or {@link DEFAULT_LOG_LEVEL} when it is not set. */
export async function getLogLevel(root: string): Promise<number> {
  return (await readNotificationsConfig(pathsOf(root))).logLevel ?? DEFAULT_LOG_LEVEL
}

/** Sets Aim's `log_level`; accepts DEBUG/INFO/WARNING/ERROR/CRITICAL or an integer. Returns the stored int. */
export async function setLogLevel(root: string, level: string | number): Promise<number> {
  const value = parseLogLevel(level)
  await updateNotificationsConfig(pathsOf(root), (draft) => {
    draft.logLevel = value
  })
  return value
}
