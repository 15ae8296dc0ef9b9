/**
 * The session fields of a run in a snapshot: where a run reporting over a session reports from
 * (`origin`), and a run of many ranks' `worldSize`, `finishOn` and `ranks`. Written so that a
 * daemon that takes over a dead daemon's snapshot still knows who reported each run (and each
 * rank), and checked field by field when read: a snapshot is input.
 * @module
 */
import type { FinishOn, RankState, RunInfo, RunOrigin, RunStatus, SessionState } from '../model.js'

/** The session fields of one run; absent ones are left out. */
export interface SessionFields {
  origin?: RunOrigin
  worldSize?: number
  finishOn?: FinishOn
  ranks?: RankState[]
}

const RUN_STATUSES: readonly RunStatus[] = ['running', 'stalled', 'finished', 'failed']
const SESSION_STATES: readonly SessionState[] = ['open', 'lost', 'closed', 'ended']
const MAX_TEXT = 2000
const MAX_RANKS = 100_000

function fail(message: string): never {
  throw new Error(message)
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const text = (v: unknown, label: string): string => (typeof v === 'string' && v.length <= MAX_TEXT ? v : fail(`${label} is not text of at most ${MAX_TEXT} characters`))
const pid = (v: unknown, label: string): number => (Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : fail(`${label} is not a process id`))
const session = (v: unknown, label: string): SessionState => (SESSION_STATES.includes(v as SessionState) ? (v as SessionState) : fail(`${label} is not a session state`))
const time = (v: unknown, label: string): number => (typeof v === 'number' && Number.isFinite(v) ? v : fail(`${label} is not a time`))

/** The session fields of a run, or null when it has none (most runs: nothing is written for them). */
export function sessionFieldsOf(run: RunInfo): SessionFields | null {
  if (run.origin === undefined && run.worldSize === undefined && run.ranks === undefined) return null
  const out: SessionFields = {}
  if (run.origin !== undefined) out.origin = run.origin
  if (run.worldSize !== undefined) out.worldSize = run.worldSize
  if (run.finishOn !== undefined) out.finishOn = run.finishOn
  if (run.ranks !== undefined) out.ranks = run.ranks
  return out
}

/** Reads the session fields of `value` (a run object, or a column's entry) onto `run`; throws a plain message naming a bad field. */
export function readSessionFields(value: Record<string, unknown>, label: string, run: RunInfo): void {
  const origin = value['origin']
  if (origin !== undefined) {
    if (!isRecord(origin)) fail(`${label}.origin is not an object`)
    const via = origin['via'] === 'tcp' || origin['via'] === 'unix' ? origin['via'] : fail(`${label}.origin.via is not tcp or unix`)
    run.origin = { host: text(origin['host'], `${label}.origin.host`), pid: pid(origin['pid'], `${label}.origin.pid`), via, session: session(origin['session'], `${label}.origin.session`) }
  }
  const worldSize = value['worldSize']
  if (worldSize !== undefined) run.worldSize = Number.isSafeInteger(worldSize) && (worldSize as number) >= 1 && (worldSize as number) <= MAX_RANKS ? (worldSize as number) : fail(`${label}.worldSize is not a world size`)
  const finishOn = value['finishOn']
  if (finishOn !== undefined) run.finishOn = finishOn === 'all' || finishOn === 'rank0' ? finishOn : fail(`${label}.finishOn is not all or rank0`)
  const ranks = value['ranks']
  if (ranks === undefined) return
  if (!Array.isArray(ranks) || ranks.length > MAX_RANKS) fail(`${label}.ranks is not a list of ranks`)
  run.ranks = ranks.map((r: unknown, i: number): RankState => {
    const at = `${label}.ranks[${i}]`
    if (!isRecord(r)) fail(`${at} is not an object`)
    const rank = Number.isSafeInteger(r['rank']) && (r['rank'] as number) >= 0 && (r['rank'] as number) < MAX_RANKS ? (r['rank'] as number) : fail(`${at}.rank is not a rank`)
    const status = RUN_STATUSES.includes(r['status'] as RunStatus) ? (r['status'] as RunStatus) : fail(`${at}.status is not a run status`)
    const deadlineAt = r['deadlineAt'] === null ? null : time(r['deadlineAt'], `${at}.deadlineAt`)
    const expectNextIn = time(r['expectNextIn'], `${at}.expectNextIn`)
    if (expectNextIn < 0) fail(`${at}.expectNextIn is negative`)
    const out: RankState = {
      rank,
      host: text(r['host'], `${at}.host`),
      pid: pid(r['pid'], `${at}.pid`),
      status,
      lastProgressAt: time(r['lastProgressAt'], `${at}.lastProgressAt`),
      expectNextIn,
      deadlineAt,
      session: session(r['session'], `${at}.session`),
    }
    if (r['reason'] !== undefined) out.reason = text(r['reason'], `${at}.reason`)
    return out
  })
}
