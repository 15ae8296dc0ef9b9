// "Told once" with frozen processes (SIGSTOP / SIGCONT), real daemons and a loopback Slack: a
// frozen training process, a frozen daemon with a retry pending, a frozen active daemon with a
// standby. Each trial waits for events; the figures are printed, the bounds generous.
import t from 'tap'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { frozenActiveDaemon, frozenDaemonWithRetry, frozenTrainer, POLL_MS, STALE_MS } from './support/fencing.js'

const TRIALS = 2

t.test('a frozen training process: the daemon sends the stall once; woken, the process sends nothing and is handed back', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const dir = t.testdir()
  for (let trial = 0; trial < TRIALS; trial++) {
    const result = await frozenTrainer(dir, trial, slack)
    t.equal(result.sends, 1, `trial ${trial}: one stall notification`)
    t.comment(`SIGSTOP -> stall notified by the daemon: ${result.ms} ms`)
  }
})

t.test('a frozen daemon with a retry pending: the standby delivers; woken, the old daemon sends nothing', async (t) => {
  const dir = t.testdir()
  for (let trial = 0; trial < TRIALS; trial++) {
    const result = await frozenDaemonWithRetry(dir, trial)
    t.equal(result.sends, 1, `trial ${trial}: delivered once after the endpoint came back`)
    t.comment(`SIGSTOP -> delivered by the standby: ${result.ms} ms`)
  }
})

t.test('a frozen active daemon is replaced: a training process SIGKILLed afterwards is reported by the standby', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const dir = t.testdir()
  for (let trial = 0; trial < TRIALS; trial++) {
    const result = await frozenActiveDaemon(dir, trial, slack)
    t.equal(result.sends, 1, `trial ${trial}: one failure notification`)
    t.comment(`SIGKILL -> notified by the standby: ${result.ms} ms (stale ${STALE_MS} + poll ${POLL_MS} + 2000 = ${STALE_MS + POLL_MS + 2000})`)
    // Generous for a loaded 2-core machine; the bench measures it over ten trials.
    t.ok(result.ms < 20_000, 'reported, not left to a frozen daemon')
  }
})
