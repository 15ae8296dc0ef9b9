/**
 * `aim-watcher status`: every run known in a repo, from every owner's snapshot (training
 * processes and the daemon) and Python Aim's check-ins, with its name and experiment, who holds
 * it, whether that holder still lives and who watches it now: a run whose process is gone and
 * that no daemon watches is shown as such, not as `running`. Read-only: unlike the daemon, it
 * never sets a bad file aside, it only says so.
 * @module
 */
import { readdir } from 'node:fs/promises'
import { DEFAULT_CHECKIN_GRACE, checkReaderState, type CheckinReaderState, type CheckinRunState } from '../aim/checkin-reader.js'
import { isWatchedFlag, parseCheckinName } from '../aim/checkins.js'
import { monotonicNow } from '../clock.js'
import type { RunInfo } from '../model.js'
import { repoPaths } from '../repo.js'
import { inspectLease, DEFAULT_STALE_MS } from '../state/lease.js'
import { daemonLeasePath, listOwnerIds, snapshotPath, statusLayout } from '../state/layout.js'
import type { OwnerKind } from '../state/owner.js'
import { readSnapshot } from '../state/snapshot.js'
import { forTerminal } from '../text.js'

/** How a snapshot's holder looks: running, dead (pid gone on this host), or stale (lease untouched). */
export type HolderStatus = 'alive' | 'dead' | 'stale'

/**
 * Who watches a run now: its own training process (or the daemon that holds it), a live daemon
 * that will take it over (its owner is gone), or nobody: its owner is gone and no daemon runs,
 * so it will never be reported. Null for a run that ended.
 */
export type WatchedBy = 'owner' | 'daemon' | 'nobody'

/** One run known in the repo: from an owner's snapshot, or a Python-Aim run from its check-ins. */
export interface RunStatusRow extends RunInfo {
  /** Where the run comes from: a Node owner's snapshot, or Python Aim's check-ins. */
  source: 'node' | 'python'
  /** The snapshot's holder; for a Python run, the daemon that reads its check-ins (or none). */
  owner: { id: string; kind: OwnerKind | 'python'; pid: number | null; host: string | null; state: HolderStatus | 'unknown' }
  /** Who watches it now; null once it ended. */
  watchedBy: WatchedBy | null
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

const isActive = (status: string): boolean => status === 'running' || status === 'stalled'

/** Reads the status of a repo. `now` is the monotonic epoch clock the snapshots use. */
export async function repoStatus(root: string, options: { staleMs?: number; now?: number } = {}): Promise<RepoStatus> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS
  const now = options.now ?? monotonicNow()
  const paths = repoPaths(root)
  const layout = statusLayout(paths)
  const stateOf = (h: { liveness: string; orphaned: boolean }): HolderStatus => (h.liveness === 'dead' ? 'dead' : h.orphaned ? 'stale' : 'alive')
  const lease = await inspectLease(daemonLeasePath(layout), { staleMs })
  const daemon = lease.holder !== null && !(lease.orphaned && lease.idleMs === Infinity) ? { pid: lease.holder.pid, host: lease.holder.host, state: stateOf(lease) } : null
  const daemonWatches = daemon?.state === 'alive'
  const rows = new Map<string, RunStatusRow>()
  const problems: RepoStatus['problems'] = []
  const checkinStates: CheckinReaderState[] = []
  for (const id of await listOwnerIds(layout.owners)) {
    const path = snapshotPath(layout, id)
    try {
      // Never blocks on a FIFO nor follows a link, never sets a file aside: `status` answers
      // whatever is in the folder (a journal replayed on its snapshot).
      let journalProblem: Error | null = null
      const snapshot = await readSnapshot(path, { setAside: false, onJournalProblem: (error) => void (journalProblem = error) })
      if (snapshot === null) continue // retired while we listed
      if (journalProblem !== null) problems.push({ owner: id, error: (journalProblem as Error).message })
      const holder = await inspectLease(path, { staleMs })
      const who = snapshot.adoptedBy ?? snapshot.owner
      const owner = { id, kind: who.kind, pid: who.pid, host: who.host, state: stateOf(holder) }
      if (who.kind === 'daemon' && snapshot.extra['checkins'] !== undefined) {
        try {
          checkinStates.push(checkReaderState(snapshot.extra['checkins']))
        } catch {
          // A bad reader state: its Python runs are listed from the check-ins alone.
        }
      }
      for (const run of snapshot.runs) {
        const active = isActive(run.status)
        const watchedBy: WatchedBy | null = !active ? null : owner.state === 'alive' ? (who.kind === 'daemon' ? 'daemon' : 'owner') : daemonWatches ? 'daemon' : 'nobody'
        const row: RunStatusRow = { ...run, source: 'node', owner, watchedBy, stallsInMs: run.status === 'running' && run.deadlineAt !== null ? run.deadlineAt + run.grace * 1000 - now : null }
        // One row per run: the same run may be in a snapshot being adopted and in the adopter's.
        const key = `${run.hash}@${run.startedAt}`
        const seen = rows.get(key)
        if (seen === undefined || preferred(row, seen)) rows.set(key, row)
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // retired while we listed
      problems.push({ owner: id, error: error instanceof Error ? error.message : String(error) })
    }
  }
  const nodeHashes = new Set([...rows.values()].map((row) => row.hash))
  const runs = [...rows.values(), ...(await pythonRuns(paths.checkins, checkinStates, nodeHashes, daemon, now))]
  runs.sort((a, b) => a.hash.localeCompare(b.hash) || a.startedAt - b.startedAt)
  return { repo: root, daemon, runs, problems }
}

/** Of two rows of one run: the one whose holder lives, else the one that knows more. */
function preferred(row: RunStatusRow, than: RunStatusRow): boolean {
  if ((row.owner.state === 'alive') !== (than.owner.state === 'alive')) return row.owner.state === 'alive'
  if (isActive(row.status) !== isActive(than.status)) return !isActive(row.status)
  return row.lastProgressAt > than.lastProgressAt
}

/**
 * Python-Aim runs: as a daemon's check-in reader knows them (its first sights, its stalls), else
 * from the newest watched check-in on disk (then the time is the one in the name, which is only
 * informational). Runs a Node owner watches write check-ins too: they are listed once, as Node runs.
 */
async function pythonRuns(folder: string, states: CheckinReaderState[], nodeHashes: ReadonlySet<string>, daemon: RepoStatus['daemon'], now: number): Promise<RunStatusRow[]> {
  const known = new Map<string, CheckinRunState>()
  for (const state of states) for (const [hash, run] of Object.entries(state.runs)) if ((known.get(hash)?.idx ?? -1) < run.idx) known.set(hash, run)
  const onDisk = new Map<string, { idx: number; flag: string; time: number; expectNextIn: number }>()
  let names: string[] = []
  try {
    names = await readdir(folder)
  } catch {
    // No check-ins folder: no Python runs.
  }
  for (const name of names) {
    const checkin = parseCheckinName(name)
    if (checkin === null || !isWatchedFlag(checkin.flag)) continue
    if ((onDisk.get(checkin.hash)?.idx ?? -1) < checkin.idx) onDisk.set(checkin.hash, checkin)
  }
  const owner = daemon === null ? { id: '-', kind: 'python' as const, pid: null, host: null, state: 'unknown' as const } : { id: '-', kind: 'python' as const, pid: daemon.pid, host: daemon.host, state: daemon.state }
  const rows: RunStatusRow[] = []
  for (const hash of new Set([...known.keys(), ...onDisk.keys()])) {
    if (nodeHashes.has(hash)) continue
    const read = known.get(hash)
    const disk = onDisk.get(hash)
    const newer = disk !== undefined && (read === undefined || disk.idx > read.idx)
    const expectNextIn = newer ? disk.expectNextIn : (read as CheckinRunState).expectNextIn
    const status = newer ? (disk.flag === 'finished' ? 'finished' : 'running') : (read as CheckinRunState).status
    const seenAt = newer ? disk.time * 1000 : (read as CheckinRunState).firstSeenAt
    const deadlineAt = expectNextIn > 0 && status !== 'finished' ? seenAt + expectNextIn * 1000 : null
    const active = isActive(status)
    rows.push({
      hash,
      status,
      startedAt: seenAt,
      lastProgressAt: seenAt,
      expectNextIn,
      deadlineAt,
      grace: DEFAULT_CHECKIN_GRACE,
      episode: 0,
      source: 'python',
      owner,
      watchedBy: !active ? null : daemon?.state === 'alive' ? 'daemon' : 'nobody',
      stallsInMs: status === 'running' && deadlineAt !== null ? deadlineAt + DEFAULT_CHECKIN_GRACE * 1000 - now : null,
    })
  }
  return rows
}

function duration(ms: number): string {
  const s = Math.abs(ms) / 1000
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)}s`
  if (s < 7200) return `${Math.round(s / 60)}m`
  return `${(s / 3600).toFixed(1)}h`
}

/** What the STATUS column says: a run nobody watches any more is not `running`. */
export function shownStatus(run: Pick<RunStatusRow, 'status' | 'watchedBy' | 'owner'>): string {
  if (run.watchedBy === 'nobody') return run.owner.kind === 'python' ? `${run.status}, unwatched` : `owner ${run.owner.state}, unwatched`
  return run.status
}

/**
 * Rank lines shown beneath a run of many ranks; past this, a count of the rest (the JSON output
 * lists every rank). A run of 100 000 ranks must not print 100 000 lines into a terminal.
 */
export const MAX_RANK_LINES = 64

/** Who a run's OWNER column names: its reporting process when it reports over a session, else the snapshot's holder. */
function ownerText(run: RunStatusRow): string {
  if (run.owner.kind === 'python') return run.owner.pid === null ? 'python (no daemon)' : `python, read by daemon ${run.owner.pid}`
  const holder = `${run.owner.kind} ${run.owner.pid}@${run.owner.host} ${run.owner.state}`
  const origin = run.origin
  // A session over TCP comes from another host; one over the repo's Unix socket from this one.
  if (origin !== undefined) return `${origin.via === 'tcp' ? 'remote' : 'local'} ${forTerminal(origin.host)} pid ${origin.pid} (session ${origin.session}), via ${holder}`
  if (run.ranks !== undefined) return `${run.ranks.length} of ${run.worldSize ?? run.ranks.length} ranks, via ${holder}`
  return holder
}

/** The lines beneath a run of many ranks: rank, host, status, last report age, session. */
function rankLines(run: RunStatusRow, now: number): string[] {
  const ranks = run.ranks ?? []
  const shown = ranks.slice(0, MAX_RANK_LINES)
  const rows = shown.map((rank) => [`rank ${rank.rank}`, forTerminal(rank.host), rank.status, `${duration(now - rank.lastProgressAt)} ago`, `session ${rank.session}`, forTerminal(rank.reason ?? '')])
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const lines = rows.map(
    (row) =>
      `    ${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}`,
  )
  if (ranks.length > shown.length) lines.push(`    … ${ranks.length - shown.length} more ranks (status --json lists every rank)`)
  return lines
}

/** The status as a table for people; a run of many ranks has a line per rank beneath its row. */
export function formatStatus(status: RepoStatus, now: number = monotonicNow()): string {
  const lines = [
    `repo ${status.repo}`,
    status.daemon === null ? 'daemon: none (runs whose process dies are not reported: aim-watcher start)' : `daemon: pid ${status.daemon.pid} on ${status.daemon.host} (${status.daemon.state})`,
  ]
  if (status.runs.length === 0) lines.push('no runs')
  else {
    const rows = [['RUN', 'STATUS', 'OWNER', 'NAME', 'EXPERIMENT', 'LAST PROGRESS', 'DEADLINE', 'REASON']]
    const beneath: string[][] = [[]]
    for (const run of status.runs) {
      const deadline = run.stallsInMs === null || run.watchedBy === 'nobody' ? '-' : run.stallsInMs >= 0 ? `stalls in ${duration(run.stallsInMs)}` : `overdue ${duration(run.stallsInMs)}`
      // Names and reasons come from shared files: escape sequences in them never reach the terminal.
      rows.push([
        run.hash,
        shownStatus(run),
        ownerText(run),
        forTerminal(run.name ?? '') || '-',
        forTerminal(run.experiment ?? '') || '-',
        `${duration(now - run.lastProgressAt)} ago`,
        deadline,
        forTerminal(run.reason ?? ''),
      ])
      beneath.push(rankLines(run, now))
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
    rows.forEach((row, i) => {
      lines.push(
        row
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      lines.push(...(beneath[i] ?? []))
    })
  }
  for (const problem of status.problems) lines.push(`unreadable snapshot ${problem.owner}: ${forTerminal(problem.error)}`)
  return lines.join('\n')
}
