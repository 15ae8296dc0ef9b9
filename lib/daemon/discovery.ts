/**
 * Discovery: what a scan finds in a repo's status folder. Lists the owners' snapshots and exit
 * markers, looks at each snapshot's lease, and reads live training processes' snapshots (parsed
 * again only when the file changed: every live owner is looked at every poll, and most polls
 * find nothing new). It decides nothing: the planner does.
 * @module
 */
import { lstat } from 'node:fs/promises'
import { inspectLease, type HolderState } from '../state/lease.js'
import { listOwnerIds, snapshotPath, type StatusLayout } from '../state/layout.js'
import { readSnapshot, type Snapshot } from '../state/snapshot.js'
import { triage, type Triage } from './planner.js'

/** One owner entry and what to do with it. */
export interface Found {
  id: string
  triage: Triage
  /** The lease, for entries with a snapshot. */
  holder: HolderState | null
}

/** What one scan found. */
export interface Findings {
  /** Orphaned snapshots to adopt. */
  orphans: Array<{ id: string; holder: HolderState }>
  /** Live processes' snapshots (not adopted by anyone). */
  live: Snapshot[]
  /** Exit markers whose snapshot is gone. */
  markerOnly: string[]
  /** Entries that could not be looked at, with why (one owner never stops the others). */
  errors: Array<{ id: string; error: unknown }>
  /** Every owner id listed in `owners/` or `exits/` (looked at or skipped). */
  listed: Set<string>
}

/** What {@link Discovery} needs. */
export interface DiscoveryOptions {
  layout: StatusLayout
  staleMs: number
  /** This daemon's owner id: its own snapshot is never adopted. */
  selfId: string
}

/** Scans a repo's status folder; keeps the live snapshots' cache between scans. */
export class Discovery {
  readonly #options: DiscoveryOptions
  /** Live owners' snapshots as last parsed, by owner id, with the file's stamp. */
  readonly #liveCache = new Map<string, { stamp: string; snapshot: Snapshot | null }>()

  constructor(options: DiscoveryOptions) {
    this.#options = options
  }

  /**
   * Lists and looks at every entry. Rejects (with `AIM_STATUS_INVALID_PATH`) only when a folder
   * cannot be listed; a bad entry is reported in `errors`.
   */
  async scan(isTombstone: (id: string) => boolean, stillOpen: () => boolean = () => true, isHeldBack: (id: string) => boolean = () => false): Promise<Findings> {
    const { layout, staleMs, selfId } = this.#options
    const ids = await listOwnerIds(layout.owners)
    const exitIds = await listOwnerIds(layout.exits)
    const snapshots = new Set(ids)
    const listed = new Set([...ids, ...exitIds])
    const findings: Findings = { orphans: [], live: [], markerOnly: [], errors: [], listed }
    for (const id of listed) {
      if (!stillOpen()) break
      // An entry that failed lately waits out its backoff (see quarantine.ts).
      if (isHeldBack(id)) continue
      try {
        const hasSnapshot = snapshots.has(id)
        const isSelf = id === selfId
        const held = !isSelf && isTombstone(id)
        const path = hasSnapshot ? snapshotPath(layout, id) : null
        // Our own snapshot and tombstones are skipped without a look at their lease.
        const holder = path !== null && !isSelf && !held ? await inspectLease(path, { staleMs }) : null
        switch (triage({ id, hasSnapshot, holder, isSelf, isTombstone: held })) {
          case 'adopt':
            findings.orphans.push({ id, holder: holder as HolderState })
            break
          case 'live': {
            const snapshot = await this.#liveSnapshot(id, path as string)
            if (snapshot !== null && snapshot.adoptedBy === undefined) findings.live.push(snapshot)
            break
          }
          case 'marker-only':
            findings.markerOnly.push(id)
            break
          case 'skip':
            break
        }
      } catch (error) {
        findings.errors.push({ id, error })
      }
    }
    for (const id of this.#liveCache.keys()) if (!snapshots.has(id)) this.#liveCache.delete(id)
    return findings
  }

  /**
   * The hashes held now by any other owner's snapshot (live or orphaned), read afresh (unchanged
   * files from the cache). For the question "is this a Node run?" asked after a check-in
   * listing. Snapshots that cannot be read are skipped. The daemon's own snapshot is not read:
   * its runs are its actor's (the caller asks the actor), and it holds every Python run's
   * reader state (1.4 MB at 10k runs), which would be parsed at each of its writes and cached.
   */
  async nodeHashes(): Promise<Set<string>> {
    const { layout, selfId } = this.#options
    const hashes = new Set<string>()
    for (const id of await listOwnerIds(layout.owners)) {
      if (id === selfId) continue
      try {
        const snapshot = await this.#liveSnapshot(id, snapshotPath(layout, id))
        for (const run of snapshot?.runs ?? []) hashes.add(run.hash)
      } catch {
        // Corrupt or half-gone: the scan reports it; this question only looks for hashes.
      }
    }
    return hashes
  }

  async #liveSnapshot(id: string, path: string): Promise<Snapshot | null> {
    let stamp: string
    try {
      const info = await lstat(path)
      stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
    } catch {
      return null // retired meanwhile
    }
    const cached = this.#liveCache.get(id)
    if (cached !== undefined && cached.stamp === stamp) return cached.snapshot
    const snapshot = await readSnapshot(path)
    this.#liveCache.set(id, { stamp, snapshot })
    return snapshot
  }
}
