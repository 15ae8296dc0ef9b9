// The benchmarks still run: each scenario, at its --quick sizes, in its own process. Exit code
// and output shape only; no figure is judged here.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const scenarios = ['hot-path', 'detection-latency', 'actor-scale', 'snapshot', 'takeover', 'daemon-scan', 'fencing', 'wrap-overhead', 'late-endpoints', 'http-face']

function runBench(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/main.ts', '--quick', name], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

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
