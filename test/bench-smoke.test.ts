// The benchmarks still run: each scenario, at its --quick sizes, in its own process. Exit code
// and output shape only; no figure is judged here.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { exec, type Ran } from './support/child.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const scenarios = ['hot-path', 'detection-latency', 'actor-scale', 'snapshot', 'takeover', 'daemon-scan', 'fencing', 'wrap-overhead', 'late-endpoints', 'http-face', 'daemon-cost']

const runBench = (name: string): Promise<Ran> => exec(process.execPath, ['--import', 'tsx', 'bench/main.ts', '--quick', name], { cwd: root })

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
