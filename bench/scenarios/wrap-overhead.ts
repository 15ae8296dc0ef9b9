/**
 * `wrap-overhead`: what `aim-watcher run` costs a command that prints a lot. A Python script
 * prints 100k lines (a step counter and a loss, as a chatty training loop would); its wall time
 * is measured run directly and run through the wrapper, side by side, in one run, the output
 * read through a pipe each time (and checked to be the same bytes). Rows:
 * - direct, Python's default block buffering on a pipe;
 * - direct with `PYTHONUNBUFFERED=1` (what the wrapper sets for the command: one write per line);
 * - wrapped, every line progress (the default);
 * - wrapped with `--progress REGEX` (each line decoded and matched);
 * - wrapped `true`: the wrapper's fixed cost (Node start, watcher thread, lease, snapshot).
 * @module
 */
import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BenchContext, type Scenario, goal, printTable, summarize, withTempDir } from '../support/report.js'

const BIN = fileURLToPath(new URL('../../dist/cli/bin.js', import.meta.url))

const script = (lines: number): string => `import sys\nfor i in range(${lines}):\n    print(f"step {i} loss {1 / (i + 1):.6f}")\n`

/** Runs a command, reading its stdout through a pipe; resolves with the wall time and the bytes read. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ ms: number; bytes: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] })
    let bytes = 0
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length))
    child.on('error', reject)
    child.on('close', (code) => resolve({ ms: performance.now() - started, bytes, code }))
  })
}

export const wrapOverhead: Scenario = {
  name: 'wrap-overhead',
  description: 'aim-watcher run around a command printing 100k lines, against the command alone',
  async run({ quick }: BenchContext) {
    const lines = quick ? 1000 : 100_000
    const trials = quick ? 1 : 5
    await withTempDir('aim-bench-wrap-', async (dir) => {
      await mkdir(join(dir, '.aim'), { recursive: true })
      const py = ['-c', script(lines)]
      const base = { ...process.env }
      delete base['PYTHONUNBUFFERED']
      const wrap = (extra: string[], command: string[]) => [BIN, '--repo', dir, 'run', '--no-daemon', ...extra, '--', ...command]
      const cases: Array<{ label: string; command: string; args: string[]; env: NodeJS.ProcessEnv }> = [
        { label: 'direct (block-buffered pipe)', command: 'python3', args: py, env: base },
        { label: 'direct, PYTHONUNBUFFERED=1', command: 'python3', args: py, env: { ...base, PYTHONUNBUFFERED: '1' } },
        { label: 'aim-watcher run', command: process.execPath, args: wrap([], ['python3', ...py]), env: base },
        { label: 'aim-watcher run --progress', command: process.execPath, args: wrap(['--progress', '^step \\d+ loss'], ['python3', ...py]), env: base },
        { label: 'aim-watcher run -- true', command: process.execPath, args: wrap([], ['true']), env: base },
      ]
      const times = cases.map(() => [] as number[])
      const sizes = cases.map(() => 0)
      // Interleaved, so that the machine's load falls on every case alike.
      for (let trial = 0; trial < trials; trial++) {
        for (const [i, c] of cases.entries()) {
          const result = await timed(c.command, c.args, c.env, dir)
          if (result.code !== 0) throw new Error(`${c.label} exited with ${result.code}`)
          times[i]?.push(result.ms)
          sizes[i] = result.bytes
        }
      }
      const medians = times.map((t) => summarize([...t].sort((a, b) => a - b)).p50)
      const [direct, unbuffered, wrapped, matched, fixed] = medians as [number, number, number, number, number]
      printTable(
        `wrap-overhead: ${lines.toLocaleString('en-US')} lines, median of ${trials} (ms)`,
        ['case', 'wall ms', 'min ms', 'max ms', 'stdout bytes', 'vs direct unbuffered'],
        cases.map((c, i) => {
          const sorted = [...(times[i] ?? [])].sort((a, b) => a - b)
          return [c.label, medians[i] ?? 0, sorted[0] ?? 0, sorted[sorted.length - 1] ?? 0, sizes[i] ?? 0, i === 4 ? '' : `${((medians[i] ?? 0) / unbuffered).toFixed(2)}x`]
        }),
      )
      const perLineUs = ((wrapped - fixed - unbuffered) * 1000) / lines
      console.log(`per line, beyond the fixed cost: ${perLineUs.toFixed(2)} µs (default), ${(((matched - fixed - unbuffered) * 1000) / lines).toFixed(2)} µs (--progress); direct block-buffered ${direct.toFixed(0)} ms`)
      goal('every byte passed through', sizes[2] === sizes[0] && sizes[3] === sizes[0], `${sizes[2]} and ${sizes[3]} bytes wrapped, ${sizes[0]} direct`)
    })
  },
}
