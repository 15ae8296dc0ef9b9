// The real daemon's writes follow change, not size: thousands of idle Python runs cost no write
// of its snapshot across listings, a renewal of 100 of them costs an append of a few hundred
// bytes each, and a daemon SIGKILLed after the append is carried on by the next from snapshot and
// journal: no first sight lost, nothing announced twice.
import t from 'tap'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CheckinRunState } from '../lib/aim/checkin-reader.js'
import { writeLastRunNotifications } from '../lib/aim/last-run-notifications.js'
import { repoPaths } from '../lib/repo.js'
import { snapshotStamp } from '../lib/state/journal.js'
import { statusLayout } from '../lib/state/layout.js'
import { readSnapshot, type Snapshot } from '../lib/state/snapshot.js'
import { makeRepo, startDaemon, type DaemonChild } from './fixtures/daemon/helpers.js'
import { eventually } from './support/eventually.js'
import { tempRepo } from './support/temp-repo.js'

const RUNS = 3000
const RENEWING = 100
// The last runs are new to Aim's watcher and announced; the others it had already notified.
const ANNOUNCED = 3
const name = (hash: string, idx: number) => `${hash}-${String(idx).padStart(16, '0')}-check_in-1795887686.41-03600`
const hashOf = (i: number) => `${String(i).padStart(8, '0')}feedfacecafebeef`

/** The daemon's own snapshot (journal replayed): the one whose owner is that process. */
async function daemonSnapshot(root: string, pid: number): Promise<{ path: string; snapshot: Snapshot } | null> {
  const owners = statusLayout(repoPaths(root)).owners
  for (const file of readdirSync(owners).filter((f) => /^[\w-]+\.json$/.test(f))) {
    const path = join(owners, file)
    const snapshot = await readSnapshot(path, { setAside: false }).catch(() => null)
    if (snapshot?.owner.pid === pid) return { path, snapshot }
  }
  return null
}

const checkinRuns = (snapshot: Snapshot | undefined): Record<string, CheckinRunState> => (snapshot?.extra['checkins'] as { runs?: Record<string, CheckinRunState> } | undefined)?.runs ?? {}

/** Bytes the process has written (any file or pipe), from /proc. */
const wchar = (pid: number): number => Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1])
const logBytes = (daemon: DaemonChild): number => daemon.lines.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0)

/** Per-run lines (a first sight no notifier wants is a debug line), and the default staleness (see below; the last `--stale-ms` given counts). */
const DAEMON_ARGS = ['--log-level', 'debug', '--stale-ms', '10000']

t.test(`${RUNS} idle Python runs: no snapshot write across listings; ${RENEWING} renewing: small appends; SIGKILL and a new daemon: nothing lost or repeated`, async (t) => {
  const root = makeRepo(tempRepo(t, 'aim-daemon-journal-').repo)
  const folder = repoPaths(root).checkins
  mkdirSync(folder, { recursive: true })
  for (let i = 0; i < RUNS; i++) writeFileSync(join(folder, name(hashOf(i), 1)), '')
  // As in a repo Python's aim-watcher watched before: thousands of announcements at once would
  // fill the outbox (journaled whole) and make the first compaction's timing a matter of luck.
  await writeLastRunNotifications(repoPaths(root).lastRunNotifications, new Map(Array.from({ length: RUNS - ANNOUNCED }, (_, i) => [hashOf(i), 1])))
  // The default staleness (10 s), not the helpers' 2 s: an owner silent for half its staleness
  // claims its next generation, and a new generation is a full write. On a loaded machine a
  // daemon can stall for a second; this test is about appends.
  const first = startDaemon([root], DAEMON_ARGS)
  t.teardown(() => void first.process.kill('SIGKILL'))
  t.match(await first.waitEvent((l) => l.event === 'daemon-started'), { staleMs: 10_000 }, 'the last --stale-ms given counts')
  await first.waitEvent((l) => l.event === 'active')
  const pid = first.process.pid as number
  const own = await eventually(
    async () => {
      const found = await daemonSnapshot(root, pid)
      return found !== null && Object.keys(checkinRuns(found.snapshot)).length === RUNS ? found : null
    },
    'every run in the daemon snapshot',
    { timeoutMs: 90_000, intervalMs: 200 },
  )
  t.ok(readFileSync(own.path).length > 64 << 10, 'a snapshot large enough to journal')
  const announced = () => first.events().filter((l) => l.event === 'started' && l['alreadyNotified'] !== true).length
  await eventually(() => announced() >= ANNOUNCED, 'the runs new to Aim announced', { timeoutMs: 60_000, intervalMs: 100 })
  t.equal(announced(), ANNOUNCED, 'only the runs new to Aim')

  // Each new name changes the folder's mtime, so the reader lists the whole folder again; an
  // unparsable name is logged once, which says that listing happened.
  let listings = 0
  const listing = async (): Promise<void> => {
    const i = listings++
    writeFileSync(join(folder, `not-a-checkin-${i}`), '')
    await first.waitEvent((l) => l.event === 'checkin-ignored' && String(l['message']).includes(`not-a-checkin-${i}`))
  }
  // Quiet first: the announcements' outcomes may still be on their way to the snapshot.
  let stamp = await snapshotStamp(own.path, own.snapshot.generation)
  await eventually(
    async () => {
      await listing()
      const now = await snapshotStamp(own.path, own.snapshot.generation)
      const same = now === stamp
      stamp = now
      return same
    },
    'a listing that wrote nothing',
    { timeoutMs: 60_000, intervalMs: 0 },
  )
  const generation = own.snapshot.generation
  const quiet = await snapshotStamp(own.path, generation)
  const wcharQuiet = wchar(pid) - logBytes(first)
  for (let i = 1; i <= 4; i++) await listing()
  t.equal(await snapshotStamp(own.path, generation), quiet, 'four full listings of an unchanged folder: snapshot and journal untouched')
  const idleBytes = wchar(pid) - logBytes(first) - wcharQuiet
  t.ok(idleBytes < 4096, `written meanwhile besides the log: ${idleBytes} bytes`)

  // 100 runs renew: a new check-in each, the old one removed, as Aim's writer does.
  const before = wchar(pid) - logBytes(first)
  for (let i = 0; i < RENEWING; i++) {
    writeFileSync(join(folder, name(hashOf(i), 2)), '')
    rmSync(join(folder, name(hashOf(i), 1)))
  }
  const renewed = await eventually(
    async () => {
      const found = await daemonSnapshot(root, pid)
      const runs = checkinRuns(found?.snapshot)
      return Array.from({ length: RENEWING }, (_, i) => runs[hashOf(i)]?.idx).every((idx) => idx === 2) ? found : null
    },
    'the renewals in the daemon snapshot',
    { timeoutMs: 60_000, intervalMs: 100 },
  )
  const perRenewal = (wchar(pid) - logBytes(first) - before) / RENEWING
  t.comment(`bytes written per renewal at ${RUNS} runs: ${perRenewal.toFixed(0)} (the full snapshot is ${readFileSync(own.path).length} bytes)`)
  t.ok(perRenewal < 1024, `${perRenewal.toFixed(0)} bytes per renewal`)
  t.ok(
    readdirSync(join(own.path, '..')).some((f) => f.endsWith(`.journal-${generation}`)),
    'appended to the journal',
  )
  const sights = new Map(Array.from({ length: RENEWING }, (_, i) => [hashOf(i), checkinRuns(renewed.snapshot)[hashOf(i)]?.firstSeenAt]))

  // Killed with the renewals in its journal only; the next daemon adopts snapshot + journal.
  first.process.kill('SIGKILL')
  await first.exited
  const second = startDaemon([root], DAEMON_ARGS)
  t.teardown(() => void second.process.kill('SIGKILL'))
  await second.waitEvent((l) => l.event === 'adopted')
  const next = await eventually(
    async () => {
      const found = await daemonSnapshot(root, second.process.pid as number)
      return Object.keys(checkinRuns(found?.snapshot)).length === RUNS ? found : null
    },
    'the runs carried into the new daemon snapshot',
    { timeoutMs: 60_000, intervalMs: 200 },
  )
  const carried = checkinRuns(next.snapshot)
  t.same(
    Array.from({ length: RENEWING }, (_, i) => carried[hashOf(i)]?.idx),
    Array.from({ length: RENEWING }, () => 2),
    'the renewed idx carried on',
  )
  t.same(new Map(Array.from({ length: RENEWING }, (_, i) => [hashOf(i), carried[hashOf(i)]?.firstSeenAt])), sights, 'first sights from the journal kept, not restarted')
  await second.waitEvent((l) => l.event === 'checkin-ignored')
  for (let i = 0; i < 2; i++) {
    writeFileSync(join(folder, `after-restart-${i}`), '')
    await second.waitEvent((l) => l.event === 'checkin-ignored' && String(l['message']).includes(`after-restart-${i}`))
  }
  t.same(
    second.events().filter((l) => l.event === 'started'),
    [],
    'nothing announced again',
  )
  second.process.kill('SIGTERM')
  t.equal((await second.exited).code, 0)
})
