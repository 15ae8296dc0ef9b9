/**
 * `snapshot`: the time and size of a durable snapshot of 1k, 10k and 100k runs (the real
 * `writeSnapshotAtomic`: temp file, fsync, rename, fsync of the folder), next to serialising
 * alone; and how many writes the coalescing `SnapshotWriter` makes under a heavy heartbeat load
 * (next to one write per change, which is what no coalescing would mean).
 * @module
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { monotonicNow } from '../../lib/clock.js'
import { acquireLease } from '../../lib/state/lease.js'
import { currentOwner } from '../../lib/state/owner.js'
import { SNAPSHOT_FORMAT, SNAPSHOT_VERSION, type Snapshot, serializeSnapshot, writeSnapshotAtomic } from '../../lib/state/snapshot.js'
import { SnapshotWriter } from '../../lib/state/snapshot-writer.js'
import { benchActor, openRuns, promiseOf } from '../support/runs.js'
import { type BenchContext, type Cell, type Scenario, formatBytes, goal, goalNotChecked, nowNs, printTable, summarize, withTempDir, yieldToLoop } from '../support/report.js'

const msSince = (t0: number) => (nowNs() - t0) / 1e6

/**
 * One size: median over `rounds` of runs() copy, `JSON.stringify` of the snapshot as held in
 * memory (what format version 1 wrote: the baseline), serialisation alone, and the full
 * durable write.
 */
async function measureSize(dir: string, n: number, rounds: number): Promise<{ row: Cell[]; totalMs: number }> {
  const actor = benchActor()
  openRuns(actor, n, { named: true })
  const owner = currentOwner('process')
  const path = join(dir, `${owner.id}.json`)
  const copy: number[] = []
  const json: number[] = []
  const serialise: number[] = []
  const write: number[] = []
  for (let r = 0; r < rounds; r++) {
    let t0 = nowNs()
    const runs = actor.runs()
    copy.push(msSince(t0))
    const snapshot: Snapshot = { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, owner, generation: 1, writtenAt: Date.now(), runs, outbox: { queues: {} }, extra: {} }
    t0 = nowNs()
    JSON.stringify(snapshot)
    json.push(msSince(t0))
    t0 = nowNs()
    serializeSnapshot(snapshot)
    serialise.push(msSince(t0))
    t0 = nowNs()
    await writeSnapshotAtomic(path, snapshot)
    write.push(msSince(t0))
  }
  actor.close()
  const bytes = (await stat(path)).size
  const c = summarize(copy).p50
  const j = summarize(json).p50
  const s = summarize(serialise).p50
  const w = summarize(write).p50
  return { row: [n, formatBytes(bytes), bytes / n, c, j, s, w, c + w], totalMs: c + w }
}

/** Heartbeats as fast as the loop allows for `seconds`, each marking the snapshot dirty. */
async function coalescing(dir: string, runs: number, seconds: number): Promise<Cell[]> {
  const owner = currentOwner('process')
  const path = join(dir, `${owner.id}.json`)
  const lease = await acquireLease(path, owner, { staleMs: 10_000 })
  let changes = 0
  // Assigned once, after the actor whose hook uses it.
  // eslint-disable-next-line prefer-const
  let writer: SnapshotWriter | undefined
  const actor = benchActor(() => {
    changes++
    writer?.markDirty()
  })
  const hashes = openRuns(actor, runs, { named: true })
  writer = new SnapshotWriter({
    path,
    lease,
    produce: () => ({ owner, runs: actor.runs(), outbox: { queues: {} }, extra: {} }),
  })
  const t0 = nowNs()
  let beats = 0
  let at = monotonicNow()
  try {
    while (msSince(t0) < seconds * 1000) {
      // A burst of heartbeats, then the event loop: the writer's timer and I/O run in between.
      for (let k = 0; k < 20_000; k++) {
        const i = beats++ % runs
        at += 0.001
        actor.progress(hashes[i] as string, at, promiseOf(i))
      }
      await yieldToLoop()
    }
    const elapsed = msSince(t0) / 1000
    const writes = writer.writes
    return [runs, beats / elapsed, changes / elapsed, writes, elapsed, writes / elapsed]
  } finally {
    await writer.close()
    actor.close()
    await lease.release()
  }
}

export const snapshot: Scenario = {
  name: 'snapshot',
  description: 'durable snapshot write of 1k/10k/100k runs (time, bytes) vs serialising alone; writes/s under heartbeat load',
  async run({ quick }: BenchContext) {
    const sizes = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]
    const rounds = quick ? 2 : 7
    await withTempDir('snapshot', async (dir) => {
      const rows: Cell[][] = []
      let at100k: number | undefined
      for (const n of sizes) {
        const { row, totalMs } = await measureSize(dir, n, rounds)
        rows.push(row)
        if (n === 100_000) at100k = totalMs
      }
      printTable(
        `snapshot: lib/state/snapshot.ts writeSnapshotAtomic (median of ${rounds})`,
        ['runs', 'file', 'bytes/run', 'actor.runs() ms', 'baseline: v1 JSON.stringify ms', 'serialise ms', 'durable write ms', 'total ms'],
        rows,
      )

      const load = await coalescing(dir, quick ? 1_000 : 10_000, quick ? 1.5 : 6)
      printTable('snapshot: SnapshotWriter under heartbeat load (interval 1000 ms)', ['runs', 'heartbeats/s', 'changes/s (uncoalesced writes/s)', 'writes', 'seconds', 'writes/s'], [load])

      if (at100k !== undefined) goal('100k runs snapshotted in ≤ 200 ms', at100k <= 200, `${at100k.toFixed(0)} ms (copy + serialise + durable write)`)
      else goalNotChecked('100k runs snapshotted in ≤ 200 ms', '--quick stops at 10k runs')
      const writesPerSecond = load[5] as number
      const seconds = load[4] as number
      // The first change is written at once, then at most one write per second.
      const allowed = Math.ceil(seconds) + 1
      goal('writes stay coalesced (≤ ~1/s)', (load[3] as number) <= allowed, `${writesPerSecond.toFixed(2)} writes/s, ${load[3]} writes in ${seconds.toFixed(1)} s`)
    })
  },
}
