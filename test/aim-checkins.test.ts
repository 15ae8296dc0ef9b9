import t from 'tap'
import { fileURLToPath } from 'node:url'
import { cpSync, readdirSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { formatCheckinName, parseCheckinName } from '../lib/aim/checkins.js'
import { CheckinWriter, expectNextInFor, planCheckinWrite } from '../lib/aim/checkin-writer.js'

// Copied from the files Python Aim's own code wrote (see fixtures/aim-python/README.md).
const FIXTURES = fileURLToPath(new URL('./fixtures/aim-python/checkins', import.meta.url))

// Written from AIM-FORMAT.md alone, so the writer is not checked against its own parser.
const AIM_NAME = /^([0-9a-f]{24}|[A-Za-z0-9_]+)-(\d{16})-(starting|check_in|finished|progress|new_logs)-(\d{8,}\.\d{2})-(\d{5,})$/
function aimParse(name: string): { hash: string; idx: number; flag: string; expect: number } {
  const m = AIM_NAME.exec(name)
  if (m === null) throw new Error(`not an Aim check-in name: ${name}`)
  return { hash: m[1] as string, idx: Number(m[2]), flag: m[3] as string, expect: Number(m[5]) }
}
const listing = (folder: string) => readdirSync(folder).sort()

t.test('names are formatted exactly as Aim formats them', async (t) => {
  t.equal(formatCheckinName({ hash: 'abcdef0123456789abcdef01', idx: 2, flag: 'check_in', time: 1795886242.59, expectNextIn: 60 }), 'abcdef0123456789abcdef01-0000000000000002-check_in-1795886242.59-00060')
  const at = (time: number) => formatCheckinName({ hash: 'h', idx: 0, flag: 'starting', time, expectNextIn: 0 }).split('-')[3]
  t.equal(at(5.5), '00000005.50', 'zero-padded to 11 characters')
  t.equal(at(0.125), '00000000.12', 'exact ties round to even, as Python does')
  t.equal(at(1.625), '00000001.62')
  t.equal(at(2.375), '00000002.38')
  t.equal(at(1795886242.999), '1795886243.00')
  t.equal(formatCheckinName({ hash: 'h', idx: 123, flag: 'finished', time: 1, expectNextIn: 99999 }), 'h-0000000000000123-finished-00000001.00-99999')
})

t.test('every Python-written fixture name parses and formats back to itself', async (t) => {
  let count = 0
  for (const scenario of readdirSync(FIXTURES)) {
    for (const name of readdirSync(join(FIXTURES, scenario, '.aim', 'check_ins'))) {
      const checkin = parseCheckinName(name)
      if (checkin === null) throw new Error(`fixture ${name} did not parse`)
      t.same({ hash: checkin.hash, idx: checkin.idx, flag: checkin.flag, expect: checkin.expectNextIn }, aimParse(name))
      t.equal(formatCheckinName(checkin), name)
      count++
    }
  }
  t.equal(count, 12)
})

t.test('anything that is not exactly an Aim name parses as null, never throws', async (t) => {
  const good = 'abcdef0123456789abcdef01-0000000000000002-check_in-1795886242.59-00060'
  t.ok(parseCheckinName(good))
  for (const bad of [
    '',
    'junk',
    '.DS_Store',
    `${good}.tmp`,
    `x-${good}`,
    `${good}-1`,
    '../../etc-0000000000000002-check_in-1795886242.59-00060',
    'abc def-0000000000000002-check_in-1795886242.59-00060',
    'abc-000000000000002-check_in-1795886242.59-00060', // 15 digits
    'abc-00000000000000x2-check_in-1795886242.59-00060',
    'abc-0000000000000002-check-in-1795886242.59-00060',
    'abc-0000000000000002-heartbeat-1795886242.59-00060',
    'abc-0000000000000002-check_in-1795886242.5-00060',
    'abc-0000000000000002-check_in-1795886242-00060',
    'abc-0000000000000002-check_in--1795886242.59-00060',
    'abc-0000000000000002-check_in-1795886242.59-0060',
    'abc-0000000000000002-check_in-1795886242.59-+0060',
    'abc-0000000000000002-check_in-1795886242.59-00060 ',
    'abc-9999999999999999-check_in-1795886242.59-00060', // beyond an exact JavaScript integer
    `${'a'.repeat(65)}-0000000000000002-check_in-1795886242.59-00060`,
  ]) {
    t.equal(parseCheckinName(bad), null, bad)
  }
  t.equal(parseCheckinName(42 as unknown as string), null)
  t.same(parseCheckinName('abc-0000000000000002-progress-00000001.00-123456'), { hash: 'abc', idx: 2, flag: 'progress', time: 1, expectNextIn: 123456 })
})

t.test('formatting refuses bad fields with coded errors', async (t) => {
  const base = { hash: 'abc', idx: 1, flag: 'check_in' as const, time: 1, expectNextIn: 1 }
  t.throws(() => formatCheckinName({ ...base, hash: '../x' }), { code: 'AIM_STATUS_INVALID_ID' })
  t.throws(() => formatCheckinName({ ...base, hash: 'a-b' }), { code: 'AIM_STATUS_INVALID_ID' })
  t.throws(() => formatCheckinName({ ...base, idx: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => formatCheckinName({ ...base, idx: 1.5 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => formatCheckinName({ ...base, flag: 'check-in' as 'check_in' }), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => formatCheckinName({ ...base, time: Number.NaN }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => formatCheckinName({ ...base, time: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => formatCheckinName({ ...base, expectNextIn: 100000 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => formatCheckinName({ ...base, expectNextIn: 2.5 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
})

t.test("expect is Aim's max(1, ceil(deadline - now)), capped to five digits", async (t) => {
  t.equal(expectNextInFor(null, 0), 0)
  t.equal(expectNextInFor(200, 0), 1)
  t.equal(expectNextInFor(60_001, 0), 61)
  t.equal(expectNextInFor(60_000, 0), 60)
  t.equal(expectNextInFor(-5000, 0), 1, 'a passed deadline still promises the least, 1 s')
  t.equal(expectNextInFor(1e12, 0), 99999)
})

t.test('the write rule, pure', async (t) => {
  const starting = { writtenAt: 0, promisedUntil: Infinity }
  t.same(planCheckinWrite(starting, null, 10), { write: false, expectNextIn: 0, nextWriteAt: null }, 'no deadline over none: nothing')
  t.same(planCheckinWrite(starting, 60_000, 10), { write: true, expectNextIn: 60, nextWriteAt: null }, 'a first deadline is written at once')
  const sixty = { writtenAt: 0, promisedUntil: 60_000 }
  t.same(planCheckinWrite(sixty, 61_000, 1000), { write: false, expectNextIn: 60, nextWriteAt: 57_000 }, 'later: renew 3 s before the disk runs out')
  t.same(planCheckinWrite(sixty, 59_500, 1000), { write: false, expectNextIn: 59, nextWriteAt: null }, 'earlier only by rounding: nothing')
  t.same(planCheckinWrite(sixty, 30_000, 1000), { write: true, expectNextIn: 29, nextWriteAt: null }, 'earlier: at once')
  t.same(planCheckinWrite(sixty, null, 1000), { write: false, expectNextIn: 0, nextWriteAt: 57_000 }, 'no deadline any more: lazily')
  t.same(planCheckinWrite(sixty, 120_000, 58_000), { write: true, expectNextIn: 62, nextWriteAt: null }, 'due: write the latest deadline')
  const short = { writtenAt: 0, promisedUntil: 2000 }
  t.same(planCheckinWrite(short, 3000, 500), { write: false, expectNextIn: 3, nextWriteAt: 1000 }, 'short promises: at most one renewal a second')
})

/**
 * Training that reports every second with a 60 s promise for 300 s, the writer driven as the
 * actor drives it, and a simulated Aim watcher that polls every second and starts a check-in's
 * clock at first sight. Files become visible to the watcher late by 0 or 1.5 s (alternating per
 * idx): a shared file system, or a poll that just missed it. Counts the polls at which the
 * watcher's promise had run out although the run was on time.
 */
function simulate(folder: string, renewLeadMs: number) {
  const clock = new ManualClock()
  const writer = CheckinWriter.open({ folder, hash: 'a1b2c3d4e5f60718293a4b5c', clock, renewLeadMs })
  const createdAt = new Map<string, number>()
  let seen = { idx: -1, firstSeen: 0, expect: 0 }
  let expiredEarly = 0
  const poll = () => {
    const now = clock.now()
    const visible = listing(folder)
      .filter((name) => {
        if (!createdAt.has(name)) createdAt.set(name, now)
        return now >= (createdAt.get(name) as number) + (aimParse(name).idx % 2) * 1500
      })
      .map(aimParse)
      .filter((c) => c.flag !== 'progress')
      .sort((a, b) => b.idx - a.idx)
    const newest = visible[0]
    // An older idx showing through (the newest deleted, its successor not visible yet) is not news.
    if (newest !== undefined && newest.idx > seen.idx) seen = { idx: newest.idx, firstSeen: now, expect: newest.expect }
    if (seen.expect > 0 && seen.firstSeen + seen.expect * 1000 <= now) expiredEarly++
  }
  let deadline = 0
  let nextWriteAt: number | null = null
  let writes = 0
  let oneCheckinFile = true
  const sync = () => {
    const result = writer.sync(deadline)
    if (result.wrote !== null) writes++
    nextWriteAt = result.nextWriteAt
    for (const name of listing(folder)) if (!createdAt.has(name)) createdAt.set(name, clock.now())
    oneCheckinFile &&= listing(folder).filter((n) => aimParse(n).flag === 'check_in').length === 1
  }
  for (let second = 0; second < 300; second++) {
    deadline = clock.now() + 60_000
    sync()
    for (let ms = 0; ms < 1000; ms += 250) {
      if (nextWriteAt !== null && clock.now() >= nextWriteAt) sync()
      if (ms === 500) poll()
      clock.advance(250)
    }
  }
  return { clock, writer, writes, expiredEarly, oneCheckinFile }
}

t.test("a writer driven like the actor: lazy, never expiring early in a polling watcher's eyes", async (t) => {
  const dir = t.testdir()
  const folder = join(dir, 'check_ins')
  const { clock, writer, writes, expiredEarly, oneCheckinFile } = simulate(folder, 3000)
  t.equal(expiredEarly, 0, 'the watcher never saw the promise run out while the run was on time')
  t.ok(writes >= 5 && writes <= 7, `about one write a minute, not one per report (${writes} writes)`)
  t.equal(writer.idx, writes + 1)
  t.ok(oneCheckinFile, 'one check_in file at a time')
  // Without the lead, renewing only when the promise on disk runs out, the same watcher does.
  t.ok(simulate(join(dir, 'no-lead'), 0).expiredEarly > 0, 'renewing at the last moment is seen as expired')

  // The run now promises less: written at once.
  t.match(writer.sync(clock.now() + 5000), { wrote: /-check_in-.*-00005$/ })
  // No deadline: 00000, written before the 5 s promise on disk runs out.
  const lazy = writer.sync(null)
  t.same(lazy, { wrote: null, nextWriteAt: clock.now() + 2000 })
  clock.advance(2000)
  t.match(writer.sync(null), { wrote: /-check_in-.*-00000$/, nextWriteAt: null })

  // A promise beyond five digits is capped and renewed before it runs out.
  const far = writer.sync(clock.now() + 200_000_000)
  t.match(far, { wrote: /-99999$/, nextWriteAt: clock.now() + 99_999_000 - 3000 })

  const finished = writer.finish()
  t.match(finished, /-finished-.*-00000$/)
  const flags = listing(folder)
    .map((n) => aimParse(n).flag)
    .sort()
  t.same(flags, ['check_in', 'finished', 'starting'], 'one file per flag used; never progress or new_logs')
  t.throws(() => writer.sync(null), { code: 'AIM_STATUS_RUN_ENDED' })
  t.throws(() => writer.finish(), { code: 'AIM_STATUS_RUN_ENDED' })
})

t.test('opening resumes from the highest idx across all flags and cleans up per flag', async (t) => {
  const root = t.testdir()
  cpSync(join(FIXTURES, 'resumed'), root, { recursive: true })
  const folder = join(root, '.aim', 'check_ins')
  const hash = 'c0ffee00c0ffee00c0ffee00'
  // Another run's files and a stray progress file of ours with a higher idx.
  writeFileSync(join(folder, `${hash}-0000000000000009-progress-1795887686.72-00030`), '')
  writeFileSync(join(folder, 'feedfacefeedfacefeedface-0000000000000042-check_in-1795887686.41-00002'), '')
  const clock = new ManualClock()
  const writer = CheckinWriter.open({ folder, hash, clock, wallNow: () => 1_795_887_700_000 })
  t.equal(writer.idx, 10)
  t.same(
    listing(folder)
      .map(aimParse)
      .filter((c) => c.hash === hash)
      .map((c) => `${c.idx}:${c.flag}`)
      .sort(),
    ['10:starting', '4:check_in', '9:progress'],
  )
  t.ok(listing(folder).includes(`${hash}-0000000000000010-starting-1795887700.00-00000`))
  writer.sync(clock.now() + 30_000)
  t.same(
    listing(folder)
      .map(aimParse)
      .filter((c) => c.hash === hash)
      .map((c) => `${c.idx}:${c.flag}:${c.expect}`)
      .sort(),
    ['10:starting:0', '11:check_in:30', '9:progress:30'],
  )
  t.ok(existsSync(join(folder, 'feedfacefeedfacefeedface-0000000000000042-check_in-1795887686.41-00002')), 'other runs are left alone')
})

t.test('hostile hashes and options are refused before anything is written', async (t) => {
  const folder = join(t.testdir(), 'check_ins')
  t.throws(() => CheckinWriter.open({ folder, hash: '../../evil' }), { code: 'AIM_STATUS_INVALID_ID' })
  t.throws(() => CheckinWriter.open({ folder, hash: 'a/b' }), { code: 'AIM_STATUS_INVALID_ID' })
  t.notOk(existsSync(folder))
  t.throws(() => CheckinWriter.open({ folder, hash: 'abc', renewLeadMs: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.notOk(existsSync(folder))
  const writer = CheckinWriter.open({ folder, hash: 'abc', clock: new ManualClock() })
  t.throws(() => writer.sync(Number.NaN), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.equal(listing(folder).length, 1)
})
