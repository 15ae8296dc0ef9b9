// The daemon watching Python-Aim runs (check-in files): the fixtures Python Aim wrote, synthetic
// runs through stall, recovery, finish and resume, restarts, Aim's last_run_notifications, and
// Node runs taking precedence. In-process daemons on a ManualClock move time instead of
// waiting 30 s and more; one real `aim-watcher start` process checks the real clock's path.
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { Daemon } from '../lib/daemon/daemon.js'
import { AimRuns } from '../lib/daemon/aim-runs.js'
import { checkReaderState } from '../lib/aim/checkin-reader.js'
import { eventKey } from '../lib/model.js'
import { repoPaths } from '../lib/repo.js'
import { acquireLease } from '../lib/state/lease.js'
import { snapshotPath, statusLayout } from '../lib/state/layout.js'
import { currentOwner } from '../lib/state/owner.js'
import { SNAPSHOT_FORMAT, readSnapshot, writeSnapshotAtomic } from '../lib/state/snapshot.js'
import { startEndpoint, slackReply, type FakeEndpoint } from './support/fake-endpoints.js'
import { BIN, deadOwner, makeRepo, runningRun, startDaemon, useSlack, writeOwnerSnapshot, type LogLine } from './fixtures/daemon/helpers.js'
import { tempRepo } from './support/temp-repo.js'

// Copied from the files Python Aim's own code wrote (see fixtures/aim-python/README.md).
const FIXTURES = fileURLToPath(new URL('./fixtures/aim-python/checkins', import.meta.url))
// useSlack's template replaces Aim's single message (stalled, failed); the other kinds keep
// Aim's fixed texts.
const started = (hash: string) => `Run '${hash}' started.`
const finished = (hash: string) => `Run '${hash}' finished without error.`
const recovered = (hash: string) => `✅ Run '${hash}' is reporting progress again.`
const stalled = (hash: string) => `stalled ${hash} `
/** The Slack texts that name a run, in order. */
const textsFor = (requests: Array<{ body: string }>, hash: string): string[] => requests.map((r) => (JSON.parse(r.body) as { text: string }).text).filter((text) => text.includes(hash))
const GRACE = 30
const ALL = ['started', 'stalled', 'recovered', 'finished', 'failed'] as const

// Aim-format names (the time field is informational; any will do).
const name = (hash: string, idx: number, flag: string, expect: number) => `${hash}-${String(idx).padStart(16, '0')}-${flag}-1795887686.41-${String(expect).padStart(5, '0')}`
const checkins = (root: string) => repoPaths(root).checkins
const touch = (root: string, ...names: string[]) => {
  mkdirSync(checkins(root), { recursive: true })
  for (const n of names) writeFileSync(join(checkins(root), n), '')
}
const remove = (root: string, ...names: string[]) => {
  for (const n of names) rmSync(join(checkins(root), n), { force: true })
}
const lastRun = (root: string): Record<string, number> | null => {
  const path = repoPaths(root).lastRunNotifications
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, number>) : null
}

/**
 * A temp folder removed with retries: the runtime records delivery outcomes in
 * `.aim/status/notifier-status.json` without awaiting them, so one may land while it is removed.
 */
function tempDir(t: Test): string {
  return tempRepo(t, 'aim-daemon-aim-').repo
}

/** A fixture's check-ins copied into a repo (made writable: the originals are read-only). */
function fixtureRepo(dir: string, scenario: string): string {
  const root = makeRepo(dir)
  cpSync(join(FIXTURES, scenario, '.aim', 'check_ins'), checkins(root), { recursive: true })
  chmodSync(checkins(root), 0o755)
  for (const file of readdirSync(checkins(root))) chmodSync(join(checkins(root), file), 0o644)
  return root
}

interface InProcess {
  daemon: Daemon
  lines: LogLine[]
  /** The `nth` log record (past or future) matching. */
  waitEvent(match: (line: LogLine) => boolean, nth?: number): Promise<LogLine>
  /** One scan of every repo, then every accepted event recorded. */
  settle(): Promise<void>
}

/**
 * A daemon in this process, on `clock`, its JSON log parsed. At `debug`: these tests follow
 * each Python run's transitions, the ones that send nothing too.
 */
async function inProcessDaemon(t: Test, roots: string[], clock: ManualClock): Promise<InProcess> {
  const lines: LogLine[] = []
  const waiters: Array<{ match: (line: LogLine) => boolean; nth: number; resolve: (line: LogLine) => void }> = []
  const count = (match: (line: LogLine) => boolean) => lines.filter(match)
  const daemon = new Daemon({
    repos: roots,
    grace: GRACE,
    // Well above the lease refresh of a live owner in this process: it never looks stale.
    staleMs: 10_000,
    pollMs: 50,
    jsonLogs: true,
    logLevel: 'debug',
    clock,
    // The attempt timeout runs on the manual clock: it must not fire when a test moves time
    // while a send is in flight.
    delivery: { timeoutMs: 24 * 3_600_000 },
    writeLine: (text) => {
      const line = JSON.parse(text) as LogLine
      lines.push(line)
      for (const w of [...waiters]) {
        const found = count(w.match)
        if (found.length >= w.nth) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(found[w.nth - 1] as LogLine)
        }
      }
    },
  })
  // Tests close it themselves before their folder is removed; this is for a test that failed early.
  t.teardown(() => daemon.close())
  await daemon.start()
  return {
    daemon,
    lines,
    waitEvent(match, nth = 1) {
      const found = count(match)
      if (found.length >= nth) return Promise.resolve(found[nth - 1] as LogLine)
      return new Promise((resolve) => waiters.push({ match, nth, resolve }))
    },
    async settle() {
      for (const repo of daemon.repos) {
        await repo.scanNow()
        await repo.aimRuns?.idle()
      }
    },
  }
}

const is =
  (event: string, hash: string, extra: Record<string, unknown> = {}) =>
  (l: LogLine) =>
    l.event === event && l['hash'] === hash && Object.entries(extra).every(([k, v]) => l[k] === v)

async function slack(t: Test): Promise<FakeEndpoint> {
  const endpoint = await startEndpoint(() => slackReply())
  t.teardown(() => endpoint.close())
  return endpoint
}

t.test('every fixture leads to its README outcome under the daemon', async (t) => {
  const endpoint = await slack(t)
  const dir = tempDir(t)
  const scenarios = ['running', 'finished', 'resumed', 'noexpiry', 'heartbeat'] as const
  const roots = Object.fromEntries(scenarios.map((s) => [s, fixtureRepo(join(dir, s), s)])) as Record<(typeof scenarios)[number], string>
  for (const root of Object.values(roots)) await useSlack(root, endpoint.base, ['stalled', 'recovered', 'finished', 'failed'])
  const clock = new ManualClock()
  const d = await inProcessDaemon(t, Object.values(roots), clock)
  const run = { running: 'a1b2c3d4e5f60718293a4b5c', finished: '0f1e2d3c4b5a69788796a5b4', resumed: 'c0ffee00c0ffee00c0ffee00', noexpiry: 'deadbeefdeadbeefdeadbeef', heartbeat: 'feedfacefeedfacefeedface' }

  // First sight of each, all at the same instant of the manual clock.
  t.match(await d.waitEvent(is('started', run.running)), { idx: 6, source: 'aim-checkin', key: `${run.running}@aim/started/6` })
  t.match(await d.waitEvent(is('finished', run.finished)), { idx: 5 })
  t.match(await d.waitEvent(is('started', run.resumed)), { idx: 4 }, 'resumed: idx 4 is what counts')
  t.match(await d.waitEvent(is('started', run.noexpiry)), { idx: 2 })
  t.match(await d.waitEvent(is('started', run.heartbeat)), { idx: 3 }, 'heartbeat: the progress file (idx 4) is ignored')
  await d.waitEvent(is('notified', run.finished))

  // The deadline timer announces each stall when it falls due: exactly grace past the promise.
  clock.advance((2 + GRACE) * 1000)
  t.match(await d.waitEvent(is('stalled', run.heartbeat)), { idx: 3, overdue: GRACE })
  await d.waitEvent(is('notified', run.heartbeat))
  clock.advance((30 - 2) * 1000)
  t.match(await d.waitEvent(is('stalled', run.resumed)), { idx: 4, overdue: GRACE })
  await d.waitEvent(is('notified', run.resumed))
  clock.advance((60 - 30) * 1000)
  t.match(await d.waitEvent(is('stalled', run.running)), { idx: 6, overdue: GRACE, episode: 6 })
  await d.waitEvent(is('notified', run.running))
  // A day later nothing more has happened.
  for (let hour = 0; hour < 24; hour++) clock.advance(3_600_000)
  await d.settle()

  t.same(textsFor(endpoint.requests, run.running), [stalled(run.running)], 'running: failed once, 60 s + grace after first sight')
  t.same(textsFor(endpoint.requests, run.finished), [finished(run.finished)], 'finished: never a failure')
  t.same(textsFor(endpoint.requests, run.resumed), [stalled(run.resumed)])
  t.same(textsFor(endpoint.requests, run.noexpiry), [], 'noexpiry: never')
  t.same(textsFor(endpoint.requests, run.heartbeat), [stalled(run.heartbeat)])
  t.equal(endpoint.requests.length, 4)
  // What Aim's watcher records: the stall's or finish's idx; a first sight at a check_in is not one.
  t.same(lastRun(roots.running), { [run.running]: 6 })
  t.same(lastRun(roots.finished), { [run.finished]: 5 })
  t.same(lastRun(roots.resumed), { [run.resumed]: 4 })
  t.same(lastRun(roots.heartbeat), { [run.heartbeat]: 3 })
  t.equal(lastRun(roots.noexpiry), null)
  await d.daemon.close()
})

t.test('a synthetic run: stall, recovery by a newer idx, finish, resume with a higher starting, stall again', async (t) => {
  const endpoint = await slack(t)
  const root = makeRepo(tempDir(t))
  await useSlack(root, endpoint.base, [...ALL])
  const h = 'abcdef0123456789abcdef01'
  touch(root, name(h, 1, 'starting', 0), name(h, 2, 'check_in', 10), 'notes.txt', 'a-b-c')
  const clock = new ManualClock()
  const d = await inProcessDaemon(t, [root], clock)
  t.match(await d.waitEvent(is('started', h)), { idx: 2 })
  await d.waitEvent(is('notified', h))
  clock.advance((10 + GRACE) * 1000)
  t.match(await d.waitEvent(is('stalled', h)), { idx: 2, episode: 2, key: `${h}@aim/stalled/2` })
  await d.waitEvent(is('notified', h), 2)

  // As Aim's writer does: the new file, then the older one of the same flag removed.
  touch(root, name(h, 3, 'check_in', 10))
  remove(root, name(h, 2, 'check_in', 10))
  await d.settle()
  t.match(await d.waitEvent(is('recovered', h)), { idx: 3 })
  await d.waitEvent(is('notified', h), 3)

  touch(root, name(h, 4, 'finished', 0))
  await d.settle()
  t.match(await d.waitEvent(is('finished', h)), { idx: 4 })
  await d.waitEvent(is('notified', h), 4)
  clock.advance(3_600_000)
  await d.settle()
  t.equal(d.lines.filter(is('stalled', h)).length, 1, 'a finished run never stalls')

  // Reopened: Aim continues from the highest idx across flags.
  touch(root, name(h, 5, 'starting', 0))
  await d.settle()
  t.match(await d.waitEvent(is('started', h), 2), { idx: 5 })
  await d.waitEvent(is('notified', h), 5)
  t.same(lastRun(root), { [h]: 5 }, "the resumed run's starting is recorded as Aim would")
  touch(root, name(h, 6, 'check_in', 10))
  await d.settle()
  clock.advance((10 + GRACE) * 1000)
  t.match(await d.waitEvent(is('stalled', h), 2), { idx: 6, episode: 6 })
  await d.waitEvent(is('notified', h), 6)
  await d.settle()

  t.same(textsFor(endpoint.requests, h), [started(h), stalled(h), recovered(h), finished(h), started(h), stalled(h)])
  t.same(lastRun(root), { [h]: 6 })
  const ignored = d.lines.filter((l) => l.event === 'checkin-ignored').map((l) => String(l['message']))
  t.equal(ignored.length, 2, 'each unparsable name warned about once, however many scans')
  t.match(ignored.join('\n'), /notes\.txt[\s\S]*a-b-c|a-b-c[\s\S]*notes\.txt/)
  t.same(
    d.lines.filter((l) => l.level === 'error'),
    [],
    'no errors',
  )
  await d.daemon.close()
})

t.test('files deleted between and during scans: a run whose files are gone is dropped, nothing fails', async (t) => {
  const endpoint = await slack(t)
  const root = makeRepo(tempDir(t))
  await useSlack(root, endpoint.base, [...ALL])
  const gone = '0123456789abcdef01234567'
  touch(root, name(gone, 1, 'check_in', 10))
  const clock = new ManualClock()
  const d = await inProcessDaemon(t, [root], clock)
  await d.waitEvent(is('started', gone))
  remove(root, name(gone, 1, 'check_in', 10))
  // Forgotten only after several listings without a file (one listing may miss a renewal).
  for (let i = 0; i < 3; i++) await d.settle()
  t.equal(d.daemon.repos[0]?.aimRuns?.runs.has(gone), false, 'dropped once its files are gone')
  // Churn while scans run: names listed and then deleted before they are looked at.
  let churn = true
  const churning = (async () => {
    for (let i = 0; churn; i++) {
      const n = name(`churn${i % 7}`, i + 1, 'check_in', 5)
      touch(root, n)
      await new Promise((resolve) => setImmediate(resolve))
      remove(root, n)
    }
  })()
  for (let i = 0; i < 20; i++) await d.settle()
  churn = false
  await churning
  // A churned name seen by the last listing is forgotten after as many listings as any run.
  for (let i = 0; i < 3; i++) await d.settle()
  clock.advance(3_600_000)
  await d.settle()
  t.same(textsFor(endpoint.requests, gone), [started(gone)], 'seen, and never stalled')
  t.same(
    d.lines.filter((l) => l.level === 'error'),
    [],
    'no errors',
  )
  t.equal(d.daemon.repos[0]?.aimRuns?.runs.size, 0)
  await d.daemon.close()
})

t.test('a daemon restart keeps first sights and what was notified: no re-send, no timer reset', async (t) => {
  const endpoint = await slack(t)
  const root = makeRepo(tempDir(t))
  await useSlack(root, endpoint.base)
  const r1 = '111111111111111111111111'
  const r2 = '222222222222222222222222'
  touch(root, name(r1, 2, 'check_in', 60))
  const clock = new ManualClock()
  const first = await inProcessDaemon(t, [root], clock)
  await first.waitEvent(is('started', r1))
  clock.advance((60 + GRACE) * 1000)
  await first.waitEvent(is('notified', r1))
  touch(root, name(r2, 1, 'check_in', 60))
  await first.settle()
  await first.waitEvent(is('started', r2))
  // r2 is due 90 s after this first sight; the daemon stops 50 s in.
  clock.advance(50_000)
  await first.daemon.close()
  const ownerFiles = readdirSync(statusLayout(repoPaths(root)).owners).filter((f) => f.endsWith('.json'))
  t.equal(ownerFiles.length, 1, "the daemon's snapshot is kept for its Python runs")
  const kept = await readSnapshot(join(statusLayout(repoPaths(root)).owners, ownerFiles[0] as string))
  t.match(kept?.extra, { checkins: { version: 1, runs: { [r1]: {}, [r2]: {} } } }, 'the reader state is saved by hash')
  t.match(checkReaderState(kept?.extra['checkins']).runs, { [r1]: { idx: 2, status: 'stalled', notifiedIdx: 2 }, [r2]: { idx: 1, status: 'running' } })

  const second = await inProcessDaemon(t, [root], clock)
  t.match(await second.waitEvent((l) => l.event === 'adopted'), { cause: 'daemon', kind: 'daemon' })
  await second.settle()
  t.equal(second.lines.filter((l) => l['hash'] === r1).length, 0, 'r1: stalled before, not announced again')
  // 41 s after the restart is 91 s after r2 was first seen: the promise kept counting.
  clock.advance(41_000)
  t.match(await second.waitEvent(is('stalled', r2)), { idx: 1 })
  t.ok(Number(second.lines.find(is('stalled', r2))?.['overdue']) < GRACE + 2, "stalled on the first life's clock")
  await second.waitEvent(is('notified', r2))
  await second.settle()
  t.same(textsFor(endpoint.requests, r1), [stalled(r1)])
  t.same(textsFor(endpoint.requests, r2), [stalled(r2)])
  t.same(lastRun(root), { [r1]: 2, [r2]: 1 })
  await second.daemon.close()
})

t.test("Aim's last_run_notifications: what Python's watcher notified is not sent again; ours is added", async (t) => {
  const endpoint = await slack(t)
  const root = fixtureRepo(tempDir(t), 'running')
  await useSlack(root, endpoint.base, [...ALL])
  const py = 'a1b2c3d4e5f60718293a4b5c'
  const other = '333333333333333333333333'
  const stranger = '444444444444444444444444'
  mkdirSync(repoPaths(root).notifications, { recursive: true })
  writeFileSync(repoPaths(root).lastRunNotifications, JSON.stringify({ [py]: 6, [stranger]: 9 }))
  touch(root, name(other, 1, 'starting', 0))
  const clock = new ManualClock()
  const d = await inProcessDaemon(t, [root], clock)
  t.match(await d.waitEvent(is('started', other)), { idx: 1 })
  await d.waitEvent(is('notified', other))
  await d.waitEvent(is('started', py))
  clock.advance((60 + GRACE) * 1000)
  t.match(await d.waitEvent(is('stalled', py)), { idx: 6, alreadyNotified: true })
  await d.settle()
  t.same(textsFor(endpoint.requests, py), [], "Python's watcher already notified idx 6")
  t.same(textsFor(endpoint.requests, other), [started(other)])
  t.same(lastRun(root), { [py]: 6, [stranger]: 9, [other]: 1 }, 'merged, nothing lost')
  await d.daemon.close()
})

t.test('a hash held by a live Node owner or adopted by the daemon is announced by it alone', async (t) => {
  const endpoint = await slack(t)
  const root = makeRepo(tempDir(t))
  await useSlack(root, endpoint.base, [...ALL])
  const live = '555555555555555555555555'
  const adopted = '666666666666666666666666'
  const python = '777777777777777777777777'
  // A live Node owner: this test process, holding its lease.
  const owner = currentOwner('process')
  const path = snapshotPath(statusLayout(repoPaths(root)), owner.id)
  mkdirSync(statusLayout(repoPaths(root)).owners, { recursive: true })
  const lease = await acquireLease(path, owner, { staleMs: 60_000 })
  t.teardown(() => lease.release())
  await writeSnapshotAtomic(path, { format: SNAPSHOT_FORMAT, version: 1, owner, generation: lease.generation, writtenAt: Date.now(), runs: [runningRun(live, 3600, 60)], outbox: null, extra: {} })
  // A dead one, whose run the daemon adopts (and fails: its process is gone).
  await writeOwnerSnapshot(root, deadOwner(), [runningRun(adopted, 3600, 60)])
  touch(root, name(live, 2, 'check_in', 5), name(adopted, 2, 'check_in', 5), name(python, 2, 'check_in', 5))
  const clock = new ManualClock()
  const d = await inProcessDaemon(t, [root], clock)
  await d.waitEvent(is('failed', adopted))
  await d.waitEvent(is('started', python))
  await d.settle()
  clock.advance((5 + GRACE) * 1000)
  await d.waitEvent(is('stalled', python))
  await d.waitEvent(is('notified', python), 2)
  await d.waitEvent(is('checkin-skipped', live, { eventKind: 'stalled' }))
  await d.waitEvent(is('checkin-skipped', adopted, { eventKind: 'stalled' }))
  await d.settle()
  t.same(textsFor(endpoint.requests, live), [], "the live owner's run: nothing from its check-ins")
  t.same(
    textsFor(endpoint.requests, adopted).map((x) => x.split(' ')[0]),
    ['failed'],
    'the adopted run: its own failure only',
  )
  t.same(textsFor(endpoint.requests, python), [started(python), stalled(python)])
  t.same(lastRun(root), { [python]: 2 })
  await d.daemon.close()
  await lease.release()
})

t.test('grace below 30 s is refused at the edge', async (t) => {
  t.throws(() => new Daemon({ grace: 10 }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /at least 30/ })
  const cli = spawnSync(process.execPath, [BIN, '--repo', tempDir(t), 'start', '--grace', '5'], { encoding: 'utf8' })
  t.equal(cli.status, 2)
  t.match(cli.stderr, /AIM_STATUS_OUT_OF_RANGE: Expected --grace /)
})

t.test('the real daemon process: a 1 s promise stalls at grace 30 on the real clock, then finishes', async (t) => {
  const endpoint = await slack(t)
  const root = makeRepo(tempDir(t))
  await useSlack(root, endpoint.base, [...ALL])
  const h = '888888888888888888888888'
  touch(root, name(h, 1, 'starting', 0), name(h, 2, 'check_in', 1))
  const daemon = startDaemon([root], ['--grace', '30'])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  t.match(await daemon.waitEvent((l) => l.event === 'active'), { checkinGrace: 30 })
  await daemon.waitEvent((l) => l.event === 'started' && l['hash'] === h)
  const stall = await daemon.waitEvent((l) => l.event === 'stalled' && l['hash'] === h)
  t.match(stall, { idx: 2, source: 'aim-checkin' })
  t.ok(Number(stall['overdue']) >= GRACE, `announced ${(Number(stall['overdue']) - GRACE).toFixed(3)} s after grace`)
  touch(root, name(h, 3, 'finished', 0))
  await daemon.waitEvent((l) => l.event === 'finished' && l['hash'] === h)
  await endpoint.waitForRequests(3)
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
  t.same(textsFor(endpoint.requests, h), [started(h), stalled(h), finished(h)])
  t.same(lastRun(root), { [h]: 3 })
})

t.test('absorbing a state keeps the deadline timer working on the new reader', async (t) => {
  const root = makeRepo(tempDir(t))
  const clock = new ManualClock()
  const accepted: string[] = []
  const runs = new AimRuns({
    paths: repoPaths(root),
    clock,
    graceSeconds: GRACE,
    host: 'h',
    pid: 1,
    log: { enabled: () => false, debug() {}, info() {}, warn() {}, error() {} },
    accept: async (event) => {
      accepted.push(event.key)
      return { queued: ['n'], muted: false }
    },
    nodeRuns: async () => () => false,
    onStateChanged() {},
  })
  t.teardown(() => runs.close())
  touch(root, name('absorbed', 1, 'starting', 60))
  await runs.scan()
  // A check-in with a new idx: that idx may stall (the `starting` one was notified as started).
  touch(root, name('absorbed', 2, 'check_in', 60))
  await runs.scan()
  // The same state again: a new reader whose next deadline is the one already armed.
  runs.absorb(runs.state())
  clock.advance((60 + GRACE) * 1000)
  await runs.idle()
  t.same(accepted, [eventKey({ source: 'aim', hash: 'absorbed', kind: 'started', idx: 1 }), eventKey({ source: 'aim', hash: 'absorbed', kind: 'stalled', idx: 2 })], 'the stall falls due on the timer, with no scan')
})

/** A repo for the log-level tests: 30 quiet Python runs, 5 finished ones already notified, 1 finished one not yet, one orphaned Node run. */
async function crowdedRepo(t: Test, base: string): Promise<{ root: string; pending: string; orphan: string }> {
  const root = makeRepo(tempDir(t))
  await useSlack(root, base, ['stalled', 'finished', 'failed'])
  const hash = (i: number) => `${String(i).padStart(4, '0')}${'ab'.repeat(10)}`
  for (let i = 0; i < 30; i++) touch(root, name(hash(i), 1, 'check_in', 3600))
  const notified: Record<string, number> = {}
  for (let i = 30; i < 35; i++) {
    touch(root, name(hash(i), 2, 'finished', 0))
    notified[hash(i)] = 2
  }
  mkdirSync(repoPaths(root).notifications, { recursive: true })
  writeFileSync(repoPaths(root).lastRunNotifications, JSON.stringify(notified))
  const pending = hash(35)
  touch(root, name(pending, 3, 'finished', 0))
  const orphan = 'orphaned_node_run'
  await writeOwnerSnapshot(root, deadOwner(), [runningRun(orphan)])
  return { root, pending, orphan }
}

t.test('at the default log level a start is one summary line: per-run lines only for what is sent', async (t) => {
  const endpoint = await slack(t)
  const { root, pending, orphan } = await crowdedRepo(t, endpoint.base)
  const daemon = startDaemon([root])
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === pending)
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === orphan)
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
  const lines = daemon.events()
  const summaries = lines.filter((l) => l.event === 'first-scan')
  t.equal(summaries.length, 1, 'one summary of the first scan')
  t.match(summaries[0], { level: 'info', repo: root, ownersLive: 0, orphans: 1, adopted: 1, markers: 0, aimRunning: 30, aimStalled: 0, aimFinished: 6, aimTransitions: 36, aimAlreadyNotified: 5 })
  t.equal(typeof summaries[0]?.['ms'], 'number', 'with how long the scan took')
  t.same(
    lines.filter((l) => l['source'] === 'aim-checkin').map((l) => [l.event, l['hash']]),
    [['finished', pending]],
    'of 36 Python runs, a line only for the one notification accepted for sending',
  )
  t.ok(
    lines.some((l) => l.event === 'failed' && l['hash'] === orphan && l.level === 'info'),
    'the adopted run: its failure, sent, is an info line',
  )
  t.same(
    lines.filter((l) => l.level === 'debug'),
    [],
    'nothing at debug',
  )
  t.same(textsFor(endpoint.requests, pending), [finished(pending)])
})

t.test('--log-level debug adds a line per Python run seen and a line per scan', async (t) => {
  const endpoint = await slack(t)
  const { root, pending } = await crowdedRepo(t, endpoint.base)
  const daemon = startDaemon([root], ['--log-level', 'debug'])
  // Each scan is said: a test can wait for scans instead of sleeping.
  await daemon.waitEvent((l) => l.event === 'scan' && l['aimTransitions'] === 0)
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === pending)
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
  const lines = daemon.events()
  const perRun = lines.filter((l) => l['source'] === 'aim-checkin')
  t.equal(perRun.filter((l) => l.event === 'started' && l.level === 'debug').length, 30, 'the quiet runs seen, at debug')
  t.equal(perRun.filter((l) => l.event === 'finished' && l['alreadyNotified'] === true && l.level === 'debug').length, 5, 'the runs already notified, at debug')
  t.match(
    perRun.filter((l) => l['hash'] === pending),
    [{ event: 'finished', level: 'info' }],
    'the one sent stays an info line',
  )
  t.equal(lines.filter((l) => l.event === 'first-scan').length, 1)
  const scans = lines.filter((l) => l.event === 'scan')
  t.ok(scans.length >= 2, `a line per scan (${scans.length})`)
  t.match(scans[0], { level: 'debug', aimTransitions: 36, adopted: 1 })
})
