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

/** How a clock's timer behaves beside its delay. */
export interface TimerOptions {
  /**
   * Whether the pending timer keeps the process alive (a ref'd Node timer). Only a process
   * whose whole job is to wait, like the daemon's poll, wants this; a deadline of a library
   * must never hold its host's process open. Clocks without processes (ManualClock) ignore it.
   * Default: false.
   */
  keepsProcessAlive?: boolean
}

/** A source of time and timers. */
export interface Clock {
  /** Epoch milliseconds (fractional). */
  now(): number
  /**
   * Calls `callback` once, `delayMs` from now (0 or less: as soon as possible). A clock may fire
   * a very long delay early (the system clock caps it at {@link MAX_TIMER_DELAY_MS}): a
   * `DeadlineTimer` (lib/timer.ts) checks the time and waits on for the rest.
   */
  setTimer(callback: () => void, delayMs: number, options?: TimerOptions): TimerHandle
  clearTimer(handle: TimerHandle): void
}

const origin = performance.timeOrigin

/** Reads the process's monotonic epoch clock: the hot path's clock read. */
export const monotonicNow = (): number => origin + performance.now()

/**
 * The longest delay the system clock waits in one timer. setTimeout's delay is a signed 32-bit
 * number of ms (about 24.8 days); a longer one fires at once with a TimeoutOverflowWarning, so
 * the system clock caps it here and a `DeadlineTimer` re-arms for the rest.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1

/**
 * The real clock. Timers are unref'd unless {@link TimerOptions.keepsProcessAlive} asks
 * otherwise: a pending deadline never keeps a process alive on its own.
 */
export const systemClock: Clock = {
  now: monotonicNow,
  setTimer(callback, delayMs, options) {
    const timer = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_TIMER_DELAY_MS))
    if (options?.keepsProcessAlive !== true) timer.unref()
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

  /** Arms a timer on this clock's time; `options` are ignored (no process to keep alive). */
  setTimer(callback: () => void, delayMs: number, _options?: TimerOptions): TimerHandle {
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

  /**
   * Moves time forward by `ms` without firing anything, as a process that was frozen (SIGSTOP,
   * a paused VM) finds it: the timers that fell due meanwhile fire at the next
   * {@link advance}, late by the time they were overdue.
   */
  jump(ms: number): void {
    this.#now += Math.max(0, ms)
  }

  /** Moves time to an absolute instant (never backwards). */
  advanceTo(at: number): void {
    this.advance(Math.max(0, at - this.#now))
  }
}
