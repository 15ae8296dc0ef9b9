/**
 * Discovery: what a scan finds in a repo's status folder. Lists the owners' snapshots and exit
 * markers, judges each snapshot's lease from what it remembers of it (owner-cache.ts: a poll
 * reads only what can have changed), and reads live training processes' snapshots again only
 * when they changed. It decides nothing: the planner does.
 *
 * File events tell it which owner changed ({@link Discovery.noticed}): a live owner's rewrite
 * marks that owner's snapshot; only what needs the daemon now (an exit marker, a snapshot that
 * appeared or vanished, a rewrite by an owner whose runs the daemon carries and could hand back)
 * asks for a prompt scan.
 *
 * A live owner's snapshot is read only when a question needs it: a scan that asks for the live
 * snapshots ({@link ScanOptions.readLive}: the daemon carries runs it could hand back, or a
 * status page shows them), or {@link Discovery.nodeHashes}. Otherwise the mark stays and the
 * next question reads it, so the cost follows the questions, not the rewrites (1,000 live owners
 * rewrite about 33 snapshots a second).
 * @module
 */
import { join } from 'node:path'
import type { HolderState } from '../state/lease.js'
import { listOwnerIds, ownerFileOf, ownerIdOfFileName, snapshotPath, type StatusLayout } from '../state/layout.js'
import { lstatOrNull } from '../state/safe-fs.js'
import { snapshotStamp } from '../state/journal.js'
import { readSnapshot, type Snapshot } from '../state/snapshot.js'
import { DEFAULT_FULL_LOOK_MS, DEFAULT_MAX_LOOK_MS, holderAt, newEntry, PollLiveness, type LookPolicy, type OwnerEntry } from './owner-cache.js'
import { triage, type Triage } from './planner.js'

/** One owner entry and what to do with it. */
export interface Found {
  id: string
  triage: Triage
  /** The lease, for entries with a snapshot. */
  holder: HolderState | null
}

/** An orphan a scan found. */
export interface Orphan {
  id: string
  holder: HolderState
  /** When scans first found it orphaned (wall-clock ms): a fresh death goes before a backlog. */
  foundAt: number
}

/** What one scan found. */
export interface Findings {
  /** Orphaned snapshots to adopt. */
  orphans: Orphan[]
  /** Live processes' snapshots (not adopted by anyone); empty unless the scan was asked to read them ({@link ScanOptions.readLive}). */
  live: Snapshot[]
  /**
   * How many live processes hold a snapshot (not adopted by anyone, as far as their last read
   * tells: one never read counts), whether or not their snapshots were read.
   */
  liveOwners: number
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
  /** Wall-clock ms, what lock and fence mtimes are. Default `Date.now`. */
  now?: () => number
  /** See {@link LookPolicy.fullLookMs}. Default {@link DEFAULT_FULL_LOOK_MS}. */
  fullLookMs?: number
  /** See {@link LookPolicy.maxLookMs}. Default {@link DEFAULT_MAX_LOOK_MS}. */
  maxLookMs?: number
}

/** What a scan is asked besides the listing. */
export interface ScanOptions {
  /** Whether the session is still open: the scan stops early once it is not. Default: always open. */
  stillOpen?: () => boolean
  /** Entries that failed lately and wait out their backoff (see quarantine.ts). Default: none. */
  isHeldBack?: (id: string) => boolean
  /**
   * Read the live owners' snapshots (those marked changed, or never read) into
   * {@link Findings.live}. Default true. The daemon asks only when it carries a run a live owner
   * could be handed back, or when something shows the live runs.
   */
  readLive?: boolean
}

/** What a file event asks of the daemon: a scan now, a look at one owner at the next poll, or nothing. */
export type Notice = 'scan' | 'look' | 'ignore'

/** Scans a repo's status folder; remembers every owner between scans. */
export class Discovery {
  readonly #options: DiscoveryOptions
  readonly #now: () => number
  readonly #entries = new Map<string, OwnerEntry>()
  #watching = false

  constructor(options: DiscoveryOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  /**
   * Whether file events of `owners/` and `exits/` arrive (told by the repo watch). Without them
   * every poll looks at every owner in full, as nothing else would tell of a change.
   */
  set watching(on: boolean) {
    this.#watching = on
  }

  /** Forgets everything (a new session: events may have been missed while there was none). */
  reset(): void {
    this.#entries.clear()
  }

  /** Looks at an owner in full at the next scan (an adoption that found it changed). */
  lookAgain(id: string): void {
    const entry = this.#entries.get(id)
    if (entry === undefined) return
    if (entry.lease !== null) entry.lease.marked = true
    entry.snapshotMarked = true
  }

  get #policy(): LookPolicy {
    return { staleMs: this.#options.staleMs, fullLookMs: this.#options.fullLookMs ?? DEFAULT_FULL_LOOK_MS, maxLookMs: this.#options.maxLookMs ?? DEFAULT_MAX_LOOK_MS, watching: this.#watching }
  }

  /**
   * Lists and looks at every entry. Rejects (with `AIM_STATUS_INVALID_PATH`) only when a folder
   * cannot be listed; a bad entry is reported in `errors`.
   */
  async scan(isTombstone: (id: string) => boolean, options: ScanOptions = {}): Promise<Findings> {
    const { layout, selfId } = this.#options
    const stillOpen = options.stillOpen ?? (() => true)
    const isHeldBack = options.isHeldBack ?? (() => false)
    const readLive = options.readLive ?? true
    const ids = await listOwnerIds(layout.owners)
    const exitIds = await listOwnerIds(layout.exits)
    const snapshots = new Set(ids)
    const listed = new Set(ids)
    for (const id of exitIds) listed.add(id)
    const findings: Findings = { orphans: [], live: [], liveOwners: 0, markerOnly: [], errors: [], listed }
    const policy = this.#policy
    const now = this.#now()
    const liveness = new PollLiveness()
    for (const id of this.#entries.keys()) if (!snapshots.has(id)) this.#entries.delete(id)
    for (const id of listed) {
      if (!stillOpen()) break
      // An entry that failed lately waits out its backoff (see quarantine.ts).
      if (isHeldBack(id)) continue
      try {
        const hasSnapshot = snapshots.has(id)
        const isSelf = id === selfId
        const held = !isSelf && isTombstone(id)
        const entry = hasSnapshot ? this.#entry(id) : null
        const path = entry?.path ?? null
        // Our own snapshot and tombstones are skipped without a look at their lease.
        const holder = entry !== null && path !== null && !isSelf && !held ? holderAt(entry, path, now, policy, liveness) : null
        const verdict = triage({ id, hasSnapshot, holder, isSelf, isTombstone: held })
        if (entry !== null) entry.triage = verdict
        switch (verdict) {
          case 'adopt':
            findings.orphans.push({ id, holder: holder as HolderState, foundAt: entry?.orphanSince ?? now })
            break
          case 'live': {
            const known = entry as OwnerEntry
            // Unread, the mark stays for the next question that needs the snapshot.
            const snapshot = readLive ? await this.#snapshotOf(known) : known.snapshot
            if (snapshot?.adoptedBy !== undefined || (readLive && snapshot === null)) break
            findings.liveOwners++
            if (readLive) findings.live.push(snapshot as Snapshot)
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
    return findings
  }

  /**
   * The hashes held now by any other owner's snapshot (live or orphaned): the folder listed
   * afresh, snapshots read again only when new or marked changed. For the question "is this a
   * Node run?" asked after a check-in listing. Snapshots that cannot be read are skipped. The
   * daemon's own snapshot is not read: its runs are its actor's (the caller asks the actor), and
   * it holds every Python run's reader state (1.4 MB at 10k runs), which would be parsed at each
   * of its writes and cached.
   */
  async nodeHashes(): Promise<Set<string>> {
    const { layout, selfId } = this.#options
    const hashes = new Set<string>()
    for (const id of await listOwnerIds(layout.owners)) {
      if (id === selfId) continue
      try {
        const snapshot = await this.#snapshotOf(this.#entry(id))
        for (const run of snapshot?.runs ?? []) hashes.add(run.hash)
      } catch {
        // Corrupt or half-gone: the scan reports it; this question only looks for hashes.
      }
    }
    return hashes
  }

  /**
   * What a file event in `owners/` or `exits/` asks for. `carries` says whether the daemon
   * carries a run of that hash (a live owner rewriting such a run may be owed a hand-back).
   * Our own files, locks (refreshed every few seconds by every owner), temporary and set-aside
   * files never ask for anything: a rescan for those would feed on itself.
   */
  noticed(folder: 'owners' | 'exits', name: string, carries: (hash: string) => boolean): Notice {
    const { layout, selfId } = this.#options
    if (folder === 'exits') {
      const id = ownerIdOfFileName(name)
      // A marker that appeared (its removal after a report asks for nothing).
      return id === null || id === selfId || lstatOrNull(join(layout.exits, name)) === null ? 'ignore' : 'scan'
    }
    const file = ownerFileOf(name)
    if (file === null || file.id === selfId) return 'ignore'
    const entry = this.#entries.get(file.id)
    switch (file.part) {
      case 'lock':
      case 'temp':
      case 'set-aside':
        return 'ignore'
      case 'fence':
        // A claim, or a release aging its fence: the lease changed.
        if (entry?.lease !== null && entry?.lease !== undefined) entry.lease.marked = true
        return 'look'
      case 'snapshot': {
        const exists = lstatOrNull(join(layout.owners, name)) !== null
        if (entry === undefined) return exists ? 'scan' : 'ignore'
        // Vanished: retired by its owner. Unless we are adopting it ourselves (we retire it).
        if (!exists) return entry.triage === 'adopt' ? 'look' : 'scan'
        break
      }
      // A journal append changed the snapshot's content, as a rewrite does; a file of the snapshot
      // this version does not write itself may have too.
      case 'journal':
      case 'other':
        if (entry === undefined) return 'look'
        break
    }
    entry.snapshotMarked = true
    const couldHandBack = entry.triage === 'live' && entry.snapshot?.runs.some((run) => carries(run.hash)) === true
    return couldHandBack ? 'scan' : 'look'
  }

  #entry(id: string): OwnerEntry {
    let entry = this.#entries.get(id)
    if (entry === undefined) {
      entry = newEntry(snapshotPath(this.#options.layout, id))
      this.#entries.set(id, entry)
    }
    return entry
  }

  /** The snapshot as last read, read again when it may have changed (marked, or no events to tell). */
  async #snapshotOf(entry: OwnerEntry): Promise<Snapshot | null> {
    const { path } = entry
    if (!entry.snapshotMarked && entry.stamp !== undefined && this.#watching) return entry.snapshot
    // Cleared before reading: an event during the read marks it again.
    entry.snapshotMarked = false
    // The snapshot and the journal it was read with: an append changes the stamp as a rewrite does.
    const stamp = await snapshotStamp(path, entry.snapshot?.generation ?? null)
    if (stamp === null) {
      // Retired meanwhile.
      entry.stamp = null
      entry.snapshot = null
    } else if (stamp !== entry.stamp) {
      try {
        entry.snapshot = await readSnapshot(path)
      } catch (error) {
        // Tried again next time (and reported by the scan, with backoff).
        entry.snapshotMarked = true
        throw error
      }
      entry.stamp = stamp
    }
    return entry.snapshot
  }
}
