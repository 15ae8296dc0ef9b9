/**
 * The notifier contract: every notifier type is one module that validates its arguments,
 * renders a message for a run event and sends it, classifying the outcome as delivered,
 * transient (try again later) or permanent (give up and report). Failures are returned as
 * outcomes, never thrown, so that one notifier can never stop another.
 * @module
 */
import type { RunEvent, RunEventKind } from '../model.js'

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

/** A configured, ready-to-send notifier. */
export interface Notifier {
  readonly entry: NotifierEntry
  /** Renders the text for an event (the template chosen by the entry, or the default). */
  render(event: RunEvent): string
  /** Sends one event. Must not throw: every failure is an outcome. Must stop when `signal` aborts. */
  send(event: RunEvent, rendered: string, signal: AbortSignal): Promise<DeliveryOutcome>
}

/** One notifier type: its name, its argument validation and its factory. */
export interface NotifierType {
  readonly type: string
  /** Argument names whose values are secrets: redacted whenever an entry is shown. */
  readonly secretArguments: readonly string[]
  /**
   * Checks and normalises arguments; throws a coded error naming the argument otherwise.
   * Runs when a notifier is configured, so that a mistake shows then and not when a run fails.
   */
  validate(args: Record<string, unknown>): Record<string, unknown>
  create(entry: NotifierEntry, context: NotifierContext): Notifier
}

/** The message Python Aim sends for a stalled or failed run. */
export const AIM_DEFAULT_MESSAGE = "❗️ Something wrong with Run '{run.hash}'. Please check. ❗️"

/** Default templates per event; `arguments.message` (Aim's single message) replaces stalled and failed. */
export const DEFAULT_MESSAGES: Readonly<Record<RunEventKind, string>> = {
  started: "Run '{run.hash}' started.",
  stalled: AIM_DEFAULT_MESSAGE,
  recovered: "✅ Run '{run.hash}' is reporting progress again.",
  finished: "Run '{run.hash}' finished without error.",
  failed: AIM_DEFAULT_MESSAGE,
}

/** The template an entry uses for an event. */
export function templateFor(entry: NotifierEntry, kind: RunEventKind): string {
  const perEvent = entry.messages?.[kind]
  if (perEvent !== undefined) return perEvent
  const aimMessage = entry.arguments['message']
  if ((kind === 'stalled' || kind === 'failed') && typeof aimMessage === 'string') return aimMessage
  return DEFAULT_MESSAGES[kind]
}

/** Whether an entry wants an event. */
export function wantsEvent(entry: NotifierEntry, kind: RunEventKind): boolean {
  return entry.status === 'enabled' && (entry.events ?? DEFAULT_NOTIFIER_EVENTS).includes(kind)
}
