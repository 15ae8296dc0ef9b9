/**
 * The fields of a run that only some runs have: where a run reporting over a session reports
 * from (`origin`), and the ranks of a run of many ranks (`worldSize`, `finishOn`, `ranks`). On
 * disk, in both snapshot encodings and in journal records, they are one JSON object per run
 * ({@link RunExtras}); this module builds it and reads it back with every field checked and
 * bounded, because the file crosses processes, versions and crashes.
 * @module
 */
import type { FinishOn, RankState, RunInfo, RunOrigin, RunStatus, SessionState } from '../model.js'
import { describeValue } from '../errors.js'

/** The optional run fields this module carries, as stored. */
export type RunExtras = Pick<RunInfo, 'origin' | 'worldSize' | 'finishOn' | 'ranks'>

/** The most ranks a run may have (as the session protocol allows). */
export const MAX_RANKS = 100_000
/** Host names are short; the bound guards the reader's memory. */
const MAX_HOST = 255
const MAX_REASON = 4096

const RUN_STATUSES: readonly RunStatus[] = ['running', 'stalled', 'finished', 'failed']
const SESSION_STATES: readonly SessionState[] = ['open', 'lost', 'closed', 'ended']

function fail(message: string): never {
  throw new Error(message)
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

function text(value: unknown, label: string, max: number): string {
  if (typeof value !== 'string' || value.length > max) fail(`${label} is ${describeValue(value)}`)
  return value
}

function pid(value: unknown, label: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) fail(`${label} is ${describeValue(value)}`)
  return value as number
}

function time(value: unknown, label: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`${label} is ${describeValue(value)}`)
  return value
}

function session(value: unknown, label: string): SessionState {
  if (!SESSION_STATES.includes(value as SessionState)) fail(`${label} is ${describeValue(value)}`)
  return value as SessionState
}

/** The extra fields of a run, or null when it has none (most runs: the column then holds null). */
export function runExtrasOf(run: RunInfo): RunExtras | null {
  if (run.origin === undefined && run.worldSize === undefined && run.finishOn === undefined && run.ranks === undefined) return null
  const extras: RunExtras = {}
  if (run.origin !== undefined) extras.origin = run.origin
  if (run.worldSize !== undefined) extras.worldSize = run.worldSize
  if (run.finishOn !== undefined) extras.finishOn = run.finishOn
  if (run.ranks !== undefined) extras.ranks = run.ranks
  return extras
}

/**
 * Throws when a rank holds a time that is not a finite number. JSON would write it as null and
 * the reader would then refuse the whole file (or journal): refusing the write keeps the last
 * good state, as for the run's own times.
 */
export function checkFiniteRanks(run: RunInfo): void {
  if (run.ranks === undefined) return
  for (const rank of run.ranks) {
    if (!Number.isFinite(rank.lastProgressAt + rank.expectNextIn + (rank.deadlineAt ?? 0) + rank.pid + rank.rank)) {
      throw new Error(`run ${run.hash} has a rank with a field that is not a finite number: ${JSON.stringify(rank)}`)
    }
  }
}

/** Checks a run's origin. */
export function parseOrigin(value: unknown, label: string): RunOrigin {
  if (!isObject(value)) fail(`${label} is ${describeValue(value)}`)
  const via = value['via']
  if (via !== 'tcp' && via !== 'unix') fail(`${label}.via is ${describeValue(via)}`)
  return { host: text(value['host'], `${label}.host`, MAX_HOST), pid: pid(value['pid'], `${label}.pid`), via, session: session(value['session'], `${label}.session`) }
}

/** Checks a run's ranks: at most {@link MAX_RANKS}, each below `worldSize` when given, none twice. */
export function parseRanks(value: unknown, label: string, worldSize: number | undefined): RankState[] {
  if (!Array.isArray(value) || value.length > MAX_RANKS) fail(`${label} is ${Array.isArray(value) ? `an array of ${value.length}, more than ${MAX_RANKS}` : describeValue(value)}`)
  const limit = worldSize ?? MAX_RANKS
  const seen = new Set<number>()
  return value.map((item: unknown, i: number): RankState => {
    const at = `${label}[${i}]`
    if (!isObject(item)) fail(`${at} is ${describeValue(item)}`)
    const rank = item['rank']
    if (!Number.isSafeInteger(rank) || (rank as number) < 0 || (rank as number) >= limit) fail(`${at}.rank is ${describeValue(rank)}, expected an integer from 0 to ${limit - 1}`)
    if (seen.has(rank as number)) fail(`${at}.rank ${rank as number} appears twice`)
    seen.add(rank as number)
    const status = item['status']
    if (!RUN_STATUSES.includes(status as RunStatus)) fail(`${at}.status is ${describeValue(status)}`)
    const expectNextIn = time(item['expectNextIn'], `${at}.expectNextIn`)
    if (expectNextIn < 0) fail(`${at}.expectNextIn is ${expectNextIn}`)
    const deadlineAt = item['deadlineAt']
    const state: RankState = {
      rank: rank as number,
      host: text(item['host'], `${at}.host`, MAX_HOST),
      pid: pid(item['pid'], `${at}.pid`),
      status: status as RunStatus,
      lastProgressAt: time(item['lastProgressAt'], `${at}.lastProgressAt`),
      expectNextIn,
      deadlineAt: deadlineAt === null ? null : time(deadlineAt, `${at}.deadlineAt`),
      session: session(item['session'], `${at}.session`),
    }
    if (item['reason'] !== undefined) state.reason = text(item['reason'], `${at}.reason`, MAX_REASON)
    return state
  })
}

/**
 * Checks the extra fields found in `source` (a run object, or a column's object) and copies
 * those present onto `run`. Throws a plain message naming the first bad field.
 */
export function applyRunExtras(run: RunInfo, source: Record<string, unknown>, label: string): void {
  const { origin, worldSize, finishOn, ranks } = source
  if (origin !== undefined) run.origin = parseOrigin(origin, `${label}.origin`)
  if (worldSize !== undefined) {
    if (!Number.isSafeInteger(worldSize) || (worldSize as number) < 1 || (worldSize as number) > MAX_RANKS) fail(`${label}.worldSize is ${describeValue(worldSize)}`)
    run.worldSize = worldSize as number
  }
  if (finishOn !== undefined) {
    if (finishOn !== 'all' && finishOn !== 'rank0') fail(`${label}.finishOn is ${describeValue(finishOn)}`)
    run.finishOn = finishOn as FinishOn
  }
  if (ranks !== undefined) run.ranks = parseRanks(ranks, `${label}.ranks`, run.worldSize)
}

/** Reads one entry of the extras column: null (none) or an object of {@link RunExtras}. */
export function applyRunExtrasColumn(run: RunInfo, value: unknown, label: string): void {
  if (value === null) return
  if (!isObject(value)) fail(`${label} is ${describeValue(value)}`)
  applyRunExtras(run, value, label)
}
