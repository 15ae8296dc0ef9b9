// watch({ daemon: true }) starts a detached aim-watcher for the repo, which reports the run when
// its training process is SIGKILLed.
import t from 'tap'
import { eventually } from './support/eventually.js'
import { readFileSync, existsSync, mkdirSync } from 'node:fs'
import { spawn, spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { tempRepo } from './support/temp-repo.js'
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
  const daemonPid = await eventually(async () => {
    const pid = (await inspectLease(leasePath)).holder?.pid
    return pid !== undefined && pid !== child.process.pid ? pid : undefined
  }, 'a separate daemon process holds the repo')
  t.teardown(() => stopProcess(daemonPid))
  child.process.kill('SIGKILL')
  await child.exited
  // The daemon writes the `failed` transition and its logger's message as two separate lines,
  // in either order: wait for each of them, not for the first one alone.
  const log = join(repo, '.aim', 'status', 'daemon.log')
  const logText = (): string => (existsSync(log) ? readFileSync(log, 'utf8') : '')
  await eventually(() => (/asked_for_daemon/.test(logText()) && /process gone/.test(logText()) ? true : undefined), 'the daemon log says the run failed: process gone')
  await eventually(() => (/❗️ Run 'asked_for_daemon' failed on [^:]+: process gone/.test(logText()) ? true : undefined), 'the default logger printed why and where')
  t.match(logText(), /process gone/, 'the daemon log says the run failed: process gone')
  t.match(logText(), /❗️ Run 'asked_for_daemon' failed on [^:]+: process gone/, 'and its default logger printed why and where')
})

/** SIGTERMs a process that is not our child and waits until it is gone, so that no daemon outlives its test. */
async function stopProcess(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  if (!alive()) return
  process.kill(pid, 'SIGTERM')
  await eventually(() => (alive() ? undefined : true), `daemon ${pid} exits after SIGTERM`)
}

t.test("start --announce sends Aim's start message through the notifiers; without it nothing is sent", async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const quietRoot = makeRepo(tempRepo(t).repo)
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
  await eventually(() => spawnSync('flock', ['--nonblock', lockFile, 'true']).status !== 0, 'the stand-in Python watcher holds watcher.lock')
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
