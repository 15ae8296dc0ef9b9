/**
 * What the HTTP face shows, assembled from the daemon's repos: every run (from each
 * {@link RepoWatch}'s read model while it sends for the repo, from the snapshots on disk while it
 * stands by), each run's mute, a short timeline per run, and the transitions counted.
 *
 * The timeline and the counts come from comparing each look with the previous one: a live
 * training process's transitions are not seen by the daemon as events, only as its snapshot's
 * status and episode changing, and the episode counter says how many stalls happened between
 * two looks even when a stall and its recovery both fell between them.
 *
 * Looks are serialised; `refresh()` takes one now, and a look is taken soon after the repos say
 * something changed and at least every second (mutes and standbys' snapshots are read then).
 * @module
 */
import { systemClock } from '../../clock.js'
import type { RunEvent, RunEventKind } from '../../model.js'
import type { DeliveryRecord } from '../../notify/delivery-record.js'
import { repoPaths } from '../../repo.js'
import { MuteView, muteCovers, mutesPath, type Mute } from '../../state/mutes.js'
import { DeadlineTimer } from '../../timer.js'
import type { RepoWatch, RepoWatchState } from '../repo-watch.js'
import { daemonRunSource, type WatchedRun } from '../run-view.js'
import { repoStatus } from '../status.js'

/** One mark on a run's timeline. `report` marks gather consecutive reports (`count`). */
export interface TimelineMark {
  kind: RunEventKind | 'report'
  /** Epoch ms. */
  at: number
  count?: number
  /** The transition happened while the run was muted (it was not sent). */
  muted?: boolean
}

/** A run as the face shows it. */
export interface RunRow {
  run: WatchedRun
  mute: Mute | null
  timeline: readonly TimelineMark[]
  /** Changes whenever anything shown of the run changes (for live updates). */
  version: string
}

/** What the model tells its listeners after a look that found changes. */
export interface ModelChange {
  /** Rows added or changed. */
  changed: RunRow[]
  /** Rows gone (`repo`, `hash`). */
  removed: Array<{ repo: string; hash: string }>
  /** A repo's state changed. */
  reposChanged: boolean
  /** A delivery outcome happened since the last look (notifier health may have changed). */
  deliveries: boolean
}

/** What the model needs. */
export interface StatusModelOptions {
  repos: readonly RepoWatch[]
  /** Staleness to judge a standby's snapshots by (the daemon's). */
  staleMs: number
  /** Marks kept per run. Default 24. */
  timelineLength?: number
  /** A transition was counted (for metrics). */
  onTransition?(repo: string, kind: RunEventKind, muted: boolean): void
  /** An event this daemon saw itself (for the detection-lag histogram). */
  onEvent?(repo: string, event: RunEvent, muted: Mute | null): void
  /** A delivery outcome of this daemon (for the notification counters). */
  onReport?(repo: string, report: DeliveryRecord): void
}

interface Tracked {
  row: RunRow
  status: WatchedRun['status']
  episode: number
  lastProgressAt: number
  marks: TimelineMark[]
  seenAt: number
}

const ENDED = new Set(['finished', 'failed'])
const SOON_MS = 50
const EVERY_MS = 1000
/** A look this recent, with nothing reported changed since, answers a request as it is. */
const FRESH_MS = 250

const keyOf = (repo: string, hash: string): string => `${repo}\n${hash}`
const muteStamp = (mute: Mute | null): string => (mute === null ? '-' : `${mute.createdAt}:${mute.until ?? 'h'}`)
/** What a row's sessions and ranks add to its version: a session that opens or is lost changes the row, as a rank's report does. */
function sessionStamp(run: WatchedRun): string {
  if (run.ranks !== undefined) return run.ranks.map((r) => `${r.rank}:${r.status}:${r.session}:${r.lastProgressAt}:${r.deadlineAt}`).join(',')
  return run.origin === undefined ? '' : `${run.origin.session}@${run.origin.host}:${run.origin.pid}`
}

/** The face's model of every run of every repo of the daemon. */
export class StatusModel {
  readonly repos: readonly RepoWatch[]
  readonly #options: StatusModelOptions
  readonly #tracked = new Map<string, Tracked>()
  readonly #mutes = new Map<string, MuteView>()
  readonly #states = new Map<string, RepoWatchState>()
  readonly #listeners = new Set<(change: ModelChange) => void>()
  readonly #timer: DeadlineTimer
  readonly #unobserve: Array<() => void> = []
  #looking: Promise<void> | null = null
  #again = false
  #first = true
  /** Something was reported changed since the last look began. */
  #dirty = true
  #lookedAt: number | null = null
  #deliveries = false
  #closed = false

  constructor(options: StatusModelOptions) {
    this.#options = options
    this.repos = options.repos
    this.#timer = new DeadlineTimer(systemClock, () => void this.refresh())
    for (const repo of options.repos) {
      this.#mutes.set(repo.root, new MuteView(mutesPath(repoPaths(repo.root))))
      this.#unobserve.push(
        repo.observe({
          changed: () => this.#soon(),
          event: (event, muted) => options.onEvent?.(repo.root, event, muted),
          report: (report) => {
            this.#deliveries = true
            options.onReport?.(repo.root, report)
            this.#soon()
          },
        }),
      )
    }
  }

  /** Hears about every look that changed something. Returns the unsubscribe. */
  subscribe(listener: (change: ModelChange) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  /** Every run's row, as of the last look. */
  rows(): RunRow[] {
    return [...this.#tracked.values()].map((t) => t.row)
  }

  /** The state of each repo, as of the last look. */
  repoStates(): Array<{ repo: string; state: RepoWatchState }> {
    return this.repos.map((r) => ({ repo: r.root, state: this.#states.get(r.root) ?? r.state }))
  }

  /** The mute of a run of a repo now (read from the repo's file). */
  muteOf(repo: string, hash: string): Mute | null {
    return this.#mutes.get(repo)?.covering(hash, Date.now()) ?? null
  }

  /**
   * Resolves once the rows are current: at once when nothing was reported changed since the
   * last look and it is under {@link FRESH_MS} old; otherwise after a look. What requests use,
   * so that a burst of them does not look at 10k runs once each.
   */
  current(): Promise<void> {
    if (!this.#dirty && this.#lookedAt !== null && systemClock.now() - this.#lookedAt < FRESH_MS && this.#looking === null) return Promise.resolve()
    return this.refresh()
  }

  /** Takes a look now (after the one under way); resolves when it is done. */
  refresh(): Promise<void> {
    if (this.#looking !== null) {
      this.#again = true
      return this.#looking
    }
    this.#looking = (async () => {
      do {
        this.#again = false
        await this.#look()
      } while (this.#again && !this.#closed)
    })().finally(() => {
      this.#looking = null
      if (!this.#closed) this.#timer.arm(systemClock.now() + EVERY_MS)
    })
    return this.#looking
  }

  /** Stops looking. */
  close(): void {
    this.#closed = true
    this.#timer.close()
    for (const unobserve of this.#unobserve) unobserve()
    this.#listeners.clear()
  }

  #soon(): void {
    this.#dirty = true
    if (this.#closed) return
    const due = this.#timer.dueAt
    const soon = systemClock.now() + SOON_MS
    if (due === null || due > soon) this.#timer.arm(soon)
  }

  async #runsOf(repo: RepoWatch): Promise<WatchedRun[]> {
    if (repo.state === 'active') return repo.runs()
    // A standby reads nothing itself: what the snapshots on disk say is shown instead.
    try {
      const status = await repoStatus(repo.root, { staleMs: this.#options.staleMs })
      return status.runs.map(({ owner, stallsInMs: _, watchedBy: _watchedBy, ...run }): WatchedRun =>
        owner.kind === 'python'
          ? { ...run, repo: repo.root, source: 'aim', owner: null }
          : { ...run, repo: repo.root, source: owner.kind === 'daemon' ? daemonRunSource(run) : 'process', owner: { id: owner.id, kind: owner.kind, pid: owner.pid ?? 0, host: owner.host ?? '' } },
      )
    } catch {
      return []
    }
  }

  async #look(): Promise<void> {
    this.#dirty = false
    this.#lookedAt = systemClock.now()
    const now = Date.now()
    const changed: RunRow[] = []
    const seen = new Set<string>()
    let reposChanged = false
    for (const repo of this.repos) {
      if (this.#states.get(repo.root) !== repo.state) reposChanged = true
      this.#states.set(repo.root, repo.state)
      // One look at the file per repo and look (a stat), not one per run.
      const mutes = (this.#mutes.get(repo.root) as MuteView).current()
      for (const run of await this.#runsOf(repo)) {
        const key = keyOf(run.repo, run.hash)
        seen.add(key)
        const found = mutes.get(run.hash)
        const mute = found !== undefined && muteCovers(found, now) ? found : null
        const tracked = this.#tracked.get(key)
        if (tracked === undefined) {
          const marks: TimelineMark[] = [{ kind: 'started', at: run.startedAt }]
          if (run.lastProgressAt > run.startedAt) marks.push({ kind: 'report', at: run.lastProgressAt, count: 1 })
          if (run.status !== 'running') marks.push({ kind: run.status, at: run.status === 'stalled' && run.deadlineAt !== null ? run.deadlineAt + run.grace * 1000 : now })
          // Runs found at the first look were there before: not transitions of this daemon's life.
          // A run that appeared later and had already stalled or ended between two looks: both count.
          if (!this.#first) {
            this.#count(run.repo, 'started', mute !== null)
            if (run.status !== 'running') this.#count(run.repo, run.status, mute !== null)
          }
          const entry: Tracked = { row: { run, mute, timeline: marks, version: '' }, status: run.status, episode: run.episode, lastProgressAt: run.lastProgressAt, marks, seenAt: now }
          this.#update(entry, run, mute)
          this.#tracked.set(key, entry)
          changed.push(entry.row)
          continue
        }
        const before = tracked.row.version
        this.#follow(tracked, run, mute, now)
        this.#update(tracked, run, mute)
        if (tracked.row.version !== before) changed.push(tracked.row)
      }
    }
    const removed: ModelChange['removed'] = []
    for (const [key, tracked] of this.#tracked) {
      if (seen.has(key)) continue
      this.#tracked.delete(key)
      removed.push({ repo: tracked.row.run.repo, hash: tracked.row.run.hash })
    }
    this.#first = false
    const deliveries = this.#deliveries
    this.#deliveries = false
    if (changed.length === 0 && removed.length === 0 && !reposChanged && !deliveries) return
    const change: ModelChange = { changed, removed, reposChanged, deliveries }
    for (const listener of this.#listeners) listener(change)
  }

  /** Compares a run with its previous look: reports, and the transitions between the two. */
  #follow(tracked: Tracked, run: WatchedRun, mute: Mute | null, now: number): void {
    const mark = (kind: RunEventKind, at = now): void => {
      this.#push(tracked, { kind, at, ...(mute !== null ? { muted: true } : {}) })
      this.#count(run.repo, kind, mute !== null)
    }
    if (run.lastProgressAt > tracked.lastProgressAt) {
      const last = tracked.marks.at(-1)
      if (last !== undefined && last.kind === 'report') {
        last.count = (last.count ?? 1) + 1
        last.at = run.lastProgressAt
      } else this.#push(tracked, { kind: 'report', at: run.lastProgressAt, count: 1 })
    }
    const wasStalled = tracked.status === 'stalled'
    const ended = ENDED.has(run.status) && !ENDED.has(tracked.status)
    // A Node run's episode counts its stalls; a Python run's counts its check-ins instead.
    const stalls = run.source === 'aim' ? (run.status === 'stalled' && !wasStalled ? 1 : 0) : Math.max(0, run.episode - tracked.episode)
    if (wasStalled && (stalls > 0 || run.status === 'running')) mark('recovered')
    for (let i = 1; i <= stalls; i++) {
      mark('stalled')
      if (i < stalls || run.status === 'running') mark('recovered')
    }
    if (ended) mark(run.status as RunEventKind)
    tracked.status = run.status
    tracked.episode = run.episode
    tracked.lastProgressAt = Math.max(tracked.lastProgressAt, run.lastProgressAt)
  }

  #push(tracked: Tracked, mark: TimelineMark): void {
    tracked.marks.push(mark)
    const keep = this.#options.timelineLength ?? 24
    if (tracked.marks.length > keep) tracked.marks.splice(0, tracked.marks.length - keep)
  }

  #update(tracked: Tracked, run: WatchedRun, mute: Mute | null): void {
    const last = tracked.marks.at(-1)
    const version = `${run.status}|${run.episode}|${run.lastProgressAt}|${run.deadlineAt}|${run.source}|${run.owner?.id}|${muteStamp(mute)}|${tracked.marks.length}|${last?.count ?? 0}|${sessionStamp(run)}`
    tracked.row = { run, mute, timeline: tracked.marks, version }
  }

  #count(repo: string, kind: RunEventKind, muted: boolean): void {
    this.#options.onTransition?.(repo, kind, muted)
  }
}
