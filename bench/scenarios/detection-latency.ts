/**
 * `detection-latency`: how late after `deadline + grace` a stall is announced. Many runs with
 * staggered deadlines; the delay of each `stalled` event, for the actor on its one timer
 * (in-process with the real clock, and through the real worker thread via Watcher events),
 * next to Aim's design: a watcher that scans every run once a second.
 * @module
 */
import { hostname } from 'node:os'
import { Watcher } from '@aim/status'
import { RepoActor } from '../../lib/actor/actor.js'
import { monotonicNow, systemClock } from '../../lib/clock.js'
import { type BenchContext, type Cell, type Scenario, goal, printTable, sleep, summarize, withTempDir } from '../support/report.js'

interface Plan {
  runs: number
  /** Seconds past the deadline before a stall. */
  grace: number
  /** Deadlines are spread evenly over this many seconds, starting at `first`. */
  first: number
  spread: number
}

/** The promise of run `i`: deadlines staggered evenly over the spread, not aligned to any tick. */
const promiseOf = (plan: Plan, i: number) => plan.first + (plan.spread * i) / plan.runs
const lastStallMs = (plan: Plan) => (plan.first + plan.spread + plan.grace) * 1000

/** The real RepoActor with the real clock, in this thread. Returns each stall's delay (ms). */
async function actorInProcess(plan: Plan): Promise<number[]> {
  const delays: number[] = []
  const actor = new RepoActor({
    clock: systemClock,
    repo: '/bench',
    host: hostname(),
    pid: process.pid,
    onEvent(event) {
      if (event.kind !== 'stalled') return
      delays.push(monotonicNow() - ((event.run.deadlineAt as number) + event.run.grace * 1000))
    },
  })
  const at = monotonicNow()
  for (let i = 0; i < plan.runs; i++) {
    const hash = `run${i}`
    actor.open({ hash, grace: plan.grace, at })
    actor.progress(hash, at, promiseOf(plan, i))
  }
  await sleep(lastStallMs(plan) + 200)
  actor.close()
  return delays
}

/** The same runs through `Watcher`: handle -> worker thread -> actor -> event on the main thread. */
async function throughWorker(plan: Plan): Promise<number[]> {
  return withTempDir('detection', async (repo) => {
    const delays: number[] = []
    const watcher = await Watcher.open({ repo, keepAlive: true, notifiers: [{ type: 'logger', events: ['finished'] }] })
    try {
      watcher.on('stalled', (event) => {
        delays.push(monotonicNow() - ((event.run.deadlineAt as number) + event.run.grace * 1000))
      })
      const runs = []
      for (let i = 0; i < plan.runs; i++) runs.push(await watcher.watch({ grace: plan.grace }))
      for (let i = 0; i < plan.runs; i++) runs[i]?.reportProgress(promiseOf(plan, i))
      await sleep(lastStallMs(plan) + 300)
    } finally {
      await watcher.close()
    }
    return delays
  })
}

/** Aim's design: every second, look at every run. */
async function pollingWatcher(plan: Plan, periodMs: number): Promise<number[]> {
  const delays: number[] = []
  const at = monotonicNow()
  const runs = Array.from({ length: plan.runs }, (_, i) => ({ stallAt: at + (promiseOf(plan, i) + plan.grace) * 1000, stalled: false }))
  const timer = setInterval(() => {
    const now = monotonicNow()
    for (const run of runs) {
      if (!run.stalled && now > run.stallAt) {
        run.stalled = true
        delays.push(now - run.stallAt)
      }
    }
  }, periodMs)
  await sleep(lastStallMs(plan) + periodMs + 200)
  clearInterval(timer)
  return delays
}

export const detectionLatency: Scenario = {
  name: 'detection-latency',
  description: 'delay from deadline+grace to the stalled event (p50/p99/max), actor vs a 1 s polling watcher',
  async run({ quick }: BenchContext) {
    const plan: Plan = quick ? { runs: 50, grace: 0.2, first: 0.2, spread: 0.3 } : { runs: 1000, grace: 0.5, first: 0.5, spread: 3 }
    const rows: Cell[][] = []
    const row = (label: string, delays: number[]) => {
      const s = summarize(delays)
      rows.push([label, `${s.n}/${plan.runs}`, s.p50, s.p99, s.max])
      return s
    }
    const inProcess = row('RepoActor, real clock, in-process', await actorInProcess(plan))
    const worker = row('Watcher: worker thread, event on main thread', await throughWorker(plan))
    row('baseline: setInterval(1000) scanning all runs', await pollingWatcher(plan, 1000))
    printTable(`detection-latency: ${plan.runs} runs, deadlines over ${plan.spread} s, grace ${plan.grace} s (ms late)`, ['watcher', 'stalls seen', 'p50 ms', 'p99 ms', 'max ms'], rows)
    const complete = inProcess.n === plan.runs && worker.n === plan.runs
    goal('every stall announced', complete, `${inProcess.n} and ${worker.n} of ${plan.runs}`)
    goal('p99 ≤ 5 ms (actor, in-process)', inProcess.p99 <= 5, `${inProcess.p99.toFixed(2)} ms`)
    goal('p99 ≤ 5 ms (through the worker thread)', worker.p99 <= 5, `${worker.p99.toFixed(2)} ms`)
  },
}
