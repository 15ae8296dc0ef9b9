/**
 * The run handle. `reportProgress()` is on a training loop's hot path, so it
 * costs about one clock read: no await, no allocation, and in the steady state no message.
 *
 * How reports reach the actor without a message per call:
 * - every report writes `[now, deadline]` into a small block of shared memory (the "slot") that
 *   the actor reads when a stall falls due, so no report is ever lost to coalescing;
 * - a report is also *sent* when the actor must act on it: the first one, a deadline earlier
 *   than the last one sent (the actor's timer must move up), or a deadline later than the last
 *   one sent by more than the slack (so snapshots and queries stay fresh, about once a second).
 * The slack is min(1 s, grace / 2). After a stall, any report moves the deadline past the last
 * one sent by more than the grace, so it is always sent: a recovery is never held back.
 * @module
 */
import { EventEmitter } from 'eventemitter3'
import { monotonicNow } from './clock.js'
import { AimStatusError, ErrorCodes, InvalidOptionError, OutOfRangeError, describeValue } from './errors.js'
import { SLOT_DEADLINE, SLOT_LAST_PROGRESS, createProgressSlot, type ProgressSlot, type RunEvent, type RunStatus } from './model.js'
import { MAX_SECONDS } from './options.js'
import type { HostMessage } from './actor/protocol.js'

/**
 * The events of a run handle: its own run's transitions. (`started` happens before `watch()`
 * returns the handle; listen for it on the `Watcher`.)
 */
export interface RunEvents {
  stalled: [event: RunEvent]
  recovered: [event: RunEvent]
  finished: [event: RunEvent]
  failed: [event: RunEvent]
}

/** How a handle reaches its repo's actor; provided by the Watcher. */
export interface RunChannel {
  post(message: HostMessage): void
  /** Resolves when the actor has handled everything posted before. */
  settle(): Promise<void>
  /** The handle is done: the watcher stops routing events to it. */
  release(hash: string): void
}

const MAX_SLACK_MS = 1000

/** The most of a failure's log tail that is kept, in characters (the end of it). */
export const MAX_LOG_TAIL_CHARS = 8000

/** What a failure may carry besides its reason. */
export interface FailureDetails {
  /** The last lines of output that explain the failure (secrets already scrubbed). Default: none. */
  logTail?: string
}

const ACTIVE = 0
const ENDED = 1
const CLOSED = 2
/** Its owner lost the lease while frozen (an adopter watches the run now): re-established by the next report. */
const DETACHED = 3

/** A watched run. Obtain one with `watch()` or `Watcher.watch()`. */
export class Run extends EventEmitter<RunEvents> {
  /** The run's hash (Aim's run id). */
  readonly hash: string
  /** The run's name, if one was given. */
  readonly name: string | undefined
  /** The run's experiment, if one was given. */
  readonly experiment: string | undefined
  /** Seconds allowed past a deadline. */
  readonly grace: number
  readonly #checkins: boolean
  readonly #channel: RunChannel
  readonly #slot: ProgressSlot
  readonly #slackMs: number
  #sentDeadline = Number.NaN
  #state = ACTIVE
  #status: RunStatus = 'running'
  readonly #openedAt: number

  /** @internal Created by the Watcher. */
  constructor(init: { hash: string; name: string | undefined; experiment: string | undefined; grace: number; checkins: boolean; channel: RunChannel }) {
    super()
    this.hash = init.hash
    this.name = init.name
    this.experiment = init.experiment
    this.grace = init.grace
    this.#checkins = init.checkins
    this.#channel = init.channel
    this.#slackMs = Math.min(MAX_SLACK_MS, init.grace * 500)
    this.#openedAt = monotonicNow()
    this.#slot = createProgressSlot(this.#openedAt)
    this.#postOpen()
  }

  #postOpen(resume = false): void {
    this.#channel.post({
      kind: 'open',
      hash: this.hash,
      grace: this.grace,
      at: this.#openedAt,
      slot: this.#slot,
      checkins: this.#checkins,
      ...(resume ? { resume: true } : {}),
      ...(this.name !== undefined ? { name: this.name } : {}),
      ...(this.experiment !== undefined ? { experiment: this.experiment } : {}),
    })
  }

  /**
   * @internal The repo's thread was restarted empty: tell it about this run again, with its
   * original start time (so its event keys are unchanged) and its last report.
   */
  reopenAfterRestart(): void {
    if (this.#state !== ACTIVE) return
    this.#postOpen(true)
    const at = this.#slot[SLOT_LAST_PROGRESS] as number
    const deadline = this.#slot[SLOT_DEADLINE] as number
    if (at > this.#openedAt) {
      this.#channel.post({ kind: 'progress', hash: this.hash, at, expectNextIn: deadline === Number.POSITIVE_INFINITY ? 0 : (deadline - at) / 1000 })
    }
  }

  /**
   * @internal The repo's owner lost its lease while this process was frozen, and an adopter
   * (the daemon) watches the run now. The run is re-established with a new owner at its next
   * report, finish or failure: a run that reports again is handed back, one that never does
   * stays the adopter's (re-establishing it now, with its last promise long expired, would
   * declare the stall the adopter already declared).
   */
  detach(): void {
    if (this.#state === ACTIVE) this.#state = DETACHED
  }

  /** A detached run comes back: opened again with the new owner, the report that follows sent. */
  #reestablish(): void {
    this.#state = ACTIVE
    this.#sentDeadline = Number.NaN
    this.#postOpen(true)
  }

  /** The run's status as last reported by its watcher. */
  get status(): RunStatus {
    return this.#status
  }

  /**
   * Reports progress and promises the next report within `expectNextIn` seconds (0: no
   * deadline). Cheap enough to call on every step. Throws if the run has finished or failed.
   */
  reportProgress(expectNextIn = 0): void {
    // One comparison rejects negatives, NaN, infinities and non-numbers alike.
    if (!(typeof expectNextIn === 'number' && expectNextIn >= 0 && expectNextIn <= MAX_SECONDS)) throw badExpect(expectNextIn)
    if (this.#state !== ACTIVE) {
      if (this.#state !== DETACHED) throw this.#endedError('reportProgress')
      this.#reestablish()
    }
    const now = monotonicNow()
    const deadline = expectNextIn === 0 ? Number.POSITIVE_INFINITY : now + expectNextIn * 1000
    const slot = this.#slot
    // The deadline is written last: the actor trusts a slot whose progress time is newer.
    slot[SLOT_DEADLINE] = deadline
    slot[SLOT_LAST_PROGRESS] = now
    const sent = this.#sentDeadline
    // NaN (nothing sent yet) fails both comparisons below on purpose, hence the explicit check.
    if (sent !== sent || deadline < sent || deadline - sent > this.#slackMs) {
      this.#sentDeadline = deadline
      this.#channel.post({ kind: 'progress', hash: this.hash, at: now, expectNextIn })
    }
  }

  /** Reports that the run finished successfully. Resolves once the watcher has recorded it. */
  async reportSuccessfulFinish(): Promise<void> {
    if (this.#state === DETACHED) this.#reestablish()
    if (this.#state !== ACTIVE) throw this.#endedError('reportSuccessfulFinish')
    this.#state = ENDED
    this.#channel.post({ kind: 'finish', hash: this.hash, at: monotonicNow() })
    await this.#channel.settle()
  }

  /**
   * Reports that the run failed. Resolves once the watcher has recorded it (and notifiers were
   * told). `details.logTail`: the last lines of output that explain it (a traceback), shown to
   * templates as `{run.log_tail}` and in the webhook document; at most 8000 characters are kept
   * (the end). Default: none.
   */
  async reportFailure(reason = 'reported failure', details: FailureDetails = {}): Promise<void> {
    if (typeof reason !== 'string') throw new InvalidOptionError(`Expected \`reason\` to be a string, got ${describeValue(reason)}`)
    const logTail = details?.logTail
    if (logTail !== undefined && typeof logTail !== 'string') throw new InvalidOptionError(`Expected \`logTail\` to be a string, got ${describeValue(logTail)}`)
    if (this.#state === DETACHED) this.#reestablish()
    if (this.#state !== ACTIVE) throw this.#endedError('reportFailure')
    this.#state = ENDED
    this.#channel.post({
      kind: 'fail',
      hash: this.hash,
      at: monotonicNow(),
      reason: reason.slice(0, 2000),
      ...(logTail !== undefined && logTail !== '' ? { logTail: logTail.slice(-MAX_LOG_TAIL_CHARS) } : {}),
    })
    await this.#channel.settle()
  }

  /**
   * Lets go of the handle. A run that has not finished stays watched with its last promise,
   * as in Aim: if it never reports again, it stalls. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#state === CLOSED) return
    this.#state = CLOSED
    this.#channel.release(this.hash)
    this.removeAllListeners()
  }

  /** @internal The watcher routes this run's events here. */
  deliver(event: RunEvent): void {
    this.#status = event.run.status
    if (event.kind === 'finished' || event.kind === 'failed') this.#state = this.#state === CLOSED ? CLOSED : ENDED
    if (event.kind !== 'started') this.emit(event.kind, event)
  }

  #endedError(method: string): AimStatusError {
    return this.#state === CLOSED
      ? new AimStatusError(ErrorCodes.CLOSED, `Run '${this.hash}': ${method}() after close()`)
      : new AimStatusError(ErrorCodes.RUN_ENDED, `Run '${this.hash}' has already ${this.#status === 'failed' ? 'failed' : 'finished'}: ${method}() is not allowed`)
  }
}

function badExpect(value: unknown): Error {
  return typeof value === 'number'
    ? new OutOfRangeError(`Expected \`expectNextIn\` to be a number of seconds from 0 to ${MAX_SECONDS}, got ${describeValue(value)}`)
    : new InvalidOptionError(`Expected \`expectNextIn\` to be a number of seconds, got ${describeValue(value)}`)
}
