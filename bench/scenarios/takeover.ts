/**
 * `takeover`: how fast the `aim-watcher start` daemon learns of a training process's fate.
 * - SIGKILL: the process dies without `reportSuccessfulFinish()`; time until the daemon prints
 *   the run's `failed` transition (found from the dead pid, not from the deadline).
 * - SIGSTOP: the process is frozen, so its lease goes stale; time until the daemon prints that
 *   it adopted the run.
 * Real processes: the daemon is `node dist/cli/bin.js --repo R start --json-logs`, each
 * training process is bench/support/takeover-child.ts. The daemon's JSON lines are read for
 * `event` and `hash`. When the daemon cannot be started or never reports, the scenario says
 * "not available" with the reason, and prints no figure.
 * @module
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_STALE_MS, DEFAULT_UPDATE_MS } from '../../lib/state/lease.js'
import { type BenchContext, type Cell, type Scenario, goal, notAvailable, printTable, runHash, sleep, summarize, withTempDir } from '../support/report.js'
import { type Logged, Watched } from '../support/watched.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'dist', 'cli', 'bin.js')
const CHILD = join(ROOT, 'bench', 'support', 'takeover-child.ts')

const tail = (text: string) => text.trim().split('\n').slice(-2).join(' / ').slice(0, 300) || '(nothing)'
const firstLine = (text: string) => text.trim().split('\n')[0]?.slice(0, 300) || '(nothing)'

/** Starts a training process and waits until its run is watched. */
async function startTraining(repo: string, hash: string): Promise<Watched | string> {
  const child = new Watched(['--import', 'tsx', CHILD, repo, hash])
  const ready = await child.waitFor((l) => l.line === `ready ${hash}`, 20_000)
  if (ready === undefined) {
    await child.stop()
    return `the training process did not start: ${tail(child.stderr)}`
  }
  return child
}

export const takeover: Scenario = {
  name: 'takeover',
  description: 'aim-watcher start: SIGKILLed process -> failure reported (ms), SIGSTOPped process -> run adopted (ms)',
  async run({ quick }: BenchContext) {
    const trials = quick ? 1 : 10
    const staleMs = DEFAULT_STALE_MS
    console.log(`lease settings: staleMs ${staleMs}, updateMs ${DEFAULT_UPDATE_MS} (lib/state/lease.ts defaults, used by the training process)`)
    if (!existsSync(BIN)) {
      notAvailable('takeover', `${BIN} is not built (npm run build)`)
      return
    }
    await withTempDir('takeover', async (repo) => {
      await mkdir(join(repo, '.aim'), { recursive: true })
      const daemon = new Watched([BIN, '--repo', repo, 'start', '--json-logs'])
      try {
        // A daemon that works stays up; one that is not there yet exits (or refuses the flag).
        await sleep(quick ? 1500 : 3000)
        if (daemon.exit !== undefined) {
          notAvailable(
            'takeover',
            `\`aim-watcher --repo R start --json-logs\` exited (code ${daemon.exit.code}) instead of watching; stdout: ${tail(daemon.lines.map((l) => l.line).join('\n'))}; stderr: ${firstLine(daemon.stderr)}`,
          )
          return
        }

        const started = await daemon.waitFor((l) => l.event === 'daemon-started', 5_000)
        const daemonStale = started?.record?.['staleMs']
        const daemonPoll = started?.record?.['pollMs']
        console.log(`daemon settings: staleMs ${String(daemonStale ?? 'not logged')}, pollMs ${String(daemonPoll ?? 'not logged')}`)
        const adoptStaleMs = typeof daemonStale === 'number' ? daemonStale : staleMs

        // SIGKILL, one trial at a time.
        const killMs: number[] = []
        for (let t = 0; t < trials; t++) {
          const hash = runHash(1000 + t)
          const child = await startTraining(repo, hash)
          if (typeof child === 'string') return notAvailable('takeover', child)
          // Let the snapshot and the lease reach the disk before the process dies.
          await sleep(1500)
          const from = daemon.lines.length
          const t0 = performance.now()
          child.process.kill('SIGKILL')
          const seen = await daemon.waitFor((l) => l.hash === hash && l.event === 'failed', 30_000, from)
          await child.stop()
          if (seen === undefined) {
            return notAvailable(
              'takeover',
              `the daemon printed no {"event":"failed","hash":"${hash}"} line within 30 s of SIGKILL${daemon.exitState() !== undefined ? ` (it exited, code ${daemon.exitState()?.code}: ${tail(daemon.stderr)})` : ''}; its last lines: ${tail(daemon.lines.map((l) => l.line).join('\n'))}`,
            )
          }
          killMs.push(seen.at - t0)
        }

        // SIGSTOP: all trials at once (each waits out a whole stale period), each its own process.
        const hashes = Array.from({ length: trials }, (_, t) => runHash(2000 + t))
        const children: Watched[] = []
        try {
          for (const hash of hashes) {
            const child = await startTraining(repo, hash)
            if (typeof child === 'string') return notAvailable('takeover', child)
            children.push(child)
          }
          await sleep(1500)
          const from = daemon.lines.length
          const t0 = performance.now()
          for (const child of children) child.process.kill('SIGSTOP')
          // An adoption is logged per owner (its pid), not per run.
          const seen = await Promise.all(children.map((child) => daemon.waitFor((l) => l.event === 'adopted' && l.record?.['pid'] === child.process.pid, adoptStaleMs + 30_000, from)))
          const missing = seen.filter((l) => l === undefined).length
          if (missing > 0) {
            return notAvailable(
              'takeover',
              `no {"event":"adopted","pid":…} line for ${missing} of ${trials} frozen processes within ${(adoptStaleMs + 30_000) / 1000} s; the daemon's last lines: ${tail(daemon.lines.map((l) => l.line).join('\n'))}`,
            )
          }
          const stopMs = seen.map((l) => (l as Logged).at - t0)
          const kill = summarize(killMs)
          const stop = summarize(stopMs)
          const rows: Cell[][] = [
            ['SIGKILL -> failed', kill.n, kill.p50, kill.p99, kill.max, `the daemon's next look (pollMs ${String(daemonPoll ?? '?')}): dead pid, no lease wait`],
            ['SIGSTOP -> adopted', stop.n, stop.p50, stop.p99, stop.max, `lease stale after ${adoptStaleMs} ms (all frozen at once)`],
          ]
          printTable(`takeover: ${trials} trials each (ms)`, ['transition', 'trials', 'p50 ms', 'p99 ms', 'max ms', 'bounded by'], rows)
          goal('SIGKILL reported as a failure within the lease update period', kill.max <= DEFAULT_UPDATE_MS, `max ${kill.max.toFixed(0)} ms`)
          goal('SIGSTOP adopted within stale + one update period', stop.max <= adoptStaleMs + DEFAULT_UPDATE_MS, `max ${stop.max.toFixed(0)} ms`)
        } finally {
          for (const child of children) await child.stop()
        }
      } finally {
        await daemon.stop()
      }
    })
  },
}
