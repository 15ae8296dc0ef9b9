/**
 * The notifier contract: every notifier type is one module that validates its arguments,
 * renders a message for a run event and sends it, classifying the outcome as delivered,
 * transient (try again later) or permanent (give up and report). Failures are returned as
 * outcomes, never thrown, so that one notifier can never stop another.
 * @module
 */
import type { RunEvent, RunEventKind } from '../model.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { compileTemplate, type CompiledTemplate } from './template.js'

/** The events a notifier receives when it does not choose: the ones somebody must act on. */
export const DEFAULT_NOTIFIER_EVENTS: readonly RunEventKind[] = ['stalled', 'failed', 'recovered']

/** A notifier as stored in Aim's `config.json` (extra fields are ours; Aim ignores them). */
export interface NotifierEntry {
  /** A uuid4, equal to its key in the config file. */
  id: string
  type: string
  status: 'enabled' | 'disabled'
  /** Type-specific arguments, in Aim's names (`url`, `group_id`, `access_token`, `message`). */
  arguments: Record<string, unknown>
  /** Which events it receives. Default: {@link DEFAULT_NOTIFIER_EVENTS}. */
  events?: RunEventKind[]
  /** A message template per event, overriding `arguments.message` and the defaults. */
  messages?: Partial<Record<RunEventKind, string>>
}

/** How one attempt to deliver ended. */
export type DeliveryOutcome =
  | { kind: 'delivered'; detail?: string }
  /** Worth trying again (network error, timeout, 429, 5xx). `retryAfterMs` honours the server's `Retry-After`. */
  | { kind: 'transient'; error: string; retryAfterMs?: number }
  /** Trying again will not help (bad URL, revoked token, 4xx). */
  | { kind: 'permanent'; error: string }

/** What a notifier gets from the process that runs it. */
export interface NotifierContext {
  /** Writes one line to the watcher's standard output (works while the main thread is blocked). */
  writeLine(line: string): void
}

/** What an attempt's sender tells the notifier about the attempt. */
export interface SendContext {
  /** The attempt's time limit, in ms (already enforced through `signal`; for a notifier that forwards it). */
  timeoutMs: number
  /** The attempt's number for this item, from 1. */
  attempt: number
}

/** A configured, ready-to-send notifier. */
export interface Notifier {
  readonly entry: NotifierEntry
  /** Renders the text for an event (the template chosen by the entry, or the default). */
  render(event: RunEvent): string
  /**
   * Sends one event. Should not throw: every failure is an outcome (sendOnce turns a throw into
   * a transient one). Must stop when `signal` aborts: the signal carries the attempt's one timeout.
   */
  send(event: RunEvent, rendered: string, signal: AbortSignal, context?: SendContext): Promise<DeliveryOutcome>
}

/** One value a type takes on the command line (`aim-watcher notifiers add TYPE --flag VALUE`). */
export interface NotifierFlag {
  /** The flag, `--kebab-case`. Flags of different types may share a name only for the same argument. */
  flag: string
  /** The argument it sets, in Aim's name (`url`, `group_id`). */
  argument: string
  /** Asked for on a terminal (and a usage error without one) when not given. */
  required: boolean
  /** Hidden when typed, redacted in all output. */
  secret: boolean
  /** The question asked on a terminal. */
  prompt: string
  /** The flag's help text. */
  description: string
  /** The value's name in help (`--webhook-url <URL>`). Default: the argument's name in capitals. */
  placeholder?: string
}

/** One notifier type: everything the registry, the CLI, the scrubber and the outbox need to know of it. */
export interface NotifierType {
  readonly type: string
  /** Argument names whose values are secrets: redacted whenever an entry is shown, scrubbed from every text. */
  readonly secretArguments: readonly string[]
  /**
   * Checks and normalises arguments; throws a coded error naming the argument otherwise.
   * Runs when a notifier is configured, so that a mistake shows then and not when a run fails.
   */
  validate(args: Record<string, unknown>): Record<string, unknown>
  create(entry: NotifierEntry, context: NotifierContext): Notifier
  /** Whether Python Aim knows this type (its entries then always get Aim's `message`). Default false. */
  readonly aim?: boolean
  /** Its command-line flags and prompts. Default: none (configured in code or in the file). */
  readonly flags?: readonly NotifierFlag[]
  /**
   * Every secret value in (validated) arguments, for the scrubber: derived values included (a
   * token as it appears URL-encoded in a request). Default: the string values of
   * `secretArguments`, and the string values of those that are objects (headers).
   */
  secretsOf?(args: Record<string, unknown>): string[]
}

/** The message Python Aim sends for a stalled or failed run. */
export const AIM_DEFAULT_MESSAGE = "❗️ Something wrong with Run '{run.hash}'. Please check. ❗️"

/**
 * Default templates per event; `arguments.message` (Aim's single message) replaces stalled and
 * failed, unless it is Aim's default message (stored for Python Aim's sake), which says nothing
 * of why a run failed: a failure then says why and where.
 */
export const DEFAULT_MESSAGES: Readonly<Record<RunEventKind, string>> = {
  started: "Run '{run.hash}' started.",
  stalled: AIM_DEFAULT_MESSAGE,
  recovered: "✅ Run '{run.hash}' is reporting progress again.",
  finished: "Run '{run.hash}' finished without error.",
  failed: "❗️ Run '{run.hash}' failed on {host}: {run.reason} ❗️",
}

/**
 * What the default stall message gains for a run of many ranks: which ranks went silent, the
 * first thing anyone looking at a stalled job of many hosts needs.
 */
export const RANKED_STALL_SUFFIX = ' (silent ranks: {run.silent_ranks})'

/**
 * The template an entry uses for an event. `ranked`: the event's run is a run of many ranks, for
 * which Aim's default stall message (only that one: a message of the entry's own stays as
 * written) gains {@link RANKED_STALL_SUFFIX}. Default false.
 */
export function templateFor(entry: NotifierEntry, kind: RunEventKind, ranked = false): string {
  const perEvent = entry.messages?.[kind]
  if (perEvent !== undefined) return perEvent
  const aimMessage = entry.arguments['message']
  if (kind === 'failed' && aimMessage === AIM_DEFAULT_MESSAGE) return DEFAULT_MESSAGES.failed
  const template = (kind === 'stalled' || kind === 'failed') && typeof aimMessage === 'string' ? aimMessage : DEFAULT_MESSAGES[kind]
  return ranked && kind === 'stalled' && template === AIM_DEFAULT_MESSAGE ? template + RANKED_STALL_SUFFIX : template
}

/** Whether an entry wants an event. */
export function wantsEvent(entry: NotifierEntry, kind: RunEventKind): boolean {
  return entry.status === 'enabled' && (entry.events ?? DEFAULT_NOTIFIER_EVENTS).includes(kind)
}

/**
 * An entry's templates, compiled once (the first time each event kind is rendered), so that
 * a notifier does not parse its template on every event.
 */
export function entryRenderer(entry: NotifierEntry): (event: RunEvent) => string {
  const compiled = new Map<string, CompiledTemplate>()
  return (event) => {
    const ranked = event.run.ranks !== undefined
    const cacheKey = ranked ? `${event.kind}/ranked` : event.kind
    let template = compiled.get(cacheKey)
    if (template === undefined) {
      template = compileTemplate(templateFor(entry, RUN_EVENT_KINDS.includes(event.kind) ? event.kind : 'stalled', ranked))
      compiled.set(cacheKey, template)
    }
    return template.render(event)
  }
}
