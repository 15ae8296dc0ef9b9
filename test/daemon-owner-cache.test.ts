// The daemon's memory of owners between polls: which reads a poll makes (pure, on a manual
// clock), the order of adoptions, and what file events ask for, on real leases and files.
import t from 'tap'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { Discovery } from '../lib/daemon/discovery.js'
import { lookFor, nextLookEvery, touchedAt, type LeaseMemo, type LookPolicy } from '../lib/daemon/owner-cache.js'
import { adoptionOrder } from '../lib/daemon/planner.js'
import { repoPaths } from '../lib/repo.js'
import { prepareStatusFolders, snapshotPath, statusLayout } from '../lib/state/layout.js'
import { acquireLease, type HolderState } from '../lib/state/lease.js'
import { currentOwner } from '../lib/state/owner.js'
import { SNAPSHOT_FORMAT, writeSnapshotAtomic } from '../lib/state/snapshot.js'
import { runningRun } from './fixtures/daemon/helpers.js'
import { tempRepo } from './support/temp-repo.js'

const clock = new ManualClock()
const policy: LookPolicy = { staleMs: 10_000, fullLookMs: 10_000, maxLookMs: 80_000, watching: true }
const memo = (patch: Partial<LeaseMemo> = {}): LeaseMemo => ({
  generation: 1,
  fence: { holder: null, claimedAt: clock.now() - 60_000 },
  lockMtime: clock.now(),
  lookedAt: clock.now(),
  lookEveryMs: 10_000,
  marked: false,
  ...patch,
})

t.test('lookFor: a full look when new, named by an event, due, or without events; the lock only once staleness is reachable', async (t) => {
  const now = clock.now()
  t.equal(lookFor(null, now, policy), 'full', 'never looked at')
  t.equal(lookFor(memo({ marked: true }), now, policy), 'full', 'an event named it')
  t.equal(lookFor(memo(), now, { ...policy, watching: false }), 'full', 'no file events: every poll')
  t.equal(lookFor(memo(), now + 10_000, policy), 'full', 'its full look is due')
  t.equal(lookFor(memo(), now + 9_000, policy), 'none', 'touched 9 s ago, stale after 10 s: nothing to read')
  t.equal(lookFor(memo({ lookEveryMs: 80_000 }), now + 10_001, policy), 'lock', 'staleness reachable: the lock is read')
  t.equal(touchedAt(memo({ lockMtime: null })), now - 60_000, 'no lock: the fence says when')
})

t.test('nextLookEvery: doubles while nothing changes, up to the cap; back to the first after a change', async (t) => {
  let every = nextLookEvery(null, false, policy)
  const waits = [every]
  for (let i = 0; i < 5; i++) {
    every = nextLookEvery(memo({ lookEveryMs: every }), false, policy)
    waits.push(every)
  }
  t.same(waits, [10_000, 20_000, 40_000, 80_000, 80_000, 80_000])
  t.equal(nextLookEvery(memo({ lookEveryMs: 80_000 }), true, policy), 10_000)
})

t.test("adoptionOrder: daemons' own snapshots, those a daemon was adopting, dead processes (the most recently found first), stale ones", async (t) => {
  const state = (liveness: HolderState['liveness'], kind: 'process' | 'daemon' = 'process', id?: string): HolderState => ({
    generation: 1,
    holder: { ...currentOwner(kind), ...(id !== undefined ? { id } : {}) },
    liveness,
    idleMs: 0,
    orphaned: true,
  })
  const order = adoptionOrder([
    { id: 'stale', holder: state('unknown'), foundAt: 5 },
    { id: 'mid_adoption', holder: state('dead', 'daemon'), foundAt: 1 },
    { id: 'backlog', holder: state('dead'), foundAt: 1 },
    { id: 'daemon', holder: state('dead', 'daemon', 'daemon'), foundAt: 1 },
    { id: 'fresh', holder: state('dead'), foundAt: 9 },
  ])
  t.same(
    order.map((o) => o.id),
    ['daemon', 'mid_adoption', 'fresh', 'backlog', 'stale'],
  )
})

t.test("Discovery: a live owner's rewrites are read only by a question that needs them", async (t) => {
  const { repo } = tempRepo(t)
  const layout = statusLayout(repoPaths(repo))
  prepareStatusFolders(layout)
  const discovery = new Discovery({ layout, staleMs: 10_000, selfId: 'self' })
  discovery.watching = true
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const lease = await acquireLease(path, owner, { staleMs: 10_000 })
  t.teardown(() => lease.release())
  const write = (hash: string) => writeSnapshotAtomic(path, { format: SNAPSHOT_FORMAT, version: 1, owner, generation: 1, writtenAt: Date.now(), runs: [runningRun(hash)], outbox: null, extra: {} })
  await write('first_run')
  const first = await discovery.scan(() => false)
  t.same(
    first.live.flatMap((s) => s.runs.map((r) => r.hash)),
    ['first_run'],
    'read by default',
  )
  t.equal(first.liveOwners, 1)
  await write('second_run')
  t.equal(
    discovery.noticed('owners', `${owner.id}.json`, () => false),
    'look',
    'a rewrite marks it',
  )
  const unread = await discovery.scan(() => false, { readLive: false })
  t.same(unread.live, [], 'not read when no question needs it')
  t.equal(unread.liveOwners, 1, 'still counted as a live owner')
  t.same([...(await discovery.nodeHashes())], ['second_run'], '"is this a Node run?" reads the marked snapshot')
  // A snapshot that cannot be parsed: a scan that does not read it cannot report it; one that reads it does.
  writeFileSync(path, 'not json')
  t.equal(
    discovery.noticed('owners', `${owner.id}.json`, () => false),
    'look',
  )
  t.same((await discovery.scan(() => false, { readLive: false })).errors, [], 'the garbage is not read')
  const read = await discovery.scan(() => false, { readLive: true })
  t.same(
    read.errors.map((e) => e.id),
    [owner.id],
    'read (and found unreadable) once a question needs it',
  )
  t.same(read.live, [])
})

t.test('Discovery: a live lease is not read again until its staleness is reachable; what file events ask for', async (t) => {
  const { repo } = tempRepo(t)
  const layout = statusLayout(repoPaths(repo))
  prepareStatusFolders(layout)
  // Wall-clock time as the discovery sees it: moved by hand from the real time of the lock.
  let now = Date.now()
  const discovery = new Discovery({ layout, staleMs: 10_000, selfId: 'self', now: () => now })
  discovery.watching = true
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const lease = await acquireLease(path, owner, { staleMs: 10_000 })
  t.teardown(() => lease.release())
  await writeSnapshotAtomic(path, { format: SNAPSHOT_FORMAT, version: 1, owner, generation: 1, writtenAt: now, runs: [runningRun('cached_run')], outbox: null, extra: {} })
  const first = await discovery.scan(() => false)
  t.same(
    first.live.map((s) => s.owner.id),
    [owner.id],
    'a live process',
  )
  // The lock vanishes without an event the discovery hears: within the stale period it is not
  // read again (the cached mtime is a lower bound), so the owner stays live.
  rmSync(`${path}.lock`, { recursive: true })
  now += 5_000
  t.equal((await discovery.scan(() => false)).live.length, 1, 'not read again within the stale period')
  // Events: a lock refresh asks for nothing, a rewrite of a live owner for a look, unless it
  // holds a run the daemon carries; a new snapshot and an exit marker for a scan.
  t.equal(
    discovery.noticed('owners', `${owner.id}.json.lock`, () => false),
    'ignore',
  )
  t.equal(
    discovery.noticed('owners', `${owner.id}.json`, () => false),
    'look',
  )
  t.equal(
    discovery.noticed('owners', `${owner.id}.json`, (hash) => hash === 'cached_run'),
    'scan',
  )
  t.equal(
    discovery.noticed('owners', `${owner.id}.json.tmp-abc`, () => false),
    'ignore',
  )
  t.equal(
    discovery.noticed('owners', `self.json`, () => false),
    'ignore',
    'our own snapshot',
  )
  const other = currentOwner('process')
  t.equal(
    discovery.noticed('owners', `${other.id}.json`, () => false),
    'ignore',
    'an unknown snapshot that is not there',
  )
  writeFileSync(join(layout.owners, `${other.id}.json`), '{}')
  t.equal(
    discovery.noticed('owners', `${other.id}.json`, () => false),
    'scan',
    'a snapshot appeared',
  )
  rmSync(join(layout.owners, `${other.id}.json`))
  writeFileSync(join(layout.exits, `${other.id}.json`), '{}')
  t.equal(
    discovery.noticed('exits', `${other.id}.json`, () => false),
    'scan',
    'an exit marker appeared',
  )
  // Past the stale period the lock is read: gone, and the fence is old by then, so orphaned.
  now += 10_000
  const late = await discovery.scan(() => false)
  t.same(
    late.orphans.map((o) => o.id),
    [owner.id],
    'staleness reached: the lock is read and found gone',
  )
})
