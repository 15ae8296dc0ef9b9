/**
 * What every scenario shares: the table printer, the goal lines, percentiles, number formats,
 * a forced GC, and temp folders.
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** What a scenario gets from the command line. */
export interface BenchContext {
  /** Tiny sizes: a smoke run that checks the scenario works, not its figures. */
  quick: boolean
}

/** A named scenario. */
export interface Scenario {
  name: string
  /** One line: what is measured, against what. */
  description: string
  run(context: BenchContext): Promise<void>
}

export type Cell = string | number

/** Prints a titled table with right-aligned numbers; the title line is what smoke tests look for. */
export function printTable(title: string, header: string[], rows: Cell[][]): void {
  const text = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatNumber(cell) : cell)))
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((row) => (row[i] ?? '').length)))
  const numeric = header.map((_, i) => rows.every((row) => typeof row[i] === 'number' || /^[\d.,~<>≤ -]+( ?[a-zA-Z%µ/]+)?$/.test(String(row[i]))))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (numeric[i] === true ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`
  const out = [`\n## ${title}`, line(header), `|${widths.map((w, i) => (numeric[i] === true ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`]
  for (const row of text) out.push(line(row))
  console.log(out.join('\n'))
}

/** Prints `goal: … — met` or `goal: … — missed (measured X)`; returns whether it was met. */
export function goal(text: string, met: boolean, measured: string): boolean {
  console.log(`goal: ${text} — ${met ? 'met' : 'missed'} (measured ${measured})`)
  return met
}

/** A goal this run cannot judge (a --quick run stops below the size it is about). */
export function goalNotChecked(text: string, why: string): void {
  console.log(`goal: ${text} — not checked (${why})`)
}

/** A line saying a measurement could not be made, and why. Never a number in its place. */
export function notAvailable(what: string, why: string): void {
  console.log(`${what}: not available: ${why}`)
}

/** Three significant digits, thousands separated; integers stay integers. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  const abs = Math.abs(value)
  if (abs >= 1000 || Number.isInteger(value)) return Math.round(value).toLocaleString('en-US')
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  if (abs >= 1) return value.toFixed(2)
  return value.toPrecision(2)
}

export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes)
  if (abs >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  if (abs >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${Math.round(bytes)} B`
}

/** The p-th percentile (0–100) of values sorted ascending, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** p50 / p99 / max of a sample. */
export function summarize(values: readonly number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b)
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN, n: sorted.length }
}

let collect: (() => void) | undefined

/**
 * A full, synchronous garbage collection. Node exposes `gc` only under `--expose-gc`; setting
 * the flag at run time and reading `gc` from a fresh context gives the same function, so the
 * benchmark runs under plain `tsx` too.
 */
export function fullGc(): void {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc
    if (exposed !== undefined) collect = exposed
    else {
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc') as () => void
    }
  }
  // Twice: the first pass can leave weakly held objects for the second.
  collect()
  collect()
}

/** heapUsed after a full GC. */
export function settledHeap(): { heapUsed: number; arrayBuffers: number } {
  fullGc()
  const usage = process.memoryUsage()
  return { heapUsed: usage.heapUsed, arrayBuffers: usage.arrayBuffers }
}

/** Runs `use` with a fresh temp folder, removed afterwards. */
export async function withTempDir<T>(prefix: string, use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `aim-status-bench-${prefix}-`))
  try {
    return await use(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Nanoseconds since an arbitrary origin, as a number. */
export const nowNs = (): number => Number(process.hrtime.bigint())

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Yields to the event loop (timers and I/O run). */
export const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Deterministic pseudo-random numbers (mulberry32), so every run measures the same workload. */
export function seededRandom(seed = 0x5eed): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A run hash as Aim makes them: 24 hex digits, here derived from `i` so sets are reproducible. */
export function runHash(i: number): string {
  return (0x10000000 + i).toString(16).padStart(12, '0') + 'a1b2c3d4e5f6'
}
