/**
 * Time, passed in. The actor, the heap's users, the outbox and the daemon take a {@link Clock},
 * so tests move time instead of sleeping.
 *
 * `now()` is epoch milliseconds built from the monotonic clock (`performance.timeOrigin +
 * performance.now()`): it does not jump when the wall clock is set, and it means the same in
 * every thread and process of a host, which snapshots and the daemon rely on.
 * @module
 */

/** An opaque handle of an armed timer. */
export type TimerHandle = { readonly __timer: unique symbol } | object

/** A source of time and timers. */
export interface Clock {
  /** Epoch milliseconds (fractional). */
  now(): number
  /** Calls `callback` once, `delayMs` from now (0 or less: as soon as possible). */
  setTimer(callback: () => void, delayMs: number): TimerHandle
  clearTimer(handle: TimerHandle): void
}

const origin = performance.timeOrigin

/** Reads the process's monotonic epoch clock: the hot path's clock read. */
export const monotonicNow = (): number => origin + performance.now()

// setTimeout's delay is a signed 32-bit number of ms; longer delays fire at once. Re-arm instead.
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1

/** The real clock. Timers are unref'd: a pending deadline never keeps a process alive on its own. */
export const systemClock: Clock = {
  now: monotonicNow,
  setTimer(callback, delayMs) {
    const timer = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY_MS))
    timer.unref()
    return timer
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}

interface ManualTimer {
  at: number
  seq: number
  callback: () => void
}

/** A clock that moves only when told: for tests and for replaying scenarios. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  #timers = new Set<ManualTimer>()

  constructor(start = 1_700_000_000_000) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const timer: ManualTimer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback }
    this.#timers.add(timer)
    return timer
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers.delete(handle as ManualTimer)
  }

  /** How many timers are armed. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order of due time. */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      let next: ManualTimer | undefined
      for (const timer of this.#timers) {
        if (timer.at <= target && (next === undefined || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) next = timer
      }
      if (next === undefined) break
      this.#timers.delete(next)
      this.#now = Math.max(this.#now, next.at)
      next.callback()
    }
    this.#now = target
  }

  /** Moves time to an absolute instant (never backwards). */
  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.#now))
  }
}
