// The journal beside a snapshot: appends proportional to the change, replay by every reader,
// compaction (and a crash at each of its steps), torn and damaged records, fencing by generation.
import t from 'tap'
import type { Test } from 'tap'
import { appendFileSync, copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import type { RankState, RunInfo, SessionState } from '../lib/model.js'
import { currentOwner, type OwnerInfo } from '../lib/state/owner.js'
import { parseSnapshot, readSnapshot, type Snapshot } from '../lib/state/snapshot.js'
import { SnapshotWriter, type SnapshotWriterOptions } from '../lib/state/snapshot-writer.js'
import { acquireLease, adoptOrphan, retireSnapshot } from '../lib/state/lease.js'
import { encodeRecord, journalPath, parseJournal, snapshotStamp } from '../lib/state/journal.js'
import { snapshotPath, statusLayout, listOwnerIds } from '../lib/state/layout.js'
import { DurableOwner } from '../lib/owner/durable-owner.js'
import { ErrorCodes, type CorruptFileError } from '../lib/errors.js'

const T0 = 1_700_000_000_000

function run(hash: string, at = T0, status: RunInfo['status'] = 'running'): RunInfo {
  return { hash, status, startedAt: at, lastProgressAt: at, expectNextIn: 60, deadlineAt: at + 60_000, grace: 1, episode: 0 }
}

interface State {
  runs: RunInfo[]
  outbox: unknown
  extra: Record<string, unknown>
}

async function setup(t: Test, options: Partial<SnapshotWriterOptions> = {}) {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const lease = await acquireLease(path, owner, { staleMs: 2000 })
  t.teardown(() => lease.release())
  const clock = new ManualClock(T0)
  const state: State = { runs: [run('aaa'), run('bbb')], outbox: { pending: [] }, extra: { terminal: '/dev/pts/1' } }
  // journalFromBytes 0: every snapshot journals, however small, so the files stay small to look at.
  const writer = new SnapshotWriter({ path, lease, clock, journalFromBytes: 0, ...options, produce: () => ({ owner, runs: state.runs, outbox: state.outbox, extra: state.extra }) })
  return { layout, path, lease, clock, state, writer, owner }
}

const expected = (state: State) => ({ runs: state.runs, outbox: state.outbox, extra: state.extra })
const view = (snapshot: Snapshot | null) => (snapshot === null ? null : { runs: snapshot.runs, outbox: snapshot.outbox, extra: snapshot.extra })
const onDisk = (path: string): Snapshot => parseSnapshot(JSON.parse(readFileSync(path, 'utf8')))
const journalsOf = (path: string): string[] =>
  readdirSync(join(path, '..'))
    .filter((name) => name.includes('.journal-'))
    .sort()

t.test('a change is appended to the journal; readSnapshot replays it; the snapshot file is not rewritten', async (t) => {
  const { path, state, writer, lease } = await setup(t)
  await writer.flush()
  const first = statSync(path)
  t.notOk(existsSync(journalPath(path, lease.generation)), 'no journal after a full write')

  state.runs = [run('aaa'), { ...run('bbb'), status: 'stalled', episode: 1 }, run('ccc')]
  await writer.flush()
  state.outbox = { pending: [{ key: 'k1' }] }
  state.extra = { muted: true }
  await writer.flush()
  state.runs = [run('aaa'), run('ccc')]
  await writer.flush()
  t.equal(writer.writes, 4)
  t.equal(writer.appends, 3, 'three appends after the first full write')
  t.equal(statSync(path).ino, first.ino, 'the snapshot itself was not rewritten')
  t.same(view(onDisk(path)), { runs: [run('aaa'), run('bbb')], outbox: { pending: [] }, extra: { terminal: '/dev/pts/1' } }, 'the file alone still holds the first state')

  const lines = readFileSync(journalPath(path, lease.generation), 'utf8').trimEnd().split('\n')
  t.equal(lines.length, 3)
  const records = parseJournal(readFileSync(journalPath(path, lease.generation), 'utf8')).records
  t.same(
    records.map((r) => [r.seq, r.generation]),
    [
      [1, lease.generation],
      [2, lease.generation],
      [3, lease.generation],
    ],
  )
  t.same(
    records[0]?.runs?.set?.map((r) => (r as RunInfo).hash),
    ['bbb', 'ccc'],
    'only the runs that changed',
  )
  t.notOk(records[0]?.outbox, 'an outbox that did not change is not written')
  t.same(records[1]?.extra, { set: { muted: true }, del: ['terminal'] })
  t.same(records[2]?.runs, { del: ['bbb'] })

  const back = await readSnapshot(path)
  t.same(view(back), expected(state), 'the replayed state is the last one written')
  t.equal(back?.journalSeq, 3)

  // Nothing changed: nothing is written at all.
  const before = statSync(journalPath(path, lease.generation)).size
  await writer.flush()
  t.equal(writer.writes, 4, 'a write that finds no change writes nothing')
  t.equal(statSync(journalPath(path, lease.generation)).size, before)
})

t.test("the outbox's settled keys are journaled as a window: one settle costs its entry, not the list", async (t) => {
  const { path, state, writer, lease } = await setup(t)
  const settled = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ notifierId: 'slack', key: `run${from + i}@${T0}/failed`, at: T0 + from + i, result: 'delivered' }))
  state.outbox = { version: 1, pending: [], settled: settled(0, 1000) }
  await writer.flush()
  const journal = journalPath(path, lease.generation)

  // One more delivery: the oldest key leaves the 1000-long list, the newest is appended.
  state.outbox = { version: 1, pending: [], settled: settled(1, 1001) }
  await writer.flush()
  const one = parseJournal(readFileSync(journal, 'utf8')).records.at(-1)
  t.same(one?.outbox, { rest: { version: 1, pending: [] }, drop: 1, add: settled(1000, 1001) }, 'the window moved by one')
  t.ok(statSync(journal).size < 1024, `one settle appends under 1 KiB (${statSync(journal).size} bytes; the list is ${JSON.stringify(state.outbox).length})`)
  t.same(view(await readSnapshot(path)), expected(state))

  // A pending item added (the rest changes) and three settled at once, none dropped.
  state.outbox = { version: 1, pending: [{ notifierId: 'slack', key: 'x' }], settled: [...settled(1, 1001), ...settled(2000, 2003)] }
  await writer.flush()
  t.same(parseJournal(readFileSync(journal, 'utf8')).records.at(-1)?.outbox, { rest: { version: 1, pending: [{ notifierId: 'slack', key: 'x' }] }, drop: 0, add: settled(2000, 2003) })
  t.same(view(await readSnapshot(path)), expected(state))

  // Emptied, then a list that is not the old one cut and grown (an entry changed in place): written whole.
  state.outbox = { version: 1, pending: [], settled: [] }
  await writer.flush()
  t.same(parseJournal(readFileSync(journal, 'utf8')).records.at(-1)?.outbox, { rest: { version: 1, pending: [] }, drop: 1003, add: [] })
  state.outbox = { version: 1, pending: [], settled: settled(0, 3) }
  await writer.flush()
  const changed = settled(0, 3)
  changed[1] = { ...changed[1], result: 'failed' } as (typeof changed)[number]
  state.outbox = { version: 1, pending: [], settled: changed }
  await writer.flush()
  t.same(parseJournal(readFileSync(journal, 'utf8')).records.at(-1)?.outbox, { value: state.outbox }, 'a list changed in place is written whole')
  t.same(view(await readSnapshot(path)), expected(state))
})

t.test('a window record whose drop does not fit the outbox it follows is damage, not a state', async (t) => {
  const { path, state, writer, lease } = await setup(t)
  state.outbox = { version: 1, pending: [], settled: [{ key: 'a' }] }
  await writer.flush()
  const record = { generation: lease.generation, seq: 1, writtenAt: T0, outbox: { rest: { version: 1, pending: [] }, drop: 5, add: [] } }
  appendFileSync(journalPath(path, lease.generation), encodeRecord(record))
  appendFileSync(journalPath(path, lease.generation), encodeRecord({ ...record, seq: 2, outbox: { value: null } }))
  const problems: CorruptFileError[] = []
  const back = await readSnapshot(path, { onJournalProblem: (error) => problems.push(error) })
  t.same(back?.outbox, { version: 1, pending: [], settled: [{ key: 'a' }] }, 'the snapshot alone is used')
  t.equal(problems[0]?.code, ErrorCodes.CORRUPT_FILE)
  t.match(problems[0]?.message, /outbox\.drop/)
})

t.test("the daemon's check-in runs are journaled one by one, the rest of extra.checkins whole but its savedAt", async (t) => {
  const { path, state, writer, lease, clock } = await setup(t)
  const checkin = (idx: number) => ({ idx, flag: 'check_in', expectNextIn: 30, firstSeenAt: clock.now(), notifiedIdx: -1, status: 'running' })
  const runs: Record<string, unknown> = {}
  for (let i = 0; i < 500; i++) runs[`run${i}`] = checkin(1)
  state.extra = { checkins: { version: 1, savedAt: clock.now(), runs } }
  await writer.flush()
  clock.advance(5000)
  state.extra = { checkins: { version: 1, savedAt: clock.now(), runs: { ...runs } } }
  await writer.flush()
  t.equal(writer.appends, 0, 'only savedAt moved: nothing written')
  const changed: Record<string, unknown> = { ...runs, run7: checkin(2) }
  delete changed['run9']
  state.extra = { checkins: { version: 1, savedAt: clock.now(), runs: changed } }
  await writer.flush()
  t.equal(writer.appends, 1)
  const [record] = parseJournal(readFileSync(journalPath(path, lease.generation), 'utf8')).records
  t.same(record?.checkins, { set: { run7: checkin(2) }, del: ['run9'], rest: { version: 1, savedAt: clock.now() } })
  t.same(view(await readSnapshot(path)), expected(state))
})

t.test('compaction: past the threshold the journal is folded into a full write and removed', async (t) => {
  // compactAtBytes 0: the journal may grow to the snapshot's own size.
  const { path, state, writer, lease } = await setup(t, { compactAtBytes: 0 })
  await writer.flush()
  const fullSize = statSync(path).size
  let i = 0
  while (existsSync(journalPath(path, lease.generation)) || i === 0) {
    state.runs = [run('aaa', T0 + ++i), run('bbb')]
    await writer.flush()
    if (i > 100) break
  }
  t.ok(i > 1 && i < 100, `compacted after ${i} changes`)
  t.ok(writer.appends >= 1, 'some appends first')
  const compacted = onDisk(path)
  t.equal(writer.appends, i - 1, 'every change but the last was appended; the last went in the full write')
  t.equal(compacted.journalSeq, i - 1, 'the full write says which records it holds')
  t.same(view(compacted), expected(state))
  t.notOk(existsSync(journalPath(path, lease.generation)), 'the journal is gone')
  t.ok(statSync(path).size <= fullSize * 2)
  state.runs = [run('aaa', T0 + 1000)]
  await writer.flush()
  const records = parseJournal(readFileSync(journalPath(path, lease.generation), 'utf8')).records
  t.equal(records[0]?.seq, i, 'the next journal goes on from the full write')
  t.same(view(await readSnapshot(path)), expected(state))
})

t.test('a crash at every step of a compaction reads back the last state written, nothing applied twice', async (t) => {
  const { path, state, writer, lease } = await setup(t)
  await writer.flush()
  state.runs = [{ ...run('aaa'), episode: 1 }, run('bbb')]
  await writer.flush()
  state.runs = [{ ...run('aaa'), episode: 2 }, run('bbb'), run('ccc')]
  await writer.flush()
  const journal = journalPath(path, lease.generation)
  const saved = { snapshot: `${path}.before`, journal: `${journal}.before` }
  copyFileSync(path, saved.snapshot)
  copyFileSync(journal, saved.journal)
  const last = expected(state)
  // The owner's end compacts: full write, then the journal removed.
  await writer.close()
  t.notOk(existsSync(journal), 'closing compacted')
  const compacted = readFileSync(path, 'utf8')
  t.equal(onDisk(path).journalSeq, 2)

  // 1. Crashed while writing the temp file: the old snapshot and its journal, and a stray temp.
  copyFileSync(saved.snapshot, path)
  copyFileSync(saved.journal, journal)
  writeFileSync(`${path}.tmp-deadbeef0000`, compacted.slice(0, 100))
  t.same(view(await readSnapshot(path)), last, 'before the rename: the old snapshot plus its journal')
  // 2. Crashed after the rename, before the journal was removed: its records are in the snapshot.
  writeFileSync(path, compacted)
  const reread = await readSnapshot(path)
  t.same(view(reread), last, 'after the rename: the records are skipped, not applied again')
  t.equal(reread?.journalSeq, 2)
  // Proof that they are skipped, not re-applied idempotently: a compacted state that differs.
  const doctored = JSON.parse(compacted) as Record<string, unknown>
  doctored['outbox'] = { pending: ['only-in-the-snapshot'] }
  writeFileSync(path, JSON.stringify(doctored))
  t.same((await readSnapshot(path))?.outbox, { pending: ['only-in-the-snapshot'] })
  // 3. After the journal was removed.
  writeFileSync(path, compacted)
  rmSync(journal)
  t.same(view(await readSnapshot(path)), last, 'the compacted snapshot alone')
})

t.test('a torn last record is ignored, and the next write does not build on it', async (t) => {
  const { path, state, writer, lease } = await setup(t)
  const warnings: string[] = []
  const onJournalProblem = (error: CorruptFileError) => void warnings.push(error.message)
  await writer.flush()
  state.runs = [run('aaa'), run('bbb'), run('ccc')]
  await writer.flush()
  const good = expected(state)
  const journal = journalPath(path, lease.generation)
  const line = encodeRecord({ generation: lease.generation, seq: 2, writtenAt: T0, runs: { del: ['aaa', 'bbb', 'ccc'] } })
  appendFileSync(journal, line.slice(0, line.length - 10))
  t.same(view(await readSnapshot(path, { onJournalProblem })), good, 'a line without its newline: ignored')
  t.equal(parseJournal(readFileSync(journal, 'utf8')).torn, true)
  // A complete last line whose checksum fails: written in part before a crash of the machine.
  writeFileSync(journal, readFileSync(journal, 'utf8').replace(/[^\n]*$/, '') + `00000000${line.slice(8)}`)
  t.same(view(await readSnapshot(path, { onJournalProblem })), good, 'a last record with a bad checksum: ignored')
  t.same(warnings, [], 'neither is damage')
  t.ok(existsSync(journal), 'nor set aside')

  state.runs = [run('ddd')]
  await writer.flush()
  t.same(view(await readSnapshot(path, { onJournalProblem })), expected(state), 'the next write replaced what was torn')
  t.notOk(existsSync(journal), 'found a journal it had not left: a full write, which removed it')
  t.equal(writer.appends, 1)
  t.same(warnings, [])
})

t.test('a bad record before others is damage: the journal is set aside, the snapshot alone is used, and the reader says so', async (t) => {
  const { path, state, writer, lease } = await setup(t)
  await writer.flush()
  const base = expected(state)
  state.runs = [run('ccc')]
  await writer.flush()
  state.runs = [run('ddd')]
  await writer.flush()
  const journal = journalPath(path, lease.generation)
  const lines = readFileSync(journal, 'utf8').split('\n')
  lines[0] = (lines[0] as string).replace('ccc', 'cce')
  writeFileSync(journal, lines.join('\n'))
  const problems: CorruptFileError[] = []
  t.same(view(await readSnapshot(path, { setAside: false, onJournalProblem: (error) => problems.push(error) })), base, 'a looking reader: the snapshot alone')
  t.ok(existsSync(journal), 'a looking reader leaves it in place')
  t.same(view(await readSnapshot(path, { onJournalProblem: (error) => problems.push(error) })), base)
  t.equal(problems.length, 2)
  t.equal(problems[1]?.code, ErrorCodes.CORRUPT_FILE)
  t.match(problems[1]?.message, /record 1: bad checksum/)
  t.notOk(existsSync(journal), 'set aside')
  t.ok(problems[1]?.setAsidePath?.includes('.journal-1.corrupt-'), 'beside the snapshot, as a corrupt snapshot is')

  // A well-formed journal whose records do not follow the snapshot is damage too.
  writeFileSync(journal, encodeRecord({ generation: lease.generation, seq: 7, writtenAt: T0, runs: { del: ['aaa'] } }) + encodeRecord({ generation: lease.generation, seq: 8, writtenAt: T0 }))
  const more: CorruptFileError[] = []
  t.same(view(await readSnapshot(path, { onJournalProblem: (error) => more.push(error) })), base)
  t.match(more[0]?.message, /record 7 follows record 0/)
  t.same(await listOwnerIds(join(path, '..')), [onDisk(path).owner.id], 'set-aside journals are never taken for owners')
})

t.test("a stale generation's journal is ignored: a frozen owner's late appends cannot change what the adopter reads", async (t) => {
  const { path, state, writer, lease, owner } = await setup(t)
  await writer.flush()
  state.runs = [run('aaa'), run('bbb'), run('ccc')]
  await writer.flush()
  t.equal(lease.generation, 1)
  // Adopted as if the owner froze: the adopter reads snapshot + journal, writes generation 2 whole.
  const adopter: OwnerInfo = { ...currentOwner('daemon'), id: 'adopter' }
  await lease.release()
  const adoption = await adoptOrphan(path, adopter, { staleMs: 2000 })
  t.ok(adoption !== null)
  t.teardown(() => adoption?.release())
  t.same(
    adoption?.snapshot.runs.map((r) => r.hash),
    ['aaa', 'bbb', 'ccc'],
    'the adopter got the journaled run',
  )
  t.same(journalsOf(path), [], 'the old generation journal was removed with the write back')
  // The woken owner's append is refused by its fence check...
  state.runs = [run('zzz')]
  await t.rejects(writer.flush(), { code: ErrorCodes.LEASE_LOST })
  // ...and a journal of its generation written anyway is not read.
  writeFileSync(journalPath(path, 1), encodeRecord({ generation: 1, seq: 1, writtenAt: T0, runs: { del: ['aaa', 'bbb', 'ccc'] } }))
  const back = await readSnapshot(path)
  t.equal(back?.generation, 2)
  t.same(
    back?.runs.map((r) => r.hash),
    ['aaa', 'bbb', 'ccc'],
  )
  t.equal(back?.owner.id, owner.id)
  // Retiring removes every journal with the snapshot.
  await retireSnapshot(adoption!.lease)
  t.same(journalsOf(path), [])
  t.notOk(existsSync(path))
})

t.test('small snapshots are written whole; the stamp follows appends', async (t) => {
  const { path, state, writer, lease } = await setup(t, { journalFromBytes: undefined })
  await writer.flush()
  const first = statSync(path).ino
  state.runs = [run('ccc')]
  await writer.flush()
  t.equal(writer.appends, 0, 'below 64 KiB every write is whole')
  t.not(statSync(path).ino, first)
  t.same(journalsOf(path), [])
  t.notOk('journalSeq' in JSON.parse(readFileSync(path, 'utf8')), 'and the file has no journal field')

  const large = await setup(t)
  await large.writer.flush()
  const stamp = await snapshotStamp(large.path, large.lease.generation)
  t.equal(await snapshotStamp(large.path, large.lease.generation), stamp, 'nothing written: the same stamp')
  large.state.runs = [run('eee')]
  await large.writer.flush()
  t.not(await snapshotStamp(large.path, large.lease.generation), stamp, 'an append moves it')
  t.equal(await snapshotStamp(join(path, '..', 'none.json'), 1), null)
  t.equal(lease.generation, 1)
})

t.test('through the durable owner: at 10k check-in runs, one run changed costs an append under 1 KiB', async (t) => {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  const owner = currentOwner('daemon')
  const path = snapshotPath(layout, owner.id)
  const clock = new ManualClock(T0)
  const durable = await DurableOwner.acquire({ path, owner, clock, staleMs: 2000, onLost: () => undefined, onError: (error) => t.fail(String(error)) })
  const checkins: Record<string, unknown> = {}
  const hashOf = (i: number) => `run${String(i).padStart(5, '0')}abcdef`
  for (let i = 0; i < 10_000; i++) checkins[hashOf(i)] = { idx: 1, flag: 'check_in', expectNextIn: 30, firstSeenAt: T0, notifiedIdx: -1, status: 'running' }
  let runs = checkins
  durable.serve(() => ({ owner, runs: [], outbox: { pending: [] }, extra: { checkins: { version: 1, savedAt: clock.now(), runs } } }))
  await durable.commit()
  const full = statSync(path).size
  t.ok(full > 64 << 10, `the full snapshot is ${full} bytes`)
  const bytesAfterFull = durable.bytesWritten

  // An ordinary change: coalesced onto the interval, then one append.
  clock.advance(2000)
  runs = { ...runs, [hashOf(4242)]: { idx: 2, flag: 'check_in', expectNextIn: 30, firstSeenAt: clock.now(), notifiedIdx: -1, status: 'running' } }
  durable.changed()
  durable.changed()
  clock.advance(1000)
  const t0 = Date.now()
  while (durable.writes < 2 && Date.now() - t0 < 30_000) await new Promise((resolve) => setImmediate(resolve))
  t.equal(durable.appends, 1, 'one append for the coalesced changes')
  const appended = durable.bytesWritten - bytesAfterFull
  t.ok(appended < 1024, `one run's change: ${appended} bytes appended (the snapshot is ${full})`)
  t.equal(statSync(journalPath(path, durable.lease.generation)).size, appended)
  const back = await readSnapshot(path)
  t.same((back?.extra['checkins'] as { runs: Record<string, { idx: number }> }).runs[hashOf(4242)]?.idx, 2)

  // The end compacts and, with nothing outstanding, retires snapshot and journals alike.
  await durable.end(() => ({ outstanding: true }))
  t.same(journalsOf(path), [], 'compacted at the end')
  t.equal((onDisk(path).extra['checkins'] as { runs: Record<string, { idx: number }> }).runs[hashOf(4242)]?.idx, 2)
})

t.test('runs with an origin or ranks are journaled whole: a change of one rank or of a session is an append, replayed exactly', async (t) => {
  const { path, state, writer } = await setup(t)
  const rank = (r: number, extra: Partial<RankState> = {}): RankState => ({
    rank: r,
    host: `gpu-${r}`,
    pid: 10 + r,
    status: 'running',
    lastProgressAt: T0,
    expectNextIn: 60,
    deadlineAt: T0 + 60_000,
    session: 'open',
    ...extra,
  })
  const ranked = (ranks: RankState[], extra: Partial<RunInfo> = {}): RunInfo => ({ ...run('ranked'), worldSize: 2, finishOn: 'all', ranks, ...extra })
  const remote = (session: SessionState): RunInfo => ({ ...run('remote'), origin: { host: 'laptop', pid: 4, via: 'unix', session } })
  state.runs = [run('aaa'), ranked([rank(0), rank(1)]), remote('open')]
  await writer.flush()
  const appendsBefore = writer.appends
  state.runs = [run('aaa'), ranked([rank(0), rank(1, { status: 'stalled', session: 'lost' })], { status: 'stalled', episode: 1 }), remote('lost')]
  await writer.flush()
  t.equal(writer.appends, appendsBefore + 1, 'a nested change is found and appended')
  const records = parseJournal(readFileSync(journalPath(path, 1), 'utf8')).records
  t.same(
    records.at(-1)?.runs?.set?.map((r) => (r as RunInfo).hash),
    ['ranked', 'remote'],
    'only the runs whose ranks or origin changed',
  )
  t.same((await readSnapshot(path))?.runs, state.runs, 'replayed with every rank and origin field')
  state.runs = [run('aaa'), ranked([rank(0, { status: 'failed', reason: 'oom', deadlineAt: null }), rank(1)], { status: 'failed', reason: 'rank 0 on gpu-0: oom', logTail: 'Traceback' }), remote('closed')]
  await writer.flush()
  t.same((await readSnapshot(path))?.runs, state.runs, 'logTail and a rank reason replayed too')
  const good = state.runs
  state.runs = [run('aaa'), ranked([rank(0, { lastProgressAt: Number.NaN }), rank(1)])]
  await t.rejects(writer.flush(), /run ranked has a rank with a field that is not a finite number/, 'a rank time JSON would turn into null is refused')
  state.runs = good
  await writer.flush()
  const last = parseJournal(readFileSync(journalPath(path, 1), 'utf8')).records.at(-1)?.seq as number
  appendFileSync(journalPath(path, 1), encodeRecord({ generation: 1, seq: last + 1, writtenAt: T0, runs: { set: [ranked([rank(5)])] } }))
  appendFileSync(journalPath(path, 1), encodeRecord({ generation: 1, seq: last + 2, writtenAt: T0, runs: { set: [] } }))
  const problems: string[] = []
  const back = await readSnapshot(path, { onJournalProblem: (e) => problems.push(e.message) })
  t.match(problems, [/ranks\[0\]\.rank is 5, expected an integer from 0 to 1/], 'a rank beyond the world size in a record is damage, named')
  t.ok(back !== null, 'the snapshot alone is used')
})
