/**
 * `daemon-cost`: what the real `aim-watcher --repo R start --json-logs` daemon costs the
 * machine it watches from, read from `/proc/<pid>` of the daemon process itself:
 * - bytes written per minute: `/proc/<pid>/io` `wchar` over the window, minus the bytes of its
 *   own log output (what this bench read from its stdout and stderr in the same window);
 * - CPU: `/proc/<pid>/stat` utime + stime over the window, as a share of one core;
 * - peak RSS: `/proc/<pid>/status` `VmHWM` at the end (its start included).
 * Cases: (a) 1k and (b) 10k idle Python runs, (c) 10k runs with 100 renewing each second (a
 * writer process, bench/support/checkin-renewer.ts), (d) 1,000 live owners (one helper process
 * holding 1,000 leased snapshots, bench/support/live-owners.ts), (e) a real training process
 * SIGKILLed while the daemon adopts 1,000 stale owners (snapshots of a dead pid written before
 * it starts): SIGKILL -> its `failed` line, and the time to adopt all 1,000. Beside them, what
 * Node itself costs: an empty `node -e` process and the daemon watching an empty repo.
 *
 * The baseline: given a build's `dist/` (`--baseline DIR`, or the environment variable
 * `AIM_STATUS_BENCH_BASELINE`), the same cases are measured on its `cli/bin.js` in the same run;
 * without one, the figures recorded below are printed beside.
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { claimGeneration } from '../../lib/state/fence.js'
import { prepareStatusFolders, snapshotPath, statusLayout } from '../../lib/state/layout.js'
import { currentOwner, type OwnerInfo } from '../../lib/state/owner.js'
import { SNAPSHOT_FORMAT, writeSnapshotAtomic } from '../../lib/state/snapshot.js'
import { monotonicNow } from '../../lib/clock.js'
import { repoPaths } from '../../lib/repo.js'
import { fillCheckins } from '../support/checkin-names.js'
import { type BenchContext, type Cell, type Scenario, goal, goalNotChecked, notAvailable, printTable, runHash, sleep, withTempDir } from '../support/report.js'
import { Watched } from '../support/watched.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CURRENT_DIST = join(ROOT, 'dist')
const TRAINING = join(ROOT, 'bench', 'support', 'takeover-child.ts')
const RENEWER = join(ROOT, 'bench', 'support', 'checkin-renewer.ts')
const LIVE_OWNERS = join(ROOT, 'bench', 'support', 'live-owners.ts')

/** The environment variable naming a baseline build's `dist/` (as `--baseline DIR` does). */
export const BASELINE_ENV = 'AIM_STATUS_BENCH_BASELINE'

/** One daemon's figures over one window. */
interface Cost {
  /** Bytes written per minute, its log output left out. */
  writtenPerMin: number
  /** Its log output per minute (bytes). */
  logPerMin: number
  /** Share of one core, 0 to 1. */
  cpu: number
  /** Peak RSS, bytes. */
  peakRss: number
}

/** What the SIGKILL-during-adoption case measures. */
interface Adoption {
  killToFailedMs: number
  adoptAllMs: number
  peakRss: number
}

interface Sizes {
  small: number
  large: number
  renewing: number
  liveOwners: number
  staleOwners: number
  windowMs: number
  /** How long the daemon's log must stay quiet before its start counts as settled. */
  quietMs: number
}

const MiB = 1024 * 1024

const FULL: Sizes = { small: 1_000, large: 10_000, renewing: 100, liveOwners: 1_000, staleOwners: 1_000, windowMs: 30_000, quietMs: 2_000 }
const QUICK: Sizes = { small: 100, large: 300, renewing: 10, liveOwners: 20, staleOwners: 20, windowMs: 2_000, quietMs: 1_000 }

/**
 * The baseline as measured with this scenario on 2026-12-01 against the build of commit
 * f2bd8e7 (`--baseline`), 2 shared cores, Node v20.20.2, 30 s windows. bench/README.md has the
 * same figures.
 */
const RECORDED_BASELINE = {
  label: 'baseline f2bd8e7 (recorded 2026-12-01)',
  costs: {
    empty: { writtenPerMin: 0.055 * MiB, logPerMin: 0, cpu: 0.006, peakRss: 71.3 * MiB },
    small: { writtenPerMin: 0.83 * MiB, logPerMin: 0, cpu: 0.0053, peakRss: 83.9 * MiB },
    large: { writtenPerMin: 8.24 * MiB, logPerMin: 0, cpu: 0.0103, peakRss: 116 * MiB },
    renewing: { writtenPerMin: 82.4 * MiB, logPerMin: 0, cpu: 0.0333, peakRss: 130 * MiB },
    liveOwners: { writtenPerMin: 9.08 * MiB, logPerMin: 0, cpu: 1.1927, peakRss: 77.6 * MiB },
  } satisfies Record<CaseName, Cost>,
  adoption: { killToFailedMs: 16_181, adoptAllMs: 16_400, peakRss: 107 * MiB } satisfies Adoption,
}

type CaseName = 'empty' | 'small' | 'large' | 'renewing' | 'liveOwners'

/** Clock ticks per second of /proc/<pid>/stat. */
function clockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100
  } catch {
    return 100
  }
}

/** What /proc says of a process now. */
function probe(pid: number): { wchar: number; cpuTicks: number; peakRss: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  const wchar = Number(/^wchar:\s+(\d+)/m.exec(io)?.[1] ?? NaN)
  // The command name may hold spaces and parentheses: the fields follow the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
  const cpuTicks = Number(fields[11]) + Number(fields[12])
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const peakRss = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024
  return { wchar, cpuTicks, peakRss }
}

/** Peak RSS of a `node -e` process that does nothing: what Node itself costs. */
function emptyNodeRss(): number {
  const out = spawnSync(process.execPath, ['-e', "setTimeout(() => console.log(/^VmHWM:\\s+(\\d+) kB/m.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]), 200)"], { encoding: 'utf8' })
  return Number(out.stdout.trim()) * 1024
}

/** The daemon of a build, started on `repo` as a user starts it. */
function startDaemon(dist: string, repo: string): Watched {
  return new Watched([join(dist, 'cli', 'bin.js'), '--repo', repo, 'start', '--json-logs'])
}

/** Waits for a daemon's start to settle: active, then its log quiet for `quietMs`. Returns why not, or null. */
async function settled(daemon: Watched, quietMs: number, maxMs: number): Promise<string | null> {
  const active = await daemon.waitFor((l) => l.event === 'active', 30_000)
  if (active === undefined) return `no "active" line within 30 s (${daemon.exitState() !== undefined ? `it exited: ${daemon.stderr.trim().slice(0, 300)}` : 'still running'})`
  await daemon.waitQuiet(quietMs, maxMs)
  return null
}

/** Measures a running daemon over `windowMs`. */
async function measure(daemon: Watched, ticksPerSecond: number, windowMs: number): Promise<Cost> {
  const pid = daemon.process.pid as number
  const before = probe(pid)
  const logBefore = daemon.outputBytes
  const t0 = performance.now()
  await sleep(windowMs)
  const after = probe(pid)
  const minutes = (performance.now() - t0) / 60_000
  const log = daemon.outputBytes - logBefore
  return {
    writtenPerMin: Math.max(0, after.wchar - before.wchar - log) / minutes,
    logPerMin: log / minutes,
    cpu: (after.cpuTicks - before.cpuTicks) / ticksPerSecond / (minutes * 60),
    peakRss: after.peakRss,
  }
}

/** Stops a daemon as a user would (SIGTERM), killing it if it lingers. */
async function stop(daemon: Watched): Promise<void> {
  if (daemon.exitState() !== undefined) return
  daemon.process.kill('SIGTERM')
  const exited = await Promise.race([new Promise<boolean>((resolve) => daemon.process.once('exit', () => resolve(true))), sleep(15_000).then(() => false)])
  if (!exited) await daemon.stop()
}

/** An owner of a pid that ran and is gone. */
function deadOwner(): OwnerInfo {
  return { ...currentOwner('process'), pid: spawnSync('true').pid as number, startTicks: null }
}

/** `count` orphaned snapshots of dead owners, one running run each, as training processes leave them when killed. */
async function writeStaleOwners(repo: string, count: number): Promise<void> {
  const layout = statusLayout(repoPaths(repo))
  prepareStatusFolders(layout)
  const dead = deadOwner()
  for (let i = 0; i < count; i++) {
    const owner = { ...dead, id: currentOwner('process').id }
    const at = monotonicNow()
    const path = snapshotPath(layout, owner.id)
    const run = { hash: runHash(50_000 + i), status: 'running' as const, startedAt: at, lastProgressAt: at, expectNextIn: 3600, deadlineAt: at + 3_600_000, grace: 100, episode: 0 }
    await writeSnapshotAtomic(path, { format: SNAPSHOT_FORMAT, version: 2, owner, generation: 1, writtenAt: Date.now(), runs: [run], outbox: null, extra: {} })
    claimGeneration(path, 1, owner)
  }
}

/** Runs one cost case for one build: a fresh repo, `prepare` (which may start helpers), the daemon, the window. */
async function costCase(dist: string, ticks: number, sizes: Sizes, prepare: (repo: string) => Promise<Watched | null>): Promise<Cost | string> {
  return withTempDir('daemon-cost', async (repo) => {
    mkdirSync(join(repo, '.aim'), { recursive: true })
    let helper: Watched | null = null
    const daemon = { current: null as Watched | null }
    try {
      helper = await prepare(repo)
      if (helper !== null && (await helper.waitFor((l) => l.line.startsWith('ready'), 120_000)) === undefined) return `the helper did not start: ${helper.stderr.trim().slice(0, 300)}`
      daemon.current = startDaemon(dist, repo)
      const why = await settled(daemon.current, sizes.quietMs, 60_000)
      if (why !== null) return why
      const cost = await measure(daemon.current, ticks, sizes.windowMs)
      if (helper?.exitState() !== undefined) return `the helper exited during the window: ${helper.stderr.trim().slice(0, 300)}`
      return cost
    } finally {
      if (daemon.current !== null) await stop(daemon.current)
      if (helper !== null) {
        helper.process.kill('SIGTERM')
        await Promise.race([new Promise((resolve) => helper?.process.once('exit', resolve)), sleep(20_000)])
        await helper.stop()
      }
    }
  })
}

/** The SIGKILL-during-adoption case for one build. */
async function adoptionCase(dist: string, sizes: Sizes): Promise<Adoption | string> {
  return withTempDir('daemon-cost-adopt', async (repo) => {
    mkdirSync(join(repo, '.aim'), { recursive: true })
    const hash = runHash(90_000)
    const training = new Watched(['--import', 'tsx', TRAINING, repo, hash])
    let daemon: Watched | null = null
    try {
      if ((await training.waitFor((l) => l.line === `ready ${hash}`, 30_000)) === undefined) return `the training process did not start: ${training.stderr.trim().slice(0, 300)}`
      await writeStaleOwners(repo, sizes.staleOwners)
      // Its snapshot and lease on disk before the daemon first looks.
      await sleep(1_500)
      daemon = startDaemon(dist, repo)
      const active = await daemon.waitFor((l) => l.event === 'active', 30_000)
      if (active === undefined) return `no "active" line within 30 s: ${daemon.stderr.trim().slice(0, 300)}`
      const stale = (l: { event: string | undefined; record: Record<string, unknown> | undefined }) => l.event === 'adopted' && l.record?.['pid'] !== training.process.pid
      // Killed once the adoption is under way.
      if ((await daemon.waitFor(stale, 60_000)) === undefined) return 'no "adopted" line within 60 s'
      const killedAt = performance.now()
      training.process.kill('SIGKILL')
      const failed = await daemon.waitFor((l) => l.event === 'failed' && l.hash === hash, 300_000)
      if (failed === undefined) return `no "failed" line for the killed run within 300 s`
      const last = await daemon.waitForCount(stale, sizes.staleOwners, 300_000)
      if (last === undefined) return `fewer than ${sizes.staleOwners} "adopted" lines within 300 s`
      const { peakRss } = probe(daemon.process.pid as number)
      return { killToFailedMs: failed.at - killedAt, adoptAllMs: last.at - active.at, peakRss }
    } finally {
      if (daemon !== null) await stop(daemon)
      await training.stop()
    }
  })
}

const CASES: ReadonlyArray<{ name: CaseName; label: (s: Sizes) => string; prepare: (s: Sizes) => (repo: string) => Promise<Watched | null> }> = [
  { name: 'empty', label: () => 'empty repo', prepare: () => async () => null },
  {
    name: 'small',
    label: (s) => `(a) ${s.small.toLocaleString('en-US')} idle Python runs`,
    prepare: (s) => async (repo) => {
      fillCheckins(repoPaths(repo).checkins, s.small)
      return null
    },
  },
  {
    name: 'large',
    label: (s) => `(b) ${s.large.toLocaleString('en-US')} idle Python runs`,
    prepare: (s) => async (repo) => {
      fillCheckins(repoPaths(repo).checkins, s.large)
      return null
    },
  },
  {
    name: 'renewing',
    label: (s) => `(c) ${s.large.toLocaleString('en-US')} runs, ${s.renewing}/s renewing`,
    prepare: (s) => async (repo) => {
      fillCheckins(repoPaths(repo).checkins, s.large)
      return new Watched(['--import', 'tsx', RENEWER, repoPaths(repo).checkins, String(s.large), String(s.renewing)])
    },
  },
  {
    name: 'liveOwners',
    label: (s) => `(d) ${s.liveOwners.toLocaleString('en-US')} live owners`,
    prepare: (s) => async (repo) => new Watched(['--import', 'tsx', LIVE_OWNERS, repo, String(s.liveOwners)]),
  },
]

const mib = (bytes: number) => bytes / MiB
const percent = (share: number) => `${(share * 100).toFixed(2)} %`

function costRow(label: string, build: string, cost: Cost): Cell[] {
  return [label, build, mib(cost.writtenPerMin), cost.logPerMin / 1024, percent(cost.cpu), mib(cost.peakRss)]
}

/** The baseline's dist: `--baseline DIR` (main.ts puts it in the environment) or the environment variable. */
function baselineDist(): string | null {
  const dir = process.env[BASELINE_ENV]
  if (dir === undefined || dir === '') return null
  return resolve(dir)
}

export const daemonCost: Scenario = {
  name: 'daemon-cost',
  description: 'the real daemon: bytes written/min, CPU, peak RSS at 1k/10k idle Python runs, 100 renewing/s, 1,000 live owners; SIGKILL during a 1,000-owner adoption',
  async run({ quick }: BenchContext) {
    const sizes = quick ? QUICK : FULL
    const ticks = clockTicks()
    if (!existsSync(join(CURRENT_DIST, 'cli', 'bin.js'))) return notAvailable('daemon-cost', `${CURRENT_DIST}/cli/bin.js is not built (npm run build)`)
    const baseline = baselineDist()
    if (baseline !== null && !existsSync(join(baseline, 'cli', 'bin.js'))) return notAvailable('daemon-cost baseline', `${baseline}/cli/bin.js does not exist`)
    const builds: Array<{ label: string; dist: string }> = [{ label: 'this build', dist: CURRENT_DIST }]
    if (baseline !== null) builds.push({ label: `baseline ${baseline}`, dist: baseline })
    console.log(`windows of ${sizes.windowMs / 1000} s after the daemon's start has settled; CLK_TCK ${ticks}; baseline: ${baseline ?? `none given (--baseline DIR or ${BASELINE_ENV}): recorded figures printed`}`)
    const nodeRss = emptyNodeRss()
    console.log(`what Node itself costs: an empty \`node -e\` process peaks at ${mib(nodeRss).toFixed(1)} MiB RSS`)

    const rows: Cell[][] = []
    const mine = new Map<CaseName, Cost>()
    for (const c of CASES) {
      for (const build of builds) {
        const cost = await costCase(build.dist, ticks, sizes, c.prepare(sizes))
        if (typeof cost === 'string') return notAvailable(`daemon-cost ${c.label(sizes)} (${build.label})`, cost)
        if (build.dist === CURRENT_DIST) mine.set(c.name, cost)
        rows.push(costRow(c.label(sizes), build.label, cost))
      }
      if (baseline === null) rows.push(costRow(c.label(sizes), RECORDED_BASELINE.label, RECORDED_BASELINE.costs[c.name]))
    }
    printTable(`daemon-cost: the daemon's own cost over ${sizes.windowMs / 1000} s windows`, ['case', 'build', 'written MiB/min (log excluded)', 'log KiB/min', 'CPU (share of a core)', 'peak RSS MiB'], rows)

    const adoptionRows: Cell[][] = []
    let myAdoption: Adoption | null = null
    for (const build of builds) {
      const adoption = await adoptionCase(build.dist, sizes)
      if (typeof adoption === 'string') return notAvailable(`daemon-cost adoption (${build.label})`, adoption)
      if (build.dist === CURRENT_DIST) myAdoption = adoption
      adoptionRows.push([build.label, sizes.staleOwners, adoption.killToFailedMs, adoption.adoptAllMs / 1000, mib(adoption.peakRss)])
    }
    if (baseline === null) {
      const recorded = RECORDED_BASELINE.adoption
      adoptionRows.push([RECORDED_BASELINE.label, FULL.staleOwners, recorded.killToFailedMs, recorded.adoptAllMs / 1000, mib(recorded.peakRss)])
    }
    printTable(
      `daemon-cost: a training process SIGKILLed while the daemon adopts ${sizes.staleOwners.toLocaleString('en-US')} stale owners`,
      ['build', 'stale owners', 'SIGKILL -> failed ms', 'adopt all s', 'peak RSS MiB'],
      adoptionRows,
    )

    const large = mine.get('large') as Cost
    const live = mine.get('liveOwners') as Cost
    const empty = mine.get('empty') as Cost
    console.log(`this build watching an empty repo peaks at ${mib(empty.peakRss).toFixed(1)} MiB RSS (${mib(empty.peakRss - nodeRss).toFixed(1)} MiB above an empty node process)`)
    const adopted = myAdoption as Adoption
    if (quick) {
      const why = 'a --quick run is below the sizes the goals are about'
      goalNotChecked('≤ 1 MiB/min written, 10k idle Python runs', why)
      goalNotChecked('≤ 80 MiB peak RSS, 10k idle Python runs', why)
      goalNotChecked('≤ 5 % of a core, 1,000 live owners', why)
      goalNotChecked('SIGKILL reported within 2 s during a 1,000-owner adoption', why)
      return
    }
    goal('≤ 1 MiB/min written, 10k idle Python runs', mib(large.writtenPerMin) <= 1, `${mib(large.writtenPerMin).toFixed(3)} MiB/min`)
    goal('≤ 80 MiB peak RSS, 10k idle Python runs', mib(large.peakRss) <= 80, `${mib(large.peakRss).toFixed(1)} MiB`)
    goal('≤ 5 % of a core, 1,000 live owners', live.cpu <= 0.05, percent(live.cpu))
    goal('SIGKILL reported within 2 s during a 1,000-owner adoption', adopted.killToFailedMs <= 2000, `${adopted.killToFailedMs.toFixed(0)} ms`)
  },
}
