/**
 * The one durable owner: what makes a watcher's state survive its process and keeps two owners
 * from both acting on the same runs. The training process's watcher thread and the daemon build
 * theirs here, the same way:
 * - a **lease** on the owner's snapshot (proper-lockfile plus a fencing generation, `state/lease`);
 * - a **snapshot writer** (coalesced ordinary changes, "write before acting" for transitions and
 *   accepted notifications, every write fenced);
 * - the one question every side effect asks at the moment of acting: {@link DurableOwner.mayAct}
 *   (a send, a snapshot write, a check-in write, an exit marker). It is answered from the fences:
 *   a newer generation means somebody adopted this owner's runs while it was frozen, and an owner
 *   that was silent long enough to look orphaned claims the next generation before it acts;
 * - the rule for ending: the last state is written, then the snapshot is released for a daemon
 *   to adopt at once when anything is left to watch or send, or retired when nothing is.
 *
 * The owner writes what its state source gives ({@link DurableOwner.serve}); the outbox makes
 * its changes durable with {@link DurableOwner.commit}.
 * @module
 */
import type { Clock } from '../clock.js'
import { AimStatusError, ErrorCodes } from '../errors.js'
import { acquireLease, retireSnapshot, type Lease } from '../state/lease.js'
import type { OwnerInfo } from '../state/owner.js'
import type { SnapshotContent } from '../state/snapshot.js'
import { SnapshotWriter } from '../state/snapshot-writer.js'

/** What {@link DurableOwner.acquire} needs. */
export interface DurableOwnerOptions {
  /** The owner's snapshot file (`status/owners/<ownerId>.json`). */
  path: string
  /** Who the owner is. */
  owner: OwnerInfo
  /** Time for the writer's coalescing. */
  clock: Clock
  /** Lease staleness, ms. Default: the state layer's (10 000). */
  staleMs?: number
  /**
   * Leases this owner acts under besides its own (the daemon's sender lease): when any of them
   * is lost, the owner may no longer act either. Default: none.
   */
  actsUnder?: readonly Lease[]
  /** Journal the snapshot's changes once a full write reaches this many bytes (the snapshot writer's `journalFromBytes`). Default 64 KiB. */
  journalFromBytes?: number
  /** Compact the journal past the larger of this and the snapshot's size (the writer's `compactAtBytes`). Default 1 MiB. */
  compactAtBytes?: number
  /** The lease was lost (a newer generation adopted the runs): stop acting. Called once. */
  onLost(error: AimStatusError): void
  /** A write nobody awaits failed. */
  onError(error: unknown): void
}

/** How the owner ends, from what its state still holds. */
export interface OwnerEnding {
  /** Runs still to watch or notifications still to send: the snapshot stays for a daemon. */
  outstanding: boolean
}

/** A lease, a fenced snapshot writer and "may I act?", for one owner. */
export class DurableOwner {
  readonly lease: Lease
  readonly #writer: SnapshotWriter
  readonly #actsUnder: readonly Lease[]
  #produce: (() => SnapshotContent) | null = null
  #ended = false

  private constructor(lease: Lease, writer: (produce: () => SnapshotContent) => SnapshotWriter, actsUnder: readonly Lease[]) {
    this.lease = lease
    this.#actsUnder = actsUnder
    this.#writer = writer(() => {
      if (this.#produce === null) throw new AimStatusError(ErrorCodes.CLOSED, `The owner of ${lease.path} has no state to write yet`)
      return this.#produce()
    })
  }

  /** Takes the lease on the snapshot. Rejects with `AIM_STATUS_LOCKED` when a live owner holds it. */
  static async acquire(options: DurableOwnerOptions): Promise<DurableOwner> {
    const lease = await acquireLease(options.path, options.owner, {
      ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
      onLost: (error) => options.onLost(error),
    })
    // The writer's fence asks the owner, which exists by the time anything is written.
    const owner: DurableOwner = new DurableOwner(
      lease,
      (produce) =>
        new SnapshotWriter({
          path: options.path,
          // Every write is fenced by the same question as every other side effect.
          lease: {
            get generation() {
              return lease.generation
            },
            assertGeneration: () => {
              if (!owner.mayAct()) throw lostError(lease)
            },
          },
          clock: options.clock,
          produce,
          onError: options.onError,
          ...(options.journalFromBytes !== undefined ? { journalFromBytes: options.journalFromBytes } : {}),
          ...(options.compactAtBytes !== undefined ? { compactAtBytes: options.compactAtBytes } : {}),
        }),
      options.actsUnder ?? [],
    )
    return owner
  }

  /** The state this owner writes: called once per write, after the source is ready. */
  serve(produce: () => SnapshotContent): void {
    this.#produce = produce
  }

  /** Whether this owner's lease is lost (it was frozen and its runs were adopted). */
  get lost(): boolean {
    return this.lease.lost || this.#actsUnder.some((lease) => lease.lost)
  }

  /** How many snapshot writes (full ones and journal appends) have completed. */
  get writes(): number {
    return this.#writer.writes
  }

  /** How many of the {@link writes} were journal appends. */
  get appends(): number {
    return this.#writer.appends
  }

  /** Bytes written to the snapshot and its journal so far. */
  get bytesWritten(): number {
    return this.#writer.bytesWritten
  }

  /**
   * May this owner act now? Asked at the moment of every side effect. False once any lease it
   * acts under is lost; after a long silence (a frozen process) it first claims the next
   * generation, so that it and an adopter can never both go on.
   */
  mayAct = (): boolean => {
    if (this.#ended) return false
    for (const lease of this.#actsUnder) if (!lease.confirm()) return false
    return this.lease.confirm()
  }

  /** Makes the current state durable now: what the outbox awaits before it sends. */
  commit = (): Promise<void> => this.#writer.flush()

  /** An ordinary change (a report moved a deadline): written within the coalescing interval. */
  changed = (): void => {
    this.#writer.markDirty()
  }

  /** A new or earlier deadline: what a daemon taking over must not miss, so written now. */
  tightened = (): void => {
    this.#writer.flush().catch(() => undefined)
  }

  /**
   * Writes the last state and lets go: with anything outstanding the snapshot is released (its
   * fence aged) for a daemon to adopt at once; with nothing it is retired. An owner that lost its
   * lease touches nothing. Safe to call twice.
   */
  async end(ending: () => OwnerEnding): Promise<void> {
    if (this.#ended) return
    if (this.lost) {
      this.#ended = true
      return
    }
    await this.#writer.close().catch(() => undefined)
    this.#ended = true
    if (this.lost) return
    if (ending().outstanding) await this.lease.release()
    else await retireSnapshot(this.lease).catch(() => this.lease.release())
  }
}

function lostError(lease: Lease): AimStatusError {
  return new AimStatusError(ErrorCodes.LEASE_LOST, `Lost the lease on ${lease.path}: a newer generation holds it`)
}
