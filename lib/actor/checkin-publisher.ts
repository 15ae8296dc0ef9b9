/**
 * Makes a repo's Node runs visible to Python Aim's `aim-watcher`: each run writes Aim check-in
 * files (lib/aim/checkin-writer.ts decides when; this module drives it). Driven by the actor's
 * transitions and by one timer for the earliest renewal, never by the training loop.
 *
 * The writes are file-system calls on the actor's thread, so they are never made inline: each
 * request is queued (a run's later syncs replace its earlier one) and a pump works through the
 * queue in slices of about {@link SLICE_MS}, yielding between slices. A burst of reports (a
 * thousand runs opening at once) then never holds up a stall timer by more than a slice.
 * @module
 */
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import { CheckinWriter } from '../aim/checkin-writer.js'
import type { RunInfo } from '../model.js'
import { IndexedMinHeap } from './heap.js'

export interface CheckinPublisherOptions {
  /** `<root>/.aim/check_ins` */
  folder: string
  clock: Clock
  /** The run's current state (with reports that reached only the shared slot folded in). */
  runOf(hash: string): RunInfo | undefined
  /** A check-in that could not be written (the run stays watched; the next renewal retries). */
  onError(error: unknown): void
  /**
   * May the owner act now? Asked before each slice of writes (a slice lasts about
   * {@link SLICE_MS}): an owner whose runs were adopted while it was frozen writes no more
   * check-ins for them, and stops (the adopter's view of the runs stands).
   * Default: always.
   */
  mayAct?(): boolean
  /** Runs the pump later. Default: `setImmediate` (after pending timers and I/O). Tests pass `(fn) => fn()`. */
  defer?: (fn: () => void) => void
}

/** How long one slice of queued check-in writes may run before the pump yields, ms. */
export const SLICE_MS = 2

type Operation = { kind: 'open' | 'finish'; hash: string }

/** The check-in writers of a repo's runs and their renewal timer. */
export class CheckinPublisher {
  readonly #options: CheckinPublisherOptions
  readonly #writers = new Map<string, CheckinWriter>()
  /** When each run must be synced again (epoch ms). */
  readonly #due = new IndexedMinHeap<string>()
  /** Armed for the earliest time in `#due` (disarmed when it is empty); closed with the publisher. */
  readonly #timer: DeadlineTimer
  #closed = false
  /** Opens and finishes, in order. */
  readonly #operations: Operation[] = []
  /** The latest deadline asked for per run, not yet synced. */
  readonly #dirty = new Map<string, number | null>()
  #pumpScheduled = false
  #idleWaiters: Array<() => void> = []
  readonly #defer: (fn: () => void) => void

  constructor(options: CheckinPublisherOptions) {
    this.#options = options
    this.#timer = new DeadlineTimer(options.clock, () => this.#renewDue())
    // A turn of the event loop between slices, not a deadline: no timer.
    this.#defer = options.defer ?? ((fn) => void setImmediate(fn))
  }

  /** A run opened (or resumed): its `starting` check-in is written, continuing its idx. */
  open(hash: string): void {
    this.#enqueue({ kind: 'open', hash })
  }

  /** The run's deadline may have changed: a check-in is written if the rule says so. */
  sync(hash: string, deadlineAt: number | null): void {
    if (this.#closed) return
    this.#dirty.set(hash, deadlineAt)
    this.#schedulePump()
  }

  /** The run finished: `finished` is written and renewals stop. */
  finish(hash: string): void {
    this.#enqueue({ kind: 'finish', hash })
  }

  /** Resolves when every queued write has been made. */
  idle(): Promise<void> {
    if (!this.#pumpScheduled) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  #enqueue(operation: Operation): void {
    if (this.#closed) return
    this.#operations.push(operation)
    this.#schedulePump()
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return
    this.#pumpScheduled = true
    this.#defer(() => this.#pump())
  }

  #pump(): void {
    const until = performance.now() + SLICE_MS
    if (!this.#closed && !(this.#options.mayAct?.() ?? true)) this.close()
    while (!this.#closed && performance.now() < until) {
      const operation = this.#operations.shift()
      if (operation !== undefined) {
        if (operation.kind === 'open') this.#openNow(operation.hash)
        else this.#finishNow(operation.hash)
        continue
      }
      const next = this.#dirty.entries().next()
      if (next.done === true) break
      const [hash, deadlineAt] = next.value
      this.#dirty.delete(hash)
      this.#syncNow(hash, deadlineAt)
    }
    this.#pumpScheduled = false
    if (!this.#closed && (this.#operations.length > 0 || this.#dirty.size > 0)) {
      this.#schedulePump()
      return
    }
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }

  #openNow(hash: string): void {
    try {
      this.#writers.set(hash, CheckinWriter.open({ folder: this.#options.folder, hash, clock: this.#options.clock }))
    } catch (error) {
      this.#options.onError(error)
    }
  }

  #syncNow(hash: string, deadlineAt: number | null): void {
    const writer = this.#writers.get(hash)
    if (writer === undefined) return
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

  #finishNow(hash: string): void {
    const writer = this.#writers.get(hash)
    this.#dirty.delete(hash)
    this.#stop(hash)
    if (writer === undefined) return
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
    this.#dirty.delete(hash)
    this.#stop(hash)
  }

  /** Stops renewing everything (the files stay, as Aim leaves them). */
  close(): void {
    this.#closed = true
    this.#timer.close()
    this.#writers.clear()
    this.#due.clear()
    this.#operations.length = 0
    this.#dirty.clear()
    for (const resolve of this.#idleWaiters) resolve()
    this.#idleWaiters = []
  }

  #stop(hash: string): void {
    this.#writers.delete(hash)
    this.#due.delete(hash)
    this.#rearm()
  }

  #renewDue(): void {
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
    this.#timer.arm(this.#due.peekPriority() ?? Number.POSITIVE_INFINITY)
  }
}
