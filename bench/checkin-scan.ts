/**
 * The cost of one scan of a check-ins folder of 10k files, as the daemon does once a second:
 * the incremental reader versus a naive full re-parse of every name.
 *
 *     npx tsx bench/checkin-scan.ts [scenario ...] [--files N] [--rounds N]
 *
 * Prints CPU ms per scan (user + system of the whole process, so the thread pool's readdir
 * counts) and wall ms: the median and the 90th percentile.
 */
import { mkdtempSync, promises as fs, rmSync, utimesSync, writeFileSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CheckinReader } from '../lib/aim/checkin-reader.js'
import { type Checkin, formatCheckinName, isWatchedFlag, parseCheckinName } from '../lib/aim/checkins.js'

const args = process.argv.slice(2)
const option = (flag: string, fallback: number) => {
  const at = args.indexOf(flag)
  return at >= 0 ? Number(args[at + 1]) : fallback
}
const FILES = option('--files', 10_000)
const ROUNDS = option('--rounds', 30)
const NEW_PER_SCAN = 100

const hashOf = (run: number) => run.toString(16).padStart(24, '0')
const fileName = (run: number, idx: number, flag: 'starting' | 'check_in', expect: number) => formatCheckinName({ hash: hashOf(run), idx, flag, time: 1_795_887_686.41, expectNextIn: expect })

/** A folder of FILES files: half the runs' `starting`, half their `check_in`. */
function makeFolder(): { folder: string; runs: number; idx: Map<number, number> } {
  const folder = mkdtempSync(join(tmpdir(), 'checkin-bench-'))
  const runs = FILES / 2
  const idx = new Map<number, number>()
  for (let run = 0; run < runs; run++) {
    writeFileSync(join(folder, fileName(run, 1, 'starting', 0)), '')
    writeFileSync(join(folder, fileName(run, 2, 'check_in', 3600)), '')
    idx.set(run, 2)
  }
  return { folder, runs, idx }
}

/** A writer's step for 100 runs: a newer check_in, the older one deleted (as Aim and ours do). */
function renew(folder: string, state: { idx: Map<number, number> }, from: number): void {
  for (let run = from; run < from + NEW_PER_SCAN; run++) {
    const old = state.idx.get(run) as number
    writeFileSync(join(folder, fileName(run, old + 1, 'check_in', 3600)), '')
    unlinkSync(join(folder, fileName(run, old, 'check_in', 3600)))
    state.idx.set(run, old + 1)
  }
}

/** The naive scan: list, parse every name, keep the newest watched idx per run. */
async function naiveScan(folder: string): Promise<number> {
  const newest = new Map<string, Checkin>()
  for (const name of await fs.readdir(folder)) {
    const checkin = parseCheckinName(name)
    if (checkin === null || !isWatchedFlag(checkin.flag)) continue
    const best = newest.get(checkin.hash)
    if (best === undefined || checkin.idx > best.idx) newest.set(checkin.hash, checkin)
  }
  return newest.size
}

interface Sample {
  cpu: number
  wall: number
}
async function measure(scan: () => Promise<unknown>, between: () => void = () => {}): Promise<Sample[]> {
  const samples: Sample[] = []
  for (let round = 0; round < ROUNDS; round++) {
    between()
    const cpu = process.cpuUsage()
    const wall = performance.now()
    await scan()
    const used = process.cpuUsage(cpu)
    samples.push({ cpu: (used.user + used.system) / 1000, wall: performance.now() - wall })
  }
  return samples
}

const OLD = new Date(Date.now() - 3_600_000)
const scenarios: Record<string, () => Promise<Sample[]>> = {
  async 'naive, nothing new'() {
    const { folder } = makeFolder()
    try {
      return await measure(() => naiveScan(folder))
    } finally {
      rmSync(folder, { recursive: true })
    }
  },
  async 'naive, 100 new'() {
    const made = makeFolder()
    let from = 0
    try {
      return await measure(
        () => naiveScan(made.folder),
        () => {
          renew(made.folder, made, from)
          from += NEW_PER_SCAN
        },
      )
    } finally {
      rmSync(made.folder, { recursive: true })
    }
  },
  async 'incremental, nothing new, listing'() {
    const { folder } = makeFolder()
    const reader = new CheckinReader({ folder, trustFolderMtime: false, onWarning: () => {} })
    await reader.scan()
    try {
      return await measure(() => reader.scan())
    } finally {
      rmSync(folder, { recursive: true })
    }
  },
  async 'incremental, nothing new, mtime trusted'() {
    const { folder } = makeFolder()
    utimesSync(folder, OLD, OLD)
    const reader = new CheckinReader({ folder, onWarning: () => {} })
    await reader.scan()
    try {
      return await measure(() => reader.scan())
    } finally {
      rmSync(folder, { recursive: true })
    }
  },
  async 'incremental, 100 new'() {
    const made = makeFolder()
    const reader = new CheckinReader({ folder: made.folder, onWarning: () => {} })
    await reader.scan()
    let from = 0
    try {
      return await measure(
        () => reader.scan(),
        () => {
          renew(made.folder, made, from)
          from += NEW_PER_SCAN
        },
      )
    } finally {
      rmSync(made.folder, { recursive: true })
    }
  },
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

const chosen = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'))
const names = chosen.length > 0 ? Object.keys(scenarios).filter((n) => chosen.some((c) => n.includes(c))) : Object.keys(scenarios)
console.log(`check-ins folder of ${FILES} files, ${ROUNDS} scans per scenario (ms per scan)`)
console.log('| scenario | CPU median | CPU p90 | wall median | wall p90 |')
console.log('| --- | ---: | ---: | ---: | ---: |')
for (const name of names) {
  const samples = await (scenarios[name] as () => Promise<Sample[]>)()
  const cpu = samples.map((s) => s.cpu)
  const wall = samples.map((s) => s.wall)
  const f = (n: number) => n.toFixed(2)
  console.log(`| ${name} | ${f(quantile(cpu, 0.5))} | ${f(quantile(cpu, 0.9))} | ${f(quantile(wall, 0.5))} | ${f(quantile(wall, 0.9))} |`)
}
