/**
 * `aim-watcher status`: every run known in a repo, from every owner's snapshot (training
 * processes and the daemon), with who holds it and whether that holder still lives. Read-only:
 * unlike the daemon, it never sets a bad file aside, it only says so.
 * @module
 */
import { monotonicNow } from '../clock.js'
import type { RunInfo } from '../model.js'
import { repoPaths } from '../repo.js'
import { inspectLease, DEFAULT_STALE_MS } from '../state/lease.js'
import { daemonLeasePath, listOwnerIds, snapshotPath, statusLayout } from '../state/layout.js'
import type { OwnerKind } from '../state/owner.js'
import { MAX_SNAPSHOT_BYTES, readStateFile } from '../state/safe-fs.js'
import { parseSnapshot } from '../state/snapshot.js'
import { forTerminal } from '../text.js'

/** How a snapshot's holder looks: running, dead (pid gone on this host), or stale (lease untouched). */
export type HolderStatus = 'alive' | 'dead' | 'stale'

/** One run in one owner's snapshot. */
export interface RunStatusRow extends RunInfo {
  owner: { id: string; kind: OwnerKind; pid: number; host: string; state: HolderStatus }
  /** Milliseconds until the run counts as stalled (negative: overdue); null without a deadline or when ended. */
  stallsInMs: number | null
}

/** What {@link repoStatus} finds. */
export interface RepoStatus {
  repo: string
  /** The daemon holding the repo, if any. */
  daemon: { pid: number; host: string; state: HolderStatus } | null
  runs: RunStatusRow[]
  /** Snapshots that could not be read, with why. */
  problems: Array<{ owner: string; error: string }>
}

/** Reads the status of a repo. `now` is the monotonic epoch clock the snapshots use. */
export async function repoStatus(root: string, options: { staleMs?: number; now?: number } = {}): Promise<RepoStatus> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  const now = options.now ?? monotonicNow()
  const paths = repoPaths(root)
  const layout = statusLayout(paths)
  const stateOf = (h: { liveness: string; orphaned: boolean }): HolderStatus => (h.liveness === 'dead' ? 'dead' : h.orphaned ? 'stale' : 'alive')
  const lease = await inspectLease(daemonLeasePath(layout), { staleMs })
  const daemon = lease.holder !== null && !(lease.orphaned && lease.idleMs === Infinity) ? { pid: lease.holder.pid, host: lease.holder.host, state: stateOf(lease) } : null
  const runs: RunStatusRow[] = []
  const problems: RepoStatus['problems'] = []
  for (const id of await listOwnerIds(layout.owners)) {
    const path = snapshotPath(layout, id)
    try {
      // Never blocks on a FIFO nor follows a link: `status` answers whatever is in the folder.
      const text = await readStateFile(path, { maxBytes: MAX_SNAPSHOT_BYTES })
      if (text === null) continue // retired while we listed
      const snapshot = parseSnapshot(JSON.parse(text))
      const holder = await inspectLease(path, { staleMs })
      const who = snapshot.adoptedBy ?? snapshot.owner
      const owner = { id, kind: who.kind, pid: who.pid, host: who.host, state: stateOf(holder) }
      for (const run of snapshot.runs) {
        const active = run.status === 'running'
        runs.push({ ...run, owner, stallsInMs: active && run.deadlineAt !== null ? run.deadlineAt + run.grace * 1000 - now : null })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // retired while we listed
      problems.push({ owner: id, error: error instanceof Error ? error.message : String(error) })
    }
  }
  runs.sort((a, b) => a.hash.localeCompare(b.hash) || a.startedAt - b.startedAt)
  return { repo: root, daemon, runs, problems }
}

function duration(ms: number): string {
  const s = Math.abs(ms) / 1000
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)}s`
  if (s < 7200) return `${Math.round(s / 60)}m`
  return `${(s / 3600).toFixed(1)}h`
}

/** The status as a table for people. */
export function formatStatus(status: RepoStatus, now: number = monotonicNow()): string {
  const lines = [`repo ${status.repo}`, status.daemon === null ? 'daemon: none' : `daemon: pid ${status.daemon.pid} on ${status.daemon.host} (${status.daemon.state})`]
  if (status.runs.length === 0) lines.push('no runs')
  else {
    const rows = [['RUN', 'STATUS', 'OWNER', 'LAST PROGRESS', 'DEADLINE', 'REASON']]
    for (const run of status.runs) {
      const deadline = run.stallsInMs === null ? '-' : run.stallsInMs >= 0 ? `stalls in ${duration(run.stallsInMs)}` : `overdue ${duration(run.stallsInMs)}`
      rows.push([
        run.hash,
        run.status,
        `${run.owner.kind} ${run.owner.pid}@${run.owner.host} ${run.owner.state}`,
        `${duration(now - run.lastProgressAt)} ago`,
        deadline,
        forTerminal(run.reason ?? ''),
      ])
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
    for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
  }
  for (const problem of status.problems) lines.push(`unreadable snapshot ${problem.owner}: ${forTerminal(problem.error)}`)
  return lines.join('\n')
}
