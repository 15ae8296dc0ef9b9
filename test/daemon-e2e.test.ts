// The daemon taking over real training processes (fixtures using watch() from the build):
// killed, exited, thrown, finished cleanly, frozen and resumed. Timings are measured and
// reported, never asserted tightly.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { makeRepo, sleep, startDaemon, textsFor, useSlack } from './fixtures/daemon/helpers.js'

const TRAIN = fileURLToPath(new URL('./fixtures/daemon/train.mjs', import.meta.url))
// Above the training process's lock refresh (2 s): a live owner never looks stale.
const STALE = '5000'

/** A repo with a Slack-like notifier and an active daemon on it; all ended after the test. */
async function watchedRepo(t: Test) {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const root = makeRepo(t.testdir())
  await useSlack(root, slack.base)
  const daemon = startDaemon([root], ['--stale-ms', STALE])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  await daemon.waitEvent((l) => l.event === 'active')
  return { slack, root, daemon }
}

t.test('SIGKILL: the daemon reports the run failed once, with the reason', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const dir = t.testdir()
  const figures: number[] = []
  for (let trial = 0; trial < 3; trial++) {
    const root = makeRepo(`${dir}/trial${trial}`)
    await useSlack(root, slack.base)
    const daemon = startDaemon([root], ['--stale-ms', STALE])
    t.teardown(() => void daemon.process.kill('SIGKILL'))
    await daemon.waitEvent((l) => l.event === 'active')
    const hash = `killed_${trial}`
    const child = startChild(TRAIN, [root, hash, 'loop'])
    await child.waitForLine('READY')
    const killedAt = Date.now()
    child.process.kill('SIGKILL')
    const failed = await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === hash)
    t.equal(failed['reason'], `process gone: pid ${child.process.pid}`)
    await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === hash)
    const notified = await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === hash)
    figures.push(Date.parse(String(notified['time'])) - killedAt)
    await sleep(500)
    t.same(textsFor(slack.requests, hash), [`failed ${hash} process gone: pid ${child.process.pid}`], 'exactly one notification')
    daemon.process.kill('SIGTERM')
    t.equal((await daemon.exited).code, 0)
  }
  t.comment(`SIGKILL -> failure notified (ms): ${figures.join(', ')}`)
  t.ok(
    figures.every((ms) => ms < 10_000),
    'well within the poll and stale periods',
  )
})

t.test('exit code 3, an uncaught throw, a clean finish before exit: with no time to report them, the exit marker tells the daemon', async (t) => {
  const { slack, root, daemon } = await watchedRepo(t)
  // exitTimeout 0: the processes leave their deaths to the daemon (deaths-e2e tests the other way).
  const env = { TRAIN_EXIT_TIMEOUT: '0' }
  const exit3 = startChild(TRAIN, [root, 'exits_three', 'exit3'], { env })
  t.equal((await exit3.exited).code, 3)
  t.equal((await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'exits_three'))['reason'], 'exited with code 3')
  const thrower = startChild(TRAIN, [root, 'throws', 'throw'], { env })
  t.equal((await thrower.exited).code, 1)
  t.match((await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'throws'))['reason'], /^exited with code 1 \(Error: boom\)$/)
  const finisher = startChild(TRAIN, [root, 'finishes', 'finish'], { env })
  await finisher.waitForLine('FINISHED')
  t.equal((await finisher.exited).code, 0)
  await slack.waitForRequests(2)
  // The daemon takes over the finished process's snapshot (its pid is gone) and finds nothing unfinished.
  t.match(await daemon.waitEvent((l) => l.event === 'adopted' && l['pid'] === finisher.process.pid), { failed: 0 })
  t.same(textsFor(slack.requests, 'finishes'), [], 'a run that finished cleanly is never reported')
  t.equal(textsFor(slack.requests, 'exits_three').length, 1)
  t.equal(textsFor(slack.requests, 'throws').length, 1)
  daemon.process.kill('SIGTERM')
  await daemon.exited
})

t.test('SIGSTOP: adopted once the lease is stale, stall reported at the deadline; after SIGCONT the child stays silent', async (t) => {
  const { slack, root, daemon } = await watchedRepo(t)
  const child = startChild(TRAIN, [root, 'frozen', 'loop'])
  t.teardown(() => void child.process.kill('SIGKILL'))
  await child.waitForLine('READY')
  const stoppedAt = Date.now()
  child.process.kill('SIGSTOP')
  const adopted = await daemon.waitEvent((l) => l.event === 'adopted')
  t.match(adopted, { cause: 'stale', carried: 1, failed: 0 })
  const adoptionMs = Date.parse(String(adopted['time'])) - stoppedAt
  await daemon.waitEvent((l) => l.event === 'stalled' && l['hash'] === 'frozen')
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === 'frozen')
  t.comment(`SIGSTOP -> adoption ${adoptionMs} ms (stale-ms ${STALE})`)
  child.process.kill('SIGCONT')
  // The child's own stall timer fires at once on waking: fenced off, it must not notify. It
  // finds out it lost its lease, starts a new owner and re-establishes the run (handed back).
  await child.waitForLine('WATCHER ERROR AIM_STATUS_LEASE_LOST')
  await daemon.waitEvent((l) => l.event === 'handed-back')
  const texts = textsFor(slack.requests, 'frozen')
  t.same(
    texts.filter((x) => x.startsWith('stalled')),
    ['stalled frozen '],
    'one stall notification, from the daemon',
  )
  t.equal(texts.length, 1, 'nothing from the woken child')
  daemon.process.kill('SIGTERM')
  await daemon.exited
})
