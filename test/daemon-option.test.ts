// watch({ daemon: true }) starts a detached aim-watcher for the repo, which reports the run when
// its training process is SIGKILLed.
import t from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { inspectLease } from '../lib/state/lease.js'
import { statusLayout } from '../lib/state/layout.js'
import { daemonLeasePath } from '../lib/daemon/repo-watch.js'
import { repoPaths } from '../lib/repo.js'

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
  t.match(readFileSync(log, 'utf8'), /❗️ Something wrong with Run 'asked_for_daemon'\. Please check\. ❗️/, 'and its default logger printed Aim\'s message')
})
