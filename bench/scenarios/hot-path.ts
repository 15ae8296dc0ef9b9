/**
 * `hot-path`: what `run.reportProgress()` costs a training loop, next to reading the clock and
 * next to the naive design (one message to the watcher thread per call); and whether ten
 * million calls leave anything behind on the heap.
 * @module
 */
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { Watcher, type Run } from '@aim/status'
import { type BenchContext, type Scenario, formatBytes, goal, nowNs, printTable, settledHeap, withTempDir } from '../support/report.js'

/** ns per iteration of `body`, best of `rounds` rounds (the least disturbed by the other core's tenants). */
function timeLoop(iterations: number, rounds: number, body: (iterations: number) => number): { nsPerCall: number; sink: number } {
  let best = Infinity
  let sink = 0
  for (let r = 0; r < rounds; r++) {
    const t0 = nowNs()
    sink += body(iterations)
    const ns = (nowNs() - t0) / iterations
    if (ns < best) best = ns
  }
  return { nsPerCall: best, sink }
}

function clockLoop(iterations: number): number {
  let sum = 0
  for (let i = 0; i < iterations; i++) sum += performance.now()
  return sum
}

function reportLoop(run: Run, iterations: number): number {
  for (let i = 0; i < iterations; i++) run.reportProgress(3)
  return iterations
}

function roundRobinLoop(runs: Run[], iterations: number): number {
  let j = 0
  for (let i = 0; i < iterations; i++) {
    ;(runs[j] as Run).reportProgress(3)
    if (++j === runs.length) j = 0
  }
  return iterations
}

// The naive watcher thread: counts the heartbeats and says when it has them all.
const NAIVE_WORKER = `
const { parentPort } = require('node:worker_threads')
let received = 0, expected = Infinity, last = 0
parentPort.on('message', (m) => {
  if (m.kind === 'expect') { expected = m.count; received = 0 }
  else { received++; last = m.at }
  if (received === expected) parentPort.postMessage({ received, last })
})
`

/** ns per `postMessage` of a heartbeat, and ns per heartbeat until the thread has received them all. */
async function naiveMessagePerCall(iterations: number, rounds: number): Promise<{ postNs: number; drainedNs: number }> {
  const worker = new Worker(NAIVE_WORKER, { eval: true })
  try {
    await once(worker, 'online')
    let postNs = Infinity
    let drainedNs = Infinity
    for (let r = 0; r < rounds; r++) {
      worker.postMessage({ kind: 'expect', count: iterations })
      const done = once(worker, 'message')
      const t0 = nowNs()
      for (let i = 0; i < iterations; i++) worker.postMessage({ kind: 'progress', hash: 'a1b2c3d4e5f6a7b8c9d0e1f2', at: performance.now(), expectNextIn: 3 })
      const t1 = nowNs()
      await done
      const t2 = nowNs()
      postNs = Math.min(postNs, (t1 - t0) / iterations)
      drainedNs = Math.min(drainedNs, (t2 - t0) / iterations)
    }
    return { postNs, drainedNs }
  } finally {
    await worker.terminate()
  }
}

export const hotPath: Scenario = {
  name: 'hot-path',
  description: 'reportProgress ns/call vs performance.now() vs a message per call; heap growth over 10M calls',
  async run({ quick }: BenchContext) {
    const calls = quick ? 100_000 : 5_000_000
    const rounds = quick ? 1 : 5
    const naiveCalls = quick ? 5_000 : 200_000
    const growthCalls = quick ? 200_000 : 10_000_000

    await withTempDir('hot-path', async (repo) => {
      // A logger that listens only for finishes: nothing here finishes, so nothing is printed.
      const watcher = await Watcher.open({ repo, keepAlive: true, notifiers: [{ type: 'logger', events: ['finished'] }] })
      try {
        const one = await watcher.watch({ grace: 100 })
        const hundred: Run[] = []
        for (let i = 0; i < 100; i++) hundred.push(await watcher.watch({ grace: 100 }))

        // Warm up every loop so each is measured optimised.
        clockLoop(calls / 10)
        reportLoop(one, calls / 10)
        roundRobinLoop(hundred, calls / 10)

        const clock = timeLoop(calls, rounds, clockLoop)
        const single = timeLoop(calls, rounds, (n) => reportLoop(one, n))
        const many = timeLoop(calls, rounds, (n) => roundRobinLoop(hundred, n))
        const naive = await naiveMessagePerCall(naiveCalls, rounds)

        const ratio = (ns: number) => `${(ns / clock.nsPerCall).toFixed(2)}x`
        printTable(
          'hot-path: cost per call (best of rounds)',
          ['what', 'calls', 'ns/call', 'vs clock read'],
          [
            ['performance.now() (baseline)', calls, clock.nsPerCall, '1.00x'],
            ['reportProgress(3), 1 run', calls, single.nsPerCall, ratio(single.nsPerCall)],
            ['reportProgress(3), 100 runs round-robin', calls, many.nsPerCall, ratio(many.nsPerCall)],
            ['naive: postMessage per call (send only)', naiveCalls, naive.postNs, ratio(naive.postNs)],
            ['naive: postMessage per call (until received)', naiveCalls, naive.drainedNs, ratio(naive.drainedNs)],
          ],
        )

        // Heap growth: warm, settle, 10M calls, settle. The clock loop is the noise floor.
        const floorBefore = settledHeap()
        clockLoop(growthCalls)
        const floorAfter = settledHeap()
        reportLoop(one, growthCalls / 10)
        const before = settledHeap()
        reportLoop(one, growthCalls)
        const after = settledHeap()
        const growth = after.heapUsed - before.heapUsed
        const floor = floorAfter.heapUsed - floorBefore.heapUsed
        printTable(
          'hot-path: heap after GC',
          ['loop', 'calls', 'heapUsed growth', 'bytes/call'],
          [
            ['performance.now() (noise floor)', growthCalls, formatBytes(floor), floor / growthCalls],
            ['reportProgress(3), 1 run', growthCalls, formatBytes(growth), growth / growthCalls],
          ],
        )

        const worst = Math.max(single.nsPerCall, many.nsPerCall)
        goal('reportProgress within 2x of a clock read', worst <= 2 * clock.nsPerCall, `${ratio(worst)} (${worst.toFixed(1)} ns vs ${clock.nsPerCall.toFixed(1)} ns)`)
        const cheaper = naive.postNs / worst
        goal('reportProgress at least 20x cheaper than a message per call', cheaper >= 20, `${cheaper.toFixed(0)}x cheaper than the send alone, ${(naive.drainedNs / worst).toFixed(0)}x until received`)
        // A retained byte per call would be 10 MB over 10M calls; under 64 KiB is GC noise.
        goal(`no heap growth over ${growthCalls.toLocaleString('en-US')} calls`, growth < 64 * 1024, `${formatBytes(growth)}, noise floor ${formatBytes(floor)}`)
      } finally {
        await watcher.close()
      }
    })
  },
}
