import t from 'tap'
import { ManualClock } from '../lib/clock.js'
import { RepoActor } from '../lib/actor/actor.js'
import { SLOT_DEADLINE, SLOT_LAST_PROGRESS } from '../lib/model.js'
import type { RunEvent } from '../lib/model.js'

function setup() {
  const clock = new ManualClock()
  const events: RunEvent[] = []
  let changes = 0
  const actor = new RepoActor({ clock, repo: '/repo', host: 'h', pid: 7, onEvent: (e) => events.push(e), onChange: () => changes++ })
  const kinds = () => events.map((e) => `${e.run.hash}:${e.kind}`)
  return { clock, events, actor, kinds, changes: () => changes }
}

t.test('stall after deadline plus grace, not before; once; then recovery', async (t) => {
  const { clock, actor, kinds, events } = setup()
  const t0 = clock.now()
  t.ok(actor.open({ hash: 'r1', grace: 2, at: t0 }))
  t.notOk(actor.open({ hash: 'r1', grace: 2, at: t0 }), 'an active run cannot be opened twice')
  actor.progress('r1', t0, 3)
  t.equal(actor.run('r1')?.deadlineAt, t0 + 3000)
  clock.advance(4999)
  t.same(kinds(), ['r1:started'], 'not stalled 1 ms before deadline + grace')
  clock.advance(1)
  t.same(kinds(), ['r1:started', 'r1:stalled'])
  const stalled = events[1] as RunEvent
  t.equal(stalled.run.status, 'stalled')
  t.equal(stalled.run.episode, 1)
  t.equal(stalled.overdueSeconds, 2)
  t.match(stalled.key, /^r1@\d+\/stalled\/1$/)
  t.same({ repo: stalled.repo, host: stalled.host, pid: stalled.pid }, { repo: '/repo', host: 'h', pid: 7 })
  clock.advance(60_000)
  t.equal(events.length, 2, 'no reminder while stalled')
  t.equal(clock.pendingTimers, 0, 'no timer armed for a stalled run')
  actor.progress('r1', clock.now(), 3)
  t.same(kinds(), ['r1:started', 'r1:stalled', 'r1:recovered'])
  t.match(events[2]?.key, /\/recovered\/1$/)
  t.equal(actor.run('r1')?.status, 'running')
  clock.advance(5000)
  t.same(kinds().at(-1), 'r1:stalled', 'a second stall is a new episode')
  t.match(events.at(-1)?.key, /\/stalled\/2$/)
})

t.test('progress keeps pushing the deadline', async (t) => {
  const { clock, actor, kinds } = setup()
  actor.open({ hash: 'a', grace: 1, at: clock.now() })
  for (let i = 0; i < 100; i++) {
    actor.progress('a', clock.now(), 2)
    clock.advance(1500)
  }
  t.same(kinds(), ['a:started'])
  t.equal(clock.pendingTimers, 1, 'one timer, however many reports')
})

t.test('finish and failure end the run; reports after that are ignored', async (t) => {
  const { clock, actor, kinds, events } = setup()
  t.notOk(actor.hasActiveRuns(), 'no run yet')
  actor.open({ hash: 'f', grace: 1, at: clock.now() })
  actor.open({ hash: 'x', grace: 1, at: clock.now() })
  actor.progress('f', clock.now(), 1)
  actor.progress('x', clock.now(), 1)
  t.ok(actor.finish('f', clock.now()))
  t.ok(actor.hasActiveRuns(), 'one run still running')
  t.ok(actor.fail('x', clock.now(), 'CUDA out of memory'))
  t.notOk(actor.hasActiveRuns(), 'both ended (still tracked)')
  t.notOk(actor.finish('f', clock.now()), 'twice is a no-op')
  t.notOk(actor.fail('nope', clock.now(), 'r'), 'unknown run')
  actor.progress('f', clock.now(), 1)
  clock.advance(10_000)
  t.same(kinds(), ['f:started', 'x:started', 'f:finished', 'x:failed'])
  t.equal(events[3]?.run.reason, 'CUDA out of memory')
  t.equal(actor.run('f')?.status, 'finished')
  t.equal(clock.pendingTimers, 0)
})

t.test('expectNextIn = 0 means no deadline', async (t) => {
  const { clock, actor, kinds } = setup()
  actor.open({ hash: 'n', grace: 0, at: clock.now() })
  actor.progress('n', clock.now(), 5)
  actor.progress('n', clock.now(), 0)
  clock.advance(10 ** 9)
  t.same(kinds(), ['n:started'])
  t.equal(actor.run('n')?.deadlineAt, null)
  t.equal(actor.nextStallAt, Infinity)
})

t.test('several runs with interleaved deadlines stall in deadline order', async (t) => {
  const { clock, actor, events } = setup()
  const t0 = clock.now()
  const promises = { a: 5, b: 1, c: 3, d: 8, e: 2 } as Record<string, number>
  for (const [hash, expect] of Object.entries(promises)) {
    actor.open({ hash, grace: 1, at: t0 })
    actor.progress(hash, t0, expect)
  }
  actor.progress('d', t0, 0) // d has no deadline any more
  clock.advance(2500)
  actor.progress('c', clock.now(), 10) // c pushed far away
  clock.advance(60_000)
  const stalls = events.filter((e) => e.kind === 'stalled')
  t.same(
    stalls.map((e) => e.run.hash),
    ['b', 'e', 'a', 'c'],
  )
  t.same(
    stalls.map((e) => e.at - t0),
    [2000, 3000, 6000, 2500 + 11_000],
  )
})

t.test('a report written only to the slot postpones the stall, to the millisecond', async (t) => {
  const { clock, actor, kinds } = setup()
  const t0 = clock.now()
  const slot = new Float64Array(2)
  actor.open({ hash: 's', grace: 1, at: t0, slot })
  actor.progress('s', t0, 2)
  // The handle coalesced later reports: only the slot knows.
  slot[SLOT_LAST_PROGRESS] = t0 + 1000
  slot[SLOT_DEADLINE] = t0 + 3000
  clock.advance(3000)
  t.same(kinds(), ['s:started'], 'no stall at the sent deadline + grace')
  t.equal(actor.run('s')?.deadlineAt, t0 + 3000)
  clock.advance(999)
  t.same(kinds(), ['s:started'])
  clock.advance(1)
  t.same(kinds(), ['s:started', 's:stalled'], 'stalled at the slot deadline + grace')
  // A slot saying "no deadline" disarms.
  actor.progress('s', clock.now(), 1)
  slot[SLOT_LAST_PROGRESS] = clock.now() + 1
  slot[SLOT_DEADLINE] = Infinity
  clock.advance(100_000)
  t.same(kinds(), ['s:started', 's:stalled', 's:recovered'])
})

t.test('reopen, adopt, forget, close', async (t) => {
  const { clock, actor, kinds, events, changes } = setup()
  actor.open({ hash: 'r', grace: 1, at: clock.now() })
  actor.finish('r', clock.now())
  clock.advance(10)
  t.ok(actor.open({ hash: 'r', grace: 1, at: clock.now() }), 'a finished run can be resumed')
  t.not(events[0]?.key, events[2]?.key, 'a resumed run has new event keys')
  actor.adopt({ hash: 'z', status: 'running', startedAt: 0, lastProgressAt: clock.now(), expectNextIn: 1, deadlineAt: clock.now() + 1000, grace: 1, episode: 3 })
  clock.advance(2000)
  t.same(kinds().at(-1), 'z:stalled')
  t.equal(events.at(-1)?.run.episode, 4, 'an adopted run carries on its episodes')
  t.ok(actor.forget('z'))
  t.notOk(actor.forget('z'))
  t.equal(actor.size, 1)
  t.ok(changes() > 0)
  actor.progress('r', clock.now(), 1)
  actor.close()
  clock.advance(10_000)
  t.same(kinds().at(-1), 'z:stalled', 'a closed actor declares nothing')
  t.equal(actor.runs().length, 1)
})

t.test('queries fold in the slot without changing state or calling hooks', async (t) => {
  const clock = new ManualClock()
  const calls: string[] = []
  const actor = new RepoActor({ clock, repo: '/r', host: 'h', pid: 1, onEvent: (e) => calls.push(e.kind), onChange: () => calls.push('change'), onProgress: () => calls.push('progress') })
  const slot = new Float64Array(2)
  actor.open({ hash: 'q', grace: 1, at: clock.now(), slot })
  actor.progress('q', clock.now(), 2)
  calls.length = 0
  slot[SLOT_LAST_PROGRESS] = clock.now() + 500
  slot[SLOT_DEADLINE] = clock.now() + 10_500
  const seen = actor.run('q')
  t.equal(seen?.deadlineAt, clock.now() + 10_500, 'the query sees the newer report')
  t.equal(seen?.expectNextIn, 10)
  t.same(
    actor.runs().map((r) => r.deadlineAt),
    [clock.now() + 10_500],
  )
  t.same(calls, [], 'no hook was called by a query')
  clock.advance(3000)
  t.same(
    calls.filter((c) => c !== 'change'),
    ['progress'],
    'the timer folds the report in, without a stall',
  )
})
