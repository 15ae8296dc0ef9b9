/**
 * The sender: which daemon sends for a repo. Two locks make a daemon the repo's sender: our
 * daemon lease (`status/daemon`, fenced like every lease: one aim-status daemon per repo) and
 * Python Aim's `watcher.lock` (so that a Python aim-watcher and ours never both send), held
 * under that lease: when a standby takes over a frozen daemon's lease, the frozen daemon's
 * watcher.lock is let go too.
 *
 * ```
 *            daemon lease held by a live daemon, or watcher.lock held     both taken
 *   start --> standby (tried again every poll) -----------------------------------> active
 *                 ^                                                                   |
 *                 +---- a lease lost or watcher.lock let go (this daemon was frozen) -+
 * ```
 * A standby that holds the daemon lease but not yet watcher.lock keeps the lease while it
 * waits (it is the next sender; no other daemon of ours needs to try), and says who holds the
 * lock: a replaced daemon's helper about to let go, or a process that is not ours.
 * @module
 */
import { ErrorCodes } from '../errors.js'
import type { RepoPaths } from '../repo.js'
import { acquireLease, inspectLease, retireSnapshot, type Lease } from '../state/lease.js'
import { aimLockRecordPath, daemonLeasePath, type StatusLayout } from '../state/layout.js'
import type { OwnerInfo } from '../state/owner.js'
import { acquireAimWatcherLock, describeAimLockHolder, type AimWatcherLock } from './aim-watcher-lock.js'

/** Both locks of an active sender. */
export interface SenderHold {
  readonly daemonLease: Lease
  /** Python Aim's watcher lock: while we send for the repo, a Python aim-watcher cannot. */
  readonly aimLock: AimWatcherLock
}

/** The outcome of one attempt to become the sender. */
export type SenderAttempt = { kind: 'active'; hold: SenderHold } | { kind: 'standby'; lock: 'daemon lease' | 'watcher.lock'; holder: string }

/** What a {@link Sender} needs. */
export interface SenderOptions {
  layout: StatusLayout
  paths: RepoPaths
  owner: OwnerInfo
  staleMs: number
  warn(message: string): void
  /** A lock of the active hold was lost (this daemon was frozen and replaced). */
  onLost(which: 'daemon lease' | 'watcher.lock', error: Error): void
}

/** Takes and lets go of the sender's locks for one repo. */
export class Sender {
  readonly #options: SenderOptions
  /** The daemon lease, held while we wait for watcher.lock. */
  #waitingLease: Lease | null = null

  constructor(options: SenderOptions) {
    this.#options = options
  }

  /** One attempt: both locks taken (active), or who holds what (standby). */
  async attempt(): Promise<SenderAttempt> {
    const { layout, paths, owner, staleMs } = this.#options
    let daemonLease = this.#waitingLease
    if (daemonLease !== null && !daemonLease.confirm()) daemonLease = this.#waitingLease = null
    if (daemonLease === null) {
      try {
        daemonLease = await acquireLease(daemonLeasePath(layout), owner, { staleMs, onLost: (error) => this.#options.onLost('daemon lease', error) })
      } catch (error) {
        if ((error as { code?: unknown }).code !== ErrorCodes.LOCKED) throw error
        const holder = await inspectLease(daemonLeasePath(layout), { staleMs }).catch(() => null)
        return { kind: 'standby', lock: 'daemon lease', holder: holder?.holder ? `${holder.holder.pid}@${holder.holder.host}` : 'unknown' }
      }
    }
    const lease = daemonLease
    let aimLock: AimWatcherLock | null
    try {
      aimLock = await acquireAimWatcherLock(paths.notifications, this.#options.warn, {
        leasePath: daemonLeasePath(layout),
        generation: lease.generation,
        ownerId: owner.id,
        pid: owner.pid,
        recordPath: aimLockRecordPath(layout),
        onLost: (why) => this.#options.onLost('watcher.lock', new Error(why)),
      })
    } catch (error) {
      this.#waitingLease = null
      await lease.release().catch(() => undefined)
      throw error
    }
    if (aimLock === null) {
      this.#waitingLease = lease
      return { kind: 'standby', lock: 'watcher.lock', holder: describeAimLockHolder(aimLockRecordPath(layout)) }
    }
    this.#waitingLease = null
    return { kind: 'active', hold: { daemonLease: lease, aimLock } }
  }

  /**
   * Lets go of an active hold. Graceful (a stop): the daemon lease is retired so a standby takes
   * over at once; otherwise (it was lost) only what is still ours is released.
   */
  async release(hold: SenderHold, graceful: boolean): Promise<void> {
    const { daemonLease, aimLock } = hold
    if (!daemonLease.lost) {
      if (graceful) await retireSnapshot(daemonLease).catch(() => daemonLease.release())
      else await daemonLease.release().catch(() => undefined)
    }
    await aimLock.release()
  }

  /** Lets go of a lease held while waiting for watcher.lock (the daemon stops). */
  async close(): Promise<void> {
    const lease = this.#waitingLease
    this.#waitingLease = null
    await lease?.release().catch(() => undefined)
  }
}
