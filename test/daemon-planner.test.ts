// The adoption planner's table of cases, on a manual clock, without processes or files: what
// the daemon does with each kind of owner entry, each run of an adopted snapshot, live owners'
// runs, tombstones and ended runs.
import t from 'tap'
import { ManualClock } from '../lib/clock.js'
import type { RunInfo } from '../lib/model.js'
import type { ExitMarker } from '../lib/state/exit-marker.js'
import type { HolderState } from '../lib/state/lease.js'
import type { OwnerInfo } from '../lib/state/owner.js'
import { SNAPSHOT_FORMAT, type Snapshot } from '../lib/state/snapshot.js'
import { adoptionOrder, exitReason, planAdoption, planHandBack, planMarkerOnly, planPrune, planTombstones, triage } from '../lib/daemon/planner.js'

const clock = new ManualClock()
const owner = (kind: OwnerInfo['kind'], id = `${kind}_owner`): OwnerInfo => ({ id, kind, pid: 4242, host: 'h', startTime: clock.now() - 60_000, startTicks: null }) as OwnerInfo
const run = (hash: string, patch: Partial<RunInfo> = {}): RunInfo => ({
  hash,
  status: 'running',
  startedAt: clock.now() - 10_000,
  lastProgressAt: clock.now() - 1000,
  expectNextIn: 5,
  deadlineAt: clock.now() + 4000,
  grace: 1,
  episode: 0,
  ...patch,
})
const snapshot = (o: OwnerInfo, runs: RunInfo[], patch: Partial<Snapshot> = {}): Snapshot =>
  ({ format: SNAPSHOT_FORMAT, version: 2, owner: o, generation: 2, writtenAt: clock.now(), runs, outbox: null, extra: {}, ...patch }) as Snapshot
const holder = (patch: Partial<HolderState>): HolderState => ({ generation: 1, holder: owner('process'), liveness: 'alive', idleMs: 0, orphaned: false, ...patch })
const marker = (unfinishedRuns: string[], patch: Partial<ExitMarker> = {}): ExitMarker => ({
  format: 'aim-status/exit',
  version: 1,
  owner: owner('process'),
  exitedAt: clock.now(),
  exitCode: 3,
  signal: null,
  unfinishedRuns,
  ...patch,
})
const none = () => undefined

t.test('triage: each kind of entry', async (t) => {
  const base = { id: 'x', hasSnapshot: true, isSelf: false, isTombstone: false }
  t.equal(triage({ ...base, isSelf: true, holder: null }), 'skip', 'our own snapshot')
  t.equal(triage({ ...base, isTombstone: true, holder: null }), 'skip', 'a tombstone we hold')
  t.equal(triage({ ...base, hasSnapshot: false, holder: null }), 'marker-only', 'an exit marker alone')
  t.equal(triage({ ...base, holder: holder({ orphaned: true, liveness: 'dead' }) }), 'adopt', 'a dead owner')
  t.equal(triage({ ...base, holder: holder({ orphaned: true, idleMs: 60_000 }) }), 'adopt', 'a stale owner')
  t.equal(triage({ ...base, holder: holder({}) }), 'live', 'a live training process')
  t.equal(triage({ ...base, holder: holder({ holder: owner('daemon') }) }), 'skip', 'a live daemon')
})

t.test('adoption order: daemons first', async (t) => {
  const order = adoptionOrder([
    { id: 'p', holder: holder({}) },
    { id: 'd', holder: holder({ holder: owner('daemon') }) },
    { id: 'q', holder: holder({}) },
  ])
  t.same(
    order.map((o) => o.id),
    ['d', 'p', 'q'],
  )
})

t.test('planAdoption: fail, carry, skip, retire, tombstone', async (t) => {
  const dead = planAdoption({ snapshot: snapshot(owner('process'), [run('a'), run('done', { status: 'finished', deadlineAt: null })]), marker: null, liveness: 'dead', mine: none })
  t.match(dead, { cause: 'gone', reason: 'process gone: pid 4242', afterwards: 'retire', absorbOutbox: false, forget: [] })
  t.same(
    dead.runs.map((r) => [r.run.hash, r.action]),
    [
      ['a', 'fail'],
      ['done', 'skip'],
    ],
  )

  const exited = planAdoption({ snapshot: snapshot(owner('process'), [run('left'), run('ended_in_flight')]), marker: marker(['left'], { error: 'Error: boom' }), liveness: 'dead', mine: none })
  t.match(exited, { cause: 'exited', reason: 'exited with code 3 (Error: boom)', afterwards: 'retire' })
  t.same(
    exited.runs.map((r) => [r.run.hash, r.action, 'why' in r ? r.why : '']),
    [
      ['left', 'fail', ''],
      ['ended_in_flight', 'skip', 'ended-before-exit'],
    ],
  )

  const frozen = planAdoption({ snapshot: snapshot(owner('process'), [run('a')], { outbox: { version: 1, pending: [], settled: [], stats: {} } }), marker: null, liveness: 'alive', mine: none })
  t.match(frozen, { cause: 'stale', afterwards: 'tombstone', absorbOutbox: true })
  t.same(
    frozen.runs.map((r) => r.action),
    ['carry'],
  )

  const daemon = planAdoption({ snapshot: snapshot(owner('daemon'), [run('a')], { extra: { checkins: {} } }), marker: null, liveness: 'alive', mine: none })
  t.match(daemon, { cause: 'daemon', absorbCheckins: true, afterwards: 'retire' })
  t.same(
    daemon.runs.map((r) => r.action),
    ['carry'],
    "a daemon's carried runs carry on",
  )

  const theirs = run('a')
  const known = planAdoption({ snapshot: snapshot(owner('process'), [theirs]), marker: null, liveness: 'dead', mine: () => ({ ...theirs, lastProgressAt: theirs.lastProgressAt + 1 }) })
  t.match(known.runs, [{ action: 'skip', why: 'known' }], 'we know it better')
  const older = planAdoption({ snapshot: snapshot(owner('process'), [theirs]), marker: null, liveness: 'dead', mine: () => ({ ...theirs, lastProgressAt: theirs.lastProgressAt - 1 }) })
  t.match(older.runs, [{ action: 'fail' }], 'its view is newer than ours: failed')

  const ended = planAdoption({ snapshot: snapshot(owner('process'), [{ ...theirs, status: 'finished', deadlineAt: null }]), marker: null, liveness: 'dead', mine: () => ({ ...theirs, status: 'stalled' }) })
  t.same(ended.forget, ['a'], 'a run its re-established owner finished: ours is forgotten')
})

t.test('planMarkerOnly: unfinished runs failed, nothing while the owner is alive', async (t) => {
  const m = marker(['x', 'y', 'z'], { signal: 'SIGTERM', exitCode: null })
  t.equal(planMarkerOnly(m, 'alive', none), null)
  const plan = planMarkerOnly(m, 'dead', (hash) => (hash === 'y' ? run('y', { status: 'finished' }) : hash === 'z' ? run('z') : undefined))
  t.equal(plan?.reason, 'killed by SIGTERM')
  t.same(
    plan?.fail.map((r) => [r.hash, r.status]),
    [
      ['x', 'running'],
      ['z', 'running'],
    ],
    'a run we know ended is not failed again',
  )
  t.equal(exitReason({ exitCode: 1, signal: null, error: 'Error: boom' }), 'exited with code 1 (Error: boom)')
  t.equal(exitReason({ exitCode: null, signal: null }), 'exited with code unknown')
})

t.test('planHandBack: newer reports, new instances, ended runs; never older ones', async (t) => {
  const ours = run('a', { status: 'stalled' })
  const live = (runs: RunInfo[], patch: Partial<Snapshot> = {}) => [snapshot(owner('process', 'live_owner'), runs, patch)]
  t.match(
    planHandBack(live([{ ...ours, status: 'running', lastProgressAt: ours.lastProgressAt + 500 }]), () => ours),
    [{ hash: 'a', progress: { at: ours.lastProgressAt + 500 } }],
    'reported again: handed back after its report',
  )
  t.same(
    planHandBack(live([{ ...ours, status: 'running' }]), () => ours),
    [],
    'no newer report: kept',
  )
  t.match(
    planHandBack(live([{ ...ours, status: 'running', startedAt: ours.startedAt + 1 }]), () => ours),
    [{ hash: 'a', progress: null }],
    'a new instance of the hash',
  )
  t.same(
    planHandBack(live([{ ...ours, status: 'running', startedAt: ours.startedAt - 1 }]), () => ours),
    [],
    'an older instance',
  )
  t.match(
    planHandBack(live([{ ...ours, status: 'finished' }]), () => ours),
    [{ hash: 'a', progress: null }],
    'ended by its owner',
  )
  t.same(
    planHandBack(live([{ ...ours, status: 'running', lastProgressAt: ours.lastProgressAt + 500 }], { adoptedBy: owner('daemon') }), () => ours),
    [],
    'an adopted snapshot is nobody live',
  )
  t.same(planHandBack(live([run('b')]), none), [], 'a run we do not carry')
})

t.test('planTombstones and planPrune follow the clock', async (t) => {
  const now = clock.now()
  const tombstones = [
    { id: 'lost', since: now, liveness: 'alive' as const, lost: true },
    { id: 'dead', since: now, liveness: 'dead' as const, lost: false },
    { id: 'young', since: now, liveness: 'alive' as const, lost: false },
  ]
  t.same(planTombstones(tombstones, now, 60_000), { forget: ['lost'], retire: ['dead'] })
  clock.advance(60_000)
  t.same(planTombstones(tombstones, clock.now(), 60_000), { forget: ['lost'], retire: ['dead', 'young'] }, 'held for tombstoneMs')

  const runs = [run('a'), run('b', { status: 'finished' }), run('c', { status: 'failed' })]
  const endedAt = new Map([['c', clock.now()]])
  t.same(planPrune(runs, endedAt, clock.now(), 1000), { seen: ['b'], forget: [] })
  clock.advance(1001)
  t.same(planPrune(runs, endedAt, clock.now(), 1000), { seen: ['b'], forget: ['c'] })
})
