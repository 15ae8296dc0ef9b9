/**
 * What the daemon remembers of each owner between polls, so that a poll costs what can have
 * changed, not how many owners there are. Per known owner and poll:
 * - its **liveness** when it runs on this host (one `/proc/<pid>/stat` read, shared by every owner
 *   of the same process in that poll): a SIGKILLed process is found at the next poll;
 * - its **lock's mtime** only when its staleness could have been reached: the cached mtime is a
 *   lower bound of the real one (a holder only moves it forward), so while the cached idle time
 *   is within `staleMs` the real one is too;
 * - a **full look** (the fences after the known generation, the newest fence's age, the lock,
 *   the snapshot's stamp) when a file event named it, and otherwise at a period that doubles
 *   while nothing changes (from {@link DEFAULT_FULL_LOOK_MS} to {@link DEFAULT_MAX_LOOK_MS}),
 *   and at every poll when file events are not available.
 *
 * A fence's holder never changes once it is written (only its mtime does: a release ages it),
 * so it is parsed once per generation.
 *
 * The cache decides nothing: `triage` in planner.ts does, on the state it gives. A stale cache can
 * only delay a decision, never change it: an owner the cache finds orphaned is looked at in full
 * before it is reported, and `adoptOrphan` looks at the lease again before it claims anything,
 * so a live owner is never adopted on the cache's word; what the cache may miss between looks (a
 * released lease whose fence event was lost) is found at the next full look.
 * @module
 */
import { fencePath, highestGeneration, readFence, type FenceRecord } from '../state/fence.js'
import { judgeLease, leaseLockMtime, type HolderState, type LeaseView } from '../state/lease.js'
import { ownerLiveness, type OwnerInfo, type OwnerLiveness } from '../state/owner.js'
import { lstatOrNull } from '../state/safe-fs.js'
import type { Snapshot } from '../state/snapshot.js'
import type { Triage } from './planner.js'

/** Default {@link LookPolicy.fullLookMs}: an owner that changed lately is looked at in full every 10 s. */
export const DEFAULT_FULL_LOOK_MS = 10_000
/** Default {@link LookPolicy.maxLookMs}: the longest wait between two full looks of an owner that does not change. */
export const DEFAULT_MAX_LOOK_MS = 80_000

/** When owners are looked at. */
export interface LookPolicy {
  /** The lease staleness the daemon judges by. */
  staleMs: number
  /** The first wait between full looks, and the wait again after a change. Default {@link DEFAULT_FULL_LOOK_MS}. */
  fullLookMs: number
  /** The longest wait between full looks (the back-off's cap). Default {@link DEFAULT_MAX_LOOK_MS}. */
  maxLookMs: number
  /** File events of the owners' folder arrive: a change names its owner. Without them every poll is a full look. */
  watching: boolean
}

/** A lease as last looked at, and when to look again. */
export interface LeaseMemo extends LeaseView {
  /** When (wall-clock ms) it was last looked at in full. */
  lookedAt: number
  /** The wait from `lookedAt` to the next full look. */
  lookEveryMs: number
  /** A file event named its fence or lock since the last full look. */
  marked: boolean
}

/** What a poll reads of one owner's lease (its liveness aside). */
export type Look = 'full' | 'lock' | 'none'

/** When the lease was last touched, as far as the memo knows (a lower bound of the truth). */
export function touchedAt(view: LeaseView): number {
  return Math.max(view.lockMtime ?? -Infinity, view.fence?.claimedAt ?? -Infinity)
}

/** What to read of a lease at a poll at `now` (wall-clock ms). */
export function lookFor(memo: LeaseMemo | null, now: number, policy: LookPolicy): Look {
  if (memo === null || memo.marked || !policy.watching || now >= memo.lookedAt + memo.lookEveryMs) return 'full'
  // Within staleMs of the last touch we know of, the real idle time is within it too.
  return now - touchedAt(memo) > policy.staleMs ? 'lock' : 'none'
}

/** The wait to the next full look: back to the first after a change, doubled (up to the cap) after none. */
export function nextLookEvery(previous: LeaseMemo | null, changed: boolean, policy: LookPolicy): number {
  if (previous === null || changed) return policy.fullLookMs
  return Math.min(previous.lookEveryMs * 2, policy.maxLookMs)
}

/**
 * Looks at a lease in full: the fences after the one known (each a single `lstat`), the newest
 * fence (parsed only when its generation is new, or its holder was not readable yet), the lock.
 */
export function lookAtLease(path: string, previous: LeaseMemo | null, now: number, policy: LookPolicy): LeaseMemo {
  let generation = highestGeneration(path, previous?.generation ?? 0)
  let fence: FenceRecord | null = null
  const known = previous !== null && generation === previous.generation ? previous.fence : null
  if (known !== null && known.holder !== null) {
    const entry = lstatOrNull(fencePath(path, generation))
    // Not a plain file: a used number held by nobody (as readFence says).
    if (entry !== null) fence = entry.isFile() ? { holder: known.holder, claimedAt: entry.mtimeMs } : { holder: null, claimedAt: -Infinity }
  }
  if (fence === null) {
    // A fence we knew is gone: the snapshot's fences were removed (retired, made again). Start over.
    if (known !== null) generation = highestGeneration(path)
    fence = generation > 0 ? readFence(path, generation) : null
  }
  const changed = previous === null || generation !== previous.generation || fence?.claimedAt !== previous.fence?.claimedAt || fence?.holder?.id !== previous.fence?.holder?.id
  return { generation, fence, lockMtime: leaseLockMtime(path), lookedAt: now, lookEveryMs: nextLookEvery(previous, changed, policy), marked: false }
}

/** Liveness asked once per process in one poll: many owners of one process cost one `/proc` read. */
export class PollLiveness {
  readonly #seen = new Map<string, OwnerLiveness>()

  of(holder: OwnerInfo | null): OwnerLiveness {
    if (holder === null) return 'unknown'
    const key = `${holder.hostId}\n${holder.pid}\n${holder.startTicks}`
    let liveness = this.#seen.get(key)
    if (liveness === undefined) {
      liveness = ownerLiveness(holder)
      this.#seen.set(key, liveness)
    }
    return liveness
  }
}

/** One owner as the daemon remembers it. */
export interface OwnerEntry {
  /** Its snapshot's path, made (and checked) once rather than at every poll. */
  path: string
  /** Its lease as last looked at; null until the first look (never for our own snapshot or a tombstone). */
  lease: LeaseMemo | null
  /** The snapshot's stamp when it was last read; undefined until then, null when it was gone. */
  stamp: string | null | undefined
  snapshot: Snapshot | null
  /** A file event named the snapshot (or a file of it) since it was last stamped. */
  snapshotMarked: boolean
  /** What the last scan decided for it. */
  triage: Triage | null
  /** Since when (wall-clock ms) scans have found it orphaned; null while they do not. */
  orphanSince: number | null
}

/** A new entry for the snapshot at `path`: everything to be looked at. */
export function newEntry(path: string): OwnerEntry {
  return { path, lease: null, stamp: undefined, snapshot: null, snapshotMarked: true, triage: null, orphanSince: null }
}

/**
 * The lease of a known owner at a poll, from as little reading as can tell: see the module
 * comment. An owner the memo finds orphaned for the first time is looked at in full first.
 */
export function holderAt(entry: OwnerEntry, path: string, now: number, policy: LookPolicy, liveness: PollLiveness): HolderState {
  const look = lookFor(entry.lease, now, policy)
  if (look === 'full' || entry.lease === null) {
    entry.lease = lookAtLease(path, entry.lease, now, policy)
    entry.snapshotMarked = true
  } else if (look === 'lock') entry.lease.lockMtime = leaseLockMtime(path)
  let state = judgeLease(entry.lease, liveness.of(entry.lease.fence?.holder ?? null), policy.staleMs, now)
  if (state.orphaned && look !== 'full' && entry.orphanSince === null) {
    entry.lease = lookAtLease(path, entry.lease, now, policy)
    state = judgeLease(entry.lease, liveness.of(entry.lease.fence?.holder ?? null), policy.staleMs, now)
  }
  entry.orphanSince = state.orphaned ? (entry.orphanSince ?? now) : null
  return state
}
