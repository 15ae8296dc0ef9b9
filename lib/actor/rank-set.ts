/**
 * The ranks of one run of many ranks, as the actor tracks them: which are running with a
 * deadline (a min-heap of their deadlines), which have been declared silent (in the order they
 * went silent) and how many finished. Pure, like the actor: it emits nothing and knows no clock.
 *
 * The logical run's deadline is the earliest deadline of its active ranks: the heap answers it
 * in O(1) and a report costs O(log n), so a run of 100 000 ranks reporting every few seconds
 * never scans its ranks on the hot path. Only a stall (once per episode) walks the due ones.
 * @module
 */
import type { FinishOn, RankState, SessionState } from '../model.js'
import { IndexedMinHeap } from './heap.js'

/** How a rank joins (or re-joins) a run. */
export interface RankJoin {
  rank: number
  host: string
  pid: number
  at: number
  session: SessionState
  /** A re-established session: a rank already known keeps its status and deadline. */
  resume: boolean
}

const isActiveRank = (rank: RankState) => rank.status === 'running' || rank.status === 'stalled'

/** The ranks of one run. The {@link list} array is the run's `ranks` field itself, mutated in place. */
export class RankSet {
  readonly worldSize: number
  readonly finishOn: FinishOn
  /** Every rank that joined, in join order (copies sort it by rank). */
  readonly list: RankState[]
  readonly #byRank = new Map<number, RankState>()
  /** Deadlines of ranks that are `running` with a deadline; stalled and ended ranks are not in it. */
  readonly #deadlines = new IndexedMinHeap<number>()
  /**
   * Ranks with status `stalled`, first silent first. Ranks go silent in deadline order (each is
   * taken from the heap's top), and one that reports and goes silent again re-enters last with a
   * deadline later than any still here, so insertion order is also deadline order.
   */
  readonly #silent = new Set<number>()
  #finished = 0

  /** Builds the set over `list` (an empty array for a new run, a restored run's ranks when adopted). */
  constructor(list: RankState[], worldSize: number, finishOn: FinishOn) {
    this.list = list
    this.worldSize = worldSize
    this.finishOn = finishOn
    const silent: RankState[] = []
    for (const rank of list) {
      this.#byRank.set(rank.rank, rank)
      if (rank.status === 'finished') this.#finished += 1
      else if (rank.status === 'stalled') silent.push(rank)
      else if (rank.status === 'running' && rank.deadlineAt !== null) this.#deadlines.set(rank.rank, rank.deadlineAt)
    }
    silent.sort((a, b) => (a.deadlineAt ?? 0) - (b.deadlineAt ?? 0))
    for (const rank of silent) this.#silent.add(rank.rank)
  }

  get(rank: number): RankState | undefined {
    return this.#byRank.get(rank)
  }

  /** Whether the rank has joined and neither finished nor failed. */
  isActive(rank: number): boolean {
    const state = this.#byRank.get(rank)
    return state !== undefined && isActiveRank(state)
  }

  /** How many ranks finished. */
  get finishedCount(): number {
    return this.#finished
  }

  /** How many ranks are declared silent (status `stalled`). */
  get silentCount(): number {
    return this.#silent.size
  }

  /**
   * Adds a rank, or re-joins one already known. A new rank (or a fresh open of a known one) is
   * running from `at` with no deadline until it reports. A resumed one keeps its status and
   * deadline: its latest report follows on the same connection, and an `open` carries the
   * original start time, which must not move its last report back.
   */
  join(join: RankJoin): void {
    const known = this.#byRank.get(join.rank)
    if (known !== undefined) {
      known.host = join.host
      known.pid = join.pid
      known.session = join.session
      if (join.resume) return
      this.#leave(known)
      known.status = 'running'
      known.lastProgressAt = join.at
      known.expectNextIn = 0
      known.deadlineAt = null
      delete known.reason
      return
    }
    const rank: RankState = { rank: join.rank, host: join.host, pid: join.pid, status: 'running', lastProgressAt: join.at, expectNextIn: 0, deadlineAt: null, session: join.session }
    this.list.push(rank)
    this.#byRank.set(rank.rank, rank)
  }

  /** A report from an active rank: running again, next report due by `deadlineAt` (null: none). */
  report(rank: number, at: number, deadlineAt: number | null): void {
    const state = this.#byRank.get(rank) as RankState
    this.#silent.delete(rank)
    state.status = 'running'
    state.lastProgressAt = at
    state.deadlineAt = deadlineAt
    state.expectNextIn = deadlineAt === null ? 0 : (deadlineAt - at) / 1000
    if (deadlineAt === null) this.#deadlines.delete(rank)
    else this.#deadlines.set(rank, deadlineAt)
  }

  /** Ends an active rank; it leaves the deadline computation and stays listed. */
  end(rank: number, status: 'finished' | 'failed', reason?: string): void {
    const state = this.#byRank.get(rank) as RankState
    this.#leave(state)
    state.status = status
    state.deadlineAt = null
    if (status === 'finished') this.#finished += 1
    if (reason !== undefined) state.reason = reason
  }

  /** The earliest deadline of a running rank (not one already silent), or Infinity. */
  get nextRunningDeadline(): number {
    return this.#deadlines.peekPriority() ?? Number.POSITIVE_INFINITY
  }

  /**
   * Declares silent every running rank whose deadline is at or before `dueBy` (the time less the
   * grace); returns how many it declared.
   */
  markSilent(dueBy: number): number {
    let count = 0
    for (;;) {
      const rank = this.#deadlines.peekKey()
      const deadline = this.#deadlines.peekPriority()
      if (rank === undefined || deadline === undefined || deadline > dueBy) return count
      this.#deadlines.delete(rank)
      ;(this.#byRank.get(rank) as RankState).status = 'stalled'
      this.#silent.add(rank)
      count += 1
    }
  }

  /** The run's deadline: the earliest of its active ranks' (silent ones included), with that rank's promise. */
  earliest(): { deadlineAt: number | null; expectNextIn: number } {
    // The first silent rank has the earliest deadline of the silent ones (see #silent); the
    // heap's top has the earliest of the running ones. The run's deadline is the earlier of the two.
    let best: RankState | undefined
    const first = this.#silent.values().next()
    if (first.done !== true) best = this.#byRank.get(first.value)
    const top = this.#deadlines.peekKey()
    if (top !== undefined) {
      const running = this.#byRank.get(top) as RankState
      if (best === undefined || (running.deadlineAt as number) < (best.deadlineAt as number)) best = running
    }
    return best === undefined ? { deadlineAt: null, expectNextIn: 0 } : { deadlineAt: best.deadlineAt, expectNextIn: best.expectNextIn }
  }

  #leave(state: RankState): void {
    this.#deadlines.delete(state.rank)
    this.#silent.delete(state.rank)
    if (state.status === 'finished') this.#finished -= 1
  }
}

/** Copies of ranks ordered by rank number (the stored list is in join order; sorting an ordered list is linear). */
export function copyRanks(list: readonly RankState[]): RankState[] {
  return list.map((rank) => ({ ...rank })).sort((a, b) => a.rank - b.rank)
}
