/**
 * `http-face`: latency of the daemon's HTTP face with 1k and 10k runs: `GET /metrics` and
 * `GET /api/v1/runs` (and one run) over real loopback HTTP, against a real in-process daemon
 * whose runs are a live training process's snapshot (the common case: the daemon reads them). The
 * baseline is `JSON.stringify` of the same runs alone, the floor of any JSON answer.
 * @module
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { monotonicNow } from '../../lib/clock.js'
import { Daemon } from '../../lib/daemon/daemon.js'
import { HttpFace } from '../../lib/daemon/http/server.js'
import type { RunInfo, RunStatus } from '../../lib/model.js'
import { repoPaths } from '../../lib/repo.js'
import { snapshotPath, statusLayout } from '../../lib/state/layout.js'
import { acquireLease } from '../../lib/state/lease.js'
import { currentOwner } from '../../lib/state/owner.js'
import { SNAPSHOT_FORMAT, SNAPSHOT_VERSION, writeSnapshotAtomic } from '../../lib/state/snapshot.js'
import { type BenchContext, type Cell, type Scenario, formatBytes, goal, goalNotChecked, nowNs, printTable, sleep, summarize, withTempDir } from '../support/report.js'

const STATUSES: RunStatus[] = ['running', 'running', 'running', 'running', 'running', 'running', 'stalled', 'stalled', 'finished', 'failed']

function runsOf(n: number): RunInfo[] {
  const at = monotonicNow()
  return Array.from({ length: n }, (_, i): RunInfo => {
    const status = STATUSES[i % STATUSES.length] as RunStatus
    return {
      hash: `run_${i.toString(16).padStart(8, '0')}`,
      name: `sweep-lr-${i}`,
      experiment: `exp-${i % 20}`,
      status,
      startedAt: at - 3_600_000,
      lastProgressAt: at - (i % 100) * 1000,
      expectNextIn: 600,
      deadlineAt: at + 600_000,
      grace: 100,
      episode: status === 'stalled' ? 1 : 0,
      ...(status === 'failed' ? { reason: 'exited with code 1' } : {}),
    }
  })
}

async function timed(url: string, rounds: number): Promise<{ ms: number[]; bytes: number }> {
  const ms: number[] = []
  let bytes = 0
  for (let i = 0; i < rounds; i++) {
    const t0 = nowNs()
    const response = await fetch(url)
    const body = await response.arrayBuffer()
    ms.push((nowNs() - t0) / 1e6)
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`)
    bytes = body.byteLength
  }
  return { ms, bytes }
}

async function measure(n: number, rounds: number): Promise<{ rows: Cell[][]; runsP50: number; metricsP50: number }> {
  return withTempDir('http', async (dir) => {
    await mkdir(join(dir, '.aim'), { recursive: true })
    const owner = currentOwner('process')
    const path = snapshotPath(statusLayout(repoPaths(dir)), owner.id)
    await mkdir(join(path, '..'), { recursive: true })
    const lease = await acquireLease(path, owner, { staleMs: 10_000 })
    const runs = runsOf(n)
    await writeSnapshotAtomic(path, { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, owner, generation: lease.generation, writtenAt: monotonicNow(), runs, outbox: null, extra: {} })
    const daemon = new Daemon({ repos: [dir], writeLine: () => undefined })
    const face = await HttpFace.start({ listen: { host: '127.0.0.1', port: 0 }, repos: daemon.repos, owner: daemon.owner, staleMs: daemon.staleMs, log: daemon.log })
    try {
      await daemon.start()
      for (let i = 0; i < 200 && face.model.rows().length < n; i++) {
        await face.model.refresh()
        await sleep(50)
      }
      if (face.model.rows().length < n) throw new Error(`the daemon shows ${face.model.rows().length} of ${n} runs`)
      const floor: number[] = []
      for (let i = 0; i < rounds; i++) {
        const t0 = nowNs()
        JSON.stringify({ runs })
        floor.push((nowNs() - t0) / 1e6)
      }
      const metrics = await timed(`${face.url}/metrics`, rounds)
      const list = await timed(`${face.url}/api/v1/runs`, rounds)
      const one = await timed(`${face.url}/api/v1/runs/${runs[0]?.hash}`, rounds)
      const row = (what: string, s: { ms: number[]; bytes: number }): Cell[] => {
        const { p50, p99, max } = summarize(s.ms)
        return [n, what, p50, p99, max, formatBytes(s.bytes)]
      }
      return {
        rows: [
          row('GET /metrics', metrics),
          row('GET /api/v1/runs', list),
          row('GET /api/v1/runs/:hash', one),
          row('baseline: JSON.stringify of the runs', { ms: floor, bytes: Buffer.byteLength(JSON.stringify({ runs })) }),
        ],
        runsP50: summarize(list.ms).p50,
        metricsP50: summarize(metrics.ms).p50,
      }
    } finally {
      await face.close()
      await daemon.close()
      await lease.release()
    }
  })
}

export const httpFace: Scenario = {
  name: 'http-face',
  description: 'GET /metrics and GET /api/v1/runs latency over loopback with 1k and 10k runs, against JSON.stringify of the runs',
  async run({ quick }: BenchContext) {
    const sizes = quick ? [100] : [1000, 10_000]
    const rows: Cell[][] = []
    let at10k: { runsP50: number; metricsP50: number } | null = null
    for (const n of sizes) {
      const result = await measure(n, quick ? 5 : 30)
      rows.push(...result.rows)
      if (n === 10_000) at10k = result
    }
    printTable('http-face: latency (ms, sequential requests, one client)', ['runs', 'request', 'p50', 'p99', 'max', 'body'], rows)
    if (at10k === null) goalNotChecked('/api/v1/runs and /metrics under 250 ms p50 at 10k runs', 'a --quick run stops below 10k runs')
    else goal('/api/v1/runs and /metrics under 250 ms p50 at 10k runs', at10k.runsP50 < 250 && at10k.metricsP50 < 250, `${at10k.runsP50.toFixed(1)} ms and ${at10k.metricsP50.toFixed(1)} ms`)
  },
}
