/**
 * `fencing`: "told once" when processes freeze (SIGSTOP / SIGCONT), over ten trials each:
 * - a frozen training process (2 s promise, 1 s grace): the daemon sends the stall, the woken
 *   process must send nothing;
 * - a frozen daemon with a retry pending: its standby delivers, the woken daemon sends nothing;
 * - a frozen active daemon with a standby: a training process SIGKILLed afterwards is reported
 *   by the standby, within stale + poll + 2 s.
 * Sends per event is the figure that matters (goal: exactly 1 in every trial); the baseline is
 * the guarantee itself. Real processes: daemons from `dist/`, loopback Slack endpoints.
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEndpoint, slackReply } from '../../test/support/fake-endpoints.js'
import { frozenActiveDaemon, frozenDaemonWithRetry, frozenTrainer, POLL_MS, STALE_MS, type TrialResult } from '../../test/support/fencing.js'
import { type BenchContext, type Scenario, goal, printTable, summarize } from '../support/report.js'

export const fencing: Scenario = {
  name: 'fencing',
  description: 'frozen trainer / frozen daemon with a retry / frozen active daemon: sends per event over 10 trials (goal: 1 each)',
  async run({ quick }: BenchContext) {
    const trials = quick ? 1 : 10
    const dir = await mkdtemp(join(tmpdir(), 'aim-status-bench-fencing-'))
    const slack = await startEndpoint(() => slackReply())
    try {
      const cases: Array<{ name: string; figure: string; run: (trial: number) => Promise<TrialResult> }> = [
        { name: 'frozen training process', figure: 'SIGSTOP -> stall notified by the daemon', run: (trial) => frozenTrainer(dir, trial, slack) },
        { name: 'frozen daemon, retry pending', figure: 'SIGSTOP -> delivered by the standby', run: (trial) => frozenDaemonWithRetry(dir, trial) },
        { name: 'frozen active daemon', figure: 'SIGKILL -> notified by the standby', run: (trial) => frozenActiveDaemon(dir, trial, slack) },
      ]
      const rows = []
      let allOnce = true
      let worstKill = 0
      for (const c of cases) {
        const results: TrialResult[] = []
        for (let trial = 0; trial < trials; trial++) results.push(await c.run(trial))
        const sends = results.map((r) => r.sends)
        const ms = summarize(results.map((r) => r.ms))
        allOnce &&= sends.every((n) => n === 1)
        if (c.name === 'frozen active daemon') worstKill = ms.max
        rows.push([c.name, trials, sends.join(' '), c.figure, `${Math.round(ms.p50)} ms`, `${Math.round(ms.max)} ms`])
      }
      printTable(`fencing: sends per event (stale ${STALE_MS} ms, poll ${POLL_MS} ms)`, ['scenario', 'trials', 'sends per trial', 'figure', 'p50', 'max'], rows)
      goal('every event sent exactly once', allOnce, allOnce ? '1 in every trial' : 'see the table')
      goal(`a SIGKILL behind a frozen daemon reported within stale + poll + 2 s (${STALE_MS + POLL_MS + 2000} ms)`, worstKill <= STALE_MS + POLL_MS + 2000, `max ${Math.round(worstKill)} ms`)
    } finally {
      await slack.close()
      await rm(dir, { recursive: true, force: true })
    }
  },
}
