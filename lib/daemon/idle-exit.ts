/**
 * When a daemon started on demand (by `watch()`, `start --exit-when-idle S`) has had nothing to
 * watch for a while, it ends, so that such daemons never pile up. "Nothing to watch" is asked of
 * the repos at each check: no live training process, no run carried, no notification pending, no
 * live Python run, in any repo where this daemon is the sender (a standby sends nothing). A
 * daemon started by hand or by a service manager has no idle exit and runs until stopped.
 * @module
 */
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'

/** What an {@link IdleExit} needs. */
export interface IdleExitOptions {
  clock: Clock
  /** How long there must have been nothing to watch, ms. */
  idleMs: number
  /** How often to ask, ms. */
  checkEveryMs: number
  /** Is there anything to watch now? */
  busy(): boolean
  /** Called once, when `idleMs` have passed with nothing to watch. */
  onIdle(): void
}

/** Counts the time with nothing to watch, on the injected clock. */
export class IdleExit {
  readonly #options: IdleExitOptions
  readonly #timer: DeadlineTimer
  /** Since when there has been nothing to watch, or null while there is something. */
  #idleSince: number | null = null
  #done = false

  constructor(options: IdleExitOptions) {
    this.#options = options
    // Not keeping the process alive: the repos' own timers do while the daemon runs.
    this.#timer = new DeadlineTimer(options.clock, () => this.check())
  }

  /** Starts counting: a daemon that starts with nothing to watch is idle from now. */
  start(): void {
    this.check()
  }

  /** How long there has been nothing to watch, ms (0 while there is something). */
  get idleForMs(): number {
    return this.#idleSince === null ? 0 : this.#options.clock.now() - this.#idleSince
  }

  /** Asks now, and again `checkEveryMs` later unless the idle time is up. */
  check(): void {
    if (this.#done) return
    const now = this.#options.clock.now()
    if (this.#options.busy()) this.#idleSince = null
    else this.#idleSince ??= now
    if (this.#idleSince !== null && now - this.#idleSince >= this.#options.idleMs) {
      this.close()
      this.#options.onIdle()
      return
    }
    const dueAt = this.#idleSince === null ? now + this.#options.checkEveryMs : Math.min(now + this.#options.checkEveryMs, this.#idleSince + this.#options.idleMs)
    this.#timer.arm(dueAt)
  }

  close(): void {
    this.#done = true
    this.#timer.close()
  }
}
