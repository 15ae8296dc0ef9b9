/**
 * One run message of a session, applied to the repo's actor: pure (no socket, no I/O), so each
 * rule is tested on its own. Every message is idempotent: a client that reconnects re-sends what
 * was not acknowledged, and a message applied twice changes nothing the second time.
 * @module
 */
import type { RepoActor } from '../../actor/actor.js'
import { ErrorCodes } from '../../errors.js'
import { eventKey, type RunEvent, type RunInfo } from '../../model.js'
import type { ClientMessage } from '../../session/protocol.js'

/** The run messages (everything but `hello` and `bye`). */
export type RunMessage = Extract<ClientMessage, { t: 'open' | 'progress' | 'finish' | 'fail' }>

/** The process a session speaks for. */
export interface Reporter {
  host: string
  pid: number
  via: 'tcp' | 'unix'
}

/** What applying a message came to. */
export type Applied =
  /** Applied: `durable` says whether its ack waits for the snapshot's commit; `tell` is an event the client should learn (a run that already ended). */
  { ok: true; durable: boolean; tell?: RunEvent } | { ok: false; code: string; message: string }

const isActive = (run: RunInfo): boolean => run.status === 'running' || run.status === 'stalled'

const refused = (message: string): Applied => ({ ok: false, code: ErrorCodes.BAD_REQUEST, message })

/** The end of a run as an event, for a client that resumes a run the daemon knows ended (its handle then learns it). */
export function endEventOf(run: RunInfo, repo: string, daemon: { host: string; pid: number }): RunEvent | undefined {
  if (run.status !== 'finished' && run.status !== 'failed') return undefined
  return { kind: run.status, key: eventKey({ source: 'node', hash: run.hash, startedAt: run.startedAt, kind: run.status }), at: run.lastProgressAt, run, repo, host: daemon.host, pid: daemon.pid }
}

/** Context of {@link applyRunMessage}. */
export interface ApplyContext {
  actor: RepoActor
  who: Reporter
  /** The repo root and the daemon, for events made here. */
  repo: string
  daemon: { host: string; pid: number }
  /** Whether this session's client holds the run (or rank): it opened or resumed it. */
  holds(hash: string, rank: number | undefined): boolean
}

/** Applies one run message; never throws for bad input (an answer says what is wrong). */
export function applyRunMessage(m: RunMessage, ctx: ApplyContext): Applied {
  const { actor } = ctx
  if (m.t === 'open') return m.rank === undefined ? openRun(m, ctx) : openRank(m, m.rank, ctx)
  if (!ctx.holds(m.hash, m.rank)) return refused(`run ${m.hash}${m.rank !== undefined ? ` rank ${m.rank}` : ''} is not open on this session: send open (resume) first`)
  switch (m.t) {
    case 'progress':
      if (m.rank === undefined) actor.progress(m.hash, m.at, m.expectNextIn)
      else actor.rankProgress(m.hash, m.rank, m.at, m.expectNextIn)
      return { ok: true, durable: false }
    case 'finish':
      if (m.rank === undefined) actor.finish(m.hash, m.at)
      else actor.rankFinish(m.hash, m.rank, m.at)
      return { ok: true, durable: true }
    case 'fail':
      if (m.rank === undefined) actor.fail(m.hash, m.at, m.reason, m.logTail)
      else actor.rankFail(m.hash, m.rank, m.at, m.reason, m.logTail)
      return { ok: true, durable: true }
  }
}

type OpenMessage = Extract<RunMessage, { t: 'open' }>

function openRun(m: OpenMessage, ctx: ApplyContext): Applied {
  const { actor, who } = ctx
  const existing = actor.run(m.hash)
  if (existing !== undefined && isActive(existing)) {
    // A run watched here on behalf of a local process (adopted from its snapshot) is not a session's to take.
    if (existing.origin === undefined || existing.worldSize !== undefined) return refused(`run ${m.hash} is already active here, not reported over a session`)
    if (existing.startedAt !== m.at || existing.origin.host !== who.host || existing.origin.pid !== who.pid)
      return refused(`run ${m.hash} is already active, started by process ${existing.origin.pid} on ${existing.origin.host}`)
    // The same instance again (a resume, or an open re-sent): it carries on as it is.
    actor.setSession(m.hash, undefined, 'open')
    return { ok: true, durable: true }
  }
  if (existing !== undefined && existing.startedAt === m.at) {
    const tell = endEventOf(existing, ctx.repo, ctx.daemon)
    if (tell !== undefined) return { ok: true, durable: false, tell }
  }
  actor.open({
    hash: m.hash,
    grace: m.grace,
    at: m.at,
    ...(m.name !== undefined ? { name: m.name } : {}),
    ...(m.experiment !== undefined ? { experiment: m.experiment } : {}),
    ...(m.resume === true ? { resume: true } : {}),
    origin: { host: who.host, pid: who.pid, via: who.via, session: 'open' },
  })
  return { ok: true, durable: true }
}

function openRank(m: OpenMessage, rank: number, ctx: ApplyContext): Applied {
  const { actor, who } = ctx
  const existing = actor.run(m.hash)
  const mine = existing?.ranks?.find((r) => r.rank === rank && r.pid === who.pid && r.host === who.host)
  if (existing !== undefined && isActive(existing)) {
    if (existing.worldSize === undefined) return refused(`run ${m.hash} is already active here as a run of one process`)
    if (m.worldSize !== undefined && m.worldSize !== existing.worldSize) return refused(`run ${m.hash} has worldSize ${existing.worldSize}, not ${m.worldSize}`)
    // A rank that already finished stays finished: the resume only binds it again.
    if (mine !== undefined && mine.status !== 'running') {
      actor.setSession(m.hash, rank, 'open')
      return { ok: true, durable: false }
    }
  } else if (existing !== undefined && mine !== undefined) {
    // This rank belonged to the run's instance that ended: the client learns how it ended.
    const tell = endEventOf(existing, ctx.repo, ctx.daemon)
    if (tell !== undefined) return { ok: true, durable: false, tell }
  }
  const worldSize = m.worldSize ?? (existing !== undefined && isActive(existing) ? existing.worldSize : undefined)
  if (worldSize === undefined) return refused('open of a rank needs worldSize')
  if (rank >= worldSize) return refused('rank must be below worldSize')
  actor.openRank({
    hash: m.hash,
    grace: m.grace,
    at: m.at,
    ...(m.name !== undefined ? { name: m.name } : {}),
    ...(m.experiment !== undefined ? { experiment: m.experiment } : {}),
    ...(m.resume === true ? { resume: true } : {}),
    rank,
    worldSize,
    ...(m.finishOn !== undefined ? { finishOn: m.finishOn } : {}),
    host: who.host,
    pid: who.pid,
    session: 'open',
  })
  return { ok: true, durable: true }
}
