/**
 * One attempt to send one event through one notifier, bounded: the only place that runs a
 * notifier's `send`. The outbox, `notifiers test`, `start --announce` and the main thread's
 * custom types all go through it, so they share one timeout and one rule for a notifier that
 * misbehaves:
 * - `render` throws: permanent (the template or the type is broken; trying again renders the same);
 * - `send` throws, rejects, or returns something that is not an outcome: transient (a network
 *   library may throw on a passing fault; the retry budget bounds a notifier that always does);
 * - no answer within the time limit: the signal aborts and the attempt is transient, whether or
 *   not the notifier honours its signal (`timedOut`: the endpoint may still have got it);
 * - the caller's own signal aborts: transient, `interrupted`.
 * Every error text is scrubbed of known secrets before it is returned.
 * @module
 */
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import type { DeliveryOutcome, Notifier } from './contract.js'
import type { RunEvent } from '../model.js'
import { scrub } from './redact.js'

/** Options of {@link sendOnce}. */
export interface SendOnceOptions {
  /** The time limit of the attempt, in ms (the notifier's request included). */
  timeoutMs: number
  /** Where the time limit runs. Default: the system clock. */
  clock?: Clock
  /** Ends the attempt early (an outbox that closes). */
  signal?: AbortSignal
  /** Whether the time limit keeps the process alive (a CLI waiting for its answer). Default false. */
  keepsProcessAlive?: boolean
  /** The text to send, when the caller renders it itself (Aim's start message). Default: `notifier.render(event)`. */
  rendered?: string
  /** The attempt's number for this item, from 1. Default 1. */
  attempt?: number
}

/** How one attempt ended. */
export interface SendResult {
  outcome: DeliveryOutcome
  /** The time limit ran out: the endpoint may have received it anyway. */
  timedOut: boolean
  /** The caller's signal ended it. */
  interrupted: boolean
}

/** Whether a value is a {@link DeliveryOutcome}. */
export function isOutcome(value: unknown): value is DeliveryOutcome {
  const kind = (value as { kind?: unknown } | null)?.kind
  if (kind === 'delivered') return true
  return (kind === 'transient' || kind === 'permanent') && typeof (value as { error?: unknown }).error === 'string'
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Runs one bounded attempt. Never throws, never rejects. */
export async function sendOnce(notifier: Notifier, event: RunEvent, options: SendOnceOptions): Promise<SendResult> {
  const clock = options.clock ?? systemClock
  const { timeoutMs } = options
  let rendered: string
  try {
    rendered = options.rendered ?? notifier.render(event)
  } catch (error) {
    return { outcome: { kind: 'permanent', error: scrub(`cannot render the message: ${messageOf(error)}`) }, timedOut: false, interrupted: false }
  }
  const controller = new AbortController()
  let ended: 'timeout' | 'interrupted' | null = null
  const timer = new DeadlineTimer(
    clock,
    () => {
      ended = 'timeout'
      controller.abort(new Error(`no answer within ${timeoutMs} ms`))
    },
    { keepsProcessAlive: options.keepsProcessAlive === true },
  )
  const onCallerAbort = (): void => {
    ended ??= 'interrupted'
    controller.abort(new Error('interrupted'))
  }
  if (options.signal?.aborted === true) onCallerAbort()
  else options.signal?.addEventListener('abort', onCallerAbort, { once: true })
  timer.arm(clock.now() + timeoutMs)
  // Not trusting a notifier to honour its signal: the attempt ends when the signal fires.
  const aborted = new Promise<DeliveryOutcome>((resolve) => {
    const done = (): void => resolve({ kind: 'transient', error: ended === 'timeout' ? `no answer within ${timeoutMs} ms` : 'interrupted before an answer' })
    if (controller.signal.aborted) done()
    else controller.signal.addEventListener('abort', done, { once: true })
  })
  const sent = Promise.resolve()
    .then(() => notifier.send(event, rendered, controller.signal, { timeoutMs, attempt: options.attempt ?? 1 }))
    .then(
      (outcome): DeliveryOutcome => (isOutcome(outcome) ? outcome : { kind: 'transient', error: 'the notifier returned no outcome' }),
      (error: unknown): DeliveryOutcome => ({ kind: 'transient', error: `notifier threw: ${messageOf(error)}` }),
    )
  try {
    const first = await Promise.race([sent.then((outcome) => ({ outcome, by: null })), aborted.then((outcome) => ({ outcome, by: ended }))])
    const { outcome, by } = first
    const safe: DeliveryOutcome = outcome.kind === 'delivered' ? outcome : { ...outcome, error: scrub(outcome.error) }
    return { outcome: safe, timedOut: by === 'timeout', interrupted: by === 'interrupted' }
  } finally {
    timer.close()
    options.signal?.removeEventListener('abort', onCallerAbort)
  }
}
