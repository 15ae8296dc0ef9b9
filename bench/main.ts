/**
 * The benchmarks: named scenarios, each printing a table with its baseline measured in the
 * same run, and one line per goal.
 *
 * ```sh
 * npm run bench                           # every scenario
 * npm run bench -- hot-path actor-scale   # some
 * npm run bench -- --quick                # tiny sizes: a smoke run
 * npm run bench -- daemon-cost --baseline ../baseline/dist   # with a baseline build beside
 * npm run bench -- --list
 * ```
 * @module
 */
import { cpus } from 'node:os'
import type { Scenario } from './support/report.js'
import { hotPath } from './scenarios/hot-path.js'
import { detectionLatency } from './scenarios/detection-latency.js'
import { actorScale } from './scenarios/actor-scale.js'
import { snapshot } from './scenarios/snapshot.js'
import { takeover } from './scenarios/takeover.js'
import { daemonScan } from './scenarios/daemon-scan.js'
import { fencing } from './scenarios/fencing.js'
import { wrapOverhead } from './scenarios/wrap-overhead.js'
import { lateEndpoints } from './scenarios/late-endpoints.js'
import { httpFace } from './scenarios/http-face.js'
import { BASELINE_ENV, daemonCost } from './scenarios/daemon-cost.js'
import { remoteRuns } from './scenarios/remote-runs.js'

// The scenarios start the daemons they measure; a training child's default daemon would be
// another one, left running. The crash scenario turns it back on for its own children.
process.env['AIM_STATUS_DAEMON'] ??= '0'

const scenarios: Scenario[] = [hotPath, detectionLatency, actorScale, snapshot, takeover, daemonScan, fencing, wrapOverhead, lateEndpoints, httpFace, daemonCost, remoteRuns]

function usage(): string {
  return ['usage: tsx bench/main.ts [--quick] [--list] [--baseline DIST] [NAME…]', 'scenarios:', ...scenarios.map((s) => `  ${s.name.padEnd(18)} ${s.description}`)].join('\n')
}

async function main(argv: string[]): Promise<number> {
  const names: string[] = []
  let quick = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--quick') quick = true
    else if (arg === '--baseline') {
      // A baseline build's dist/ for the scenarios that compare against one (daemon-cost).
      const dir = argv[++i]
      if (dir === undefined || dir.startsWith('-')) {
        console.error(`--baseline needs a folder (a build's dist/)\n${usage()}`)
        return 2
      }
      process.env[BASELINE_ENV] = dir
    } else if (arg === '--list' || arg === '--help' || arg === '-h') {
      console.log(usage())
      return 0
    } else if (arg.startsWith('-')) {
      console.error(`unknown option ${arg}\n${usage()}`)
      return 2
    } else names.push(arg)
  }
  const unknown = names.filter((name) => !scenarios.some((s) => s.name === name))
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(', ')}\n${usage()}`)
    return 2
  }
  const selected = names.length === 0 ? scenarios : scenarios.filter((s) => names.includes(s.name))
  console.log(`# @aim/status benchmarks${quick ? ' (--quick: smoke sizes, figures not meaningful)' : ''}`)
  console.log(`${new Date().toISOString()} · ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown cpu'}) · Node ${process.version}`)
  const started = performance.now()
  let failed = 0
  for (const scenario of selected) {
    const t0 = performance.now()
    console.log(`\n# ${scenario.name}: ${scenario.description}`)
    try {
      await scenario.run({ quick })
    } catch (error) {
      failed++
      console.error(`${scenario.name} failed: ${(error as Error).stack ?? String(error)}`)
    }
    console.log(`(${scenario.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`)
  }
  console.log(`\ntotal: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return failed === 0 ? 0 : 1
}

process.exitCode = await main(process.argv.slice(2))
