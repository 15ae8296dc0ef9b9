/**
 * The daemon's read model of a repo: every run it knows of, from wherever it is watched (a live
 * training process's snapshot, the daemon's own actor for adopted runs, Python Aim's check-ins),
 * in one shape, and the observer through which a consumer (the HTTP face) hears that something
 * changed. Plain data: no HTTP here.
 * @module
 */
import type { CheckinRunState } from '../aim/checkin-reader.js'
import type { RunEvent, RunInfo } from '../model.js'
import type { DeliveryRecord } from '../notify/delivery-record.js'
import type { OwnerKind } from '../state/owner.js'
import type { Mute } from '../state/mutes.js'

/** Where a run is watched from. */
export type RunSource = 'process' | 'adopted' | 'aim'

/** One run as the daemon sees it. */
export interface WatchedRun extends RunInfo {
  /** The repo root. */
  repo: string
  /** `process`: a live training process watches it (read from its snapshot); `adopted`: this daemon; `aim`: a Python-Aim run read from its check-ins. */
  source: RunSource
  /** Who watches it: the training process or this daemon; null for a Python run (its process is not known). */
  owner: { id: string; kind: OwnerKind; pid: number; host: string } | null
}

/** What a consumer of a repo's read model is told. All optional; none may throw. */
export interface RepoObserver {
  /** Runs may have changed (a scan ended, a transition happened). */
  changed?(): void
  /** A transition this daemon saw itself (its adopted runs and Python runs), and the mute that kept it from being sent. */
  event?(event: RunEvent, muted: Mute | null): void
  /** A delivery outcome of this daemon's outbox. */
  report?(report: DeliveryRecord): void
  /**
   * This daemon became the repo's sender (true: its runtime is up) or stopped being it (false:
   * standing by, or closing; told before its runtime closes).
   */
  sending?(active: boolean): void
}

const isActive = (run: RunInfo): boolean => run.status === 'running' || run.status === 'stalled'

/**
 * Merges runs of several sources into one list, one entry per hash: a run being watched wins
 * over an ended one (a hash resumed elsewhere), and among equals the newest progress.
 */
export function mergeRuns(lists: Iterable<WatchedRun>): WatchedRun[] {
  const byHash = new Map<string, WatchedRun>()
  for (const run of lists) {
    const seen = byHash.get(run.hash)
    if (seen === undefined || (isActive(run) && !isActive(seen)) || (isActive(run) === isActive(seen) && run.lastProgressAt > seen.lastProgressAt)) byHash.set(run.hash, run)
  }
  return [...byHash.values()]
}

/** A Python run as a {@link WatchedRun}: its times are when the daemon first saw its newest check-in. */
export function aimRun(repo: string, hash: string, state: Readonly<CheckinRunState>, graceSeconds: number): WatchedRun {
  const live = state.status !== 'finished' && state.expectNextIn > 0
  return {
    repo,
    source: 'aim',
    owner: null,
    hash,
    status: state.status === 'finished' ? 'finished' : state.status === 'stalled' ? 'stalled' : 'running',
    startedAt: state.firstSeenAt,
    lastProgressAt: state.firstSeenAt,
    expectNextIn: state.expectNextIn,
    deadlineAt: live ? state.firstSeenAt + state.expectNextIn * 1000 : null,
    grace: graceSeconds,
    episode: state.idx,
  }
}
