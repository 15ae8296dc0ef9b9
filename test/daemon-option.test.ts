// watch({ daemon: true }) starts a detached aim-watcher for the repo, which reports the run when
// its training process is SIGKILLed.
import t from 'tap'
import { readFileSync, existsSync, mkdtempSync, mkdirSync } from 'node:fs'
import { spawn, spawnSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { inspectLease } from '../lib/state/lease.js'
import { daemonLeasePath, statusLayout } from '../lib/state/layout.js'
import { repoPaths } from '../lib/repo.js'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { makeRepo, startDaemon, useSlack } from './fixtures/daemon/helpers.js'

const fixture = fileURLToPath(new URL('./fixtures/watch/with-daemon.mjs', import.meta.url))

t.test('a SIGKILLed training process that asked for a daemon is reported failed by it', async (t) => {
  const repo = t.testdir()
  const child = startChild(fixture, [repo, 'asked_for_daemon'])
  await child.waitForLine('READY')
  // The daemon was started detached; wait until it holds the repo.
  const leasePath = daemonLeasePath(statusLayout(repoPaths(repo)))
  let daemonPid: number | undefined
  for (let i = 0; i < 300 && daemonPid === undefined; i++) {
    daemonPid = (await inspectLease(leasePath)).holder?.pid
    if (daemonPid === undefined) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(typeof daemonPid === 'number' && daemonPid !== child.process.pid, 'a separate daemon process holds the repo')
  t.teardown(() => {
    try {
      process.kill(daemonPid as number, 'SIGTERM')
    } catch {
      // already gone
    }
  })
  child.process.kill('SIGKILL')
  await child.exited
  const log = join(repo, '.aim', 'status', 'daemon.log')
  const reported = () => existsSync(log) && /asked_for_daemon/.test(readFileSync(log, 'utf8')) && /process gone/.test(readFileSync(log, 'utf8'))
  for (let i = 0; i < 600 && !reported(); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(reported(), 'the daemon log says the run failed: process gone')
  t.match(readFileSync(log, 'utf8'), /❗️ Run 'asked_for_daemon' failed on [^:]+: process gone/, 'and its default logger printed why and where')
})

t.test("start --announce sends Aim's start message through the notifiers; without it nothing is sent", async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const quietRoot = makeRepo(mkdtempSync(join(tmpdir(), 'aim-status-quiet-')))
  t.teardown(() => rm(quietRoot, { recursive: true, force: true }))
  const loudRoot = makeRepo(t.testdir())
  await useSlack(quietRoot, slack.base)
  await useSlack(loudRoot, slack.base)
  const quiet = startDaemon([quietRoot])
  t.teardown(() => void quiet.process.kill('SIGKILL'))
  await quiet.waitEvent((l) => l.event === 'active')
  const loud = startDaemon([loudRoot], ['--announce'])
  t.teardown(() => void loud.process.kill('SIGKILL'))
  await loud.waitEvent((l) => l.event === 'announced')
  t.same(
    slack.requests.map((r) => JSON.parse(r.body).text),
    [`Watcher is running for repo '${loudRoot}'`],
    'one message, from the daemon that was asked, naming its repo',
  )
  quiet.process.kill('SIGTERM')
  loud.process.kill('SIGTERM')
  await Promise.all([quiet.exited, loud.exited])
})

t.test("Python's aim-watcher and ours never both send: whoever holds watcher.lock first", async (t) => {
  const root = makeRepo(t.testdir())
  const lockFile = join(root, '.aim', 'ext', 'notifications', 'watcher.lock')
  mkdirSync(dirname(lockFile), { recursive: true })
  // What Python's watcher holds: an flock on watcher.lock (ext4 here, as Aim chooses).
  const python = spawn('flock', ['--no-fork', lockFile, 'sleep', '120'])
  t.teardown(() => void python.kill('SIGKILL'))
  while (spawnSync('flock', ['--nonblock', lockFile, 'true']).status === 0) await new Promise((r) => setTimeout(r, 20))
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  t.match(await daemon.waitEvent((l) => l.event === 'standby'), { lock: 'watcher.lock', holder: /^a process that is not an aim-status daemon \(a Python aim-watcher\?\) holds watcher\.lock$/ })
  python.kill('SIGKILL')
  await daemon.waitEvent((l) => l.event === 'active')
  t.not(spawnSync('flock', ['--nonblock', lockFile, 'true']).status, 0, 'a Python watcher starting now would be refused')
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
  t.equal(spawnSync('flock', ['--nonblock', lockFile, 'true']).status, 0, 'released when the daemon stops')
})
