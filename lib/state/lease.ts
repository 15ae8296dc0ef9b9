/**
 * The lease on a snapshot: a proper-lockfile lock (`<snapshot>.lock/`, its mtime refreshed
 * every `updateMs`) that says "this owner is alive", plus a fencing generation (`fence.ts`)
 * that says "this owner is the current one".
 *
 * An owner is orphaned when its process is dead on this host (pid gone or reused: found at
 * once, without waiting for staleness) or when neither its lock nor its fence has been touched
 * for `staleMs` (a frozen process, another host, a lock left behind). Taking a lease always
 * claims the next generation first; only then is the previous holder's lock removed and a new
 * one made. A holder that wakes up after being adopted finds out from proper-lockfile's
 * `onCompromised` (its lock is gone or no longer its own) and from {@link Lease.assertGeneration},
 * which every snapshot write calls just before its rename; from then on it stops acting
 * (`AIM_STATUS_LEASE_LOST`).
 *
 * "May I act?" is {@link Lease.confirm}. Besides looking for a newer generation, it guards the
 * moment a frozen holder wakes up: an adopter decides from the lock's age, then claims the next
 * generation, so a holder whose last refresh is older than half the stale period may be judged
 * orphaned at this very moment. Such a holder claims the next generation itself before acting
 * (`O_EXCL`, like any claim): exactly one of it and the adopter wins, and the loser knows.
 * @module
 */
import fs from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import lockfile from 'proper-lockfile'
import { AimStatusError, ErrorCodes, OutOfRangeError, describeValue } from '../errors.js'
import { STATE_FOLDER_MODE } from './files.js'
import { claimGeneration, fencePath, highestGeneration, readFence, removeFences, type FenceRecord } from './fence.js'
import { entryExists, lstatOrNull, stateWriteError } from './safe-fs.js'
import { ownerLiveness } from './owner.js'
import type { OwnerInfo, OwnerLiveness } from './owner.js'
import { removeJournals } from './journal.js'
import { readSnapshot, writeSnapshotAtomic } from './snapshot.js'
import type { Snapshot } from './snapshot.js'

/**
 * Default {@link LeaseOptions.staleMs}: 10 s. A dead process on the same host is found from
 * its pid at once, so staleness only decides for frozen processes (SIGSTOP, swapping, a
 * suspended machine) and owners on other hosts, where taking over a live owner costs more than
 * a few seconds of delay; 10 s also absorbs small clock skew between NFS clients.
 */
export const DEFAULT_STALE_MS = 10_000
/** Default {@link LeaseOptions.updateMs}: the lock is refreshed 5 times per stale period. */
export const DEFAULT_UPDATE_MS = 2_000
/** proper-lockfile clamps `stale` up to 2000 ms; we refuse smaller values instead of silently changing them. */
export const MIN_STALE_MS = 2_000
/** proper-lockfile clamps `update` up to 1000 ms. */
export const MIN_UPDATE_MS = 1_000

/** Options of {@link acquireLease} and {@link adoptOrphan}. */
export interface LeaseOptions {
  /** How long a lock (and fence) may go untouched before its owner counts as orphaned. Default {@link DEFAULT_STALE_MS}; at least 2000. */
  staleMs?: number
  /** How often the holder refreshes its lock. Default `min(2000, staleMs / 2)`; from 1000 to `staleMs / 2`. */
  updateMs?: number
  /** Called once when the lease is lost (adopted by a newer generation, or its lock compromised). */
  onLost?: (error: AimStatusError) => void
}

/** A held lease. */
export interface Lease {
  /** The snapshot the lease is on. */
  readonly path: string
  /** Who holds it. */
  readonly holder: OwnerInfo
  /** The fencing generation this holder claimed last (raised by {@link confirm} after a long pause). */
  readonly generation: number
  /** True once the lease is lost: the holder must stop acting on the snapshot's runs. */
  readonly lost: boolean
  /**
   * May the holder act now? False (and the lease marked lost) when a newer generation exists or
   * the lock was compromised. When the lease was last confirmed (locked, refreshed or
   * re-claimed) longer ago than half its stale period, an adopter may be claiming it right now:
   * the holder then claims the next generation itself, and acts only if it won that claim.
   */
  confirm(): boolean
  /** Throws `AIM_STATUS_LEASE_LOST` unless {@link confirm} says the holder may act. */
  assertGeneration(): void
  /**
   * Releases the lock (never one that is no longer ours) and ages the fence, so that a snapshot
   * left behind is adoptable at once. Safe to call twice. To end a snapshot for good, use
   * {@link retireSnapshot}.
   */
  release(): Promise<void>
}

/** How a lease's present holder looks to someone who wants it. */
export interface HolderState {
  /** The highest claimed generation (0: never claimed). */
  generation: number
  holder: OwnerInfo | null
  liveness: OwnerLiveness
  /** Milliseconds since the lock or the fence was last touched (Infinity when neither exists). */
  idleMs: number
  orphaned: boolean
}

function resolveTimes(options: LeaseOptions): { staleMs: number; updateMs: number } {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  if (typeof staleMs !== 'number' || !Number.isInteger(staleMs) || staleMs < MIN_STALE_MS) {
    throw new OutOfRangeError(`Expected \`staleMs\` to be an integer of at least ${MIN_STALE_MS}, got ${describeValue(staleMs)}`)
  }
  const updateMs = options.updateMs ?? Math.min(DEFAULT_UPDATE_MS, staleMs / 2)
  if (typeof updateMs !== 'number' || !Number.isFinite(updateMs) || updateMs < MIN_UPDATE_MS || updateMs > staleMs / 2) {
    throw new OutOfRangeError(`Expected \`updateMs\` to be from ${MIN_UPDATE_MS} to staleMs / 2 (${staleMs / 2}), got ${describeValue(updateMs)}`)
  }
  return { staleMs, updateMs }
}

/** A lock folder's mtime; null when there is none, or when what is there is not a folder (never ours). */
export function leaseLockMtime(snapshotPath: string): number | null {
  const entry = lstatOrNull(`${snapshotPath}.lock`)
  return entry?.isDirectory() === true ? entry.mtimeMs : null
}

/** What a lease is judged from: the newest generation, its fence, the lock's mtime. */
export interface LeaseView {
  generation: number
  fence: FenceRecord | null
  lockMtime: number | null
}

/**
 * The one rule of orphanhood, for {@link inspectLease} and for callers that keep a
 * {@link LeaseView} between looks (the daemon's discovery): dead on this host, or neither lock
 * nor fence touched for `staleMs` (wall-clock ms, what lock mtimes are).
 */
export function judgeLease(view: LeaseView, liveness: OwnerLiveness, staleMs: number, now: number): HolderState {
  // Lock mtimes can be set up to 1 s ahead (proper-lockfile rounds up to whole seconds).
  const touched = Math.max(view.lockMtime ?? -Infinity, view.fence?.claimedAt ?? -Infinity)
  const idleMs = Math.max(0, now - touched)
  return { generation: view.generation, holder: view.fence?.holder ?? null, liveness, idleMs, orphaned: liveness === 'dead' || idleMs > staleMs }
}

/** Looks at a snapshot's lease: who holds it, and whether they are orphaned. */
export async function inspectLease(snapshotPath: string, options: Pick<LeaseOptions, 'staleMs'> = {}): Promise<HolderState> {
  const { staleMs } = resolveTimes({ staleMs: options.staleMs ?? DEFAULT_STALE_MS })
  const generation = highestGeneration(snapshotPath)
  const fence = generation > 0 ? readFence(snapshotPath, generation) : null
  const lockMtime = leaseLockMtime(snapshotPath)
  const holder = fence?.holder ?? null
  const liveness: OwnerLiveness = holder === null ? 'unknown' : ownerLiveness(holder)
  return judgeLease({ generation, fence, lockMtime }, liveness, staleMs, Date.now())
}

function leaseLost(path: string, why: string): AimStatusError {
  return new AimStatusError(ErrorCodes.LEASE_LOST, `Lost the lease on ${path}: ${why}`)
}

class FencedLease implements Lease {
  readonly path: string
  readonly holder: OwnerInfo
  readonly #staleMs: number
  #generation: number
  #onLost: ((error: AimStatusError) => void) | undefined
  #lostError: AimStatusError | null = null
  #unlock: (() => Promise<void>) | null = null
  /** Wall-clock ms (what others judge the lock's age by) of the last lock, refresh or claim. */
  #confirmedAt = Date.now()

  constructor(path: string, holder: OwnerInfo, generation: number, staleMs: number, onLost: LeaseOptions['onLost']) {
    this.path = path
    this.holder = holder
    this.#generation = generation
    this.#staleMs = staleMs
    this.#onLost = onLost
  }

  get generation(): number {
    return this.#generation
  }

  get lost(): boolean {
    return this.#lostError !== null
  }

  confirm(): boolean {
    if (this.superseded()) return false
    if (Date.now() - this.#confirmedAt <= this.#staleMs / 2) return true
    // Long enough without a refresh that an adopter may be deciding right now: claim the next
    // generation first. Winning it keeps every adopter out; losing it means one got in.
    const next = this.#generation + 1
    let won: boolean
    try {
      won = claimGeneration(this.path, next, this.holder)
    } catch (error) {
      // Cannot claim (the folder is gone or unwritable): acting could not be fenced either.
      this.markLost(`generation ${next} could not be claimed (${(error as Error).message})`)
      return false
    }
    if (!won) {
      this.markLost(`generation ${next} was claimed by another owner`)
      return false
    }
    this.#generation = next
    this.#confirmedAt = Date.now()
    return true
  }

  /** Set once the lock is made. */
  attach(unlock: () => Promise<void>): void {
    this.#unlock = unlock
  }

  markLost(why: string): void {
    if (this.#lostError !== null) return
    this.#lostError = leaseLost(this.path, why)
    this.#unlock = null
    try {
      this.#onLost?.(this.#lostError)
    } catch {
      // A throwing listener must not break the lock's refresh timer (it would crash the process).
    }
  }

  /** Whether a newer generation has been claimed; marks the lease lost if so. */
  superseded(): boolean {
    if (this.#lostError !== null) return true
    if (entryExists(fencePath(this.path, this.generation + 1))) this.markLost(`generation ${this.generation + 1} was claimed by another owner`)
    return this.#lostError !== null
  }

  assertGeneration(): void {
    if (!this.confirm()) throw this.#lostError
  }

  async release(): Promise<void> {
    const unlock = this.#unlock
    this.#unlock = null
    if (unlock === null || this.superseded()) return
    try {
      // Age our fence first: with the lock gone too, the snapshot is an orphan at once, so a
      // daemon carries on a released snapshot without waiting for staleness.
      // lutimes: a link planted at our fence's name is aged itself, never what it points to.
      fs.lutimesSync(fencePath(this.path, this.generation), 0, 0)
    } catch {
      // Retired with the snapshot already: nothing to age.
    }
    try {
      await unlock()
    } catch {
      // ERELEASED/ENOTACQUIRED: already gone, which is what release wants.
    }
  }

  /**
   * The file-system functions proper-lockfile uses, with the refresh (`utimes`) and the
   * removal (`rmdir`) refused once a newer generation exists: a holder that wakes up after an
   * adoption must not refresh or remove the adopter's lock, which sits at the same path.
   */
  guardedFs(): Record<string, unknown> {
    const refuse = (callback: (error: NodeJS.ErrnoException) => void): void => {
      callback(Object.assign(new Error('superseded by a newer generation'), { code: 'ENOENT' }))
    }
    // lstat and lutimes: a link planted at the lock's name is looked at and touched itself, never followed.
    return {
      mkdir: fs.mkdir,
      stat: fs.lstat,
      realpath: fs.realpath,
      utimes: (path: string, atime: Date, mtime: Date, callback: (error: NodeJS.ErrnoException | null) => void) => {
        if (this.superseded()) refuse(callback)
        else
          fs.lutimes(path, atime, mtime, (error) => {
            // A refresh confirms the lease only if it was confirmed recently: after a long
            // silence (a freeze) an adopter may already be past its look at the lock and about
            // to claim, so only a claim of the next generation (confirm()) settles it.
            if (error === null && Date.now() - this.#confirmedAt <= this.#staleMs / 2) this.#confirmedAt = Date.now()
            callback(error)
          })
      },
      rmdir: (path: string, callback: (error: NodeJS.ErrnoException | null) => void) => {
        if (this.superseded()) callback(null)
        else fs.rmdir(path, callback)
      },
      rmdirSync: (path: string) => {
        if (!this.superseded()) fs.rmdirSync(path)
      },
    }
  }
}

/**
 * Claims the next generation and locks. Resolves null when the present holder is not orphaned
 * (or another claimer won the generation).
 */
async function takeLease(snapshotPath: string, holder: OwnerInfo, options: LeaseOptions): Promise<FencedLease | null> {
  const { staleMs, updateMs } = resolveTimes(options)
  await mkdir(dirname(snapshotPath), { recursive: true, mode: STATE_FOLDER_MODE }).catch((error: unknown) => {
    throw stateWriteError(dirname(snapshotPath), error)
  })
  const state = await inspectLease(snapshotPath, { staleMs })
  if (!state.orphaned) return null
  const generation = state.generation + 1
  if (!claimGeneration(snapshotPath, generation, holder)) return null
  // The generation is ours: the previous holder is dead or stale, and no one else can get
  // here for this generation. Remove its lock even if not yet stale (a dead pid's lock).
  await rm(`${snapshotPath}.lock`, { recursive: true, force: true })
  const lease = new FencedLease(snapshotPath, holder, generation, staleMs, options.onLost)
  let unlock: () => Promise<void>
  try {
    unlock = await lockfile.lock(snapshotPath, {
      realpath: false,
      stale: staleMs,
      update: updateMs,
      retries: 0,
      fs: lease.guardedFs(),
      onCompromised: (error) => lease.markLost(`its lock was compromised (${error.message})`),
    })
  } catch (error) {
    const coded = stateWriteError(`${snapshotPath}.lock`, error)
    if (coded !== error) throw coded
    throw new AimStatusError(ErrorCodes.LOCKED, `Could not lock ${snapshotPath} after claiming generation ${generation}: ${(error as Error).message}`, { cause: error })
  }
  lease.attach(unlock)
  return lease
}

/**
 * Takes the lease on a snapshot for a new owner (generation 1 for a new file). Rejects with
 * `AIM_STATUS_LOCKED` when somebody alive holds it.
 */
export async function acquireLease(snapshotPath: string, owner: OwnerInfo, options: LeaseOptions = {}): Promise<Lease> {
  const lease = await takeLease(snapshotPath, owner, options)
  if (lease === null) throw new AimStatusError(ErrorCodes.LOCKED, `${snapshotPath} is held by a live owner`)
  return lease
}

/** What {@link adoptOrphan} took over. */
export interface Adoption {
  /** The snapshot as written back: generation raised, `adoptedBy` set. */
  snapshot: Snapshot
  generation: number
  lease: Lease
  release(): Promise<void>
}

/**
 * Adopts an orphaned snapshot: resolves null when its holder is alive (lock fresh and, on this
 * host, its pid alive), when another adopter won, or when there is no snapshot to adopt.
 * Otherwise it holds the lease at the next generation and has written the snapshot back with
 * that generation and `adoptedBy: adopter`. The snapshot is read and checked before any
 * generation is claimed: one that is not valid is set aside and the promise rejects with its
 * `AIM_STATUS_CORRUPT_FILE` error; one that is not a plain file rejects with
 * `AIM_STATUS_UNSAFE_FILE` (set aside too); one that cannot be read rejects with
 * `AIM_STATUS_INVALID_PATH`; in each case no fence is left behind.
 */
export async function adoptOrphan(snapshotPath: string, adopter: OwnerInfo, options: LeaseOptions = {}): Promise<Adoption | null> {
  // Read (and check) before claiming anything: a snapshot that cannot be read or is not valid
  // (a folder, a link, a FIFO, garbage) rejects here and leaves no new fence behind, so a bad
  // entry costs one look per try instead of one fence per scan.
  if ((await readSnapshot(snapshotPath)) === null) return null
  const lease = await takeLease(snapshotPath, adopter, options)
  if (lease === null) return null
  let snapshot: Snapshot | null
  try {
    snapshot = await readSnapshot(snapshotPath)
    if (snapshot === null) {
      await lease.release()
      return null
    }
    // Read with its journal replayed, written back whole at the new generation: the old
    // generation's journal is no one's any more (a journal sequence counts within one generation).
    const { journalSeq: _replayed, ...state } = snapshot
    snapshot = { ...state, generation: lease.generation, adoptedBy: adopter, writtenAt: Date.now() }
    await writeSnapshotAtomic(snapshotPath, snapshot, { beforeRename: () => lease.assertGeneration() })
    await removeJournals(snapshotPath)
  } catch (error) {
    await lease.release()
    throw error
  }
  return { snapshot, generation: lease.generation, lease, release: () => lease.release() }
}

/**
 * Ends a snapshot for good, when its owner closes with nothing left to watch: removes the
 * snapshot, its journals and its fences, then releases the lock. Rejects with `AIM_STATUS_LEASE_LOST` (and
 * touches nothing) when the lease is no longer the current one.
 */
export async function retireSnapshot(lease: Lease): Promise<void> {
  lease.assertGeneration()
  // Journals first: a crash part-way leaves a snapshot to retire again, never a journal without one.
  await removeJournals(lease.path)
  await rm(lease.path, { force: true })
  removeFences(lease.path)
  await lease.release()
}
