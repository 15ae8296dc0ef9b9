/**
 * Writes an owner's snapshot when its state changes, without writing on every change:
 * - `markDirty()` for ordinary changes (a heartbeat moved a deadline): at most one write per
 *   `intervalMs`, whatever the number of changes;
 * - `flush()` for transitions (a run stalled, a notification was accepted): written now, and
 *   the promise resolves when the write is durable, so the caller acts only after that;
 * - never two writes at once: a write asked for during a write runs once, right after it (the
 *   one in progress may have serialised the state before the change).
 * The state is serialised by the `produce` callback only when a write actually happens. Every
 * write is fenced by the lease: once it is lost, nothing more is written and every `flush()`
 * rejects with `AIM_STATUS_LEASE_LOST`.
 * @module
 */
import { AimStatusError, ErrorCodes, OutOfRangeError, describeValue } from '../errors.js'
import { systemClock } from '../clock.js'
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import { SNAPSHOT_FORMAT, SNAPSHOT_VERSION, writeSnapshotAtomic } from './snapshot.js'
import type { Snapshot, SnapshotContent } from './snapshot.js'

/** Default {@link SnapshotWriterOptions.intervalMs}. */
export const DEFAULT_SNAPSHOT_INTERVAL_MS = 1000

/** What a writer needs of a lease: its generation, and the check before each write. */
export interface WriteFence {
  readonly generation: number
  assertGeneration(): void
}

/** Options of {@link SnapshotWriter}. */
export interface SnapshotWriterOptions {
  /** The snapshot file (`status/owners/<ownerId>.json`). */
  path: string
  /** The lease under which the snapshot is written (its generation is stamped in the file). */
  lease: WriteFence
  /** Builds the snapshot's content from the owner's state; called once per write. */
  produce: () => SnapshotContent
  /** Time source for coalescing and for `writtenAt`. Default: the system clock. */
  clock?: Clock
  /** The shortest time between two writes caused by `markDirty()`. Default 1000 ms. */
  intervalMs?: number
  /** Receives failures of writes nobody awaits (those started by `markDirty()`). Default: none. */
  onError?: (error: unknown) => void
}

interface Waiter {
  promise: Promise<void>
  resolve: () => void
  reject: (error: unknown) => void
}

function waiter(): Waiter {
  let resolve!: () => void
  let reject!: (error: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Coalesces and serialises the writes of one snapshot. */
export class SnapshotWriter {
  readonly #path: string
  readonly #lease: WriteFence
  readonly #produce: () => SnapshotContent
  readonly #clock: Clock
  readonly #intervalMs: number
  readonly #onError: ((error: unknown) => void) | undefined
  #dirty = false
  /** Armed while a `markDirty()` change waits for its interval; closed with the writer. */
  readonly #timer: DeadlineTimer
  #writing: Promise<void> | null = null
  /** Those waiting for the write that follows the one in progress. */
  #next: Waiter | null = null
  #lastWriteAt = -Infinity
  #closed = false
  #fatal: unknown = null
  #writes = 0

  constructor(options: SnapshotWriterOptions) {
    const intervalMs = options.intervalMs ?? DEFAULT_SNAPSHOT_INTERVAL_MS
    if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new OutOfRangeError(`Expected \`intervalMs\` to be a finite number of at least 0, got ${describeValue(intervalMs)}`)
    }
    this.#path = options.path
    this.#lease = options.lease
    this.#produce = options.produce
    this.#clock = options.clock ?? systemClock
    this.#intervalMs = intervalMs
    this.#onError = options.onError
    this.#timer = new DeadlineTimer(this.#clock, () => {
      if (this.#dirty && this.#writing === null) this.#startWrite().catch((error) => this.#onError?.(error))
    })
  }

  /** How many writes have completed. */
  get writes(): number {
    return this.#writes
  }

  /** Whether a change is waiting to be written. */
  get dirty(): boolean {
    return this.#dirty
  }

  /** Notes an ordinary change: written within `intervalMs` (coalesced with other changes). */
  markDirty(): void {
    if (this.#closed || this.#fatal !== null) return
    this.#dirty = true
    if (this.#writing === null) this.#schedule()
  }

  /** Writes now; resolves when the current state is durable. */
  flush(): Promise<void> {
    if (this.#fatal !== null) return Promise.reject(this.#fatal)
    if (this.#closed) return Promise.reject(new AimStatusError(ErrorCodes.CLOSED, `The snapshot writer of ${this.#path} is closed`))
    return this.#requestWrite()
  }

  /** Writes what is still dirty, then stops. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return this.#writing ?? undefined
    const pending = this.#dirty && this.#fatal === null ? this.#requestWrite() : this.#writing
    this.#closed = true
    this.#timer.close()
    await pending
  }

  #requestWrite(): Promise<void> {
    this.#dirty = true
    if (this.#writing !== null) {
      this.#next ??= waiter()
      return this.#next.promise
    }
    this.#timer.disarm()
    return this.#startWrite()
  }

  #schedule(): void {
    // An armed time is kept: later changes join the write already waiting.
    if (this.#timer.dueAt !== null || this.#closed) return
    this.#timer.arm(Math.max(this.#clock.now(), this.#lastWriteAt + this.#intervalMs))
  }

  #startWrite(): Promise<void> {
    this.#dirty = false
    this.#lastWriteAt = this.#clock.now()
    // `produce` runs inside #write; a write asked for from within it (a hook set off by reading
    // the state) must queue behind this one, not start another inside it.
    this.#writing = new Promise<void>(() => undefined)
    const write = this.#write()
    this.#writing = write.then(
      () => this.#afterWrite(null),
      (error) => this.#afterWrite(error),
    )
    return write
  }

  async #write(): Promise<void> {
    // Checked before serialising too: a lost lease should not cost a 100k-run serialisation.
    this.#lease.assertGeneration()
    const content = this.#produce()
    const snapshot: Snapshot = {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      owner: content.owner,
      ...(content.adoptedBy !== undefined ? { adoptedBy: content.adoptedBy } : {}),
      generation: this.#lease.generation,
      writtenAt: this.#clock.now(),
      runs: content.runs,
      outbox: content.outbox,
      extra: content.extra,
    }
    await writeSnapshotAtomic(this.#path, snapshot, { beforeRename: () => this.#lease.assertGeneration() })
    this.#writes += 1
  }

  #afterWrite(error: unknown): void {
    this.#writing = null
    if (error !== null) {
      if ((error as { code?: unknown }).code === ErrorCodes.LEASE_LOST) {
        // Not ours to write any more: fail whoever waits, and stop for good.
        this.#fatal = error
        this.#timer.disarm()
        this.#next?.reject(error)
        this.#next = null
        return
      }
      // An I/O failure (disk full...): the state is still unwritten; try again later.
      this.#dirty = true
    }
    const next = this.#next
    this.#next = null
    if (next !== null) {
      this.#timer.disarm()
      this.#startWrite().then(next.resolve, next.reject)
    } else if (this.#dirty) {
      this.#schedule()
    }
  }
}
