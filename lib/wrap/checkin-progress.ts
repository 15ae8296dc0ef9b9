/**
 * Python Aim check-ins of the wrapper's run hash, written by the wrapped command itself
 * (`aim.Run(run_hash=os.environ['AIM_STATUS_RUN_HASH'])` and `run.report_progress(...)`),
 * counted as progress of the wrapper's run. The folder is listed every `pollMs`; only names of
 * this hash with an idx above the highest seen count, with Aim's rule that the highest idx
 * among `starting`, `check_in` and `finished` is what the run says now. Check-ins present when
 * the wrapper started belong to an earlier life of the hash and are not progress.
 * @module
 */
import { promises as fs } from 'node:fs'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { isWatchedFlag, parseCheckinName, type Checkin } from '../aim/checkins.js'
import { DeadlineTimer } from '../timer.js'

/** How often the check-ins folder is listed. */
export const CHECKIN_POLL_MS = 1000

/** Options of a {@link CheckinProgress}. */
export interface CheckinProgressOptions {
  /** `<root>/.aim/check_ins`. */
  folder: string
  hash: string
  /** Called with each newer check-in that counts. */
  onCheckin(checkin: Checkin): void
  /** Default: the system clock. */
  clock?: Clock
  /** Default: {@link CHECKIN_POLL_MS}. */
  pollMs?: number
}

/** Watches one hash's check-ins. */
export class CheckinProgress {
  readonly #options: CheckinProgressOptions
  readonly #timer: DeadlineTimer
  readonly #clock: Clock
  readonly #prefix: string
  #highest = -1
  #scanning: Promise<void> | undefined

  constructor(options: CheckinProgressOptions) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
    this.#prefix = `${options.hash}-`
    this.#timer = new DeadlineTimer(this.#clock, () => void this.scan().finally(() => this.#timer.arm(this.#clock.now() + (options.pollMs ?? CHECKIN_POLL_MS))))
  }

  /** Takes the check-ins already there as the baseline, then starts polling. */
  async start(): Promise<void> {
    for (const checkin of await this.#list()) this.#highest = Math.max(this.#highest, checkin.idx)
    this.#timer.arm(this.#clock.now() + (this.#options.pollMs ?? CHECKIN_POLL_MS))
  }

  /** Lists the folder once and reports what is newer. */
  scan(): Promise<void> {
    return (this.#scanning ??= this.#scan().finally(() => (this.#scanning = undefined)))
  }

  async #scan(): Promise<void> {
    let newest: Checkin | undefined
    for (const checkin of await this.#list()) {
      if (checkin.idx > this.#highest && (newest === undefined || checkin.idx > newest.idx)) newest = checkin
    }
    if (newest === undefined || this.#timer.closed) return
    this.#highest = newest.idx
    this.#options.onCheckin(newest)
  }

  async #list(): Promise<Checkin[]> {
    let names: string[]
    try {
      names = await fs.readdir(this.#options.folder)
    } catch {
      // No check-ins folder (yet): nothing written.
      return []
    }
    const out: Checkin[] = []
    for (const name of names) {
      if (!name.startsWith(this.#prefix)) continue
      const checkin = parseCheckinName(name)
      if (checkin !== null && checkin.hash === this.#options.hash && isWatchedFlag(checkin.flag)) out.push(checkin)
    }
    return out
  }

  /** Stops polling. */
  close(): void {
    this.#timer.close()
  }
}
