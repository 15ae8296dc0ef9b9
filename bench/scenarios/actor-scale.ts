/**
 * `actor-scale`: heartbeats per second `RepoActor.progress` handles at 1k, 10k and 100k runs,
 * memory per run, and the cost of one deadline-heap update as the heap grows to 1M keys
 * (which should grow as log n).
 * @module
 */
import type { RepoActor } from '../../lib/actor/actor.js'
import { IndexedMinHeap } from '../../lib/actor/heap.js'
import { monotonicNow } from '../../lib/clock.js'
import { type BenchContext, type Cell, type Scenario, formatBytes, goal, goalNotChecked, nowNs, printTable, seededRandom, settledHeap } from '../support/report.js'
import { benchActor, openRuns, promiseOf } from '../support/runs.js'

/**
 * Heartbeats per second: `order[k]` picks the run of the k-th heartbeat; report times move
 * forward by a microsecond each, as real ones would. Best of `rounds`.
 */
function heartbeatsPerSecond(actor: RepoActor, hashes: string[], order: Int32Array, rounds: number): number {
  let best = 0
  let at = monotonicNow()
  for (let r = 0; r < rounds; r++) {
    const t0 = nowNs()
    for (let k = 0; k < order.length; k++) {
      const i = order[k] as number
      at += 0.001
      actor.progress(hashes[i] as string, at, promiseOf(i))
    }
    const perSecond = order.length / ((nowNs() - t0) / 1e9)
    if (perSecond > best) best = perSecond
  }
  return best
}

/** ns per `set` of an existing key to a new random priority, in a heap of `n` keys. */
function heapUpdateNs(n: number, updates: number): number {
  const random = seededRandom(n)
  const heap = new IndexedMinHeap<number>()
  for (let i = 0; i < n; i++) heap.set(i, random() * 1e6)
  const keys = new Int32Array(updates)
  const priorities = new Float64Array(updates)
  for (let k = 0; k < updates; k++) {
    keys[k] = Math.floor(random() * n)
    priorities[k] = random() * 1e6
  }
  // Warm-up pass, then the measured pass.
  for (let k = 0; k < Math.min(updates, 100_000); k++) heap.set(keys[k] as number, priorities[k] as number)
  const t0 = nowNs()
  for (let k = 0; k < updates; k++) heap.set(keys[k] as number, priorities[k] as number)
  return (nowNs() - t0) / updates
}

export const actorScale: Scenario = {
  name: 'actor-scale',
  description: 'RepoActor heartbeats/s at 1k/10k/100k runs, bytes per run, heap update ns vs log2 n',
  async run({ quick }: BenchContext) {
    const sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]
    const beats = quick ? 50_000 : 1_000_000
    const rounds = quick ? 1 : 3
    const random = seededRandom()

    const rows: Cell[][] = []
    let at100k = { roundRobin: 0, shuffled: 0 }
    let worstPerRun = 0
    for (const n of sizes) {
      const before = settledHeap()
      const actor = benchActor()
      const hashes = openRuns(actor, n, { slots: true })
      const after = settledHeap()
      const heapPerRun = (after.heapUsed - before.heapUsed) / n
      const totalPerRun = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / n
      worstPerRun = Math.max(worstPerRun, totalPerRun)

      const roundRobinOrder = new Int32Array(beats)
      const shuffledOrder = new Int32Array(beats)
      for (let k = 0; k < beats; k++) {
        roundRobinOrder[k] = k % n
        shuffledOrder[k] = Math.floor(random() * n)
      }
      const roundRobin = heartbeatsPerSecond(actor, hashes, roundRobinOrder, rounds)
      const shuffled = heartbeatsPerSecond(actor, hashes, shuffledOrder, rounds)
      if (n === 100_000) at100k = { roundRobin, shuffled }
      rows.push([n, roundRobin, shuffled, formatBytes(heapPerRun), formatBytes(totalPerRun)])
      actor.close()
    }
    printTable('actor-scale: RepoActor.progress (best of rounds)', ['runs', 'heartbeats/s round-robin', 'heartbeats/s random order', 'heap/run', 'heap+buffers/run'], rows)

    const heapSizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000, 1_000_000]
    const heapRows: Cell[][] = []
    for (const n of heapSizes) {
      const ns = heapUpdateNs(n, quick ? 100_000 : 1_000_000)
      heapRows.push([n, Math.log2(n), ns, ns / Math.log2(n)])
    }
    printTable('actor-scale: IndexedMinHeap.set (update of an existing key)', ['keys n', 'log2 n', 'ns/op', 'ns/op ÷ log2 n'], heapRows)

    if (at100k.roundRobin > 0) {
      const worst = Math.min(at100k.roundRobin, at100k.shuffled)
      goal('≥ 1M heartbeats/s processed at 100k runs', worst >= 1e6, `${(worst / 1e6).toFixed(2)}M/s (the slower of the two orders)`)
    } else {
      goalNotChecked('≥ 1M heartbeats/s processed at 100k runs', '--quick stops at 10k runs')
    }
    goal('≤ 1 KiB per run', worstPerRun <= 1024, `${formatBytes(worstPerRun)} (heap + shared slot buffers, worst size)`)
    const perLog = heapRows.map((r) => r[3] as number)
    const spread = Math.max(...perLog) / Math.min(...perLog)
    goal('heap update cost grows as log n (ns/op ÷ log2 n within 3x across sizes)', spread <= 3, `${spread.toFixed(2)}x spread`)
  },
}
