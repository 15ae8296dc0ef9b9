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
 *
 * A large snapshot is not rewritten for every change: once its last full write reached
 * `journalFromBytes`, a write appends what changed to the journal beside it (`journal.ts`), and
 * a write that finds nothing changed writes nothing. The journal is compacted into a full write
 * when it would grow past the snapshot's size (at least `compactAtBytes`), when the lease's
 * generation changes, instead of an append that fails or finds a journal it did not leave (a torn
 * tail, a link, a file gone), and at `close()`. An append asked for by `flush()`
 * is fsynced before it resolves; one from `markDirty()` is not (the next awaited write, or the
 * next full one, makes it durable). A small snapshot is always written whole: below 64 KiB a
 * rewrite costs about what an append does, and the file stays one self-contained JSON document.
 * @module
 */
import { AimStatusError, ErrorCodes, OutOfRangeError, describeValue } from '../errors.js'
import { systemClock } from '../clock.js'
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import { rm } from 'node:fs/promises'
import { writeFileAtomic } from './files.js'
import { JournalFile, encodeRecord, journalPath } from './journal.js'
import { JournalBaseline } from './journal-delta.js'
import { SNAPSHOT_FORMAT, SNAPSHOT_VERSION, serializeSnapshot } from './snapshot.js'
import type { Snapshot, SnapshotContent } from './snapshot.js'

/** Default {@link SnapshotWriterOptions.intervalMs}. */
export const DEFAULT_SNAPSHOT_INTERVAL_MS = 1000
/** Default {@link SnapshotWriterOptions.journalFromBytes}: 64 KiB. */
export const DEFAULT_JOURNAL_FROM_BYTES = 64 << 10
/** Default {@link SnapshotWriterOptions.compactAtBytes}: 1 MiB. */
export const DEFAULT_COMPACT_AT_BYTES = 1 << 20

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
  /**
   * Append changes to a journal instead of rewriting the snapshot once its last full write was
   * at least this many bytes. `Infinity`: always write whole. Default 64 KiB.
   */
  journalFromBytes?: number
  /**
   * Compact the journal into a full write once it would grow past the larger of this and the
   * last full write's size, bytes. Default 1 MiB.
   */
  compactAtBytes?: number
}

function checkBytes(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new OutOfRangeError(`Expected \`${name}\` to be a number of bytes, 0 or more, got ${describeValue(value)}`)
  return value
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
  #appends = 0
  #bytesWritten = 0
  readonly #journalFromBytes: number
  readonly #compactAtBytes: number
  /** The content of the last write, while the snapshot is large enough to journal. */
  #baseline: JournalBaseline | null = null
  /** The journal of the last full write's generation (appended to while {@link #baseline} is set). */
  #journal: JournalFile | null = null
  #fullGeneration = 0
  #fullBytes = 0
  /** The last journal sequence number used: never reused, even by an append that failed. */
  #seq = 0
  /** The next write must be a full one (a failed append, a compaction asked for). */
  #mustWriteFull = true

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
    this.#journalFromBytes = checkBytes('journalFromBytes', options.journalFromBytes ?? DEFAULT_JOURNAL_FROM_BYTES)
    this.#compactAtBytes = checkBytes('compactAtBytes', options.compactAtBytes ?? DEFAULT_COMPACT_AT_BYTES)
    this.#timer = new DeadlineTimer(this.#clock, () => {
      if (this.#dirty && this.#writing === null) this.#startWrite(false).catch((error) => this.#onError?.(error))
    })
  }

  /** How many writes (full ones and journal appends) have completed. */
  get writes(): number {
    return this.#writes
  }

  /** How many of the {@link writes} were journal appends. */
  get appends(): number {
    return this.#appends
  }

  /** Bytes written to the snapshot and its journal so far. */
  get bytesWritten(): number {
    return this.#bytesWritten
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
    // The owner's end compacts: whoever reads the snapshot next finds it whole.
    const compact = this.#fatal === null && this.#journal !== null && this.#journal.bytes > 0
    if (compact) this.#mustWriteFull = true
    const pending = (this.#dirty || compact) && this.#fatal === null ? this.#requestWrite() : this.#writing
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
    return this.#startWrite(true)
  }

  #schedule(): void {
    // An armed time is kept: later changes join the write already waiting.
    if (this.#timer.dueAt !== null || this.#closed) return
    this.#timer.arm(Math.max(this.#clock.now(), this.#lastWriteAt + this.#intervalMs))
  }

  /** `awaited`: somebody waits for this write to be durable (`flush()`, `close()`). */
  #startWrite(awaited: boolean): Promise<void> {
    this.#dirty = false
    this.#lastWriteAt = this.#clock.now()
    // `produce` runs inside #write; a write asked for from within it (a hook set off by reading
    // the state) must queue behind this one, not start another inside it.
    this.#writing = new Promise<void>(() => undefined)
    const write = this.#write(awaited)
    this.#writing = write.then(
      () => this.#afterWrite(null),
      (error) => this.#afterWrite(error),
    )
    return write
  }

  async #write(awaited: boolean): Promise<void> {
    // Checked before serialising too: a lost lease should not cost a 100k-run serialisation.
    this.#lease.assertGeneration()
    const content = this.#produce()
    // Read after the check: a long silence makes the lease claim the next generation there.
    const generation = this.#lease.generation
    const writtenAt = this.#clock.now()
    if (!(await this.#append(content, generation, writtenAt, awaited))) await this.#writeFull(content, generation, writtenAt)
  }

  /** Appends the change to the journal: false when a full write is due instead. */
  async #append(content: SnapshotContent, generation: number, writtenAt: number, awaited: boolean): Promise<boolean> {
    const journal = this.#journal
    if (this.#baseline === null || journal === null || this.#mustWriteFull || generation !== this.#fullGeneration) return false
    const delta = this.#baseline.diff(content)
    if (delta === null) return false
    // Nothing durable changed (a listing that found nothing new): nothing to write.
    if (delta.empty) return true
    const line = encodeRecord({ generation, seq: this.#seq + 1, writtenAt, ...delta.parts })
    if (journal.bytes + Buffer.byteLength(line) > Math.max(this.#compactAtBytes, this.#fullBytes)) return false
    this.#seq += 1
    try {
      await journal.append(line, { sync: awaited, beforeWrite: () => this.#lease.assertGeneration() })
    } catch (error) {
      if ((error as { code?: unknown }).code === ErrorCodes.LEASE_LOST) throw error
      // Refused (a journal this writer did not leave: a torn tail, a link, gone) or failed part
      // way: a full write now replaces the journal instead of going on with it.
      this.#mustWriteFull = true
      return false
    }
    delta.commit()
    this.#writes += 1
    this.#appends += 1
    this.#bytesWritten += Buffer.byteLength(line)
    return true
  }

  async #writeFull(content: SnapshotContent, generation: number, writtenAt: number): Promise<void> {
    // Until this write and the removal of the journal it holds are done, no append goes on.
    this.#mustWriteFull = true
    const snapshot: Snapshot = {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      owner: content.owner,
      ...(content.adoptedBy !== undefined ? { adoptedBy: content.adoptedBy } : {}),
      generation,
      writtenAt,
      runs: content.runs,
      outbox: content.outbox,
      extra: content.extra,
      // Every record appended so far is in this write: a reader skips them if the journal is still there.
      ...(this.#seq > 0 ? { journalSeq: this.#seq } : {}),
    }
    const text = serializeSnapshot(snapshot)
    await writeFileAtomic(this.#path, text, { beforeRename: () => this.#lease.assertGeneration() })
    this.#writes += 1
    const bytes = Buffer.byteLength(text)
    this.#bytesWritten += bytes
    // The journal is held by the snapshot now; removed after the rename, so a crash in between
    // leaves records the snapshot's journalSeq skips.
    if (this.#journal !== null) await rm(this.#journal.path, { force: true })
    this.#journal = null
    this.#fullGeneration = generation
    this.#fullBytes = bytes
    this.#mustWriteFull = false
    if (bytes >= this.#journalFromBytes) {
      this.#baseline = new JournalBaseline(content)
      this.#journal = new JournalFile(journalPath(this.#path, generation))
    } else {
      this.#baseline = null
    }
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
      this.#startWrite(true).then(next.resolve, next.reject)
    } else if (this.#dirty) {
      this.#schedule()
    }
  }
}
