/**
 * One timer at an absolute time on an injected {@link Clock}: the primitive behind every "next
 * deadline" in the package (the actor's stall timer, check-in renewals, the outbox's retries,
 * snapshot coalescing, config polling).
 *
 * - `arm(at)` sets the time it fires at; arming again replaces it, arming for the time it is
 *   already armed for changes nothing, so an owner can re-arm after every change at no cost.
 * - It never fires before its time by its clock: a clock timer that comes back early (the
 *   system clock caps one wait at `MAX_TIMER_DELAY_MS`, about 24.8 days; Node may round a
 *   delay down by under a millisecond) is armed again for the rest.
 * - Its callback is told how the firing went ({@link TimerFiring}): a process that was frozen
 *   (SIGSTOP, a paused VM) learns it from a timer that fires much later than it could have, and
 *   can check that it still holds its lease before acting.
 *
 * ```
 *   disarmed --arm(at)--> armed(at) --clock reaches at--> disarmed (callback runs)
 *      ^                   |    ^ |
 *      +-----disarm()------+    +-+ arm(other time): replaced; arm(at): nothing
 *   close() from any state: closed; arm() is then a no-op
 * ```
 * @module
 */
import type { Clock, TimerHandle, TimerOptions } from './clock.js'

/** How one firing went, handed to the callback. */
export interface TimerFiring {
  /** The time the timer was armed for (epoch ms on its clock). */
  dueAt: number
  /** The clock's `now()` when the callback was called; never before `dueAt`. */
  firedAt: number
  /**
   * How much later than it could have fired it did: `firedAt - max(dueAt, the time it was
   * armed)`. A timer armed for a time already past is due at once, so its lateness counts from
   * the arming. Near 0 normally (a busy event loop adds milliseconds); large after the process
   * was frozen. Exact on a ManualClock: 0 when `advance()` moves through the due time, the
   * overdue time after a `jump()`.
   */
  lateMs: number
}

/** Options of a {@link DeadlineTimer}: those of its clock's timers (`keepsProcessAlive`, default false). */
export type DeadlineTimerOptions = TimerOptions

/** One re-armable timer at an absolute time. See the module comment. */
export class DeadlineTimer {
  readonly #clock: Clock
  readonly #onFire: (firing: TimerFiring) => void
  readonly #clockOptions: TimerOptions
  /** The time it is armed for; null exactly when disarmed (always null once closed). */
  #dueAt: number | null = null
  /** `clock.now()` when armed for `#dueAt`; meaningful only while armed. */
  #armedWhen = 0
  /** The clock timer; non-null exactly when `#dueAt` is (one clock timer at a time, at most). */
  #handle: TimerHandle | null = null
  #closed = false

  /**
   * @param clock where time is read and waits are armed.
   * @param onFire called once per arming that comes due, after the timer is disarmed (so it may
   *   arm again from inside).
   * @param options {@link DeadlineTimerOptions}; `keepsProcessAlive` defaults to false.
   */
  constructor(clock: Clock, onFire: (firing: TimerFiring) => void, options: DeadlineTimerOptions = {}) {
    this.#clock = clock
    this.#onFire = onFire
    this.#clockOptions = options.keepsProcessAlive === true ? { keepsProcessAlive: true } : {}
  }

  /** The time it is armed for (epoch ms), or null when disarmed or closed. */
  get dueAt(): number | null {
    return this.#dueAt
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Fires at `atMs` (epoch ms on the clock; a time already past fires as soon as possible),
   * replacing any earlier arming. The time it is already armed for: nothing changes (its
   * lateness still counts from the first arming). `Infinity`: disarmed, as it would never fire.
   * After {@link close}: a no-op. NaN throws a RangeError.
   */
  arm(atMs: number): void {
    if (this.#closed || atMs === this.#dueAt) return
    if (Number.isNaN(atMs)) throw new RangeError('Expected the time to arm a timer at to be a number, got NaN')
    this.disarm()
    if (atMs === Number.POSITIVE_INFINITY) return
    this.#dueAt = atMs
    this.#armedWhen = this.#clock.now()
    this.#wait(atMs)
  }

  /** Cancels the pending firing, if any. It can be armed again. */
  disarm(): void {
    if (this.#handle !== null) this.#clock.clearTimer(this.#handle)
    this.#handle = null
    this.#dueAt = null
  }

  /** Disarms it for good: {@link arm} does nothing after this. Safe to call twice. */
  close(): void {
    this.#closed = true
    this.disarm()
  }

  #wait(dueAt: number): void {
    this.#handle = this.#clock.setTimer(this.#wake, dueAt - this.#clock.now(), this.#clockOptions)
  }

  readonly #wake = (): void => {
    this.#handle = null
    const dueAt = this.#dueAt as number
    const now = this.#clock.now()
    if (now < dueAt) {
      this.#wait(dueAt)
      return
    }
    this.#dueAt = null
    this.#onFire({ dueAt, firedAt: now, lateMs: now - Math.max(dueAt, this.#armedWhen) })
  }
}
