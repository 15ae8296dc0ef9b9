/**
 * Aim's notifier configuration, `<root>/.aim/ext/notifications/config.json`:
 *
 *     {"notifications": {"version": "1.0",
 *                        "notifiers": {"<id>": {"id", "type", "arguments", "status", ...}},
 *                        "log_level": 30}}
 *
 * Python Aim reads and writes the same file, so a write here keeps everything it does not
 * understand: unknown top-level fields, unknown fields of an entry, and whole entries of types
 * this process has not registered (Aim skips unknown types with a warning; so do we). Our own
 * extras (`events`, `messages`) are extra fields of an entry, which Aim ignores.
 *
 * Writes are read-modify-write under a proper-lockfile lock (mkdir-based, so it works on NFS)
 * and land atomically (temp file in the same folder, fsync, rename) with mode 0600: the file
 * holds webhook URLs and tokens.
 * @module
 */
import { dirname } from 'node:path'
import lockfile from 'proper-lockfile'
import { writeFileAtomic } from '../state/files.js'
import { ensureStateFolder, NO_FOLLOW_LOCK_FS, readStateFile } from '../state/safe-fs.js'
import { AimStatusError, ErrorCodes, describeValue } from '../errors.js'
import { repoRootOf, type RepoPaths } from '../repo.js'
import type { NotifierEntry } from './contract.js'
import { findNotifierType, validateEntry } from './registry.js'

/** The `version` Aim writes. */
export const CONFIG_VERSION = '1.0'

/** An entry of the file that is skipped because it is malformed or fails its type's validation. */
export interface ConfigProblem {
  /** The entry's key in the file. */
  id: string
  /** Its type, when it has one. */
  type?: string
  error: string
  /** The stored entry, when it is at least an object with an id and a type. */
  entry?: NotifierEntry
}

/** The notifier configuration as loaded. */
export interface NotificationsConfig {
  /** Aim's `version` field (`"1.0"`). */
  version: string
  /** Usable entries (known type, valid arguments), normalised, in file order. */
  notifiers: NotifierEntry[]
  /** Entries whose type is not registered in this process: kept in the file, not used. */
  unknownTypes: NotifierEntry[]
  /** Entries that are malformed or fail validation: kept in the file, not used. */
  invalid: ConfigProblem[]
  /** Aim's `log_level`, a Python logging level (10 DEBUG … 50 CRITICAL), when set. */
  logLevel?: number
}

/** What {@link updateNotificationsConfig} lets a change edit. */
export interface ConfigDraft {
  /**
   * Every well-formed entry of the file in file order, of any type, as stored (not
   * normalised). Edit entries in place, push new ones, splice to remove. Entries that are added
   * or changed are validated before anything is written; untouched ones are kept byte for byte.
   */
  notifiers: NotifierEntry[]
  /** Aim's `log_level`; `undefined` leaves the field out. */
  logLevel: number | undefined
}

const corrupt = (file: string, why: string, cause?: unknown): AimStatusError => new AimStatusError(ErrorCodes.CORRUPT_FILE, `${file}: ${why}`, cause === undefined ? undefined : { cause })

/**
 * The deepest nesting a stored entry may have. Deeper values are refused before anything
 * recursive (`JSON.stringify`, `structuredClone`, a validator) touches them: a few thousand
 * levels overflow the stack.
 */
export const MAX_CONFIG_DEPTH = 32

/** The path of the first value nested `limit` levels deep or more (`arguments.a[0].b`), or null. Iterative. */
export function tooDeepField(value: unknown, limit: number, prefix = ''): string | null {
  const stack: Array<[unknown, string, number]> = [[value, prefix, 0]]
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop() as [unknown, string, number]
    if (current === null || typeof current !== 'object') continue
    if (depth >= limit) return path
    const array = Array.isArray(current)
    for (const [key, child] of Object.entries(current)) stack.push([child, array ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`, depth + 1])
  }
  return null
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)

/**
 * Reads and parses a JSON file; `undefined` when it does not exist; CORRUPT_FILE when it does not
 * parse; AIM_STATUS_UNSAFE_FILE when it is not a plain file (a link, a FIFO: never followed or
 * waited on) or larger than 1 MiB.
 */
export async function readJsonFile(file: string): Promise<unknown> {
  const text = await readStateFile(file)
  return text === null ? undefined : parseJsonText(file, text)
}

function parseJsonText(file: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw corrupt(file, `not valid JSON (${(error as Error).message})`, error)
  }
}

/**
 * Runs `fn` while holding the proper-lockfile lock of `file` (a `<file>.lock` folder). Waits
 * for another holder with backoff (up to about 20 s), and takes over a lock whose holder died
 * (stale after 10 s). `fn` gets `assertHeld()`, to call just before committing: it throws
 * AIM_STATUS_LOCKED if the lock was compromised meanwhile (another process judged it stale and
 * took it), so that two writers never both commit.
 */
export async function withFileLock<T>(file: string, fn: (assertHeld: () => void) => Promise<T>): Promise<T> {
  // The file is always under `<root>/.aim/`: its folder must stay inside the repo.
  ensureStateFolder(dirname(file), repoRootOf(file) ?? dirname(file), 0o755)
  let compromised: Error | undefined
  let release: () => Promise<void>
  try {
    release = await lockfile.lock(file, {
      // The file may not exist yet; with realpath the lock fails with ENOENT.
      realpath: false,
      fs: NO_FOLLOW_LOCK_FS,
      stale: 10_000,
      retries: { retries: 80, factor: 1.4, minTimeout: 5, maxTimeout: 250, randomize: true },
      // The default handler throws from a timer, which would crash the process.
      onCompromised: (error) => {
        compromised = error
      },
    })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new AimStatusError(ErrorCodes.LOCKED, `${file} is locked by another process (${file}.lock); try again`, { cause: error })
    }
    throw error
  }
  const assertHeld = (): void => {
    if (compromised !== undefined) {
      throw new AimStatusError(ErrorCodes.LOCKED, `Lost the lock of ${file} (${compromised.message}); nothing was written`, { cause: compromised })
    }
  }
  try {
    return await fn(assertHeld)
  } finally {
    // After a compromise the release fails (the lock is someone else's): nothing to undo.
    await release().catch(() => undefined)
  }
}

/** The parsed file, with the parts the rest of this module needs. */
interface ParsedConfig {
  document: Record<string, unknown>
  section: Record<string, unknown>
  /** Key -> stored value, in file order (values may be malformed). */
  entries: Array<[string, unknown]>
}

function parseConfig(file: string, raw: unknown): ParsedConfig {
  if (raw === undefined) {
    const section = { version: CONFIG_VERSION, notifiers: {} }
    return { document: { notifications: section }, section, entries: [] }
  }
  if (!isPlainObject(raw)) throw corrupt(file, `expected a JSON object, got ${describeValue(raw)}`)
  const section = raw['notifications']
  if (!isPlainObject(section)) throw corrupt(file, `expected a "notifications" object, got ${describeValue(section)}`)
  const notifiers = section['notifiers'] ?? {}
  if (!isPlainObject(notifiers)) throw corrupt(file, `expected "notifications.notifiers" to be an object, got ${describeValue(notifiers)}`)
  return { document: raw, section, entries: Object.entries(notifiers) }
}

function storedLogLevel(section: Record<string, unknown>): number | undefined {
  const level = section['log_level']
  return Number.isInteger(level) ? (level as number) : undefined
}

/** Whether a stored value is an entry we can hand to a draft: an object with string id and type. */
function isWellFormed(key: string, value: unknown): value is NotifierEntry {
  return isPlainObject(value) && value['id'] === key && typeof value['type'] === 'string'
}

function typeOf(value: unknown): { type?: string } {
  return isPlainObject(value) && typeof value['type'] === 'string' ? { type: value['type'] } : {}
}

function malformedReason(key: string, value: unknown): string {
  if (!isPlainObject(value)) return `expected an object, got ${describeValue(value)}`
  if (value['id'] !== key) return `its id ${describeValue(value['id'])} differs from its key`
  return `its type is ${describeValue(value['type'])}`
}

function loadConfig(file: string, raw: unknown): NotificationsConfig {
  const { section, entries } = parseConfig(file, raw)
  const config: NotificationsConfig = {
    version: typeof section['version'] === 'string' ? section['version'] : CONFIG_VERSION,
    notifiers: [],
    unknownTypes: [],
    invalid: [],
  }
  const level = storedLogLevel(section)
  if (level !== undefined) config.logLevel = level
  for (const [key, value] of entries) {
    const deep = tooDeepField(value, MAX_CONFIG_DEPTH)
    if (deep !== null) {
      config.invalid.push({ id: key, ...typeOf(value), error: `${ErrorCodes.INVALID_NOTIFIER}: notifier ${describeValue(key)}: field ${describeValue(deep)} is nested more than ${MAX_CONFIG_DEPTH} levels deep` })
      continue
    }
    if (!isWellFormed(key, value)) {
      config.invalid.push({ id: key, error: malformedReason(key, value) })
      continue
    }
    if (findNotifierType(value.type) === undefined) {
      config.unknownTypes.push(value)
      continue
    }
    try {
      config.notifiers.push(validateEntry(value))
    } catch (error) {
      config.invalid.push({ id: key, type: value.type, error: (error as Error).message, entry: value })
    }
  }
  return config
}

/**
 * Reads the configuration. A missing file is a configuration with no notifiers; a file that is
 * not JSON or not Aim's shape is an AIM_STATUS_CORRUPT_FILE error naming the file. Single bad
 * entries do not spoil the rest: they are listed in `invalid`.
 */
export async function readNotificationsConfig(paths: RepoPaths): Promise<NotificationsConfig> {
  return loadConfig(paths.config, await readJsonFile(paths.config))
}

/**
 * Parses the text of a configuration file (`undefined`: the file does not exist), as
 * {@link readNotificationsConfig} does; `file` names it in errors.
 */
export function parseNotificationsConfig(file: string, text: string | undefined): NotificationsConfig {
  return loadConfig(file, text === undefined ? undefined : parseJsonText(file, text))
}

/** Orders an entry's keys as Aim writes them (`id`, `type`, `arguments`, `status`), then the rest. */
function inAimOrder(entry: NotifierEntry): NotifierEntry {
  const { id, type, arguments: args, status, ...rest } = entry
  return { id, type, arguments: args, status, ...rest }
}

/**
 * What to store for one draft entry: an untouched entry as it was; a changed or new entry of a
 * known type validated and normalised; an entry of a type unknown here only if it existed
 * before under the same type (so its status can be changed, as Aim allows), never a new one.
 */
function checkedForWriting(entry: NotifierEntry, before: unknown): unknown {
  if (before !== undefined && JSON.stringify(before) === JSON.stringify(entry)) return before
  if (findNotifierType(entry.type) !== undefined || !isPlainObject(before) || before['type'] !== entry.type) return inAimOrder(validateEntry(entry))
  if (entry.status !== 'enabled' && entry.status !== 'disabled') {
    throw new AimStatusError(ErrorCodes.INVALID_NOTIFIER, `Expected status "enabled" or "disabled", got ${describeValue(entry.status)}`)
  }
  return inAimOrder(entry)
}

function serialise(parsed: ParsedConfig, draft: ConfigDraft, file: string): string {
  const original = new Map(parsed.entries)
  const seen = new Set<string>()
  const written: Array<[string, unknown]> = []
  for (const entry of draft.notifiers) {
    const id = (entry as { id?: unknown }).id
    if (typeof id !== 'string') throw new AimStatusError(ErrorCodes.INVALID_ID, `Expected a notifier id, got ${describeValue(id)}`)
    if (seen.has(id)) throw new AimStatusError(ErrorCodes.INVALID_NOTIFIER, `Two notifiers with the id ${describeValue(id)}`)
    seen.add(id)
    const before = original.get(id)
    written.push([id, checkedForWriting(entry, before)])
  }
  // Malformed stored values are not in the draft; keep them where nothing replaced them.
  for (const [key, value] of parsed.entries) {
    if (!isWellFormed(key, value) && !seen.has(key)) written.push([key, value])
  }
  if (draft.logLevel !== undefined && !Number.isInteger(draft.logLevel)) {
    throw new AimStatusError(ErrorCodes.INVALID_OPTION, `Expected log_level to be an integer, got ${describeValue(draft.logLevel)}`)
  }
  // Object.fromEntries defines own properties, so even an id such as "__proto__" stays data.
  const fields = new Map<string, unknown>(Object.entries(parsed.section))
  if (!fields.has('version')) fields.set('version', CONFIG_VERSION)
  fields.set('notifiers', Object.fromEntries(written))
  // Touch log_level only when the change did: a value we do not understand is kept as it is.
  if (draft.logLevel !== storedLogLevel(parsed.section)) {
    if (draft.logLevel === undefined) fields.delete('log_level')
    else fields.set('log_level', draft.logLevel)
  }
  const document = Object.fromEntries([...Object.entries(parsed.document)].map(([k, v]) => [k, k === 'notifications' ? Object.fromEntries(fields) : v]))
  if (!Object.hasOwn(document, 'notifications')) throw corrupt(file, 'lost its "notifications" object')
  return `${JSON.stringify(document, null, 2)}\n`
}

/**
 * Changes the configuration under its lock: re-reads the file, lets `mutate` edit a draft,
 * validates every added or changed entry (registry.validateEntry), and writes the result
 * atomically with mode 0600. If `mutate` or a validation throws, nothing is written. A corrupt
 * file is never overwritten: the change fails with AIM_STATUS_CORRUPT_FILE.
 * @returns what `mutate` returned.
 */
export async function updateNotificationsConfig<T>(paths: RepoPaths, mutate: (draft: ConfigDraft) => T | Promise<T>): Promise<T> {
  return withFileLock(paths.config, async (assertHeld) => {
    const parsed = parseConfig(paths.config, await readJsonFile(paths.config))
    // Written back whole: a value too deep for JSON.stringify stops the change before anything is touched.
    const deep = tooDeepField(parsed.document, MAX_CONFIG_DEPTH + 3)
    if (deep !== null) throw corrupt(paths.config, `field ${describeValue(deep)} is nested more than ${MAX_CONFIG_DEPTH} levels deep; fix or remove it by hand (nothing was written)`)
    const draft: ConfigDraft = {
      // A deep copy: the draft may be edited freely, and unchanged entries are found by comparison.
      notifiers: parsed.entries.filter(([key, value]) => isWellFormed(key, value)).map(([, value]) => structuredClone(value) as NotifierEntry),
      logLevel: storedLogLevel(parsed.section),
    }
    const result = await mutate(draft)
    const text = serialise(parsed, draft, paths.config)
    assertHeld()
    await writeFileAtomic(paths.config, text)
    return result
  })
}
