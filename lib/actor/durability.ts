/**
 * Makes a repo runtime durable: a snapshot of its runs and outbox under the repo's status
 * folder, written under a lease (proper-lockfile) whose refreshed lock says "this owner is
 * alive". Ordinary changes are coalesced to about one write a second; the outbox is persisted
 * (with the runs) before anything is sent. A lease lost to a newer generation (this process was
 * frozen and a daemon adopted its runs) stops all writing: the owner must stop acting.
 * @module
 */
import type { Clock } from '../clock.js'
import { AimStatusError } from '../errors.js'
import type { OutboxState } from '../notify/delivery.js'
import type { RepoPaths } from '../repo.js'
import { acquireLease, retireSnapshot, type Lease } from '../state/lease.js'
import { snapshotPath, statusLayout } from '../state/layout.js'
import type { OwnerInfo } from '../state/owner.js'
import { SnapshotWriter } from '../state/snapshot-writer.js'
import type { RepoRuntime } from './runtime.js'

export interface DurabilityOptions {
  paths: RepoPaths
  owner: OwnerInfo
  clock: Clock
  /** Lease staleness, ms. Default: the state layer's. */
  leaseStaleMs?: number
  /** The lease was lost: stop acting. */
  onLeaseLost(error: AimStatusError): void
  onError(error: unknown): void
}

/** The snapshot writer and lease of one owner. */
export class Durability {
  readonly lease: Lease
  readonly writer: SnapshotWriter
  #runtime: RepoRuntime | undefined

  private constructor(lease: Lease, writer: SnapshotWriter) {
    this.lease = lease
    this.writer = writer
  }

  /** Takes the lease on the owner's snapshot. The runtime is attached afterwards ({@link attach}). */
  static async acquire(options: DurabilityOptions): Promise<Durability> {
    const path = snapshotPath(statusLayout(options.paths), options.owner.id)
    let durability: Durability | undefined
    const lease = await acquireLease(path, options.owner, {
      ...(options.leaseStaleMs !== undefined ? { staleMs: options.leaseStaleMs } : {}),
      onLost: (error) => options.onLeaseLost(error),
    })
    const writer = new SnapshotWriter({
      path,
      lease,
      clock: options.clock,
      produce: () => {
        const runtime = durability === undefined ? undefined : durability.#runtime
        return {
          owner: options.owner,
          runs: runtime?.actor.runs() ?? [],
          outbox: runtime?.delivery.state() ?? null,
          extra: {},
        }
      },
      onError: (error) => options.onError(error),
    })
    durability = new Durability(lease, writer)
    return durability
  }

  /** Starts snapshotting this runtime's state. */
  attach(runtime: RepoRuntime): void {
    this.#runtime = runtime
  }

  /** For the runtime's `persist`: the outbox is durable (with the runs) when this resolves. */
  persist = async (_state: OutboxState): Promise<void> => {
    await this.writer.flush()
  }

  /** For the runtime's `mayAct`: the lease is still ours (one `stat` of the next fence). */
  mayAct = (): boolean => {
    if (this.lease.lost) return false
    try {
      this.lease.assertGeneration()
      return true
    } catch {
      return false
    }
  }

  /** For the runtime's `onDeadlineTightened`: written now, not within the coalescing interval. */
  tightened = (): void => {
    this.writer.flush().catch(() => undefined)
  }

  /** For the runtime's `onRunsChanged`. */
  changed = (): void => {
    this.writer.markDirty()
  }

  /**
   * Writes the last state and lets go: a snapshot with no active run is removed; one with
   * active runs is left for a daemon to adopt at once (its lock released, not stale).
   */
  async close(): Promise<void> {
    const active = (this.#runtime?.actor.runs() ?? []).some((r) => r.status === 'running' || r.status === 'stalled')
    if (this.lease.lost) return
    await this.writer.close().catch(() => undefined)
    if (active) await this.lease.release()
    else await retireSnapshot(this.lease).catch(() => this.lease.release())
  }
}
