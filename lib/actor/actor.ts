/**
 * The repo actor's logic: the runs of one repo, their deadlines and their transitions. Pure and
 * clock-injected: it does no I/O and knows nothing of threads, so it is tested in-process with a
 * ManualClock, and the same code runs in the training process's worker and in the daemon.
 *
 * A run's stall time is `deadlineAt + grace`. The heap holds the stall time of every run that
 * is `running` with a deadline; one timer is armed for the earliest. No polling.
 *
 * ```
 *            progress                 deadline + grace passes
 *   open --> running  ------------------------------------------> stalled
 *              ^  |                                                  |
 *              |  +-- finish --> finished      fail --> failed <-----+ (fail, or owner died)
 *              +---------------- progress (recovered) ---------------+
 * ```
 * @module
 */
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import {
  SLOT_DEADLINE,
  SLOT_LAST_PROGRESS,
  eventKey,
  isEpisodeKind,
  type FinishOn,
  type ProgressSlot,
  type RankState,
  type RunEvent,
  type RunEventKind,
  type RunInfo,
  type RunOrigin,
  type SessionState,
} from '../model.js'
import { IndexedMinHeap } from './heap.js'

/** What opening a run needs. */
export interface OpenRun {
  hash: string
  name?: string
  experiment?: string
  /** Seconds past a deadline before a stall is declared. */
  grace: number
  /** When the run was opened (epoch ms). */
  at: number
  /**
   * Memory where the run's handle writes each report. The actor reads it when a stall falls
   * due, so reports that were coalesced away (never sent) still count, to the millisecond.
   */
  slot?: ProgressSlot
  /** Re-established rather than started (see the `open` message): no `started` event. Default false. */
  resume?: boolean
  /** Where a run reporting over a session reports from; kept in its info. Default: none. */
  origin?: RunOrigin
}

/** What opening (or re-joining) one rank of a run of many ranks needs. */
export interface OpenRank extends OpenRun {
  rank: number
  worldSize: number
  finishOn?: FinishOn
  host: string
  pid: number
  session?: SessionState
}

export interface ActorOptions {
  clock: Clock
  /** Absolute repo root, for events. */
  repo: string
  host: string
  pid: number
  /** Called synchronously with each transition, in order. */
  onEvent(event: RunEvent): void
  /** Called after any change to the runs (progress included), for snapshots. Default: nothing. */
  onChange?(): void
  /** Called when a report was applied to a run, with its deadline before. Default: nothing. */
  onProgress?(info: RunInfo, previousDeadlineAt: number | null): void
}

interface RunState {
  info: RunInfo
  slot: ProgressSlot | undefined
  /** The run's stall time in the heap (Infinity: not in it); saves a heap look-up per report. */
  queued: number
}

/** When a running run with a deadline counts as stalled (Infinity without a deadline). */
const stallTimeOf = (info: RunInfo): number => (info.deadlineAt === null ? Number.POSITIVE_INFINITY : info.deadlineAt + info.grace * 1000)

const isActive = (info: RunInfo) => info.status === 'running' || info.status === 'stalled'

/** The runs of one repo and their transitions. */
export class RepoActor {
  readonly #options: ActorOptions
  readonly #runs = new Map<string, RunState>()
  /** Stall times (deadline + grace, epoch ms) of running runs with a deadline. */
  readonly #stallHeap = new IndexedMinHeap<string>()
  /** Armed for {@link nextStallAt} whenever it is finite (see #rearm); closed with the actor. */
  readonly #timer: DeadlineTimer
  #closed = false

  constructor(options: ActorOptions) {
    this.#options = options
    this.#timer = new DeadlineTimer(options.clock, () => this.checkDeadlines())
  }

  /** Opens a run, or reopens (resumes) one that ended. Returns false when it is already active. */
  open(run: OpenRun): boolean {
    const existing = this.#runs.get(run.hash)
    if (existing !== undefined && isActive(existing.info)) return false
    const info: RunInfo = {
      hash: run.hash,
      status: 'running',
      startedAt: run.at,
      lastProgressAt: run.at,
      expectNextIn: 0,
      deadlineAt: null,
      grace: run.grace,
      episode: existing?.info.episode ?? 0,
      ...(run.name !== undefined ? { name: run.name } : {}),
      ...(run.experiment !== undefined ? { experiment: run.experiment } : {}),
      ...(run.origin !== undefined ? { origin: { ...run.origin } } : {}),
    }
    this.#runs.set(run.hash, { info, slot: run.slot, queued: Number.POSITIVE_INFINITY })
    if (run.resume !== true) this.#emit('started', info, run.at)
    this.#changed()
    return true
  }

  /**
   * Raises a run's episode to at least `episode` (a re-established run continues the count an
   * adopter reached, so that its next stall is a new episode with a new key).
   */
  continueEpisode(hash: string, episode: number): void {
    const state = this.#runs.get(hash)
    if (state === undefined || state.info.episode >= episode) return
    state.info.episode = episode
    this.#changed()
  }

  /**
   * Takes over a run as it was known elsewhere (a snapshot of a dead or frozen owner). Its
   * deadline and episode carry on; no `started` event.
   */
  adopt(info: RunInfo, slot?: ProgressSlot): void {
    const state: RunState = { info: { ...info }, slot, queued: Number.POSITIVE_INFINITY }
    this.#runs.set(info.hash, state)
    this.#schedule(state)
    this.#changed()
    this.#rearm()
  }

  /**
   * A progress report: the next one is due `expectNextIn` seconds after `at` (0: no deadline).
   * Ignored for a run that is unknown or ended (the handle refuses those at the edge).
   */
  progress(hash: string, at: number, expectNextIn: number): void {
    const state = this.#runs.get(hash)
    if (state === undefined || !isActive(state.info)) return
    // A report older than what the slot already told us changes nothing.
    if (at < state.info.lastProgressAt) return
    this.#applyProgress(state, at, expectNextIn === 0 ? null : at + expectNextIn * 1000)
    this.#rearm()
  }

  /** The run finished successfully. */
  finish(hash: string, at: number): boolean {
    return this.#end(hash, at, 'finished')
  }

  /** The run failed (reported by the training code, or its process died). */
  fail(hash: string, at: number, reason: string, logTail?: string): boolean {
    return this.#end(hash, at, 'failed', reason, logTail)
  }

  /** Opens the logical run of many ranks if not active, and adds or re-joins one rank. */
  openRank(run: OpenRank): boolean {
    let state = this.#runs.get(run.hash)
    if (state === undefined || !isActive(state.info)) {
      const { origin: _origin, ...plain } = run
      void _origin
      this.open({ ...plain, hash: run.hash })
      state = this.#runs.get(run.hash) as RunState
      state.info.worldSize = run.worldSize
      if (run.finishOn !== undefined) state.info.finishOn = run.finishOn
      state.info.ranks = []
    }
    const ranks = (state.info.ranks ??= [])
    const rank: RankState = { rank: run.rank, host: run.host, pid: run.pid, status: 'running', lastProgressAt: run.at, expectNextIn: 0, deadlineAt: null, session: run.session ?? 'open' }
    const i = ranks.findIndex((r) => r.rank === run.rank)
    if (i >= 0) ranks[i] = rank
    else ranks.push(rank)
    this.#changed()
    return true
  }

  /** One rank's progress: the run's deadline is the earliest of its running ranks'. */
  rankProgress(hash: string, rank: number, at: number, expectNextIn: number): void {
    const state = this.#runs.get(hash)
    const r = state?.info.ranks?.find((x) => x.rank === rank)
    if (state === undefined || r === undefined || !isActive(state.info) || r.status !== 'running') return
    r.lastProgressAt = at
    r.expectNextIn = expectNextIn
    r.deadlineAt = expectNextIn === 0 ? null : at + expectNextIn * 1000
    const deadlines = (state.info.ranks ?? []).filter((x) => x.status === 'running' && x.deadlineAt !== null).map((x) => x.deadlineAt as number)
    this.#applyProgress(state, Math.max(at, state.info.lastProgressAt), deadlines.length === 0 ? null : Math.min(...deadlines))
    this.#rearm()
  }

  /** One rank finished; the run finishes when every rank of worldSize has (or rank 0, finishOn 'rank0'). */
  rankFinish(hash: string, rank: number, at: number): boolean {
    const state = this.#runs.get(hash)
    const r = state?.info.ranks?.find((x) => x.rank === rank)
    if (state === undefined || r === undefined || !isActive(state.info)) return false
    r.status = 'finished'
    r.deadlineAt = null
    const ranks = state.info.ranks ?? []
    const done = state.info.finishOn === 'rank0' ? rank === 0 : ranks.filter((x) => x.status === 'finished').length >= (state.info.worldSize ?? 1)
    if (done) return this.finish(hash, at)
    this.#changed()
    return true
  }

  /** One rank failed: the run fails, its reason naming the rank. */
  rankFail(hash: string, rank: number, at: number, reason: string, logTail?: string): boolean {
    const state = this.#runs.get(hash)
    const r = state?.info.ranks?.find((x) => x.rank === rank)
    if (state === undefined || r === undefined || !isActive(state.info)) return false
    r.status = 'failed'
    r.reason = reason
    return this.fail(hash, at, `rank ${rank} on ${r.host}: ${reason}`, logTail)
  }

  /** The session state of a plain run's origin, or of one rank: a change for the snapshot, no event. */
  setSession(hash: string, rank: number | undefined, session: SessionState): void {
    const info = this.#runs.get(hash)?.info
    if (info === undefined) return
    // New objects, not edits: copies handed out (snapshots, journal baselines) share the old ones.
    if (rank === undefined) {
      if (info.origin === undefined || info.origin.session === session) return
      info.origin = { ...info.origin, session }
    } else {
      const i = info.ranks?.findIndex((x) => x.rank === rank) ?? -1
      if (i < 0 || info.ranks?.[i]?.session === session) return
      info.ranks = (info.ranks ?? []).map((r, j) => (j === i ? { ...r, session } : r))
    }
    this.#changed()
  }

  /** Stops tracking a run without any event (it was handed over, or it is being forgotten). */
  forget(hash: string): boolean {
    const state = this.#runs.get(hash)
    if (state !== undefined) this.#dequeue(state)
    const had = this.#runs.delete(hash)
    if (had) {
      this.#changed()
      this.#rearm()
    }
    return had
  }

  /** A copy of one run's state, or undefined. */
  run(hash: string): RunInfo | undefined {
    const state = this.#runs.get(hash)
    return state === undefined ? undefined : this.#fresh(state)
  }

  /** Copies of every run's state. */
  runs(): RunInfo[] {
    const out: RunInfo[] = []
    for (const state of this.#runs.values()) out.push(this.#fresh(state))
    return out
  }

  /** Whether any run is running or stalled (no copies made: asked once per daemon poll). */
  hasActiveRuns(): boolean {
    for (const state of this.#runs.values()) if (isActive(state.info)) return true
    return false
  }

  /** How many runs are tracked. */
  get size(): number {
    return this.#runs.size
  }

  /**
   * When the deadline timer fires next (epoch ms), or Infinity: the earliest stall time in the
   * heap, which may be earlier than any run's real one (the timer then re-checks and re-arms).
   */
  get nextStallAt(): number {
    return this.#stallHeap.peekPriority() ?? Infinity
  }

  /** Disarms the timer; the actor does nothing after this. */
  close(): void {
    this.#closed = true
    this.#timer.close()
  }

  /** Declares every stall that has fallen due. Called by the timer; callable directly. */
  checkDeadlines(): void {
    if (this.#closed) return
    const now = this.#options.clock.now()
    for (;;) {
      const hash = this.#stallHeap.peekKey()
      const stallAt = this.#stallHeap.peekPriority()
      if (hash === undefined || stallAt === undefined || stallAt > now) break
      const state = this.#runs.get(hash) as RunState
      this.#catchUpFromSlot(state)
      // The heap may hold an earlier stall time than the run's (see #schedule): move it on.
      const due = stallTimeOf(state.info)
      if (due > now) {
        this.#enqueue(state, due)
        continue
      }
      this.#dequeue(state)
      const info = state.info
      info.status = 'stalled'
      info.episode += 1
      this.#emit('stalled', info, now, (now - (info.deadlineAt as number)) / 1000)
      this.#changed()
    }
    this.#rearm()
  }

  #applyProgress(state: RunState, at: number, deadlineAt: number | null): void {
    const info = state.info
    const previousDeadlineAt = info.deadlineAt
    info.lastProgressAt = at
    info.deadlineAt = deadlineAt
    info.expectNextIn = deadlineAt === null ? 0 : (deadlineAt - at) / 1000
    if (info.status === 'stalled') {
      info.status = 'running'
      this.#emit('recovered', info, at)
    }
    this.#schedule(state)
    this.#changed()
    this.#options.onProgress?.(info, previousDeadlineAt)
  }

  /**
   * Applies a report that only reached the slot (coalesced away by the handle). Returns true
   * when the slot held a newer report, in which case the run has been rescheduled.
   */
  #catchUpFromSlot(state: RunState): boolean {
    const slot = state.slot
    if (slot === undefined) return false
    const at = slot[SLOT_LAST_PROGRESS] as number
    if (!(at > state.info.lastProgressAt)) return false
    const deadline = slot[SLOT_DEADLINE] as number
    this.#applyProgress(state, at, deadline === Infinity ? null : deadline)
    return true
  }

  /**
   * A copy of the state with any newer report from the slot folded in, for queries and
   * snapshots. It changes nothing and calls no hook: a query (a snapshot being written, say)
   * must never set off transitions or writes of its own.
   */
  #fresh(state: RunState): RunInfo {
    const info = state.info
    const slot = state.slot
    if (slot === undefined || info.status !== 'running') return { ...info }
    const at = slot[SLOT_LAST_PROGRESS] as number
    if (!(at > info.lastProgressAt)) return { ...info }
    const deadline = slot[SLOT_DEADLINE] as number
    const deadlineAt = deadline === Infinity ? null : deadline
    return { ...info, lastProgressAt: at, deadlineAt, expectNextIn: deadlineAt === null ? 0 : (deadlineAt - at) / 1000 }
  }

  #end(hash: string, at: number, status: 'finished' | 'failed', reason?: string, logTail?: string): boolean {
    const state = this.#runs.get(hash)
    if (state === undefined || !isActive(state.info)) return false
    this.#dequeue(state)
    const info = state.info
    info.status = status
    info.deadlineAt = null
    if (reason !== undefined) info.reason = reason
    if (logTail !== undefined && logTail !== '') info.logTail = logTail
    this.#emit(status, info, at)
    this.#changed()
    this.#rearm()
    return true
  }

  /**
   * Keeps the heap's stall time of a run at or before its real one. A report nearly always
   * moves the deadline later; that is left for {@link checkDeadlines} to find when the old time
   * falls due (one heap operation per promise period instead of one per report). An earlier
   * time, a new run or a removal is applied at once.
   */
  #schedule(state: RunState): void {
    const info = state.info
    if (info.status !== 'running' || info.deadlineAt === null) {
      this.#dequeue(state)
      return
    }
    const stallAt = stallTimeOf(info)
    if (stallAt < state.queued) this.#enqueue(state, stallAt)
  }

  #enqueue(state: RunState, stallAt: number): void {
    state.queued = stallAt
    this.#stallHeap.set(state.info.hash, stallAt)
  }

  #dequeue(state: RunState): void {
    if (state.queued === Number.POSITIVE_INFINITY) return
    state.queued = Number.POSITIVE_INFINITY
    this.#stallHeap.delete(state.info.hash)
  }

  #emit(kind: RunEventKind, info: RunInfo, at: number, overdueSeconds?: number): void {
    const { repo, host, pid } = this.#options
    const { hash, startedAt, episode } = info
    this.#options.onEvent({
      kind,
      // The run's start time names the instance, so a resumed run's events are new events.
      key: eventKey(isEpisodeKind(kind) ? { source: 'node', hash, startedAt, kind, episode } : { source: 'node', hash, startedAt, kind }),
      at,
      run: { ...info },
      repo,
      host,
      pid,
      ...(overdueSeconds !== undefined ? { overdueSeconds } : {}),
    })
  }

  #changed(): void {
    this.#options.onChange?.()
  }

  /** Keeps exactly one timer armed, for the earliest stall time. */
  #rearm(): void {
    // Same time: no-op; Infinity (no deadline left): disarmed; after close: nothing.
    this.#timer.arm(this.nextStallAt)
  }
}
