// `aim-watcher status`: every run the repo knows (Node owners' snapshots and Python check-ins),
// with name and experiment; a run whose owner is dead and that nobody watches is shown so; the
// idle exit of on-demand daemons, on a manual clock.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ManualClock } from '../lib/clock.js'
import { formatCheckinName } from '../lib/aim/checkins.js'
import { IdleExit } from '../lib/daemon/idle-exit.js'
import { MAX_RANK_LINES, formatStatus, repoStatus, shownStatus } from '../lib/daemon/status.js'
import { monotonicNow } from '../lib/clock.js'
import type { RankState, RunInfo } from '../lib/model.js'
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

t.test('a run over a session shows where it reports from; a run of many ranks has a line per rank beneath its row', async (t) => {
  const repo = makeRepo(t.testdir())
  const now = monotonicNow()
  const ranks: RankState[] = [
    { rank: 0, host: 'gpu-1', pid: 10, status: 'running', lastProgressAt: now - 3000, expectNextIn: 60, deadlineAt: now + 57_000, session: 'open' },
    { rank: 1, host: 'gpu-2\u001b[31m', pid: 11, status: 'stalled', lastProgressAt: now - 300_000, expectNextIn: 60, deadlineAt: now - 240_000, session: 'lost' },
  ]
  const remote: RunInfo = { ...runningRun('remote_run', 60), origin: { host: 'laptop', pid: 4242, via: 'tcp', session: 'lost' } }
  const local: RunInfo = { ...runningRun('socket_run', 60), origin: { host: 'head', pid: 77, via: 'unix', session: 'open' } }
  const ranked: RunInfo = { ...runningRun('ranked_run', 60), status: 'stalled', episode: 1, worldSize: 4, finishOn: 'all', ranks }
  const many: RunInfo = { ...runningRun('wide_run', 60), worldSize: 100, ranks: Array.from({ length: 100 }, (_, rank) => ({ ...ranks[0]!, rank })) }
  await writeOwnerSnapshot(repo, deadOwner(), [remote, local, ranked, many])
  const status = await repoStatus(repo, { now })
  t.match(
    status.runs.find((r) => r.hash === 'ranked_run'),
    {
      worldSize: 4,
      finishOn: 'all',
      ranks: [
        { rank: 0, session: 'open' },
        { rank: 1, session: 'lost' },
      ],
    },
    'the JSON rows carry the fields',
  )
  t.match(
    status.runs.find((r) => r.hash === 'remote_run'),
    { origin: { host: 'laptop', pid: 4242, via: 'tcp', session: 'lost' } },
  )
  const table = formatStatus(status, now)
  t.match(table, /remote_run\s+owner dead, unwatched\s+remote laptop pid 4242 \(session lost\), via process \d+@\S+ dead/)
  t.match(table, /socket_run\s+owner dead, unwatched\s+local head pid 77 \(session open\)/)
  t.match(table, /ranked_run\s+owner dead, unwatched\s+2 of 4 ranks, via process/)
  const lines = table.split('\n')
  const at = lines.findIndex((l) => l.startsWith('ranked_run'))
  t.match(lines[at + 1], /^ {4}rank 0\s+gpu-1\s+running\s+3\.0s ago\s+session open$/)
  t.match(lines[at + 2], /^ {4}rank 1\s+gpu-2\S*\s+stalled\s+5m ago\s+session lost$/)
  t.notOk(table.includes('\u001b'), 'a host name from a file never sends escapes to the terminal')
  t.equal(lines.filter((l) => /^ {4}rank \d+ /.test(l)).length, 2 + MAX_RANK_LINES, 'a wide run shows a bounded number of ranks')
  t.ok(lines.includes(`    … ${100 - MAX_RANK_LINES} more ranks (status --json lists every rank)`))

  const child = startChild(BIN, ['--repo', repo, 'status', '--json'])
  t.same(await child.exited, { code: 0, signal: null })
  const document = JSON.parse(child.lines.join('\n')) as { runs: RunInfo[] }
  t.equal(document.runs.find((r) => r.hash === 'wide_run')?.ranks?.length, 100, 'the JSON output lists every rank')
})
