/**
 * Makes a repo's Node runs visible to Python Aim's `aim-watcher`: each run writes Aim check-in
 * files (lib/aim/checkin-writer.ts decides when; this module drives it). Driven by the actor's
 * transitions and by one timer for the earliest renewal, never by the training loop.
 * @module
 */
import type { Clock, TimerHandle } from '../clock.js'
import { CheckinWriter } from '../aim/checkin-writer.js'
import type { RunInfo } from '../notify/contract.js'
import { IndexedMinHeap } from './heap.js'

export interface CheckinPublisherOptions {
  /** `<root>/.aim/check_ins` */
  folder: string
  clock: Clock
  /** The run's current state (with reports that reached only the shared slot folded in). */
  runOf(hash: string): RunInfo | undefined
  /** A check-in that could not be written (the run stays watched; the next renewal retries). */
  onError(error: unknown): void
}

/** The check-in writers of a repo's runs and their renewal timer. */
export class CheckinPublisher {
  readonly #options: CheckinPublisherOptions
  readonly #writers = new Map<string, CheckinWriter>()
  /** When each run must be synced again (epoch ms). */
  readonly #due = new IndexedMinHeap<string>()
  #timer: TimerHandle | undefined
  #timerAt = Number.POSITIVE_INFINITY
  #closed = false

  constructor(options: CheckinPublisherOptions) {
    this.#options = options
  }

  /** A run opened (or resumed): writes its `starting` check-in, continuing its idx. */
  open(hash: string): void {
    if (this.#closed) return
    try {
      this.#writers.set(hash, CheckinWriter.open({ folder: this.#options.folder, hash, clock: this.#options.clock }))
    } catch (error) {
      this.#options.onError(error)
    }
  }

  /** The run's deadline may have changed: write now if the rule says so, and plan the next renewal. */
  sync(hash: string, deadlineAt: number | null): void {
    const writer = this.#writers.get(hash)
    if (writer === undefined || this.#closed) return
    try {
      const { nextWriteAt } = writer.sync(deadlineAt)
      if (nextWriteAt === null) this.#due.delete(hash)
      else this.#due.set(hash, nextWriteAt)
    } catch (error) {
      // Retry at the next renewal period rather than never.
      this.#due.set(hash, this.#options.clock.now() + 1000)
      this.#options.onError(error)
    }
    this.#rearm()
  }

  /** The run finished: writes `finished` and stops renewing. */
  finish(hash: string): void {
    const writer = this.#writers.get(hash)
    this.#stop(hash)
    if (writer === undefined || this.#closed) return
    try {
      writer.finish()
    } catch (error) {
      this.#options.onError(error)
    }
  }

  /**
   * The run failed or is no longer ours: no more check-ins. Aim has no "failed" flag; Python's
   * watcher reports the run when its last promise plus grace has passed, as it does for a
   * Python run that dies.
   */
  stop(hash: string): void {
    this.#stop(hash)
  }

  /** Stops renewing everything (the files stay, as Aim leaves them). */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) this.#options.clock.clearTimer(this.#timer)
    this.#timer = undefined
    this.#writers.clear()
    this.#due.clear()
  }

  #stop(hash: string): void {
    this.#writers.delete(hash)
    this.#due.delete(hash)
    this.#rearm()
  }

  #renewDue(): void {
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
    const now = this.#options.clock.now()
    for (;;) {
      const hash = this.#due.peekKey()
      const at = this.#due.peekPriority()
      if (hash === undefined || at === undefined || at > now) break
      this.#due.delete(hash)
      const run = this.#options.runOf(hash)
      if (run === undefined || (run.status !== 'running' && run.status !== 'stalled')) this.#stop(hash)
      else this.sync(hash, run.deadlineAt)
    }
    this.#rearm()
  }

  #rearm(): void {
    if (this.#closed) return
    const next = this.#due.peekPriority() ?? Number.POSITIVE_INFINITY
    if (next === this.#timerAt) return
    if (this.#timer !== undefined) this.#options.clock.clearTimer(this.#timer)
    this.#timer = undefined
    this.#timerAt = next
    if (next !== Number.POSITIVE_INFINITY) this.#timer = this.#options.clock.setTimer(() => this.#renewDue(), next - this.#options.clock.now())
  }
}
