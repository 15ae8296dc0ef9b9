/**
 * The table of notifier types: type name -> {@link NotifierType}. Built-in types are
 * registered here; programs add their own with {@link registerNotifierType}, and every entry,
 * built-in or custom, goes through the same validation.
 * @module
 */
import { AimStatusError, ErrorCodes, describeValue } from '../errors.js'
import type { NotifierContext, NotifierEntry, NotifierType, Notifier } from './contract.js'
import type { RunEventKind } from '../model.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { redactSecret } from './redact.js'
import { compileTemplate } from './template.js'
import { loggerType } from './types/logger.js'
import { slackType } from './types/slack.js'
import { webhookType } from './types/webhook.js'
import { workplaceType } from './types/workplace.js'

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
  types.set(definition.type, definition)
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
  if (typeof entry.id !== 'string' || !NOTIFIER_ID_PATTERN.test(entry.id)) {
    throw new AimStatusError(ErrorCodes.INVALID_ID, `Expected a notifier id of 1 to 64 characters of [A-Za-z0-9_-], got ${describeValue(entry.id)}`)
  }
  const type = findNotifierType(entry.type)
  if (type === undefined) throw invalid(`Unknown notifier type ${describeValue(entry.type)}; known: ${notifierTypeNames().join(', ')}`)
  if (entry.status !== 'enabled' && entry.status !== 'disabled') throw invalid(`Expected status "enabled" or "disabled", got ${describeValue(entry.status)}`)
  if (entry.arguments === null || typeof entry.arguments !== 'object' || Array.isArray(entry.arguments)) {
    throw invalid(`Expected arguments to be an object, got ${describeValue(entry.arguments)}`)
  }
  let args: Record<string, unknown>
  try {
    args = type.validate({ ...entry.arguments })
  } catch (error) {
    // A custom type may throw anything; the caller always gets a coded error naming the type.
    if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && (error as unknown as { code: string }).code.startsWith('AIM_STATUS_')) throw error
    throw invalid(`${entry.type} notifier: ${error instanceof Error ? error.message : String(error)}`)
  }
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
  return type.create(entry, context)
}

/** A copy of an entry with every secret argument redacted, safe to print or log. */
export function redactEntry(entry: NotifierEntry): NotifierEntry {
  const secrets = findNotifierType(entry.type)?.secretArguments ?? []
  const args: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(entry.arguments ?? {})) {
    // Unknown types: treat anything that looks like a credential as secret.
    const secret = secrets.includes(name) || /url|token|secret|password|key/i.test(name)
    args[name] = secret && value !== undefined && value !== null ? redactSecret(value) : value
  }
  return { ...entry, arguments: args }
}

registerNotifierType(loggerType)
registerNotifierType(slackType)
registerNotifierType(workplaceType)
registerNotifierType(webhookType)
