import t from 'tap'
import { eventually } from './support/eventually.js'
import type { Test } from 'tap'
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import type { RankState, RunInfo } from '../lib/model.js'
import { currentOwner } from '../lib/state/owner.js'
import type { OwnerInfo } from '../lib/state/owner.js'
import { readSnapshot, writeSnapshotAtomic, parseSnapshot, serializeSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION } from '../lib/state/snapshot.js'
import type { Snapshot } from '../lib/state/snapshot.js'
import { SnapshotWriter } from '../lib/state/snapshot-writer.js'
import { acquireLease } from '../lib/state/lease.js'
import { claimGeneration } from '../lib/state/fence.js'
import { listOwnerIds, snapshotPath, statusLayout } from '../lib/state/layout.js'
import { startFixture } from './support/child.js'

const run = (hash: string, extra: Partial<RunInfo> = {}): RunInfo => ({
  hash,
  status: 'running',
  startedAt: 1,
  lastProgressAt: 2,
  expectNextIn: 30,
  deadlineAt: 30_002,
  grace: 10,
  episode: 0,
  ...extra,
})

function snapshotOf(owner: OwnerInfo, runs: RunInfo[]): Snapshot {
  return { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, owner, generation: 1, writtenAt: 5, runs, outbox: { queued: [{ key: 'a/stalled/1' }] }, extra: { note: 'x' } }
}

/** The text an older program wrote: format version 1, runs as objects. */
const v1Text = (snapshot: Snapshot): string => JSON.stringify({ ...snapshot, version: 1 })

/** Reads a bad file: rejected with CORRUPT_FILE, renamed aside unchanged, then no longer found. */
async function expectSetAside(t: Test, path: string, name: string): Promise<void> {
  const body = readFileSync(path, 'utf8')
  const error = await readSnapshot(path).then(
    () => null,
    (e: unknown) => e,
  )
  t.match(error, { code: 'AIM_STATUS_CORRUPT_FILE', name: 'CorruptFileError', setAsidePath: new RegExp(`${name}\\.json\\.corrupt-\\d+$`) }, name)
  t.equal(readFileSync((error as { setAsidePath: string }).setAsidePath, 'utf8'), body, `${name}: kept for inspection`)
  t.equal(await readSnapshot(path), null, `${name}: not read again`)
}

t.test('write then read: every field kept, owner-only file, no temp left', async (t) => {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const snapshot = snapshotOf(owner, [run('abc', { name: 'n', experiment: 'e' }), run('def', { status: 'failed', reason: 'died', deadlineAt: null })])
  await writeSnapshotAtomic(path, snapshot)
  t.same(await readSnapshot(path), snapshot)
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(statSync(layout.owners).mode & 0o777, 0o700)
  t.same(readdirSync(layout.owners), [`${owner.id}.json`])
  t.same(await listOwnerIds(layout.owners), [owner.id])
  t.same(await listOwnerIds(join(layout.status, 'nope')), [])
  t.equal(await readSnapshot(join(layout.owners, 'missing.json')), null, 'a missing snapshot reads as null')
  t.throws(() => snapshotPath(layout, '../escape'), { code: 'AIM_STATUS_INVALID_ID' })
})

t.test('corrupt, truncated and invalid version 1 snapshots are set aside; a good one beside them still reads', async (t) => {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  const owner = currentOwner('process')
  const good = snapshotOf(owner, [run('abc')])
  await writeSnapshotAtomic(snapshotPath(layout, owner.id), good)
  const text = v1Text(good)
  const files: Record<string, string> = {
    garbage: '\u0000\u0001not json at all',
    truncated: text.slice(0, Math.floor(text.length / 2)),
    empty: '',
  }
  const mutations: Record<string, (s: Record<string, unknown>) => void> = {
    format: (s) => (s['format'] = 'other'),
    version: (s) => (s['version'] = 0),
    generation: (s) => (s['generation'] = 0),
    writtenAt: (s) => (s['writtenAt'] = 'yesterday'),
    runsNotArray: (s) => (s['runs'] = {}),
    hostileHash: (s) => (s['runs'] = [run('../../etc')]),
    duplicateHash: (s) => (s['runs'] = [run('abc'), run('abc')]),
    badStatus: (s) => (s['runs'] = [{ ...run('abc'), status: 'zombie' }]),
    negativeExpect: (s) => (s['runs'] = [{ ...run('abc'), expectNextIn: -1 }]),
    nanGrace: (s) => (s['runs'] = [{ ...run('abc'), grace: null }]),
    badEpisode: (s) => (s['runs'] = [{ ...run('abc'), episode: 1.5 }]),
    badDeadline: (s) => (s['runs'] = [{ ...run('abc'), deadlineAt: 'soon' }]),
    longName: (s) => (s['runs'] = [{ ...run('abc'), name: 'x'.repeat(5000) }]),
    runNotObject: (s) => (s['runs'] = [7]),
    ownerId: (s) => (s['owner'] = { ...owner, id: 'a/b' }),
    ownerKind: (s) => (s['owner'] = { ...owner, kind: 'robot' }),
    ownerPid: (s) => (s['owner'] = { ...owner, pid: -3 }),
    ownerHost: (s) => (s['owner'] = { ...owner, host: 5 }),
    ownerStart: (s) => (s['owner'] = { ...owner, startTime: 'early' }),
    ownerTicks: (s) => (s['owner'] = { ...owner, startTicks: -1 }),
    ownerMissing: (s) => delete s['owner'],
    adoptedBy: (s) => (s['adoptedBy'] = 'daemon'),
    extra: (s) => (s['extra'] = []),
    outbox: (s) => delete s['outbox'],
  }
  for (const [name, mutate] of Object.entries(mutations)) {
    const copy = JSON.parse(text) as Record<string, unknown>
    mutate(copy)
    files[name] = JSON.stringify(copy)
  }
  files['array'] = '[]'
  for (const [name, body] of Object.entries(files)) {
    const path = join(layout.owners, `${name}.json`)
    writeFileSync(path, body)
    await expectSetAside(t, path, name)
  }
  t.same(await readSnapshot(snapshotPath(layout, owner.id)), good, 'the good snapshot still reads')
  t.same(await listOwnerIds(layout.owners), [owner.id], 'set-aside files are not listed as snapshots')
})

t.test('a snapshot from a newer version is reported but left in place', async (t) => {
  const path = join(t.testdir(), 'newer.json')
  writeFileSync(path, JSON.stringify({ ...snapshotOf(currentOwner('process'), []), version: SNAPSHOT_VERSION + 1 }))
  await t.rejects(readSnapshot(path), { code: 'AIM_STATUS_CORRUPT_FILE', message: new RegExp(`version ${SNAPSHOT_VERSION + 1} is newer.*left in place`) })
  t.ok(statSync(path).isFile())
  t.throws(() => parseSnapshot(null), /top level/)
})

t.test('version 2: every field of every run survives a round trip, in columns', async (t) => {
  const path = join(t.testdir(), 'v2.json')
  const owner = currentOwner('process')
  const writtenAt = 1_795_000_000_000.4
  const runs: RunInfo[] = [
    run('all_fields', {
      name: 'n',
      experiment: 'e',
      status: 'failed',
      reason: 'died',
      startedAt: 1_794_990_000_000,
      lastProgressAt: 1_795_000_000_000,
      expectNextIn: 59.5,
      deadlineAt: 1_795_000_059_500,
      grace: 0.25,
      episode: 3,
    }),
    run('no_deadline', { status: 'finished', deadlineAt: null, expectNextIn: 0, grace: 0 }),
    run('only_experiment', { status: 'stalled', experiment: 'sweep "7" \\ back', episode: 1 }),
    run('unicode', { name: 'résumé ✓ 🚀 "quoted" \u2028 line\nbreak \u0000 nul \ud800 lone', reason: '</script>' }),
    // Far from writtenAt: offsets beyond the small-integer range are still exact.
    run('ancient', { startedAt: 0, lastProgressAt: 1, deadlineAt: 4_102_444_800_000, expectNextIn: 1e6, grace: 1e6 }),
  ]
  const snapshot: Snapshot = { ...snapshotOf(owner, runs), writtenAt, adoptedBy: { ...owner, id: 'daemon1', kind: 'daemon' }, generation: 4 }
  await writeSnapshotAtomic(path, snapshot)
  t.same(await readSnapshot(path), snapshot, 'read back equal, field for field')
  const file = JSON.parse(readFileSync(path, 'utf8')) as { version: number; runs: Record<string, unknown> }
  t.equal(file.version, 2)
  t.match(file.runs, { count: 5, timeBase: 1_795_000_000_000, status: [3, 2, 1, 0, 0], grace: [250, 0, 10_000, 10_000, 1e9], name: ['n', null, null, runs[3]!.name, null] })
  t.ok('reason' in file.runs && 'experiment' in file.runs, 'a column some run has is written')
  const bare = snapshotOf(owner, [run('plain')])
  await writeSnapshotAtomic(path, bare)
  const plain = JSON.parse(readFileSync(path, 'utf8')) as { runs: Record<string, unknown> }
  t.same(
    Object.keys(plain.runs).filter((k) => ['name', 'experiment', 'reason'].includes(k)),
    [],
    'columns no run has are left out',
  )
  t.same(await readSnapshot(path), bare)
  const empty = snapshotOf(owner, [])
  await writeSnapshotAtomic(path, empty)
  t.same(await readSnapshot(path), empty, 'no runs')
})

t.test('version 2: times are kept to the millisecond, durations to the millisecond', async (t) => {
  const owner = currentOwner('process')
  const text = serializeSnapshot({ ...snapshotOf(owner, [run('frac', { startedAt: 10.4, lastProgressAt: 20.5, deadlineAt: 30.6, expectNextIn: 1.23456, grace: 0.0004 })]), writtenAt: 1234.5 })
  const back = parseSnapshot(JSON.parse(text))
  t.match(back.runs[0], { startedAt: 10, lastProgressAt: 21, deadlineAt: 31, expectNextIn: 1.235, grace: 0 })
  t.equal(back.writtenAt, 1234.5, 'writtenAt is kept as it is')
  t.throws(() => serializeSnapshot(snapshotOf(owner, [run('nan', { lastProgressAt: Number.NaN })])), /run nan has a field that is not a finite number/, 'refused rather than written as null')
  t.throws(() => serializeSnapshot(snapshotOf(owner, [run('zombie', { status: 'zombie' as RunInfo['status'] })])), /run zombie/)
})

t.test('a version 1 file written by an older program still reads, and is rewritten as version 2', async (t) => {
  const path = join(t.testdir(), 'v1.json')
  const owner = currentOwner('process')
  const runs = [run('abc', { name: 'ü "q"', experiment: 'e', startedAt: 1.5 }), run('def', { status: 'failed', reason: 'died', deadlineAt: null })]
  const old = snapshotOf(owner, runs)
  writeFileSync(path, v1Text(old))
  const read = await readSnapshot(path)
  t.same(read, { ...old, version: 1 }, 'every field, sub-millisecond times included')
  await writeSnapshotAtomic(path, read as Snapshot)
  t.match(JSON.parse(readFileSync(path, 'utf8')), { version: 2, runs: { count: 2 } })
  t.same(
    (await readSnapshot(path))?.runs.map((r) => r.hash),
    ['abc', 'def'],
  )
})

t.test('truncated, corrupt and invalid version 2 snapshots are set aside', async (t) => {
  const folder = t.testdir()
  const good = snapshotOf(currentOwner('process'), [run('abc', { name: 'n' }), run('def', { deadlineAt: null })])
  const text = serializeSnapshot(good)
  const files: Record<string, string> = { truncated: text.slice(0, text.length - 40), cut: text.slice(0, text.indexOf('"runs"') + 20) }
  type Columns = Record<string, unknown[] | unknown>
  const set = (key: string, i: number, value: unknown) => (c: Columns) => ((c[key] as unknown[])[i] = value)
  const mutations: Record<string, (c: Columns, s: Record<string, unknown>) => void> = {
    runsArray: (_c, s) => (s['runs'] = good.runs),
    runsMissing: (_c, s) => delete s['runs'],
    countMismatch: (c) => (c['count'] = 3),
    countNegative: (c) => (c['count'] = -1),
    timeBaseFraction: (c) => (c['timeBase'] = 1.5),
    columnMissing: (c) => delete c['episode'],
    columnShort: (c) => (c['grace'] = [1]),
    optionalShort: (c) => (c['name'] = ['n']),
    optionalNotArray: (c) => (c['reason'] = 'died'),
    hostileHash: set('hash', 1, '../../etc'),
    duplicateHash: set('hash', 1, 'abc'),
    statusOutOfRange: set('status', 0, 4),
    statusFraction: set('status', 0, 0.5),
    statusName: set('status', 0, 'running'),
    statusLength: set('status', 0, 'length'),
    startedNull: set('startedAt', 0, null),
    progressText: set('lastProgressAt', 1, '7'),
    negativeExpect: set('expectNextIn', 0, -1),
    badDeadline: set('deadlineAt', 1, 'soon'),
    negativeGrace: set('grace', 1, -5),
    badEpisode: set('episode', 0, 1.5),
    nameNumber: set('name', 0, 5),
    longName: set('name', 1, 'x'.repeat(5000)),
    v1RunsInV2: (_c, s) => (s['runs'] = JSON.parse(JSON.stringify(good.runs))),
  }
  for (const [name, mutate] of Object.entries(mutations)) {
    const copy = JSON.parse(text) as Record<string, unknown>
    mutate(copy['runs'] as Columns, copy)
    files[name] = JSON.stringify(copy)
  }
  for (const [name, body] of Object.entries(files)) {
    const path = join(folder, `${name}.json`)
    writeFileSync(path, body)
    await expectSetAside(t, path, name)
  }
  const error = await readSnapshot(join(folder, 'x.json')).then(
    () => null,
    (e: unknown) => e,
  )
  t.equal(error, null)
  t.throws(() => parseSnapshot({ ...JSON.parse(text), runs: { ...JSON.parse(text).runs, hash: ['abc', 'a b'] } }), /runs\.hash\[1\] is "a b"/, 'the message names the run and the field')
})

t.test('an unreadable folder gives a clear coded error', async (t) => {
  const base = t.testdir()
  const folder = join(base, 'private')
  const owner = currentOwner('process')
  const path = join(folder, `${owner.id}.json`)
  await writeSnapshotAtomic(path, snapshotOf(owner, [run('abc')]))
  chmodSync(folder, 0o000)
  if (process.getuid?.() === 0) {
    // root reads anything: meet the folder as another user, in a real child process that drops
    // to that user inside `base` and reads relative paths, so the modes of the folders above
    // (this clone's parents, whatever they are) play no part. A readable snapshot beside the
    // private folder is the control: the same user reads it, so the error is the folder's mode.
    const readable = join(base, 'public', `${owner.id}.json`)
    await writeSnapshotAtomic(readable, snapshotOf(owner, [run('abc')]))
    chmodSync(base, 0o755)
    chmodSync(dirname(readable), 0o755)
    chmodSync(readable, 0o644)
    const relative = (p: string): string => p.slice(base.length + 1)
    const child = startFixture(new URL('./fixtures/state/read-snapshot.ts', import.meta.url), ['--as-uid', '65534', '--cwd', base, relative(readable), relative(path)])
    await child.waitFor((line) => line['path'] === relative(path))
    t.match(child.lines, [
      { event: 'read', path: relative(readable), runs: 1 },
      { event: 'error', path: relative(path), code: 'AIM_STATUS_INVALID_PATH', message: /permission denied \(EACCES\)/ },
    ])
  } else {
    await t.rejects(readSnapshot(path), { code: 'AIM_STATUS_INVALID_PATH', message: /permission denied/ })
  }
  chmodSync(folder, 0o700)
  const notFolder = join(t.testdirName, 'file')
  writeFileSync(notFolder, '')
  await t.rejects(readSnapshot(join(notFolder, 'x.json')), { code: 'AIM_STATUS_INVALID_PATH', message: /not a folder/ })
})

async function writerSetup(t: Test, options: { intervalMs?: number; onError?: (e: unknown) => void } = {}) {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const lease = await acquireLease(path, owner, { staleMs: 2000 })
  t.teardown(() => lease.release())
  const clock = new ManualClock()
  const state = { runs: [run('abc')], produced: 0, writesSeenByProduce: [] as number[] }
  const writer: SnapshotWriter = new SnapshotWriter({
    path,
    lease,
    clock,
    ...options,
    produce: () => {
      state.produced += 1
      state.writesSeenByProduce.push(writer.writes)
      return { owner, runs: state.runs, outbox: null, extra: {} }
    },
  })
  return { path, lease, clock, state, writer, owner }
}

t.test('writer: ordinary changes coalesce to one write per interval, produced only when written', async (t) => {
  const { writer, clock, state, path } = await writerSetup(t)
  for (let i = 0; i < 50; i++) writer.markDirty()
  t.equal(state.produced, 0, 'nothing serialised before the write')
  clock.advance(0)
  await eventually(() => writer.writes === 1, 'first write')
  t.equal(state.produced, 1, 'fifty changes, one write')
  state.runs = [run('abc'), run('def')]
  writer.markDirty()
  writer.markDirty()
  clock.advance(999)
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(writer.writes, 1, 'not before the interval has passed since the last write')
  clock.advance(1)
  await eventually(() => writer.writes === 2, 'second write')
  t.equal(state.produced, 2)
  t.same(
    (await readSnapshot(path))?.runs.map((r) => r.hash),
    ['abc', 'def'],
  )
  t.match(await readSnapshot(path), { generation: 1, writtenAt: clock.now() }, 'stamped with the generation and the clock')
  t.notOk(writer.dirty)
})

t.test('writer: flush writes now; flushes during a write share one follow-up write; never two at once', async (t) => {
  const { writer, state, path } = await writerSetup(t)
  writer.markDirty()
  const first = writer.flush()
  const second = writer.flush()
  const third = writer.flush()
  await Promise.all([first, second, third])
  t.equal(writer.writes, 2, 'one write, then one follow-up for the two flushes asked during it')
  t.same(state.writesSeenByProduce, [0, 1], 'the follow-up was serialised only after the first write was durable')
  t.equal((await readSnapshot(path))?.runs.length, 1)
  await writer.flush()
  t.equal(writer.writes, 3)
})

t.test('writer: a lost lease stops every write and fails flushes with LEASE_LOST', async (t) => {
  const lost: string[] = []
  const { writer, lease, path, owner, state, clock } = await writerSetup(t)
  await writer.flush()
  const before = readFileSync(path, 'utf8')
  t.ok(claimGeneration(path, lease.generation + 1, { ...owner, id: 'adopter', kind: 'daemon' }), 'an adopter claims the next generation')
  await t.rejects(writer.flush(), { code: 'AIM_STATUS_LEASE_LOST' })
  t.ok(lease.lost)
  t.equal(readFileSync(path, 'utf8'), before, 'the snapshot was not overwritten')
  const produced = state.produced
  writer.markDirty()
  clock.advance(5000)
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(state.produced, produced, 'nothing more serialised')
  await t.rejects(writer.flush(), { code: 'AIM_STATUS_LEASE_LOST' })
  t.same(lost, [])
})

t.test('writer: an I/O failure is reported and retried at the next interval', async (t) => {
  const errors: unknown[] = []
  const { writer, clock, path } = await writerSetup(t, { onError: (e) => errors.push(e) })
  await writer.flush()
  // The outside world breaks the folder: a file where the temp file must go.
  rmSync(path)
  const owners = join(path, '..')
  rmSync(owners, { recursive: true, force: true })
  writeFileSync(owners, 'not a folder')
  writer.markDirty()
  clock.advance(1000)
  await eventually(() => errors.length === 1, 'error reported')
  t.match(errors[0], { code: /EEXIST|ENOTDIR/ })
  t.ok(writer.dirty, 'still dirty')
  rmSync(owners)
  mkdirSync(owners)
  clock.advance(1000)
  await eventually(() => writer.writes === 2, 'retried')
  t.ok(statSync(path).isFile())
})

t.test('writer: close writes what is dirty, then refuses; twice is fine', async (t) => {
  const { writer, path } = await writerSetup(t)
  writer.markDirty()
  await writer.close()
  t.equal(writer.writes, 1)
  t.ok(statSync(path).isFile())
  await writer.close()
  await t.rejects(writer.flush(), { code: 'AIM_STATUS_CLOSED' })
  writer.markDirty()
  t.notOk(writer.dirty, 'changes after close are ignored')
  t.throws(
    () =>
      new SnapshotWriter({
        path,
        lease: { generation: 1, assertGeneration() {} },
        produce: () => {
          throw new Error('x')
        },
        intervalMs: -1,
      }),
    { code: 'AIM_STATUS_OUT_OF_RANGE' },
  )
})

t.test('a write asked for from inside produce queues behind the one in progress', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'owners', 'reentrant.json')
  const owner = currentOwner('process')
  let produced = 0
  const nested: Array<Promise<void>> = []
  const writer: SnapshotWriter = new SnapshotWriter({
    path,
    lease: { generation: 1, assertGeneration() {} },
    produce: () => {
      produced++
      // A hook set off by reading the state asks for a write, many times.
      if (produced === 1) for (let i = 0; i < 50; i++) nested.push(writer.flush())
      return { owner, runs: [], outbox: null, extra: { produced } }
    },
  })
  await writer.flush()
  await Promise.all(nested)
  t.equal(produced, 2, 'one write in progress, then one more for all the nested requests')
  t.equal(writer.writes, 2)
  await writer.close()
})

t.test("the daemon's check-in runs are columns on disk and records in memory; other shapes are written as they are", async (t) => {
  const owner = currentOwner('process')
  const runs = {
    a1b2: { idx: 3, flag: 'check_in', expectNextIn: 60, firstSeenAt: 1_700_000_000_123, notifiedIdx: -1, status: 'running' },
    c3d4: { idx: 1, flag: 'finished', expectNextIn: 0, firstSeenAt: 1_700_000_000_456, notifiedIdx: 1, status: 'finished' },
  }
  const snapshot = { ...snapshotOf(owner, []), extra: { checkins: { version: 1, savedAt: 5, runs }, terminal: '/dev/pts/3' } }
  const file = JSON.parse(serializeSnapshot(snapshot)) as { extra: { checkins: Record<string, unknown> } }
  t.notOk('runs' in file.extra.checkins, 'no records on disk')
  t.same(file.extra.checkins['runColumns'], {
    hash: ['a1b2', 'c3d4'],
    fields: { idx: [3, 1], flag: ['check_in', 'finished'], expectNextIn: [60, 0], firstSeenAt: [1_700_000_000_123, 1_700_000_000_456], notifiedIdx: [-1, 1], status: ['running', 'finished'] },
  })
  t.same(parseSnapshot(file).extra, snapshot.extra, 'read back as records by hash, the rest as it was')

  // Records of different fields, or with a nested value: written as they are, and read back so.
  for (const odd of [
    { ...runs, e5f6: { idx: 1 } },
    { ...runs, e5f6: { ...runs.a1b2, note: { nested: true } } },
  ]) {
    const extra = { checkins: { version: 1, savedAt: 5, runs: odd } }
    const text = serializeSnapshot({ ...snapshot, extra })
    t.notOk(text.includes('runColumns'))
    t.same(parseSnapshot(JSON.parse(text)).extra, extra)
  }

  // Damaged columns are a bad file, named by field, never a state with holes.
  const bad = (runColumns: unknown) => () => parseSnapshot({ ...file, extra: { checkins: { version: 1, runColumns } } })
  t.throws(bad({ hash: ['a1b2'], fields: { idx: [1, 2] } }), /runColumns\.fields\.idx is not 1 long/)
  t.throws(bad({ hash: ['../x'], fields: { idx: [1] } }), /runColumns\.hash\[0\]/)
  t.throws(bad({ hash: 'a1b2', fields: {} }), /runColumns\.hash is/)
  t.throws(bad({ hash: [], fields: [] }), /runColumns\.fields is/)
})

t.test('runs reporting over a session and runs of many ranks survive both encodings, every field checked', async (t) => {
  const path = join(t.testdir(), 'ranks.json')
  const owner = currentOwner('daemon')
  const ranks: RankState[] = [
    { rank: 0, host: 'gpu-1', pid: 11, status: 'running', lastProgressAt: 1_795_000_000_000, expectNextIn: 30, deadlineAt: 1_795_000_030_000, session: 'open' },
    { rank: 2, host: 'gpu-3', pid: 13, status: 'stalled', lastProgressAt: 1_794_999_000_000, expectNextIn: 30, deadlineAt: 1_794_999_030_000, session: 'lost' },
    { rank: 3, host: 'gpu-4', pid: 14, status: 'failed', lastProgressAt: 1_794_999_000_000, expectNextIn: 0, deadlineAt: null, session: 'closed', reason: 'killed' },
  ]
  const runs: RunInfo[] = [
    run('remote', { origin: { host: 'laptop', pid: 42, via: 'tcp', session: 'lost' } }),
    run('plain'),
    run('ranked', { status: 'failed', reason: 'rank 3 on gpu-4: killed', logTail: 'Traceback\n  line 1\n'.repeat(50), worldSize: 4, finishOn: 'rank0', ranks }),
  ]
  const snapshot: Snapshot = { ...snapshotOf(owner, runs), writtenAt: 1_795_000_000_000 }
  await writeSnapshotAtomic(path, snapshot)
  t.same(await readSnapshot(path), snapshot, 'version 2: read back equal, field for field')
  const file = JSON.parse(readFileSync(path, 'utf8')) as { runs: Record<string, unknown[]> }
  t.same(file.runs['extras']?.[1], null, 'null for a run without extra fields')
  t.same(file.runs['logTail'], [null, null, runs[2]?.logTail])
  writeFileSync(path, v1Text(snapshot))
  t.same(await readSnapshot(path), { ...snapshot, version: 1 }, 'version 1 (objects): equal too')
  await writeSnapshotAtomic(path, snapshotOf(owner, [run('plain')]))
  t.notOk('extras' in (JSON.parse(readFileSync(path, 'utf8')) as { runs: object }).runs, 'the column is left out when no run has extra fields')

  const text = serializeSnapshot(snapshot)
  type Extras = Record<string, unknown> & { ranks: Record<string, unknown>[]; origin?: Record<string, unknown> }
  const bad: Record<string, [(extras: (Extras | null)[], logTails: unknown[]) => void, RegExp]> = {
    notObject: [(e) => (e[1] = 'x' as unknown as Extras), /runs\.extras\[1\] is "x"/],
    viaOther: [(e) => ((e[0]?.origin as Record<string, unknown>)['via'] = 'udp'), /runs\.extras\[0\]\.origin\.via is "udp"/],
    sessionOther: [(e) => ((e[0]?.origin as Record<string, unknown>)['session'] = 'gone'), /origin\.session/],
    longHost: [(e) => ((e[0]?.origin as Record<string, unknown>)['host'] = 'h'.repeat(300)), /origin\.host/],
    negativePid: [(e) => ((e[0]?.origin as Record<string, unknown>)['pid'] = -1), /origin\.pid/],
    worldZero: [(e) => ((e[2] as Extras)['worldSize'] = 0), /runs\.extras\[2\]\.worldSize is 0/],
    worldHuge: [(e) => ((e[2] as Extras)['worldSize'] = 100_001), /worldSize/],
    finishOnOther: [(e) => ((e[2] as Extras)['finishOn'] = 'any'), /finishOn/],
    ranksNotArray: [(e) => ((e[2] as Record<string, unknown>)['ranks'] = {}), /runs\.extras\[2\]\.ranks is/],
    tooManyRanks: [(e) => ((e[2] as Extras)['ranks'] = new Array(100_001).fill(ranks[0])), /more than 100000/],
    rankBeyondWorld: [(e) => ((e[2] as Extras).ranks[1]!['rank'] = 4), /ranks\[1\]\.rank is 4, expected an integer from 0 to 3/],
    rankTwice: [(e) => ((e[2] as Extras).ranks[1]!['rank'] = 0), /ranks\[1\]\.rank 0 appears twice/],
    rankStatus: [(e) => ((e[2] as Extras).ranks[0]!['status'] = 'lost'), /ranks\[0\]\.status/],
    rankTime: [(e) => ((e[2] as Extras).ranks[0]!['lastProgressAt'] = null), /ranks\[0\]\.lastProgressAt/],
    rankExpect: [(e) => ((e[2] as Extras).ranks[0]!['expectNextIn'] = -3), /ranks\[0\]\.expectNextIn/],
    rankDeadline: [(e) => ((e[2] as Extras).ranks[0]!['deadlineAt'] = 'soon'), /ranks\[0\]\.deadlineAt/],
    rankSession: [(e) => delete (e[2] as Extras).ranks[0]!['session'], /ranks\[0\]\.session/],
    rankReason: [(e) => ((e[2] as Extras).ranks[2]!['reason'] = 7), /ranks\[2\]\.reason/],
    longLogTail: [(_e, l) => (l[2] = 'x'.repeat(20_000)), /runs\.logTail\[2\]/],
  }
  for (const [name, [mutate, message]] of Object.entries(bad)) {
    const copy = JSON.parse(text) as { runs: { extras: (Extras | null)[]; logTail: unknown[] } }
    mutate(copy.runs.extras, copy.runs.logTail)
    t.throws(() => parseSnapshot(copy), message, name)
    const objects = JSON.parse(text) as Record<string, unknown>
    objects['version'] = 1
    objects['runs'] = snapshot.runs.map((r, i) => ({ ...r, ...(copy.runs.extras[i] ?? {}), ...(copy.runs.logTail[i] !== null ? { logTail: copy.runs.logTail[i] } : {}) }))
    if (name !== 'notObject') t.throws(() => parseSnapshot(objects), /runs\[\d\]/, `${name}, version 1`)
  }
  t.throws(
    () => serializeSnapshot({ ...snapshot, runs: [run('nan_rank', { worldSize: 1, ranks: [{ ...ranks[0]!, deadlineAt: Number.NaN }] })] }),
    /run nan_rank has a rank with a field that is not a finite number/,
    'a rank time JSON would write as null is refused rather than written',
  )
  const hostile = join(t.testdir(), 'hostile-rank.json')
  const copy = JSON.parse(text) as { runs: { extras: (Extras | null)[] } }
  ;(copy.runs.extras[2] as Extras).ranks[0]!['rank'] = -1
  writeFileSync(hostile, JSON.stringify(copy))
  await expectSetAside(t, hostile, 'hostile-rank')
})
