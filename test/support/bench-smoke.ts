// Runs benchmark scenarios at their --quick sizes, each in its own process: exit code and output
// shape only; no figure is judged here. The scenarios are split over two test files so that
// each stays well inside the per-file timeout on a loaded machine.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { exec, type Ran } from './child.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** The scenarios that run in-process (bench-smoke.test.ts). */
export const IN_PROCESS = ['hot-path', 'detection-latency', 'actor-scale', 'snapshot', 'wrap-overhead', 'late-endpoints'] as const
/** The scenarios that start real daemons (bench-smoke-daemon.test.ts). */
export const WITH_DAEMONS = ['takeover', 'daemon-scan', 'fencing', 'http-face', 'daemon-cost'] as const
/** The scenario of runs over sessions, with its own daemon and training processes (bench-smoke-remote.test.ts). */
export const WITH_SESSIONS = ['remote-runs'] as const

/** The scenario names `bench/main.ts --list` prints. */
export async function listedScenarios(): Promise<string[]> {
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', 'bench/main.ts', '--list'], { cwd: root })
  return [...stdout.matchAll(/^ {2}(\S+) /gm)].map((m) => m[1] as string)
}

const runBench = (name: string): Promise<Ran> => exec(process.execPath, ['--import', 'tsx', 'bench/main.ts', '--quick', name], { cwd: root })

/** One subtest per scenario. */
export function smokeScenarios(scenarios: readonly string[]): void {
  for (const name of scenarios) {
    t.test(`bench ${name} --quick`, async (t) => {
      const { code, stdout, stderr } = await runBench(name)
      t.equal(code, 0, `exits 0${code === 0 ? '' : `; stderr: ${stderr.slice(-2000)}`}`)
      const header = new RegExp(`^## ${name}: .*\\n\\| .* \\|\\n\\|[-:|]+\\|$`, 'm')
      // `npm test` builds the daemon first, so every scenario must measure: "not available" fails.
      t.match(stdout, header, 'prints its table with a header row')
      t.notMatch(stdout, /: not available: /, 'every figure was measured')
      for (const line of stdout.split('\n').filter((l) => l.startsWith('goal: '))) {
        t.match(line, /^goal: .+ — (met|missed|not checked) \(.+\)$/, 'goal lines say met, missed or not checked')
      }
    })
  }
}
