/**
 * The adoption planner: what the daemon does with what discovery found, decided without I/O.
 * Every decision the daemon makes about another owner's runs is a function here, so the table
 * of cases is unit-tested on a manual clock without processes; the orchestrator only carries
 * the plans out.
 *
 * The decisions:
 * - per owner entry ({@link triage}): adopt it (orphaned), read its live snapshot, report its
 *   exit marker alone, or skip it (ourselves, a tombstone we hold);
 * - per run of an adopted snapshot ({@link planAdoption}): **fail** it (its process is gone or
 *   left an exit marker), **carry** it on (its owner is frozen or unreachable: the deadline
 *   runs on here), or **skip** it (it ended, we know it better, or it ended before the exit);
 *   and afterwards **retire** the snapshot or hold it as a **tombstone** (a frozen owner must
 *   find its lease lost when it wakes);
 * - per run a live owner reports again ({@link planHandBack}): **hand back** what we carry;
 * - when to let go of tombstones ({@link planTombstones}) and of ended runs ({@link planPrune}).
 * @module
 */
import type { RunInfo, SessionState } from '../model.js'
import { exitReason, type ExitMarker } from '../state/exit-marker.js'
import type { HolderState } from '../state/lease.js'
import type { OwnerInfo, OwnerLiveness } from '../state/owner.js'
import type { Snapshot } from '../state/snapshot.js'

/** Why an orphan's runs are taken over: its process exited (marker), is gone, is stale (frozen, another host), or it was a daemon. */
export type Cause = 'exited' | 'gone' | 'stale' | 'daemon'

const isActive = (run: Pick<RunInfo, 'status'>): boolean => run.status === 'running' || run.status === 'stalled'

// The training process gives its runs the same reason when it reports its own death.
export { exitReason }

/** One entry of `owners/` or `exits/`, as discovery saw it. */
export interface OwnerEntry {
  id: string
  /** `owners/<id>.json` exists. */
  hasSnapshot: boolean
  /** Its lease, when it has a snapshot. */
  holder: HolderState | null
  /** It is this daemon's own snapshot. */
  isSelf: boolean
  /** We hold it emptied, as a tombstone. */
  isTombstone: boolean
}

/** What to do with an owner entry. */
export type Triage = 'adopt' | 'live' | 'marker-only' | 'skip'

/** Decides what to do with one owner entry. */
export function triage(entry: OwnerEntry): Triage {
  if (entry.isSelf || entry.isTombstone) return 'skip'
  if (!entry.hasSnapshot) return 'marker-only'
  if (entry.holder === null) return 'skip'
  if (entry.holder.orphaned) return 'adopt'
  // A live daemon's snapshot is its own business; a live process's is read for hand-backs and
  // so that its runs' check-ins are never taken for a Python run's.
  return entry.holder.holder?.kind === 'process' ? 'live' : 'skip'
}

/**
 * Orphans in the order they are adopted: daemons' own snapshots first, because their settled
 * keys must be known before any orphan's runs are failed again (else a restarted daemon could
 * send a failure its predecessor already sent); then snapshots a daemon was adopting when it
 * died (their newest fence is that daemon's: their runs may be in its snapshot already); then
 * those whose process is dead, whose failure is the news, the most recently found first (a fresh
 * death is not kept waiting behind a backlog that has waited already); then the stale ones.
 * Otherwise in the order given.
 */
export function adoptionOrder<T extends { id: string; holder: HolderState; foundAt?: number }>(orphans: readonly T[]): T[] {
  const rank = (o: T): number => {
    const holder = o.holder.holder
    // A snapshot is named by its owner's id: a daemon holding its own is a daemon's snapshot.
    if (holder?.kind === 'daemon') return holder.id === o.id ? 0 : 1
    return o.holder.liveness === 'dead' ? 2 : 3
  }
  return [...orphans].sort((a, b) => rank(a) - rank(b) || (rank(a) === 2 ? (b.foundAt ?? 0) - (a.foundAt ?? 0) : 0))
}

/** What one run of an adopted snapshot becomes. */
export type RunPlan = { action: 'fail'; run: RunInfo; reason: string } | { action: 'carry'; run: RunInfo } | { action: 'skip'; run: RunInfo; why: 'ended' | 'known' | 'ended-before-exit' }

/** The plan for one adopted snapshot. */
export interface AdoptionPlan {
  cause: Cause
  /** The failure reason of its failed runs. */
  reason: string
  runs: RunPlan[]
  /** A daemon's Python-Aim reader state travels on to us. */
  absorbCheckins: boolean
  /** Its outbox is taken in (before any run is failed: its delivered keys must be known). */
  absorbOutbox: boolean
  /** Retire the snapshot, or hold it emptied as a tombstone (a frozen owner finds its lease lost). */
  afterwards: 'retire' | 'tombstone'
  /**
   * Runs we carry that this snapshot shows ended by their owner (re-established after a freeze,
   * then finished or failed): forgotten without an event, as a hand-back would.
   */
  forget: string[]
}

/** What discovery found about an orphan we now hold the lease of. */
export interface AdoptionInput {
  snapshot: Snapshot
  marker: ExitMarker | null
  /** The original owner's liveness now. */
  liveness: OwnerLiveness
  /** Our own view of a run, if we carry one with this hash. */
  mine(hash: string): RunInfo | undefined
}

/** Plans the takeover of an adopted snapshot. */
export function planAdoption(input: AdoptionInput): AdoptionPlan {
  const { snapshot, marker, liveness } = input
  const original = snapshot.owner
  const cause: Cause = marker !== null ? 'exited' : original.kind === 'daemon' ? 'daemon' : liveness === 'dead' ? 'gone' : 'stale'
  const reason = marker !== null ? exitReason(marker) : `process gone: pid ${original.pid}`
  const failing = cause === 'exited' || cause === 'gone'
  const forget: string[] = []
  const runs = snapshot.runs.map((run): RunPlan => {
    const mine = input.mine(run.hash)
    // Finished or failed already: its owner dealt with it; never reported again.
    if (!isActive(run)) {
      if (mine !== undefined && isActive(mine) && mine.startedAt === run.startedAt) forget.push(run.hash)
      return { action: 'skip', run, why: 'ended' }
    }
    if (mine !== undefined && mine.startedAt === run.startedAt && (!isActive(mine) || mine.lastProgressAt >= run.lastProgressAt)) return { action: 'skip', run, why: 'known' }
    // The exit marker lists what the training code had not ended; a run missing from it ended
    // before the exit (its last message to the actor was lost with the process).
    if (marker !== null && !marker.unfinishedRuns.includes(run.hash)) return { action: 'skip', run, why: 'ended-before-exit' }
    return failing ? { action: 'fail', run, reason } : { action: 'carry', run }
  })
  return {
    cause,
    reason,
    runs,
    absorbCheckins: original.kind === 'daemon' && snapshot.extra['checkins'] !== undefined,
    absorbOutbox: snapshot.outbox !== null && snapshot.outbox !== undefined,
    afterwards: cause === 'stale' ? 'tombstone' : 'retire',
    forget,
  }
}

/**
 * An exit marker whose snapshot is gone (the process never got a lease, or it was retired):
 * the unfinished runs it lists that we do not know as ended, and that the process did not
 * report itself, are failed, with a stand-in for
 * those we never saw. Nothing while its owner is alive (it is still exiting).
 */
export function planMarkerOnly(marker: ExitMarker, liveness: OwnerLiveness, mine: (hash: string) => RunInfo | undefined): { reason: string; fail: RunInfo[] } | null {
  if (liveness === 'alive') return null
  const reason = exitReason(marker)
  const fail: RunInfo[] = []
  for (const hash of marker.unfinishedRuns) {
    // The process reported it itself before it went: its outbox had the notification.
    if (marker.reportedRuns?.includes(hash) === true) continue
    const known = mine(hash)
    if (known !== undefined && !isActive(known)) continue
    fail.push(known ?? { hash, status: 'running', startedAt: marker.owner.startTime, lastProgressAt: marker.exitedAt, expectNextIn: 0, deadlineAt: null, grace: 0, episode: 0 })
  }
  return { reason, fail }
}

/** A run we carry that its live owner reports again: handed back, after applying its newer report. */
export interface HandBack {
  hash: string
  owner: OwnerInfo
  /** The owner's newer report to apply first (a recovery closes a stall we declared), or null for a new run of the same hash. */
  progress: { at: number; expectNextIn: number } | null
}

/**
 * Runs we carry that their owner reports again from a live snapshot of its own (it was only
 * frozen, and re-established itself), or has ended since: handed back. A stall we declared is closed by applying
 * the owner's newer report first (one `recovered`, as for any recovery), never by a second
 * stall from the owner.
 */
export function planHandBack(live: readonly Snapshot[], mine: (hash: string) => RunInfo | undefined): HandBack[] {
  const plans: HandBack[] = []
  for (const snapshot of live) {
    if (snapshot.adoptedBy !== undefined) continue
    for (const run of snapshot.runs) {
      const ours = mine(run.hash)
      if (ours === undefined || !isActive(ours) || run.startedAt < ours.startedAt) continue
      // Re-established and then finished or failed by its owner, which told its notifiers:
      // ours is forgotten without an event of its own (a finish closes a stall episode too).
      if (!isActive(run)) {
        if (run.startedAt === ours.startedAt) plans.push({ hash: run.hash, owner: snapshot.owner, progress: null })
        continue
      }
      if (run.startedAt === ours.startedAt) {
        if (run.lastProgressAt <= ours.lastProgressAt) continue
        plans.push({ hash: run.hash, owner: snapshot.owner, progress: { at: run.lastProgressAt, expectNextIn: run.expectNextIn } })
      } else {
        plans.push({ hash: run.hash, owner: snapshot.owner, progress: null })
      }
    }
  }
  return plans
}

/** A tombstone we hold, as the planner needs it. */
export interface TombstoneState {
  id: string
  /** When we emptied it (clock ms). */
  since: number
  /** Its original owner's liveness now. */
  liveness: OwnerLiveness
  /** Our lease on it was lost (somebody adopted it from us). */
  lost: boolean
}

/**
 * Which tombstones to let go of: forget those whose lease we lost; retire those whose owner is
 * dead (it can never wake) or that were held for `tombstoneMs`.
 */
export function planTombstones(tombstones: readonly TombstoneState[], now: number, tombstoneMs: number): { forget: string[]; retire: string[] } {
  const forget: string[] = []
  const retire: string[] = []
  for (const t of tombstones) {
    if (t.lost) forget.push(t.id)
    else if (t.liveness === 'dead' || now - t.since >= tombstoneMs) retire.push(t.id)
  }
  return { forget, retire }
}

/**
 * Ended runs are forgotten `keepEndedMs` after they were first seen ended, so the daemon's
 * snapshot does not grow for ever. Returns the runs first seen ended now, and those to forget.
 */
export function planPrune(runs: readonly Pick<RunInfo, 'hash' | 'status'>[], endedAt: ReadonlyMap<string, number>, now: number, keepEndedMs: number): { seen: string[]; forget: string[] } {
  const seen: string[] = []
  const forget: string[] = []
  for (const run of runs) {
    if (isActive(run)) continue
    const since = endedAt.get(run.hash)
    if (since === undefined) seen.push(run.hash)
    else if (now - since > keepEndedMs) forget.push(run.hash)
  }
  return { seen, forget }
}

/**
 * A carried run with every session it reported over (its own, or its ranks') marked `lost`:
 * the daemon that carried it held those sessions, and its process has not spoken to this daemon
 * yet. Nothing is failed: deadlines carry on, and the process resumes the run when it reconnects.
 */
export function withSessionsLost(run: RunInfo): RunInfo {
  const lost = (session: SessionState): SessionState => (session === 'open' ? 'lost' : session)
  if (run.origin === undefined && run.ranks === undefined) return run
  return {
    ...run,
    ...(run.origin !== undefined ? { origin: { ...run.origin, session: lost(run.origin.session) } } : {}),
    ...(run.ranks !== undefined ? { ranks: run.ranks.map((r) => ({ ...r, session: lost(r.session) })) } : {}),
  }
}
