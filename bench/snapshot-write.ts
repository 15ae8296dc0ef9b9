/**
 * Snapshot write and read cost by number of runs: serialising alone, the durable atomic write
 * (temp file, fsync, rename, fsync of the folder), the validating read, and the file size.
 * Usage: `npx tsx bench/snapshot-write.ts [runs...]` (default 1000 10000 100000).
 * @module
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunInfo } from '../lib/model.js'
import { currentOwner } from '../lib/state/owner.js'
import { SNAPSHOT_FORMAT, readSnapshot, serializeSnapshot, writeSnapshotAtomic } from '../lib/state/snapshot.js'
import type { Snapshot } from '../lib/state/snapshot.js'

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0)
const REPEATS = 5

function snapshotOf(n: number): Snapshot {
  const runs: RunInfo[] = []
  for (let i = 0; i < n; i++) {
    runs.push({
      hash: i.toString(16).padStart(24, '0'),
      name: `resnet50-lr3e-4-seed${i}`,
      experiment: `sweep-${i % 20}`,
      status: 'running',
      startedAt: 1_795_000_000_000 + i,
      lastProgressAt: 1_795_000_100_000 + i,
      expectNextIn: 60,
      deadlineAt: 1_795_000_160_000 + i,
      grace: 100,
      episode: 0,
    })
  }
  return { format: SNAPSHOT_FORMAT, version: 1, owner: currentOwner('process'), generation: 1, writtenAt: Date.now(), runs, outbox: { queued: [] }, extra: {} }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function measure(n: number): Promise<Record<string, string>> {
  const folder = await mkdtemp(join(tmpdir(), 'aim-status-bench-'))
  try {
    const snapshot = snapshotOf(n)
    const path = join(folder, 'owner.json')
    const serialise: number[] = []
    const write: number[] = []
    const read: number[] = []
    for (let i = 0; i < REPEATS; i++) {
      let start = performance.now()
      serializeSnapshot(snapshot)
      serialise.push(performance.now() - start)
      start = performance.now()
      await writeSnapshotAtomic(path, snapshot)
      write.push(performance.now() - start)
      start = performance.now()
      await readSnapshot(path)
      read.push(performance.now() - start)
    }
    const bytes = (await stat(path)).size
    return {
      runs: String(n),
      'serialise ms': median(serialise).toFixed(1),
      'durable write ms': median(write).toFixed(1),
      'validated read ms': median(read).toFixed(1),
      bytes: String(bytes),
      'bytes/run': (bytes / n).toFixed(0),
    }
  } finally {
    await rm(folder, { recursive: true, force: true })
  }
}

const rows: Record<string, string>[] = []
for (const n of sizes.length > 0 ? sizes : [1000, 10_000, 100_000]) rows.push(await measure(n))
const columns = Object.keys(rows[0]!)
const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => r[c]!.length)))
const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padStart(widths[i]!)).join(' | ')} |`
console.log(`snapshot write (median of ${REPEATS}, folder ${tmpdir()})`)
console.log(line(columns))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const row of rows) console.log(line(columns.map((c) => row[c]!)))
