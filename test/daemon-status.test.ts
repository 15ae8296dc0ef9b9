// `aim-watcher status`: every run the repo knows (Node owners' snapshots and Python check-ins),
// with name and experiment; a run whose owner is dead and that nobody watches is shown so; the
// idle exit of on-demand daemons, on a manual clock.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { formatCheckinName } from '../lib/aim/checkins.js'
import { IdleExit } from '../lib/daemon/idle-exit.js'
import { formatStatus, repoStatus, shownStatus } from '../lib/daemon/status.js'
import { startChild } from './support/child.js'
import { BIN, deadOwner, makeRepo, runningRun, writeOwnerSnapshot } from './fixtures/daemon/helpers.js'
import { eventually } from './support/eventually.js'

t.test('a dead owner nobody watches, and a Python run, are shown for what they are', async (t) => {
  const repo = makeRepo(t.testdir())
  const owner = deadOwner()
  await writeOwnerSnapshot(repo, owner, [{ ...runningRun('orphan_run', 60), name: 'resnet50', experiment: 'baseline' }])
  mkdirSync(join(repo, '.aim', 'check_ins'), { recursive: true })
  writeFileSync(join(repo, '.aim', 'check_ins', formatCheckinName({ hash: 'py_run', idx: 3, flag: 'check_in', time: Date.now() / 1000, expectNextIn: 60 })), '')
  const status = await repoStatus(repo)
  t.equal(status.daemon, null)
  t.match(status.runs, [
    { hash: 'orphan_run', source: 'node', status: 'running', name: 'resnet50', experiment: 'baseline', watchedBy: 'nobody', owner: { kind: 'process', pid: owner.pid, state: 'dead' } },
    { hash: 'py_run', source: 'python', status: 'running', expectNextIn: 60, watchedBy: 'nobody', owner: { kind: 'python', pid: null } },
  ])
  t.equal(shownStatus(status.runs[0]!), 'owner dead, unwatched', 'not `running`')
  const table = formatStatus(status)
  t.match(table, /daemon: none \(runs whose process dies are not reported/)
  t.match(table, /orphan_run\s+owner dead, unwatched\s+process \d+@\S+ dead\s+resnet50\s+baseline/)
  t.match(table, /py_run\s+running, unwatched\s+python \(no daemon\)/)
})

t.test('status --watch --json prints one document per refresh until interrupted', async (t) => {
  const repo = makeRepo(t.testdir())
  await writeOwnerSnapshot(repo, deadOwner(), [runningRun('watched_live', 60)])
  const child = startChild(BIN, ['--repo', repo, 'status', '--watch', '--json', '--interval', '0.2'])
  await child.waitForLine(/^\{/)
  await eventually(() => child.lines.filter((l) => l.startsWith('{')).length >= 2, 'a second refresh')
  child.process.kill('SIGINT')
  t.same(await child.exited, { code: 0, signal: null }, 'ends cleanly on SIGINT')
  const documents = child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { runs: Array<{ hash: string; watchedBy: string }> })
  t.ok(documents.length >= 2)
  for (const d of documents) t.match(d.runs, [{ hash: 'watched_live', watchedBy: 'nobody' }])
})

t.test('the idle exit counts only time with nothing to watch', async (t) => {
  const clock = new ManualClock()
  let busy = true
  let idle = 0
  const exit = new IdleExit({ clock, idleMs: 10_000, checkEveryMs: 1000, busy: () => busy, onIdle: () => idle++ })
  exit.start()
  clock.advance(60_000)
  t.equal(idle, 0, 'busy: never idle')
  busy = false
  clock.advance(9_000)
  t.equal(idle, 0, 'not yet: idle for less than idleMs (counted from the first check that found nothing)')
  busy = true
  clock.advance(1000)
  busy = false
  clock.advance(9_500)
  t.equal(idle, 0, 'something to watch again restarted the count')
  clock.advance(1_500)
  t.equal(idle, 1, 'idle for idleMs: onIdle once')
  clock.advance(60_000)
  t.equal(idle, 1, 'and only once')
  t.equal(clock.pendingTimers, 0, 'no timer left')
})
