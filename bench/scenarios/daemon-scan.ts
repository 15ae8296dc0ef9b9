/**
 * `daemon-scan`: the daemon's scan of a Python-Aim `check_ins/` folder of 10k files.
 * - Per-scan CPU: `bench/checkin-scan.ts` (the check-in reader's own bench: the incremental
 *   `CheckinReader` against a naive full re-listing and re-parse), run as a child process, its
 *   table reprinted here with scans/s added.
 * - The share of a core at one scan a second, measured over real seconds: the real
 *   `CheckinReader` on a timer while a writer renews 100 runs' check-ins each second, next to
 *   the naive re-listing + parse of every name each second.
 * @module
 */
import { spawn } from 'node:child_process'
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { CheckinReader } from '../../lib/aim/checkin-reader.js'
import { type Checkin, formatCheckinName, isWatchedFlag, parseCheckinName } from '../../lib/aim/checkins.js'
import { type BenchContext, type Cell, type Scenario, goal, notAvailable, printTable, sleep, withTempDir } from '../support/report.js'

const CHECKIN_SCAN = fileURLToPath(new URL('../checkin-scan.ts', import.meta.url))

/** Runs bench/checkin-scan.ts and returns its table rows (scenario, CPU median, CPU p90, wall median, wall p90). */
async function runCheckinScanBench(files: number, rounds: number): Promise<{ rows: string[][] } | { error: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHECKIN_SCAN, '--files', String(files), '--rounds', String(rounds)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) {
    const why = stderr.split('\n').find((line) => /Error\b/.test(line)) ?? stderr.trim().split('\n')[0] ?? ''
    return { error: `bench/checkin-scan.ts exited with ${code}: ${why.trim()}` }
  }
  const rows = stdout
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| scenario') && !line.startsWith('| ---'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
    .filter((cells) => cells.length === 5 && cells.slice(1).every((c) => Number.isFinite(Number(c))))
  if (rows.length === 0) return { error: `bench/checkin-scan.ts printed no table row that could be read: ${stdout.slice(0, 200)}` }
  return { rows }
}

const hashOf = (run: number) => run.toString(16).padStart(24, '0')
const nameOf = (run: number, idx: number) => formatCheckinName({ hash: hashOf(run), idx, flag: 'check_in', time: 1_795_887_686.41, expectNextIn: 3600 })

/** A folder of `files` check-ins: one per run. Returns each run's idx. */
async function makeFolder(folder: string, files: number): Promise<number[]> {
  await mkdir(folder, { recursive: true })
  const idx: number[] = []
  for (let run = 0; run < files; run++) {
    await writeFile(join(folder, nameOf(run, 1)), '')
    idx.push(1)
  }
  // An old mtime, as a folder that has not changed for a while (the reader trusts those).
  const old = new Date(Date.now() - 3_600_000)
  await utimes(folder, old, old)
  return idx
}

/** What a Python writer does for `count` runs: a newer check-in, the older one removed. */
async function renew(folder: string, idx: number[], from: number, count: number): Promise<void> {
  for (let k = 0; k < count; k++) {
    const run = (from + k) % idx.length
    const old = idx[run] as number
    await writeFile(join(folder, nameOf(run, old + 1)), '')
    await rm(join(folder, nameOf(run, old)))
    idx[run] = old + 1
  }
}

async function naiveScan(folder: string): Promise<number> {
  const newest = new Map<string, Checkin>()
  for (const name of await readdir(folder)) {
    const checkin = parseCheckinName(name)
    if (checkin === null || !isWatchedFlag(checkin.flag)) continue
    const best = newest.get(checkin.hash)
    if (best === undefined || checkin.idx > best.idx) newest.set(checkin.hash, checkin)
  }
  return newest.size
}

/**
 * One scan a second for `seconds`, with `renewPerSecond` runs renewed by a writer half-way
 * between scans. Returns the scanner's CPU as a share of one core (the writer's CPU excluded).
 */
async function oneScanPerSecond(
  folder: string,
  idx: number[],
  firstRun: number,
  seconds: number,
  renewPerSecond: number,
  scan: () => Promise<unknown>,
): Promise<{ coreShare: number; cpuMsPerScan: number; scans: number }> {
  let cpuMicros = 0
  let scans = 0
  let from = firstRun
  const t0 = performance.now()
  for (let s = 0; s < seconds; s++) {
    const cpu = process.cpuUsage()
    await scan()
    const used = process.cpuUsage(cpu)
    cpuMicros += used.user + used.system
    scans++
    await sleep(500)
    if (renewPerSecond > 0) await renew(folder, idx, from, renewPerSecond)
    from += renewPerSecond
    const next = t0 + (s + 1) * 1000
    await sleep(Math.max(0, next - performance.now()))
  }
  const wall = performance.now() - t0
  return { coreShare: cpuMicros / 1000 / wall, cpuMsPerScan: cpuMicros / 1000 / scans, scans }
}

export const daemonScan: Scenario = {
  name: 'daemon-scan',
  description: 'CPU per scan of a 10k-file check_ins/ folder and share of a core at 1 scan/s, vs a naive re-list + parse',
  async run({ quick }: BenchContext) {
    const files = quick ? 300 : 10_000
    const seconds = quick ? 1 : 8
    const renewPerSecond = quick ? 10 : 100

    // That bench renews 100 runs per round over files / 2 runs: it needs files ≥ 200 × rounds.
    const perScan = quick ? await runCheckinScanBench(1_000, 3) : await runCheckinScanBench(files, 30)
    if ('error' in perScan) notAvailable('per-scan table of bench/checkin-scan.ts', perScan.error)
    else {
      printTable(
        `daemon-scan: bench/checkin-scan.ts, ${quick ? 1_000 : files} files (ms per scan)`,
        ['scan', 'CPU median ms', 'CPU p90 ms', 'wall median ms', 'wall p90 ms', 'scans/s (1 / wall median)'],
        perScan.rows.map((cells) => [...cells.map((c, i) => (i === 0 ? c : Number(c))), 1000 / Number(cells[3])]),
      )
    }

    await withTempDir('daemon-scan', async (dir) => {
      // One folder for every measurement: the renewals carry on from one to the next.
      const folder = join(dir, 'check_ins')
      const idx = await makeFolder(folder, files)
      const rows: Cell[][] = []
      const results: Record<string, number> = {}
      let from = 0
      for (const [label, make] of [
        [
          'CheckinReader (incremental), 1 scan/s',
          () => {
            const reader = new CheckinReader({ folder, onWarning: () => {} })
            return () => reader.scan()
          },
        ],
        ['baseline: re-list + parse all names, 1 scan/s', () => () => naiveScan(folder)],
      ] as const) {
        for (const renewing of [0, renewPerSecond]) {
          const scan = make()
          await scan()
          const result = await oneScanPerSecond(folder, idx, from, seconds, renewing, scan)
          from += seconds * renewing
          rows.push([label, renewing === 0 ? 'none' : `${renewing} runs/s`, result.scans, result.cpuMsPerScan, `${(result.coreShare * 100).toFixed(2)} %`])
          results[`${label}/${renewing}`] = result.coreShare
        }
      }
      printTable(`daemon-scan: ${files} check-in files, scans at 1/s for ${seconds} s (scanner CPU only)`, ['scanner', 'check-ins renewed', 'scans', 'CPU ms/scan', 'share of one core'], rows)
      const worst = Math.max(results[`CheckinReader (incremental), 1 scan/s/0`] ?? NaN, results[`CheckinReader (incremental), 1 scan/s/${renewPerSecond}`] ?? NaN)
      goal('≤ 5 % of one core at 1 scan/s (CheckinReader, worse of idle and renewing folder)', worst <= 0.05, `${(worst * 100).toFixed(2)} %`)
    })
  },
}
