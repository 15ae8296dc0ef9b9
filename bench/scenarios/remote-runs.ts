/**
 * `remote-runs`: what a daemon does for runs that report over sessions.
 * - Ingest: reports per second one real daemon (`start --http`) takes from 1,000 remote runs,
 *   spread over 20 sessions that send as fast as the daemon acknowledges (each report moves its
 *   run's deadline, so none is a duplicate), and the share of a core it used meanwhile; beside
 *   it, what 1,000 runs need at the client's coalescing (about one message a second per run).
 * - SIGKILL -> failed: a training process killed while it reports, until the daemon logs its
 *   run's `failed` line: over a session on the repo's Unix socket, over TCP, and, as the
 *   baseline, a local run found dead at the daemon's next poll.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { DEFAULT_RECONNECT_WINDOW_MS, SESSION_PATH, SESSION_SOCKET_NAME } from '../../lib/session/protocol.js'
import { type BenchContext, type Cell, type Scenario, goal, notAvailable, printTable, runHash, sleep, summarize, withTempDir } from '../support/report.js'
import { Watched } from '../support/watched.js'
import { UNIX_RECONNECT_WINDOW_MS } from '../../lib/daemon/session/repo-sessions.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'dist', 'cli', 'bin.js')
const CHILD = join(ROOT, 'bench', 'support', 'remote-child.ts')
const TOKEN = 'bench-token-0123456789abcdef'

const tail = (text: string) => text.trim().split('\n').slice(-2).join(' / ').slice(0, 300) || '(nothing)'

function ticksOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return Number(fields[11]) + Number(fields[12])
}

async function startDaemon(repo: string): Promise<{ daemon: Watched; url: string } | string> {
  const tokenFile = join(repo, '..', 'token')
  await writeFile(tokenFile, TOKEN, { mode: 0o600 })
  const daemon = new Watched([BIN, '--repo', repo, 'start', '--json-logs', '--http', '127.0.0.1:0', '--token-file', tokenFile])
  const listening = await daemon.waitFor((l) => l.event === 'http-listening', 20_000)
  const url = listening?.record?.['url']
  if (typeof url !== 'string') {
    await daemon.stop()
    return `the daemon did not listen: ${tail(daemon.stderr)} ${tail(daemon.lines.map((l) => l.line).join('\n'))}`
  }
  // The repo's socket is there once the daemon is the repo's sender.
  for (let i = 0; i < 200 && !existsSync(join(repo, '.aim', 'status', SESSION_SOCKET_NAME)); i++) await sleep(50)
  return { daemon, url }
}

/** One session that opens `runs` runs, then reports for them as fast as it is acknowledged. */
async function ingestSession(url: string, index: number, runs: number, windowMs: number): Promise<number> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + SESSION_PATH, { headers: { authorization: `Bearer ${TOKEN}` } })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  let seq = 0
  let acked = -1
  let wake: (() => void) | null = null
  ws.on('message', (data: Buffer) => {
    const m = JSON.parse(data.toString()) as { t: string; seq?: number }
    if (m.t === 'ack' && typeof m.seq === 'number') acked = m.seq
    wake?.()
  })
  ws.send(JSON.stringify({ t: 'hello', v: 1, client: { id: `bench-${index}-${process.pid}`, host: 'bench', pid: process.pid } }))
  const base = Date.now()
  const hashes = Array.from({ length: runs }, (_, i) => runHash(index * runs + i))
  for (const hash of hashes) ws.send(JSON.stringify({ t: 'open', seq: seq++, hash, grace: 60, at: base }))
  while (acked < seq - 1) await new Promise<void>((resolve) => (wake = resolve))
  const start = acked
  const end = performance.now() + windowMs
  let at = base
  // A window of 200 reports in flight: the daemon, not the socket, sets the pace.
  while (performance.now() < end) {
    while (seq - acked - 1 < 200) {
      at += 1
      ws.send(JSON.stringify({ t: 'progress', seq: seq++, hash: hashes[seq % runs], at, expectNextIn: 3600 }))
    }
    await new Promise<void>((resolve) => (wake = resolve))
  }
  const done = acked - start
  ws.send(JSON.stringify({ t: 'bye' }))
  ws.close()
  return done
}

async function ingest(url: string, daemonPid: number, runs: number, sessions: number, windowMs: number): Promise<{ perSecond: number; cpu: number }> {
  const t0 = performance.now()
  const ticks0 = ticksOf(daemonPid)
  const counts = await Promise.all(Array.from({ length: sessions }, (_, i) => ingestSession(url, i, runs / sessions, windowMs)))
  const seconds = (performance.now() - t0) / 1000
  const cpu = (ticksOf(daemonPid) - ticks0) / 100 / seconds
  return { perSecond: counts.reduce((a, b) => a + b, 0) / seconds, cpu }
}

/**
 * SIGKILL -> the daemon's `failed` line, `trials` times, for children started with `where`; and,
 * over a session, SIGKILL -> its `session-ended` line (the death known, before the reconnect window).
 */
async function killTimes(daemon: Watched, where: string, trials: number, first: number): Promise<{ failed: number[]; known: number[] } | string> {
  const times: number[] = []
  const known: number[] = []
  for (let t = 0; t < trials; t++) {
    const hash = runHash(first + t)
    const child = new Watched(['--import', 'tsx', CHILD, where, hash, TOKEN])
    const ready = await child.waitFor((l) => l.line === `ready ${hash}`, 20_000)
    if (ready === undefined) {
      await child.stop()
      return `the training process did not start: ${tail(child.stderr)}`
    }
    await sleep(500)
    const from = daemon.lines.length
    const t0 = performance.now()
    child.process.kill('SIGKILL')
    const seen = await daemon.waitFor((l) => l.hash === hash && l.event === 'failed', 30_000, from)
    await child.stop()
    if (seen === undefined) return `no failed line for ${hash} within 30 s; the daemon's last lines: ${tail(daemon.lines.map((l) => l.line).join('\n'))}`
    times.push(seen.at - t0)
    const ended = daemon.lines.slice(from).find((l) => l.event === 'session-ended' && l.record?.['pid'] === child.process.pid)
    if (ended !== undefined) known.push(ended.at - t0)
  }
  return { failed: times, known }
}

export const remoteRuns: Scenario = {
  name: 'remote-runs',
  description: 'sessions: reports/s one daemon ingests from 1,000 remote runs; SIGKILL -> failed over a Unix socket, TCP, and the poll',
  async run({ quick }: BenchContext) {
    if (!existsSync(BIN)) return notAvailable('remote-runs', `${BIN} is not built (npm run build)`)
    const runs = quick ? 100 : 1000
    const sessions = quick ? 4 : 20
    const windowMs = quick ? 1000 : 10_000
    const trials = quick ? 1 : 10
    await withTempDir('remote', async (dir) => {
      const repo = join(dir, 'repo')
      await mkdir(join(repo, '.aim'), { recursive: true })
      const started = await startDaemon(repo)
      if (typeof started === 'string') return notAvailable('remote-runs', started)
      const { daemon, url } = started
      try {
        const { perSecond, cpu } = await ingest(url, daemon.process.pid as number, runs, sessions, windowMs)
        printTable(
          `remote-runs: ingest from ${runs} remote runs over ${sessions} sessions, ${windowMs / 1000} s`,
          ['what', 'reports/s', 'daemon CPU (share of a core)'],
          [
            ['the daemon, acknowledged reports', perSecond, `${(cpu * 100).toFixed(1)} %`],
            [`needed: ${runs} runs at the client's ~1 message/s/run`, runs, ''],
          ],
        )
        goal(`ingests at least 10x what ${runs} coalescing runs send`, perSecond >= runs * 10, `${perSecond.toFixed(0)}/s`)
        const socket = join(repo, '.aim', 'status', SESSION_SOCKET_NAME)
        const rows: Cell[][] = []
        const cases: Array<[string, string, string]> = [
          ['session over the Unix socket', `unix:${socket}`, `the socket closes with the process, then the ${UNIX_RECONNECT_WINDOW_MS} ms reconnect window`],
          ['session over TCP (127.0.0.1)', url, `the socket closes with the process, then the ${DEFAULT_RECONNECT_WINDOW_MS} ms reconnect window`],
          ['baseline: local run, daemon poll', `repo:${repo}`, "the daemon's next poll finds the dead pid"],
        ]
        for (const [label, where, bound] of cases) {
          const times = await killTimes(daemon, where, trials, 5000 + rows.length * 100)
          if (typeof times === 'string') return notAvailable('remote-runs', `${label}: ${times}`)
          const s = summarize(times.failed)
          const k = times.known.length > 0 ? summarize(times.known).p50 : '—'
          rows.push([label, s.n, k, s.p50, s.p99, s.max, bound])
        }
        printTable(`remote-runs: SIGKILL -> failed line, ${trials} trials each (ms)`, ['how the process reports', 'trials', 'death known p50 ms', 'failed p50 ms', 'p99 ms', 'max ms', 'bounded by'], rows)
        goal('SIGKILL over a session reported within 2 s', Math.max(...rows.slice(0, 2).map((r) => r[5] as number)) <= 2000, `max ${Math.max(...rows.slice(0, 2).map((r) => r[5] as number)).toFixed(0)} ms`)
      } finally {
        await daemon.stop()
      }
    })
  },
}
