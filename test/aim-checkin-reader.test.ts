import t from 'tap'
import { fileURLToPath } from 'node:url'
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { CheckinReader, type CheckinReaderState, type CheckinRunState, type CheckinTransition, FORGET_AFTER_LISTINGS, checkReaderState } from '../lib/aim/checkin-reader.js'
import { CheckinWriter } from '../lib/aim/checkin-writer.js'
import { readLastRunNotifications, recordLastRunNotifications, writeLastRunNotifications } from '../lib/aim/last-run-notifications.js'
import { tempRepo } from './support/temp-repo.js'

// Copied from the files Python Aim's own code wrote (see fixtures/aim-python/README.md).
const FIXTURES = fileURLToPath(new URL('./fixtures/aim-python/checkins', import.meta.url))
const GRACE = 30

// Each copy in its own temp folder (t.testdir() would give one folder per test, emptied on each call).
function fixture(t: { teardown(fn: () => void): unknown }, scenario: string): string {
  const root = tempRepo(t, `aim-${scenario}-`).repo
  cpSync(join(FIXTURES, scenario), root, { recursive: true })
  return join(root, '.aim', 'check_ins')
}
// Aim-format names for synthetic check-ins (the time field is informational; any will do).
const name = (hash: string, idx: number, flag: string, expect: number) => `${hash}-${String(idx).padStart(16, '0')}-${flag}-1795887686.41-${String(expect).padStart(5, '0')}`
const touch = (folder: string, ...names: string[]) => {
  for (const n of names) writeFileSync(join(folder, n), '')
}
const kinds = (transitions: CheckinTransition[]) => transitions.map((x) => `${x.kind}:${x.hash.slice(0, 4)}:${x.idx}`)

/** Reads a fixture and returns when (ms after first sight) it first counts as stalled, or null. */
async function stallTime(folder: string): Promise<{ start: CheckinTransition[]; stalledAfter: number | null; reader: CheckinReader }> {
  const clock = new ManualClock()
  const t0 = clock.now()
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE })
  const start = await reader.scan()
  for (let step = 0; step < 3600; step++) {
    clock.advance(1000)
    const found = await reader.scan()
    if (found.some((x) => x.kind === 'stalled')) return { start, stalledAfter: clock.now() - t0, reader }
  }
  return { start, stalledAfter: null, reader }
}

t.test('the Python fixtures lead to what their README says', async (t) => {
  const running = await stallTime(fixture(t, 'running'))
  t.same(kinds(running.start), ['started:a1b2:6'])
  t.equal(running.stalledAfter, (60 + GRACE) * 1000, 'running: stalled 60 s + grace after first sight of idx 6')

  const finished = await stallTime(fixture(t, 'finished'))
  t.same(kinds(finished.start), ['finished:0f1e:5'])
  t.equal(finished.stalledAfter, null, 'finished: never a failure')
  t.equal(finished.reader.nextDeadlineAt(), null)

  const resumed = await stallTime(fixture(t, 'resumed'))
  t.same(kinds(resumed.start), ['started:c0ff:4'], 'resumed: idx 4 is what counts')
  t.equal(resumed.stalledAfter, (30 + GRACE) * 1000)

  const noexpiry = await stallTime(fixture(t, 'noexpiry'))
  t.same(kinds(noexpiry.start), ['started:dead:2'])
  t.equal(noexpiry.stalledAfter, null, 'noexpiry: never')

  const heartbeat = await stallTime(fixture(t, 'heartbeat'))
  t.same(kinds(heartbeat.start), ['started:feed:3'], 'heartbeat: progress (idx 4) ignored')
  t.equal(heartbeat.stalledAfter, (2 + GRACE) * 1000, 'the 2 s check_in counts')
})

t.test('the clock starts at first sight, is exact, and a stall is reported once per idx', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  const clock = new ManualClock()
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE })
  t.same(await reader.scan(), [], 'a missing folder reads as empty')
  mkdirSync(folder)
  clock.advance(50_000)
  touch(folder, name('aaaa', 1, 'starting', 0), name('aaaa', 2, 'check_in', 10))
  const seenAt = clock.now()
  t.same(kinds(await reader.scan()), ['started:aaaa:2'])
  t.equal(reader.nextDeadlineAt(), seenAt + 40_000, 'the daemon can arm a timer')
  clock.advanceTo(seenAt + 39_999)
  t.same(reader.evaluate(), [])
  clock.advance(1)
  const [stall] = reader.evaluate()
  t.match(stall, { kind: 'stalled', hash: 'aaaa', idx: 2, firstSeenAt: seenAt, overdueSeconds: 30, alreadyNotified: false })
  clock.advance(60_000)
  t.same(await reader.scan(), [], 'not again')
  t.same(reader.evaluate(), [])
  t.equal(reader.nextDeadlineAt(), null)

  // A newer idx after the stall: recovered; it can stall again (a new episode), and then finish.
  touch(folder, name('aaaa', 3, 'check_in', 5))
  rmSync(join(folder, name('aaaa', 2, 'check_in', 10)))
  t.same(kinds(await reader.scan()), ['recovered:aaaa:3'])
  clock.advance(35_000)
  t.match(await reader.scan(), [{ kind: 'stalled', idx: 3, alreadyNotified: false }])
  touch(folder, name('aaaa', 4, 'finished', 7))
  t.same(kinds(await reader.scan()), ['finished:aaaa:4'], 'finished, even with a non-zero expect')
  clock.advance(3_600_000)
  t.same(await reader.scan(), [])
  // Reopened after it finished: a higher starting.
  touch(folder, name('aaaa', 5, 'starting', 0))
  t.same(kinds(await reader.scan()), ['started:aaaa:5'])
  t.equal(reader.runs.get('aaaa')?.status, 'running')
  // Lower or equal idx appearing later changes nothing.
  touch(folder, name('aaaa', 1, 'check_in', 1))
  t.same(await reader.scan(), [])
})

t.test('reading what our writer writes', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  const clock = new ManualClock()
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE })
  const writer = CheckinWriter.open({ folder, hash: 'f00d', clock })
  t.same(kinds(await reader.scan()), ['started:f00d:1'])
  writer.sync(clock.now() + 20_000)
  t.same(await reader.scan(), [])
  t.equal(reader.runs.get('f00d')?.expectNextIn, 20)
  clock.advance(50_000)
  t.same(kinds(await reader.scan()), ['stalled:f00d:2'])
  writer.sync(clock.now() + 20_000)
  t.same(kinds(await reader.scan()), ['recovered:f00d:3'])
  writer.finish()
  t.same(kinds(await reader.scan()), ['finished:f00d:4'])
})

t.test('bad names warn once each; files vanishing mid-scan raise nothing', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  mkdirSync(folder)
  const warnings: string[] = []
  const clock = new ManualClock()
  let vanish: string | null = null
  let folderGone = false
  const reader = new CheckinReader({
    folder,
    clock,
    graceSeconds: GRACE,
    onWarning: (m) => warnings.push(m),
    readdir: async (dir) => {
      if (folderGone) throw Object.assign(new Error('gone'), { code: 'ENOENT' })
      const names = await fsp.readdir(dir)
      // Deleted between the listing and its use.
      if (vanish !== null) rmSync(join(dir, vanish), { force: true })
      return names
    },
  })
  touch(folder, 'junk', '.DS_Store', 'a-b-c-d-e', `${name('bbbb', 2, 'check_in', 9)}.tmp`, name('bbbb', 1, 'starting', 0), name('cccc', 1, 'new_logs', 0))
  vanish = name('bbbb', 1, 'starting', 0)
  t.same(kinds(await reader.scan()), ['started:bbbb:1'], 'a name listed then deleted is still read, harmlessly')
  vanish = null
  t.equal(warnings.length, 4)
  t.match(warnings[0], /not an Aim check-in name/)
  for (let i = 0; i < 5; i++) await reader.scan()
  t.equal(warnings.length, 4, 'no warning storm')
  t.equal(reader.runs.has('bbbb'), false, 'a run whose files are all gone is dropped')
  t.equal(reader.runs.has('cccc'), false, 'new_logs alone is not a run')
  folderGone = true
  t.same(await reader.scan(), [], 'the folder vanishing is not an error')
  t.throws(() => new CheckinReader({ folder, graceSeconds: 29 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.equal(new CheckinReader({ folder }).graceSeconds, 100)
  const failing = new CheckinReader({
    folder,
    readdir: () => {
      throw Object.assign(new Error('denied'), { code: 'EACCES' })
    },
  })
  await t.rejects(failing.scan(), { code: 'EACCES' }, 'other errors are not swallowed')
  const hundreds = new CheckinReader({ folder: join(t.testdir(), 'x'), onWarning: (m) => warnings.push(m), readdir: () => Array.from({ length: 1500 }, (_, i) => `junk${i}`) })
  warnings.length = 0
  await hundreds.scan()
  t.equal(warnings.length, 1001, 'at most 1000 names, then one last word')
})

t.test('a restart from saved state neither resets timers nor re-sends', async (t) => {
  const folder = fixture(t, 'running')
  const clock = new ManualClock()
  const first = new CheckinReader({ folder, clock, graceSeconds: GRACE })
  await first.scan()
  const seenAt = clock.now()
  touch(folder, name('dddd', 1, 'check_in', 100))
  await first.scan()
  clock.advance(90_000)
  t.same(kinds(await first.scan()), ['stalled:a1b2:6'])
  const saved = JSON.parse(JSON.stringify(first.toJSON())) as CheckinReaderState
  t.same(Object.keys(saved.runs), ['a1b2c3d4e5f60718293a4b5c', 'dddd'], 'saved by hash')

  // The daemon restarts 20 s later; meanwhile dddd was not renewed and a new run appeared.
  clock.advance(20_000)
  touch(folder, name('eeee', 1, 'starting', 0))
  const second = new CheckinReader({ folder, clock, graceSeconds: GRACE, state: saved })
  t.same(kinds(await second.scan()), ['started:eeee:1'], 'no started, no stall re-sent')
  t.equal(second.runs.get('dddd')?.firstSeenAt, seenAt, 'first sight kept')
  t.equal(second.nextDeadlineAt(), seenAt + 130_000, 'the timer was not reset to zero')
  clock.advanceTo(seenAt + 130_000)
  t.same(kinds(second.evaluate()), ['stalled:dddd:1'])
  // A newer idx written while down is first seen at the restart, and closes the stall.
  touch(folder, name('a1b2c3d4e5f60718293a4b5c', 7, 'check_in', 60))
  t.same(kinds(await second.scan()), ['recovered:a1b2:7'])

  const dddd = checkReaderState(saved).runs['dddd'] as CheckinRunState
  t.strictSame(dddd, { idx: 1, flag: 'check_in', expectNextIn: 100, firstSeenAt: seenAt, notifiedIdx: -1, status: 'running' }, 'the run as it was, and nothing of the listing (its file counts) saved')
  t.throws(() => new CheckinReader({ folder, state: { version: 2 } as never }), { code: 'AIM_STATUS_CORRUPT_FILE' })
  t.throws(() => new CheckinReader({ folder, state: { version: 1, savedAt: 0, runs: { '../x': dddd } } }), { code: 'AIM_STATUS_CORRUPT_FILE' })
  t.throws(() => new CheckinReader({ folder, state: { version: 1, savedAt: 0, runs: { dddd: { ...dddd, status: 'odd' as never } } } }), { code: 'AIM_STATUS_CORRUPT_FILE' })
  // A saved first sight from a clock that has since gone back is clamped to now.
  const future = { version: 1 as const, savedAt: 0, runs: { dddd: { ...dddd, status: 'running' as const, firstSeenAt: clock.now() + 1e9 } } }
  t.equal(new CheckinReader({ folder, clock, state: future }).runs.get('dddd')?.firstSeenAt, clock.now())
})

t.test('the folder is not listed again while its mtime proves nothing changed', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  mkdirSync(folder)
  touch(folder, name('abcd', 1, 'check_in', 10))
  const old = new Date(Date.now() - 3_600_000)
  utimesSync(folder, old, old)
  let wall = Date.now()
  const clock = new ManualClock()
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE, wallNow: () => wall })
  t.same(kinds(await reader.scan()), ['started:abcd:1'])
  await reader.scan()
  await reader.scan()
  t.equal(reader.listings, 1, 'unchanged, old mtime: one stat, no listing')
  clock.advance(40_000)
  t.same(kinds(await reader.scan()), ['stalled:abcd:1'], 'time still passes without a listing')
  touch(folder, name('abcd', 2, 'check_in', 10))
  t.same(kinds(await reader.scan()), ['recovered:abcd:2'], 'a change is seen at once')
  await reader.scan()
  t.equal(reader.listings, 3, 'a fresh mtime is not trusted: a change in the same tick could hide')
  utimesSync(folder, old, old)
  await reader.scan()
  await reader.scan()
  t.equal(reader.listings, 4)
  wall += 10_001
  await reader.scan()
  t.equal(reader.listings, 5, 'listed at least every 10 s anyway')
})

t.test("last_run_notifications: read, update atomically, shared with Aim's watcher", async (t) => {
  const dir = t.testdir()
  const path = join(dir, '.aim', 'ext', 'notifications', 'last_run_notifications')
  t.same(await readLastRunNotifications(path), new Map(), 'missing: nothing notified')
  // What Python's watcher left: it notified idx 6 of the running fixture.
  mkdirSync(join(dir, '.aim', 'ext', 'notifications'), { recursive: true })
  writeFileSync(path, '{"a1b2c3d4e5f60718293a4b5c": 6, "0f1e2d3c4b5a69788796a5b4": 5}')
  const known = await readLastRunNotifications(path)
  t.equal(known.get('a1b2c3d4e5f60718293a4b5c'), 6)

  const folder = fixture(t, 'running')
  const clock = new ManualClock()
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE, alreadyNotified: known })
  t.match(await reader.scan(), [{ kind: 'started', alreadyNotified: true }])
  clock.advance(90_000)
  t.match(await reader.scan(), [{ kind: 'stalled', idx: 6, alreadyNotified: true }], 'Python already told: not again')
  touch(folder, name('a1b2c3d4e5f60718293a4b5c', 7, 'check_in', 1))
  await reader.scan()
  clock.advance(31_000)
  const [stall] = await reader.scan()
  t.match(stall, { kind: 'stalled', idx: 7, alreadyNotified: false })

  const { record } = await recordLastRunNotifications(
    path,
    new Map([
      ['a1b2c3d4e5f60718293a4b5c', 7],
      ['0f1e2d3c4b5a69788796a5b4', 2],
    ]),
  )
  t.same(JSON.parse(readFileSync(path, 'utf8')), { '0f1e2d3c4b5a69788796a5b4': 5, a1b2c3d4e5f60718293a4b5c: 7 }, 'plain JSON Python reads; an idx never goes down')
  t.same(record, await readLastRunNotifications(path))
  t.same(readdirSync(join(dir, '.aim', 'ext', 'notifications')), ['last_run_notifications'], 'no temp file left')

  await t.rejects(recordLastRunNotifications(path, new Map([['../x', 1]])), { code: 'AIM_STATUS_INVALID_ID' })
  await t.rejects(recordLastRunNotifications(path, new Map([['abc', -1]])), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  await t.rejects(writeLastRunNotifications(path, new Map([['a/b', 1]])), { code: 'AIM_STATUS_INVALID_ID' })
  t.same(JSON.parse(readFileSync(path, 'utf8')), { '0f1e2d3c4b5a69788796a5b4': 5, a1b2c3d4e5f60718293a4b5c: 7 }, 'bad input changes nothing')

  for (const corrupt of ['{"abc": ', '[1, 2]', '{"abc": -1}', '{"abc": 1.5}', '{"../x": 1}', 'null']) {
    writeFileSync(path, corrupt)
    await t.rejects(readLastRunNotifications(path), { code: 'AIM_STATUS_CORRUPT_FILE' }, corrupt)
  }
  const result = await recordLastRunNotifications(path, new Map([['abc', 3]]))
  t.same(JSON.parse(readFileSync(path, 'utf8')), { abc: 3 }, 'a corrupt file is replaced')
  t.equal(readFileSync(result.corruptMovedTo as string, 'utf8'), 'null', 'and kept aside for a human')
})

t.test('a listing that repeats names (the folder changed while read) counts each file once', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  mkdirSync(folder)
  touch(folder, name('abab', 1, 'starting', 0), name('abab', 2, 'check_in', 9))
  let repeat = true
  const reader = new CheckinReader({
    folder,
    clock: new ManualClock(),
    graceSeconds: GRACE,
    readdir: async (dir) => {
      const names = await fsp.readdir(dir)
      return repeat ? [...names, ...names] : names
    },
  })
  t.same(kinds(await reader.scan()), ['started:abab:2'])
  t.same(await reader.scan(), [])
  repeat = false
  rmSync(join(folder, name('abab', 1, 'starting', 0)))
  rmSync(join(folder, name('abab', 2, 'check_in', 9)))
  for (let i = 0; i < FORGET_AFTER_LISTINGS; i++) await reader.scan()
  t.equal(reader.runs.has('abab'), false, 'dropped once its files are gone')
})

t.test("a listing that misses a renewing run's old and new files at once does not forget it: no second started", async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  mkdirSync(folder)
  touch(folder, name('rene', 1, 'starting', 60))
  // The folder as each listing sees it: the renewal lands between two listings, and one listing
  // (taken while the old file is removed and the new one not yet visible) has neither.
  const clock = new ManualClock()
  let hide = false
  const reader = new CheckinReader({
    folder,
    clock,
    graceSeconds: GRACE,
    readdir: async (dir) => (hide ? [] : fsp.readdir(dir)),
  })
  t.same(kinds(await reader.scan()), ['started:rene:1'])
  rmSync(join(folder, name('rene', 1, 'starting', 60)))
  touch(folder, name('rene', 2, 'check_in', 60))
  hide = true
  t.same(await reader.scan(), [], 'a listing with none of its files')
  t.equal(reader.runs.has('rene'), true, 'not forgotten after one listing')
  hide = false
  t.same(await reader.scan(), [], 'its new file: no second started')
  t.equal(reader.runs.get('rene')?.idx, 2)
  // Gone for good (missing from listing after listing): forgotten then.
  rmSync(join(folder, name('rene', 2, 'check_in', 60)))
  for (let i = 0; i < FORGET_AFTER_LISTINGS - 1; i++) await reader.scan()
  t.equal(reader.runs.has('rene'), true, `kept while missing from fewer than ${FORGET_AFTER_LISTINGS} listings`)
  await reader.scan()
  t.equal(reader.runs.has('rene'), false, `forgotten after ${FORGET_AFTER_LISTINGS} listings without a file`)
})

t.test('the revision moves only with the durable state: a listing that finds nothing new leaves it', async (t) => {
  const folder = join(tempRepo(t, 'aim-revision-').repo, 'check_ins')
  mkdirSync(folder)
  const clock = new ManualClock()
  // A custom readdir: every scan lists the folder, as a full re-listing would.
  const reader = new CheckinReader({ folder, clock, graceSeconds: GRACE, readdir: (dir) => fsp.readdir(dir), onWarning: () => undefined })
  const hash = 'a1b2c3d4e5f6a7b8c9d0e1f2'
  touch(folder, name(hash, 1, 'check_in', 10))
  await reader.scan()
  const seen = reader.revision
  t.ok(seen > 0, 'a new run')
  const saved = JSON.stringify({ ...reader.toJSON(), savedAt: 0 })
  touch(folder, 'not-a-checkin', name(hash, 1, 'progress', 0))
  for (let i = 0; i < 3; i++) {
    clock.advance(1000)
    await reader.scan()
  }
  t.equal(reader.listings, 4)
  t.equal(reader.revision, seen, 'three listings, ignored names, time passing: no change')
  t.equal(JSON.stringify({ ...reader.toJSON(), savedAt: 0 }), saved, 'and indeed the state is the same')
  touch(folder, name(hash, 2, 'check_in', 10))
  await reader.scan()
  t.equal(reader.revision, seen + 1, 'a newer idx (a new first sight, no transition)')
  clock.advance((10 + GRACE) * 1000)
  t.equal(reader.evaluate().length, 1)
  t.equal(reader.revision, seen + 2, 'a stall')
  for (const file of readdirSync(folder)) rmSync(join(folder, file))
  for (let i = 1; i < FORGET_AFTER_LISTINGS; i++) await reader.scan()
  t.equal(reader.revision, seen + 2, 'a run missing from fewer listings than it takes to forget it is kept as it was')
  await reader.scan()
  t.equal(reader.runs.size, 0)
  t.equal(reader.revision, seen + 3, 'a run dropped')
})
