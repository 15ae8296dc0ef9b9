/**
 * The table of notifier types: type name -> {@link NotifierType}. Built-in types are the one
 * list {@link BUILT_IN_TYPES} (adding a type is its file plus one line there); programs add
 * their own with {@link registerNotifierType}, and every entry, built-in or custom, goes through
 * the same validation. What else is derived from a type's own description: the CLI's flags and
 * prompts ({@link notifierFlags}), whether Aim's `message` is stored ({@link isAimType}), which
 * types every thread has ({@link builtInTypeNames}), and the secrets the scrubber knows
 * ({@link secretsOfEntry}, remembered whenever an entry is validated or a notifier created).
 * @module
 */
import { AimStatusError, ErrorCodes, describeValue } from '../errors.js'
import type { NotifierContext, NotifierEntry, NotifierFlag, NotifierType, Notifier } from './contract.js'
import type { RunEventKind } from '../model.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { redactSecret, rememberSecrets } from './redact.js'
import { compileTemplate } from './template.js'
import { loggerType } from './types/logger.js'
import { slackType } from './types/slack.js'
import { webhookType } from './types/webhook.js'
import { workplaceType } from './types/workplace.js'

/** The built-in types, in the order the CLI offers them. */
export const BUILT_IN_TYPES: readonly NotifierType[] = [loggerType, slackType, workplaceType, webhookType]

const types = new Map<string, NotifierType>()

/** Ids are uuid4 strings in Aim; we accept any safe token so that ids never escape a path. */
export const NOTIFIER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const TYPE_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/

const invalid = (message: string) => new AimStatusError(ErrorCodes.INVALID_NOTIFIER, message)

/**
 * Adds a notifier type. The name must be new (built-in names cannot be replaced), lower case,
 * and at most 32 characters of `[a-z0-9_-]`.
 */
export function registerNotifierType(definition: NotifierType): void {
  if (definition === null || typeof definition !== 'object') throw invalid(`Expected a notifier type definition, got ${describeValue(definition)}`)
  if (typeof definition.type !== 'string' || !TYPE_NAME_PATTERN.test(definition.type)) {
    throw invalid(`Expected a notifier type name of [a-z0-9_-] starting with a letter, got ${describeValue(definition.type)}`)
  }
  if (typeof definition.validate !== 'function' || typeof definition.create !== 'function' || !Array.isArray(definition.secretArguments)) {
    throw invalid(`Notifier type "${definition.type}" must have validate(), create() and secretArguments`)
  }
  if (types.has(definition.type)) throw invalid(`Notifier type "${definition.type}" is already registered`)
  for (const flag of definition.flags ?? []) {
    const other = notifierFlags().find((f) => f.flag === flag.flag)
    if (other !== undefined && other.argument !== flag.argument) throw invalid(`Notifier type "${definition.type}": flag ${flag.flag} already sets "${other.argument}" for another type`)
  }
  types.set(definition.type, definition)
}

/** The names of the built-in types (every thread has them without being told). */
export function builtInTypeNames(): string[] {
  return BUILT_IN_TYPES.map((type) => type.type)
}

/** Whether Python Aim knows a type (its entries then always carry Aim's `message`). */
export function isAimType(type: string): boolean {
  return types.get(type)?.aim === true
}

/** Every registered type's command-line flags, each with its type, in registration order. */
export function notifierFlags(): Array<NotifierFlag & { type: string }> {
  return [...types.values()].flatMap((type) => (type.flags ?? []).map((flag) => ({ ...flag, type: type.type })))
}

/**
 * Every secret value of an entry, as its type describes them; for an unknown type, every
 * argument whose name looks like a credential. Never throws.
 */
export function secretsOfEntry(entry: Pick<NotifierEntry, 'type' | 'arguments'>): string[] {
  const args = entry?.arguments
  if (args === null || typeof args !== 'object') return typeof args === 'string' ? [args] : []
  const type = types.get(entry.type)
  try {
    if (type?.secretsOf !== undefined) return [...type.secretsOf(args), ...plainSecrets(args, type.secretArguments)]
  } catch {
    // A custom type's secretsOf failed on odd arguments: the plain rule below still applies.
  }
  return plainSecrets(args, type?.secretArguments ?? Object.keys(args).filter(looksSecret))
}

const looksSecret = (name: string): boolean => /url|token|secret|password|key|auth/i.test(name)

function plainSecrets(args: Record<string, unknown>, names: readonly string[]): string[] {
  const out: string[] = []
  for (const name of names) {
    const value = args[name]
    if (typeof value === 'string') out.push(value)
    else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) if (typeof v === 'string') out.push(v)
  }
  return out
}

/** The type definition, or undefined when the type is unknown. */
export function findNotifierType(type: string): NotifierType | undefined {
  return types.get(type)
}

/** Every registered type name. */
export function notifierTypeNames(): string[] {
  return [...types.keys()]
}

/**
 * Checks a whole entry (id, type, status, arguments, events, templates) and returns it
 * normalised. Throws a coded error naming the first problem.
 */
export function validateEntry(entry: NotifierEntry): NotifierEntry {
  if (entry === null || typeof entry !== 'object') throw invalid(`Expected a notifier entry, got ${describeValue(entry)}`)
  // Known to the scrubber before any check can quote them in an error.
  rememberSecrets(secretsOfEntry(entry))
  if (typeof entry.id !== 'string' || !NOTIFIER_ID_PATTERN.test(entry.id)) {
    throw new AimStatusError(ErrorCodes.INVALID_ID, `Expected a notifier id of 1 to 64 characters of [A-Za-z0-9_-], got ${describeValue(entry.id)}`)
  }
  const type = findNotifierType(entry.type)
  if (type === undefined) throw invalid(`Unknown notifier type ${describeValue(entry.type)}; known: ${notifierTypeNames().join(', ')}`)
  if (entry.status !== 'enabled' && entry.status !== 'disabled') throw invalid(`Expected status "enabled" or "disabled", got ${describeValue(entry.status)}`)
  if (entry.arguments === null || typeof entry.arguments !== 'object' || Array.isArray(entry.arguments)) {
    // Not described: arguments given as a string are likely a URL, a secret.
    throw invalid(`Expected arguments to be an object, got ${Array.isArray(entry.arguments) ? 'an array' : entry.arguments === null ? 'null' : `a ${typeof entry.arguments}`}`)
  }
  let args: Record<string, unknown>
  try {
    args = type.validate({ ...entry.arguments })
  } catch (error) {
    // A custom type may throw anything; the caller always gets a coded error naming the type.
    if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && (error as unknown as { code: string }).code.startsWith('AIM_STATUS_')) throw error
    throw invalid(`${entry.type} notifier: ${error instanceof Error ? error.message : String(error)}`)
  }
  rememberSecrets(secretsOfEntry({ type: entry.type, arguments: args }))
  const normalised: NotifierEntry = { ...entry, arguments: args }
  if (entry.events !== undefined) {
    if (!Array.isArray(entry.events) || entry.events.some((e) => !RUN_EVENT_KINDS.includes(e as RunEventKind))) {
      throw invalid(`Expected events to be a list of ${RUN_EVENT_KINDS.join(', ')}, got ${JSON.stringify(entry.events)}`)
    }
    normalised.events = [...new Set(entry.events)]
  }
  if (entry.messages !== undefined) {
    if (entry.messages === null || typeof entry.messages !== 'object') throw invalid('Expected messages to be an object of event -> template')
    for (const [kind, template] of Object.entries(entry.messages)) {
      if (!RUN_EVENT_KINDS.includes(kind as RunEventKind)) throw invalid(`Unknown event ${describeValue(kind)} in messages`)
      compileTemplate(template as string)
    }
  }
  return normalised
}

/** Creates a ready notifier from a valid entry. */
export function createNotifier(entry: NotifierEntry, context: NotifierContext): Notifier {
  const type = findNotifierType(entry.type)
  if (type === undefined) throw invalid(`Unknown notifier type ${describeValue(entry.type)}`)
  rememberSecrets(secretsOfEntry(entry))
  return type.create(entry, context)
}

/** A copy of an entry with every secret argument redacted, safe to print or log. */
export function redactEntry(entry: NotifierEntry): NotifierEntry {
  const secrets = findNotifierType(entry.type)?.secretArguments ?? []
  if (entry.arguments === null || typeof entry.arguments !== 'object') return { ...entry, arguments: entry.arguments === undefined ? {} : { value: redactSecret(entry.arguments) } }
  const args: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(entry.arguments)) {
    // Unknown types: treat anything that looks like a credential as secret.
    const secret = secrets.includes(name) || looksSecret(name)
    if (!secret || value === undefined || value === null) args[name] = value
    // An object of secrets (headers): names kept, every value redacted.
    else if (typeof value === 'object' && !Array.isArray(value)) args[name] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecret(v)]))
    else args[name] = redactSecret(value)
  }
  return { ...entry, arguments: args }
}

for (const type of BUILT_IN_TYPES) registerNotifierType(type)
