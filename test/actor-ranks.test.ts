import t from 'tap'
import { ManualClock } from '../lib/clock.js'
import { RepoActor, type OpenRank } from '../lib/actor/actor.js'
import type { RunEvent, RunInfo } from '../lib/model.js'

/** A 4-rank run `job` with grace 2 s; every rank opened at the clock's start. */
function setup(options: { worldSize?: number; finishOn?: 'all' | 'rank0'; start?: number } = {}) {
  const clock = new ManualClock(options.start)
  const events: RunEvent[] = []
  let changes = 0
  const actor = new RepoActor({ clock, repo: '/repo', host: 'daemon', pid: 9, onEvent: (e) => events.push(e), onChange: () => changes++ })
  const worldSize = options.worldSize ?? 4
  const rankOpen = (rank: number, extra: Partial<OpenRank> = {}): OpenRank => ({
    hash: 'job',
    grace: 2,
    at: clock.now(),
    rank,
    worldSize,
    host: `gpu-${rank}`,
    pid: 100 + rank,
    ...(options.finishOn !== undefined ? { finishOn: options.finishOn } : {}),
    ...extra,
  })
  const kinds = () => events.map((e) => e.kind)
  /** Every rank reports now, promising `seconds`. */
  const reportAll = (seconds: number, except: number[] = []) => {
    for (let rank = 0; rank < worldSize; rank++) if (!except.includes(rank)) actor.rankProgress('job', rank, clock.now(), seconds)
  }
  const silent = (run: RunInfo | undefined) => (run?.ranks ?? []).filter((r) => r.status === 'stalled').map((r) => r.rank)
  return { clock, events, actor, rankOpen, kinds, reportAll, silent, changes: () => changes }
}

t.test('one silent rank: one stall naming it, then one recovery', async (t) => {
  const { clock, actor, rankOpen, kinds, reportAll, events, silent } = setup()
  for (let rank = 0; rank < 4; rank++) t.ok(actor.openRank(rankOpen(rank)))
  t.same(kinds(), ['started'], 'one started for the logical run, not one per rank')
  const run = actor.run('job') as RunInfo
  t.same(
    run.ranks?.map((r) => [r.rank, r.host, r.pid, r.status, r.session]),
    [0, 1, 2, 3].map((r) => [r, `gpu-${r}`, 100 + r, 'running', 'open']),
  )
  t.equal(run.worldSize, 4)
  t.equal(run.finishOn, 'all')
  t.equal(run.deadlineAt, null, 'no deadline until a rank reports')

  reportAll(3)
  t.equal(actor.run('job')?.deadlineAt, clock.now() + 3000)
  for (let i = 0; i < 10; i++) {
    clock.advance(2000)
    reportAll(3, [2])
  }
  t.same(kinds(), ['started', 'stalled'], 'exactly one stall while rank 2 is silent')
  const stalled = events[1] as RunEvent
  t.same(silent(stalled.run), [2], 'the stall event carries rank 2 as silent')
  t.equal(stalled.run.status, 'stalled')
  t.equal(stalled.run.episode, 1)
  t.equal(stalled.overdueSeconds, 2, 'declared at deadline + grace of the silent rank (the timer fired then)')
  t.equal(stalled.run.deadlineAt, (stalled.run.ranks?.[2]?.deadlineAt as number) ?? -1, "the run's deadline is the silent rank's")
  t.equal(stalled.run.lastProgressAt, Math.max(...(stalled.run.ranks ?? []).map((r) => r.lastProgressAt)), 'the run was last heard of when its latest rank reported')
  t.equal(actor.run('job')?.ranks?.[0]?.status, 'running', 'the ranks that report stay running')

  actor.rankProgress('job', 2, clock.now(), 3)
  t.same(kinds(), ['started', 'stalled', 'recovered'])
  t.match(events[2]?.key, /^job@\d+\/recovered\/1$/)
  t.same(silent(actor.run('job')), [])
  t.equal(actor.run('job')?.status, 'running')

  // Still watched after recovery: a new silence is a new episode.
  clock.advance(5000)
  t.same(kinds().at(-1), 'stalled')
  t.match(events.at(-1)?.key, /\/stalled\/2$/)
  t.same(silent(events.at(-1)?.run), [0, 1, 2, 3], 'all four went silent at once')
})

t.test('two ranks silent at different times: one episode, both listed first-silent first', async (t) => {
  const { clock, actor, rankOpen, kinds, reportAll, events, silent } = setup()
  for (let rank = 0; rank < 4; rank++) actor.openRank(rankOpen(rank))
  reportAll(10)
  clock.advance(5000)
  reportAll(10, [2]) // rank 2 is due at 10 s, the others now at 15 s
  clock.advance(4000)
  actor.rankProgress('job', 1, clock.now(), 10)
  actor.rankProgress('job', 3, clock.now(), 10) // rank 0 stays due at 15 s
  clock.advance(3000) // 12 s: rank 2's deadline + grace
  t.same(kinds(), ['started', 'stalled'])
  t.same(silent(events[1]?.run), [2])
  reportAll(10, [0, 2])
  clock.advance(5000) // 17 s: rank 0's deadline + grace
  t.same(kinds(), ['started', 'stalled'], 'a second silent rank does not start a second episode')
  const run = actor.run('job') as RunInfo
  t.same(silent(run), [0, 2])
  const ordered = (run.ranks ?? []).filter((r) => r.status === 'stalled').sort((a, b) => (a.deadlineAt as number) - (b.deadlineAt as number))
  t.same(
    ordered.map((r) => r.rank),
    [2, 0],
    'by deadline, rank 2 went silent first',
  )
  t.equal(run.deadlineAt, run.ranks?.[2]?.deadlineAt, "the run's deadline is the first silent rank's")

  actor.rankProgress('job', 2, clock.now(), 10)
  t.same(kinds(), ['started', 'stalled'], 'rank 2 back, rank 0 still silent: no recovery')
  t.same(silent(actor.run('job')), [0])
  clock.advance(60_000)
  t.same(kinds(), ['started', 'stalled'], 'and no second stall for the same episode, however long')
  actor.rankProgress('job', 0, clock.now(), 10)
  t.same(kinds(), ['started', 'stalled'], 'rank 0 back but the others went silent meanwhile: still stalled')
  reportAll(10)
  t.same(kinds(), ['started', 'stalled', 'recovered'], 'one recovery when every rank is back')
  t.equal(events.filter((e) => e.kind === 'stalled').length, 1)
})

t.test('a rank report while another is past due (its timer not yet fired) neither recovers nor stalls twice', async (t) => {
  const { clock, actor, rankOpen, kinds, reportAll, silent } = setup()
  for (let rank = 0; rank < 4; rank++) actor.openRank(rankOpen(rank))
  reportAll(3)
  clock.advance(5000)
  t.same(kinds(), ['started', 'stalled'], 'all four silent: one stall')
  reportAll(3, [1])
  t.same(kinds(), ['started', 'stalled'], 'rank 1 still silent')
  actor.rankProgress('job', 1, clock.now(), 100)
  t.same(kinds(), ['started', 'stalled', 'recovered'])

  // Ranks 0, 2 and 3 pass their deadline + grace while the thread is busy (no timer fires).
  clock.jump(5000)
  actor.rankProgress('job', 1, clock.now(), 100)
  t.same(kinds(), ['started', 'stalled', 'recovered'], 'a report from another rank declares nothing by itself')
  clock.advance(0)
  t.same(kinds(), ['started', 'stalled', 'recovered', 'stalled'], 'the late timer still declares the stall, once')
  t.same(silent(actor.run('job')), [0, 2, 3])

  actor.rankProgress('job', 0, clock.now(), 3)
  clock.jump(5000) // rank 0 past due again, unseen by the timer
  actor.rankProgress('job', 2, clock.now(), 3)
  actor.rankProgress('job', 3, clock.now(), 3)
  t.same(kinds(), ['started', 'stalled', 'recovered', 'stalled'], 'no recovery: rank 0 is past due although its timer has not fired')
  t.same(silent(actor.run('job')), [0])
  clock.advance(0)
  t.same(kinds(), ['started', 'stalled', 'recovered', 'stalled'], 'and no second stall for the same episode')
  actor.rankProgress('job', 0, clock.now(), 3)
  t.same(kinds(), ['started', 'stalled', 'recovered', 'stalled', 'recovered'])
})

t.test('a rank failing fails the run, naming the rank and its host', async (t) => {
  const { clock, actor, rankOpen, kinds, reportAll, events } = setup()
  for (let rank = 0; rank < 4; rank++) actor.openRank(rankOpen(rank))
  reportAll(3)
  t.ok(actor.rankFail('job', 2, clock.now(), 'CUDA out of memory', 'Traceback ...'))
  t.same(kinds(), ['started', 'failed'])
  const failed = events[1] as RunEvent
  t.equal(failed.run.reason, 'rank 2 on gpu-2: CUDA out of memory')
  t.equal(failed.run.logTail, 'Traceback ...')
  t.equal(failed.run.ranks?.[2]?.status, 'failed')
  t.equal(failed.run.ranks?.[2]?.reason, 'CUDA out of memory')
  t.equal(failed.run.ranks?.length, 4, 'ranks that ended stay listed')
  t.notOk(actor.rankFail('job', 1, clock.now(), 'late'), 'the run already ended')
  actor.rankProgress('job', 1, clock.now(), 3)
  t.notOk(actor.rankFinish('job', 1, clock.now()))
  t.equal(clock.pendingTimers, 0, 'no deadline left')
  t.notOk(actor.openRank(rankOpen(1, { resume: true })), "a reconnecting rank does not revive a run another rank's failure ended")
  t.same(kinds(), ['started', 'failed'])
  clock.advance(60_000)
  t.same(kinds(), ['started', 'failed'])
})

t.test('finish: every rank, or rank 0 with finishOn rank0', async (t) => {
  const all = setup()
  for (let rank = 0; rank < 4; rank++) all.actor.openRank(all.rankOpen(rank))
  all.reportAll(3)
  for (const rank of [3, 0, 1]) t.ok(all.actor.rankFinish('job', rank, all.clock.now()))
  t.same(all.kinds(), ['started'], 'three of four finished: still running')
  t.same(all.actor.run('job')?.deadlineAt, all.actor.run('job')?.ranks?.[2]?.deadlineAt, 'only rank 2 left in the deadline')
  t.notOk(all.actor.rankFinish('job', 0, all.clock.now()), 'a rank finishes once')
  all.clock.advance(5000)
  t.same(all.kinds(), ['started', 'stalled'], 'the last rank can still stall the run')
  t.same(
    all.actor.run('job')?.ranks?.map((r) => r.status),
    ['finished', 'finished', 'stalled', 'finished'],
  )
  all.actor.progress('job', all.clock.now(), 3)
  t.same(all.kinds(), ['started', 'stalled'], 'a report for the whole run is ignored: it names no rank')
  t.ok(all.actor.rankFinish('job', 2, all.clock.now()))
  t.same(all.kinds(), ['started', 'stalled', 'finished'])
  t.equal(all.actor.run('job')?.status, 'finished')

  const rank0 = setup({ finishOn: 'rank0' })
  for (let rank = 0; rank < 4; rank++) rank0.actor.openRank(rank0.rankOpen(rank))
  rank0.reportAll(3)
  t.ok(rank0.actor.rankFinish('job', 3, rank0.clock.now()))
  t.same(rank0.kinds(), ['started'])
  t.ok(rank0.actor.rankFinish('job', 0, rank0.clock.now()))
  t.same(rank0.kinds(), ['started', 'finished'], 'rank 0 finishing finishes the run')
  t.equal(rank0.actor.run('job')?.finishOn, 'rank0')
  t.equal(rank0.clock.pendingTimers, 0)

  const quiet = setup()
  for (let rank = 0; rank < 2; rank++) quiet.actor.openRank(quiet.rankOpen(rank))
  quiet.reportAll(3)
  quiet.clock.advance(2000)
  quiet.actor.rankProgress('job', 0, quiet.clock.now(), 3)
  quiet.clock.advance(3000)
  t.same(quiet.kinds(), ['started', 'stalled'], 'rank 1 silent')
  t.ok(quiet.actor.rankFinish('job', 1, quiet.clock.now()))
  t.same(quiet.kinds(), ['started', 'stalled', 'recovered'], 'the silent rank finishing leaves no rank silent: recovered')
  t.equal(quiet.actor.run('job')?.deadlineAt, quiet.actor.run('job')?.ranks?.[0]?.deadlineAt)
})

t.test('resume: no started, a known rank keeps its state; bad ranks are refused', async (t) => {
  const { clock, actor, rankOpen, kinds, events } = setup()
  const t0 = clock.now()
  t.ok(actor.openRank(rankOpen(1, { resume: true })), 'a resume opens a run the actor did not know (a restarted daemon)')
  t.same(kinds(), [], 'resume gives no started')
  actor.rankProgress('job', 1, clock.now(), 5)
  clock.advance(1000)
  t.ok(actor.openRank(rankOpen(1, { resume: true, at: t0, pid: 555, host: 'gpu-9' })))
  const rank1 = actor.run('job')?.ranks?.[0]
  t.same([rank1?.pid, rank1?.host, rank1?.lastProgressAt, rank1?.deadlineAt], [555, 'gpu-9', t0, t0 + 5000], 'the original `at` moves nothing back')
  t.ok(actor.openRank(rankOpen(0)), 'a new rank joins the active run without a second started')
  t.same(kinds(), [])
  t.same(
    actor.run('job')?.ranks?.map((r) => r.rank),
    [0, 1],
    'ranks listed by rank number',
  )
  clock.advance(10_000)
  t.same(kinds(), ['stalled'], 'rank 1 silent')
  t.ok(actor.openRank(rankOpen(1, { pid: 777 })), 'a restarted rank 1 (a fresh open) re-joins')
  t.same(kinds(), ['stalled', 'recovered'], 'no rank past due any more')
  const restarted = actor.run('job')?.ranks?.[1]
  t.same([restarted?.status, restarted?.pid, restarted?.deadlineAt, restarted?.lastProgressAt], ['running', 777, null, clock.now()])
  t.notOk(actor.openRank(rankOpen(4)), 'rank beyond the world size')
  t.notOk(actor.openRank(rankOpen(-1)))
  t.notOk(actor.openRank({ ...rankOpen(2), worldSize: 8 }), 'another world size for an active run')
  t.ok(actor.open({ hash: 'solo', grace: 1, at: clock.now(), origin: { host: 'laptop', pid: 42, via: 'tcp', session: 'open' } }))
  t.notOk(actor.openRank({ ...rankOpen(0), hash: 'solo' }), 'a run of one process is not a run of ranks')
  t.same(actor.run('solo')?.origin, { host: 'laptop', pid: 42, via: 'tcp', session: 'open' }, 'plain open keeps the origin')
  t.equal(events.length, 3)
})

t.test('setSession marks the origin or a rank, with a change and no event', async (t) => {
  const { clock, actor, rankOpen, events, changes } = setup()
  actor.open({ hash: 'solo', grace: 1, at: clock.now(), origin: { host: 'laptop', pid: 42, via: 'unix', session: 'open' } })
  for (let rank = 0; rank < 2; rank++) actor.openRank(rankOpen(rank, { resume: true }))
  const before = changes()
  const seen = events.length
  actor.setSession('solo', undefined, 'lost')
  actor.setSession('job', 1, 'closed')
  t.equal(actor.run('solo')?.origin?.session, 'lost')
  t.same(
    actor.run('job')?.ranks?.map((r) => r.session),
    ['open', 'closed'],
  )
  t.equal(changes(), before + 2, 'each a change for the snapshot')
  actor.setSession('job', 1, 'closed')
  actor.setSession('job', 7, 'lost')
  actor.setSession('nope', undefined, 'lost')
  t.equal(changes(), before + 2, 'no change when nothing changed')
  t.equal(events.length, seen, 'no event')
  // Copies share nothing with the actor's state.
  const copy = actor.run('job') as RunInfo
  ;(copy.ranks?.[0] as { session: string }).session = 'ended'
  ;(actor.run('solo')?.origin as { session: string }).session = 'ended'
  t.equal(actor.run('job')?.ranks?.[0]?.session, 'open')
  t.equal(actor.run('solo')?.origin?.session, 'lost')
})

t.test('adopting a snapshot of a ranked run carries its ranks, silence and deadlines on', async (t) => {
  const first = setup()
  for (let rank = 0; rank < 4; rank++) first.actor.openRank(first.rankOpen(rank))
  first.reportAll(3)
  first.clock.advance(2000)
  first.reportAll(3, [2])
  first.clock.advance(3000)
  t.same(first.kinds(), ['started', 'stalled'])
  const saved = first.actor.run('job') as RunInfo

  const second = setup({ start: first.clock.now() })
  second.actor.adopt(saved)
  t.same(second.silent(second.actor.run('job')), [2])
  second.clock.advance(2000) // the others' deadline + grace passes
  t.same(second.kinds(), [], 'still the same episode after adoption')
  t.same(second.silent(second.actor.run('job')), [0, 1, 2, 3])
  second.reportAll(3)
  t.same(second.kinds(), ['recovered'])
  t.match(second.events[0]?.key, /\/recovered\/1$/)
  for (const rank of [0, 1, 2]) second.actor.rankFinish('job', rank, second.clock.now())
  second.actor.rankFinish('job', 3, second.clock.now())
  t.same(second.kinds(), ['recovered', 'finished'])
})

t.test('many ranks: one stall, reports stay cheap', async (t) => {
  const worldSize = 20_000
  const { clock, actor, rankOpen, kinds, reportAll, events, silent } = setup({ worldSize })
  for (let rank = worldSize - 1; rank >= 0; rank--) actor.openRank(rankOpen(rank))
  reportAll(3)
  const started = performance.now()
  for (let round = 0; round < 5; round++) {
    reportAll(3, [7])
    clock.advance(1000)
  }
  const perReportUs = ((performance.now() - started) * 1000) / (5 * (worldSize - 1))
  t.ok(perReportUs < 200, `a rank report costs ${perReportUs.toFixed(2)} µs (generous bound)`)
  t.same(kinds(), ['started', 'stalled'])
  t.same(silent(events[1]?.run), [7])
  t.equal(events[1]?.run.ranks?.[0]?.rank, 0, 'listed by rank although they joined in reverse')
})
