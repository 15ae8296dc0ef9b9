/**
 * One repo under the daemon: the daemon lease (one sender per repo), the daemon's own snapshot,
 * a {@link RepoRuntime} (the same actor and outbox the training process runs), and the
 * discovery of orphaned owners.
 *
 * ```
 *            lock held by a live daemon            daemon lock acquired
 *   start --> standby (retry every pollMs) -----------------------------> active
 *                 ^                                                          |  scan: fs.watch + poll
 *                 +------------- a lease lost (this daemon was frozen) -----+
 *   close (SIGTERM/SIGINT): from either state -> flush, release, closed
 * ```
 *
 * Each scan looks at every owner snapshot and exit marker. An orphan (dead pid, exit marker,
 * or a lease gone stale) is adopted under its lease at a raised fencing generation
 * (`adoptOrphan`), so two daemons never both adopt it and a frozen owner that wakes up finds
 * it has lost its lease. What was adopted is made durable in the daemon's snapshot before the
 * orphan's snapshot is retired.
 *
 * Python-Aim runs (`.aim/check_ins/`) are read by an {@link AimRuns} at the end of each scan,
 * after the Node owners have been looked at, so that a hash a Node owner holds is known before
 * its check-ins could announce it a second time. The reader's state travels in the daemon's
 * snapshot (`extra.checkins`) to the next daemon.
 * @module
 */
import { announceWatcher } from '../notify/manage.js'
import { acquireAimWatcherLock, type AimWatcherLock } from './aim-watcher-lock.js'
import { watch as fsWatch, type FSWatcher } from 'node:fs'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import type { Clock } from '../clock.js'
import { DEFAULT_CHECKIN_GRACE } from '../aim/checkin-reader.js'
import { ErrorCodes, toPlainError } from '../errors.js'
import type { RunInfo } from '../model.js'
import { RepoRuntime, type RuntimeOptions } from '../actor/runtime.js'
import { repoPaths, type RepoPaths } from '../repo.js'
import { readExitMarker, removeExitMarker, type ExitMarker } from '../state/exit-marker.js'
import { STATE_FOLDER_MODE } from '../state/files.js'
import { daemonLeasePath, exitMarkerPath, listOwnerIds, snapshotPath, statusLayout, type StatusLayout } from '../state/layout.js'
import { acquireLease, adoptOrphan, inspectLease, retireSnapshot, type Adoption, type HolderState, type Lease } from '../state/lease.js'
import { ownerLiveness, type OwnerInfo } from '../state/owner.js'
import { readSnapshot, writeSnapshotAtomic, type Snapshot } from '../state/snapshot.js'
import { SnapshotWriter } from '../state/snapshot-writer.js'
import { AimRuns } from './aim-runs.js'
import type { DaemonLog } from './log.js'

/** What a {@link RepoWatch} needs; the daemon fills it in from its validated options. */
export interface RepoWatchOptions {
  /** Absolute repo root. */
  root: string
  /** The daemon's identity (one per daemon process, shared by its repos). */
  owner: OwnerInfo
  staleMs: number
  pollMs: number
  /** How long a frozen owner's emptied snapshot is held before it is retired anyway. */
  tombstoneMs: number
  /** How long ended runs stay in the daemon's snapshot (for `status`). */
  keepEndedMs: number
  clock: Clock
  /** Send Aim's start message through the notifiers on becoming active. Default false. */
  announce?: boolean
  log: DaemonLog
  /** Writes a notifier's own output line (the logger notifier). */
  writeLine(line: string): void
  delivery?: RuntimeOptions['delivery']
  /**
   * Seconds of grace for Python-Aim runs (check-ins), at least 30. Default 100 (Aim's).
   */
  checkinGrace?: number
}

/** Where a repo watch is in its life. */
export type RepoWatchState = 'idle' | 'standby' | 'active' | 'closed'

/** A frozen owner's snapshot, emptied and held so that the owner finds its lease lost on waking. */
interface Tombstone {
  lease: Lease
  owner: OwnerInfo
  since: number
}

/** Everything that exists while this daemon is the repo's sender. */
interface Session {
  daemonLease: Lease
  /** Python Aim's watcher lock: while we send for the repo, a Python aim-watcher cannot. */
  aimLock: AimWatcherLock
  ownLease: Lease
  writer: SnapshotWriter
  runtime: RepoRuntime
  watchers: FSWatcher[]
  tombstones: Map<string, Tombstone>
  /** When each ended run was first seen ended (for pruning). */
  endedAt: Map<string, number>
  /** The repo's Python-Aim runs. */
  aim: AimRuns
  /** Hashes held by live Node owners' snapshots, as of the last scan: their check-ins are not announced. */
  nodeHashes: Set<string>
  /** Live owners' snapshots as last parsed, by owner id, with the file's stamp: re-read only when it changes. */
  liveCache: Map<string, { stamp: string; snapshot: Snapshot | null }>
  closed: boolean
}

/** Why an orphan's runs are taken over, and how. */
type Cause = 'exited' | 'gone' | 'stale' | 'daemon'

const isActive = (run: RunInfo): boolean => run.status === 'running' || run.status === 'stalled'

/** The reason given to a run whose process exited without finishing it. */
export function exitReason(marker: Pick<ExitMarker, 'exitCode' | 'signal' | 'error'>): string {
  const how = marker.signal !== null ? `killed by ${marker.signal}` : `exited with code ${marker.exitCode ?? 'unknown'}`
  return marker.error !== undefined ? `${how} (${marker.error})` : how
}

/** The daemon's work on one repo. */
export class RepoWatch {
  readonly root: string
  readonly paths: RepoPaths
  readonly layout: StatusLayout
  readonly #options: RepoWatchOptions
  #state: RepoWatchState = 'idle'
  #session: Session | null = null
  #timer: NodeJS.Timeout | null = null
  #soonTimer: NodeJS.Timeout | null = null
  #busy: Promise<void> | null = null
  #again = false
  #standbyHolder: string | null = null

  constructor(options: RepoWatchOptions) {
    this.#options = options
    this.root = options.root
    this.paths = repoPaths(options.root)
    this.layout = statusLayout(this.paths)
  }

  get state(): RepoWatchState {
    return this.#state
  }

  /** The runtime while active (for tests and `status`). */
  get runtime(): RepoRuntime | null {
    return this.#session?.runtime ?? null
  }

  /** The Python-Aim runs while active (for tests and `status`). */
  get aimRuns(): AimRuns | null {
    return this.#session?.aim ?? null
  }

  /** Scans now (after the scan in progress, if any); resolves when done. For tests and tools. */
  scanNow(): Promise<void> {
    return this.#step()
  }

  /** Makes the first attempt to become the repo's sender; then keeps trying or scanning every `pollMs`. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return
    this.#state = 'standby'
    await this.#step()
  }

  /** Stops: flushes the snapshot, releases every lease (a standby takes over at once). Safe twice. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#soonTimer !== null) clearTimeout(this.#soonTimer)
    this.#timer = this.#soonTimer = null
    // Let a scan in progress end: it may be between adopting and retiring an orphan.
    await this.#busy?.catch(() => undefined)
    const session = this.#session
    this.#session = null
    if (session !== null) await this.#endSession(session, true)
  }

  /** One step (serialised): try to take the repo, or scan it. Then schedules the next. */
  #step(): Promise<void> {
    if (this.#busy !== null) {
      this.#again = true
      return this.#busy
    }
    const run = async (): Promise<void> => {
      do {
        this.#again = false
        if (this.#state === 'standby') await this.#tryActivate()
        else if (this.#state === 'active' && this.#session !== null) await this.#scan(this.#session)
      } while (this.#again && this.#state !== 'closed')
    }
    this.#busy = run()
      .catch((error: unknown) => this.#logError('repo-error', error))
      .finally(() => {
        this.#busy = null
        this.#schedule()
      })
    return this.#busy
  }

  #schedule(): void {
    if (this.#state === 'closed') return
    if (this.#timer !== null) clearTimeout(this.#timer)
    // A referenced timer: it is what keeps the daemon's process alive.
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.#step()
    }, this.#options.pollMs)
  }

  /** A file event: scan soon, gathering a burst of events into one scan. */
  #soon(): void {
    if (this.#state !== 'active' || this.#soonTimer !== null) return
    this.#soonTimer = setTimeout(() => {
      this.#soonTimer = null
      void this.#step()
    }, 25)
  }

  async #tryActivate(): Promise<void> {
    const { owner, staleMs, log } = this.#options
    await mkdir(this.layout.owners, { recursive: true, mode: STATE_FOLDER_MODE })
    await mkdir(this.layout.exits, { recursive: true, mode: STATE_FOLDER_MODE })
    let daemonLease: Lease
    try {
      daemonLease = await acquireLease(daemonLeasePath(this.layout), owner, { staleMs, onLost: (error) => this.#lost('daemon lease', error) })
    } catch (error) {
      if ((error as { code?: unknown }).code !== ErrorCodes.LOCKED) throw error
      const holder = await inspectLease(daemonLeasePath(this.layout), { staleMs }).catch(() => null)
      const who = holder?.holder ? `${holder.holder.pid}@${holder.holder.host}` : 'unknown'
      // Said once per holder, not once per retry.
      if (who !== this.#standbyHolder) log.info('standby', { repo: this.root, holder: who })
      this.#standbyHolder = who
      return
    }
    // Python's aim-watcher on the same repo would send too: whichever came first sends.
    let aimLock: AimWatcherLock | null
    try {
      aimLock = await acquireAimWatcherLock(this.paths.notifications, (message) => log.warn('aim-lock', { repo: this.root, message }))
    } catch (error) {
      await daemonLease.release().catch(() => undefined)
      throw error
    }
    if (aimLock === null) {
      await daemonLease.release().catch(() => undefined)
      const who = 'a Python aim-watcher (watcher.lock)'
      if (who !== this.#standbyHolder) log.info('standby', { repo: this.root, holder: who })
      this.#standbyHolder = who
      return
    }
    this.#standbyHolder = null
    let ownLease: Lease | null = null
    let runtime: RepoRuntime | null = null
    try {
      const path = snapshotPath(this.layout, owner.id)
      ownLease = await acquireLease(path, owner, { staleMs, onLost: (error) => this.#lost('snapshot lease', error) })
      const lease = ownLease
      let writer: SnapshotWriter | null = null
      runtime = new RepoRuntime({
        root: this.root,
        host: owner.host,
        pid: owner.pid,
        clock: this.#options.clock,
        writeLine: this.#options.writeLine,
        onEvent: (event) =>
          log.info(event.kind, { repo: this.root, hash: event.run.hash, reason: event.run.reason, episode: event.run.episode, overdue: event.overdueSeconds, key: event.key }),
        onReport: (report) => {
          const level = report.kind === 'notified' ? 'info' : report.kind === 'retrying' ? 'warn' : 'error'
          log[level](report.kind, { repo: this.root, hash: report.hash, eventKind: report.eventKind, notifier: report.notifierId, type: report.notifierType, attempts: report.attempts, error: report.error, key: report.eventKey })
        },
        onError: (error) => this.#logError('runtime-error', error),
        // The outbox is durable (with the runs) before anything is sent.
        persist: async () => {
          await writer?.flush()
        },
        ...(this.#options.delivery !== undefined ? { delivery: this.#options.delivery } : {}),
      })
      const rt = runtime
      const nodeHashes = new Set<string>()
      const aim = new AimRuns({
        paths: this.paths,
        clock: this.#options.clock,
        graceSeconds: this.#options.checkinGrace ?? DEFAULT_CHECKIN_GRACE,
        host: owner.host,
        pid: owner.pid,
        log,
        accept: (event) => rt.delivery.accept(event),
        // Adopted runs stay in the actor (ended ones for keepEndedMs): still the Node owner's.
        isNodeRun: (hash) => nodeHashes.has(hash) || rt.actor.run(hash) !== undefined,
        onStateChanged: () => writer?.markDirty(),
      })
      writer = new SnapshotWriter({
        path,
        lease,
        clock: this.#options.clock,
        produce: () => {
          const checkins = aim.state()
          return { owner, runs: rt.actor.runs(), outbox: rt.delivery.state(), extra: checkins !== null ? { checkins } : {} }
        },
        onError: (error) => this.#logError('snapshot-error', error),
      })
      await runtime.start()
      await writer.flush()
      const session: Session = { daemonLease, aimLock, ownLease, writer, runtime, watchers: [], tombstones: new Map(), endedAt: new Map(), aim, nodeHashes, liveCache: new Map(), closed: false }
      this.#session = session
      this.#state = 'active'
      session.watchers = this.#watchFolders()
      log.info('active', { repo: this.root, pid: owner.pid, generation: daemonLease.generation, checkinGrace: aim.graceSeconds })
      if (this.#options.announce === true) {
        void announceWatcher(this.root, { writeLine: (line) => log.info('message', { text: line }) }).then(
          (results) => {
            for (const r of results) log.info(r.outcome.kind === 'delivered' ? 'announced' : 'announce-failed', { repo: this.root, notifier: r.id, type: r.type, ...('error' in r.outcome ? { error: r.outcome.error } : {}) })
          },
          (error: unknown) => this.#logError('announce-failed', error),
        )
      }
      this.#again = true
    } catch (error) {
      await runtime?.close().catch(() => undefined)
      await ownLease?.release().catch(() => undefined)
      await daemonLease.release().catch(() => undefined)
      await aimLock.release().catch(() => undefined)
      throw error
    }
  }

  #watchFolders(): FSWatcher[] {
    const watchers: FSWatcher[] = []
    for (const folder of [this.layout.owners, this.layout.exits]) {
      try {
        const watcher = fsWatch(folder, { persistent: false }, () => this.#soon())
        // Where fs.watch fails later (a folder removed, NFS), the poll carries on alone.
        watcher.on('error', () => watcher.close())
        watchers.push(watcher)
      } catch {
        // No inotify here (NFS, some containers): the poll finds everything, a little later.
      }
    }
    return watchers
  }

  /** A lease of the active session was lost: this daemon was frozen and another took over. */
  #lost(which: string, error: Error): void {
    const session = this.#session
    if (session === null || session.closed) return
    this.#options.log.error('lease-lost', { repo: this.root, lease: which, error: error.message })
    this.#session = null
    if (this.#state === 'active') this.#state = 'standby'
    void this.#endSession(session, false).finally(() => this.#schedule())
  }

  async #endSession(session: Session, graceful: boolean): Promise<void> {
    if (session.closed) return
    session.closed = true
    for (const watcher of session.watchers) watcher.close()
    const { runtime, writer, ownLease, daemonLease, aim } = session
    // Before the runtime: what is being accepted reaches the outbox, and is recorded.
    await aim.close().catch((error: unknown) => this.#logError('runtime-error', error))
    await runtime.close().catch((error: unknown) => this.#logError('runtime-error', error))
    if (!ownLease.lost) {
      if (aim.hasRuns) writer.markDirty()
      await writer.close().catch((error: unknown) => this.#logError('snapshot-error', error))
      // Known Python runs count: their first sights and notified idx are for the next daemon.
      const outstanding = runtime.actor.runs().some(isActive) || runtime.delivery.state().pending.length > 0 || aim.hasRuns
      // Anything still to watch or send: leave the snapshot, released, for the next daemon to
      // adopt at once. Nothing: remove it.
      if (outstanding) await ownLease.release().catch(() => undefined)
      else await retireSnapshot(ownLease).catch(() => ownLease.release())
    }
    for (const tombstone of session.tombstones.values()) await tombstone.lease.release().catch(() => undefined)
    // Last, so that a standby, once it holds the daemon lease, finds our snapshot released.
    if (!daemonLease.lost) {
      if (graceful) await retireSnapshot(daemonLease).catch(() => daemonLease.release())
      else await daemonLease.release().catch(() => undefined)
    }
    await session.aimLock.release().catch((error: unknown) => this.#logError('aim-lock', error))
    if (graceful) this.#options.log.info('stopped', { repo: this.root, runs: runtime.actor.runs().filter(isActive).length, aimRuns: aim.runs.size })
  }

  async #scan(session: Session): Promise<void> {
    const { owner, staleMs } = this.#options
    let ids: string[]
    let exitIds: string[]
    try {
      ids = await listOwnerIds(this.layout.owners)
      exitIds = await listOwnerIds(this.layout.exits)
    } catch (error) {
      this.#logError('state-unreadable', error)
      return
    }
    await this.#retireTombstones(session)
    const snapshots = new Set(ids)
    const orphans: Array<{ id: string; holder: HolderState }> = []
    const live: Snapshot[] = []
    for (const id of new Set([...ids, ...exitIds])) {
      if (session.closed) return
      if (id === owner.id || session.tombstones.has(id)) continue
      try {
        if (!snapshots.has(id)) {
          await this.#markerOnly(session, id)
          continue
        }
        const path = snapshotPath(this.layout, id)
        const holder = await inspectLease(path, { staleMs })
        if (holder.orphaned) orphans.push({ id, holder })
        else if (holder.holder?.kind === 'process') {
          // Read whether or not we carry runs: a live Node run's hash must be known before its
          // check-ins (the same hash) could be announced as a Python run's.
          const snapshot = await this.#liveSnapshot(session, id, path)
          if (snapshot !== null && snapshot.adoptedBy === undefined) live.push(snapshot)
        }
      } catch (error) {
        this.#ownerError(id, error)
      }
    }
    // Daemons' snapshots first: their settled keys must be known before any orphan's runs are
    // failed again, or a restarted daemon could send a failure its predecessor already sent.
    orphans.sort((a, b) => Number(b.holder.holder?.kind === 'daemon') - Number(a.holder.holder?.kind === 'daemon'))
    for (const { id } of orphans) {
      if (session.closed) return
      try {
        const adoption = await adoptOrphan(snapshotPath(this.layout, id), owner, { staleMs })
        if (adoption !== null) await this.#takeOver(session, id, adoption)
      } catch (error) {
        this.#ownerError(id, error)
      }
    }
    if (live.length > 0) await this.#handBack(session, live)
    this.#prune(session)
    session.nodeHashes.clear()
    for (const snapshot of live) for (const run of snapshot.runs) session.nodeHashes.add(run.hash)
    for (const id of session.liveCache.keys()) if (!snapshots.has(id)) session.liveCache.delete(id)
    if (session.closed) return
    try {
      await session.aim.scan()
    } catch (error) {
      this.#logError('checkins-error', error)
    }
  }

  /**
   * A live owner's snapshot, parsed again only when its file changed (size, mtime, inode): every
   * live owner is looked at every poll, and most polls find nothing new.
   */
  async #liveSnapshot(session: Session, id: string, path: string): Promise<Snapshot | null> {
    let stamp: string
    try {
      const info = await stat(path)
      stamp = `${info.ino}:${info.size}:${info.mtimeMs}`
    } catch {
      return null // retired meanwhile
    }
    const cached = session.liveCache.get(id)
    if (cached !== undefined && cached.stamp === stamp) return cached.snapshot
    const snapshot = await readSnapshot(path)
    session.liveCache.set(id, { stamp, snapshot })
    return snapshot
  }

  #ownerError(id: string, error: unknown): void {
    const code = (error as { code?: unknown }).code
    if (code === ErrorCodes.CORRUPT_FILE) this.#options.log.error('corrupt-state-file', { repo: this.root, owner: id, error: toPlainError(error).message })
    else this.#logError('owner-error', error, { owner: id })
  }

  /** Carries on an adopted orphan's runs and outbox; then retires (or empties and holds) its snapshot. */
  async #takeOver(session: Session, id: string, adoption: Adoption): Promise<void> {
    const { runtime, writer } = session
    const { actor } = runtime
    const snapshot = adoption.snapshot
    const original = snapshot.owner
    let marker: ExitMarker | null = null
    try {
      marker = await readExitMarker(this.paths, id)
    } catch (error) {
      this.#ownerError(id, error)
    }
    const liveness = ownerLiveness(original)
    const cause: Cause = marker !== null ? 'exited' : original.kind === 'daemon' ? 'daemon' : liveness === 'dead' ? 'gone' : 'stale'
    const reason = marker !== null ? exitReason(marker) : `process gone: pid ${original.pid}`
    // A daemon's Python-Aim runs: their first sights and notified idx carry on here, and are
    // made durable by the flush below, before its snapshot is retired.
    if (original.kind === 'daemon' && snapshot.extra['checkins'] !== undefined) {
      try {
        session.aim.absorb(snapshot.extra['checkins'])
      } catch (error) {
        this.#ownerError(id, error)
      }
    }
    // Its outbox first, so that keys it already delivered are known before any event is made.
    if (snapshot.outbox !== null && snapshot.outbox !== undefined) {
      try {
        await runtime.delivery.absorb(snapshot.outbox)
      } catch (error) {
        this.#ownerError(id, error)
      }
    }
    const now = this.#options.clock.now()
    let failed = 0
    let carried = 0
    for (const run of snapshot.runs) {
      // Finished or failed already: its owner dealt with it; never reported again.
      if (!isActive(run)) continue
      const mine = actor.run(run.hash)
      if (mine !== undefined && mine.startedAt === run.startedAt && (!isActive(mine) || mine.lastProgressAt >= run.lastProgressAt)) continue
      // The exit marker lists what the training code had not ended; a run missing from it
      // ended before the exit (its last message to the actor was lost with the process).
      if (marker !== null && !marker.unfinishedRuns.includes(run.hash)) continue
      actor.adopt(run)
      if (cause === 'exited' || cause === 'gone') {
        actor.fail(run.hash, now, reason)
        failed++
      } else {
        carried++
      }
    }
    await writer.flush()
    this.#options.log.info('adopted', {
      repo: this.root,
      owner: id,
      kind: original.kind,
      pid: original.pid,
      host: original.host,
      cause,
      generation: adoption.generation,
      failed,
      carried,
      ...(cause === 'exited' || cause === 'gone' ? { reason } : {}),
    })
    // The marker goes before the snapshot: a marker must never outlive its snapshot.
    if (marker !== null) removeExitMarker(this.paths, id)
    if (cause === 'stale') await this.#tombstone(session, adoption, original, now)
    else await retireSnapshot(adoption.lease)
  }

  /**
   * A frozen (or unreachable) owner's snapshot is not removed but emptied and kept under our
   * lease: its fences stay, so the owner, if it wakes up, finds a newer generation and stops
   * acting instead of recreating the file and notifying a second time.
   */
  async #tombstone(session: Session, adoption: Adoption, original: OwnerInfo, now: number): Promise<void> {
    const { lease, snapshot } = adoption
    await writeSnapshotAtomic(lease.path, { ...snapshot, runs: [], outbox: null, extra: { ...snapshot.extra, runsAdoptedAt: now }, writtenAt: now }, { beforeRename: () => lease.assertGeneration() })
    session.tombstones.set(original.id, { lease, owner: original, since: now })
  }

  async #retireTombstones(session: Session): Promise<void> {
    const now = this.#options.clock.now()
    for (const [id, tombstone] of session.tombstones) {
      if (tombstone.lease.lost) {
        session.tombstones.delete(id)
        continue
      }
      if (ownerLiveness(tombstone.owner) !== 'dead' && now - tombstone.since < this.#options.tombstoneMs) continue
      session.tombstones.delete(id)
      await retireSnapshot(tombstone.lease).catch((error: unknown) => this.#ownerError(id, error))
    }
  }

  /**
   * An exit marker whose snapshot is gone (the process never got a lease, or it was retired):
   * claimed by an atomic rename, so one daemon only reports it.
   */
  async #markerOnly(session: Session, id: string): Promise<void> {
    const marker = await readExitMarker(this.paths, id)
    if (marker === null || ownerLiveness(marker.owner) === 'alive') return
    const path = exitMarkerPath(this.layout, id)
    const claimed = `${path}.taken-${this.#options.owner.id}`
    try {
      await rename(path, claimed)
    } catch {
      return // another daemon claimed it
    }
    const now = this.#options.clock.now()
    const reason = exitReason(marker)
    let failed = 0
    for (const hash of marker.unfinishedRuns) {
      const mine = session.runtime.actor.run(hash)
      if (mine !== undefined && !isActive(mine)) continue
      session.runtime.actor.adopt(
        mine ?? { hash, status: 'running', startedAt: marker.owner.startTime, lastProgressAt: marker.exitedAt, expectNextIn: 0, deadlineAt: null, grace: 0, episode: 0 },
      )
      session.runtime.actor.fail(hash, now, reason)
      failed++
    }
    await session.writer.flush()
    this.#options.log.info('adopted', { repo: this.root, owner: id, kind: marker.owner.kind, pid: marker.owner.pid, host: marker.owner.host, cause: 'exited', failed, carried: 0, reason })
    await rm(claimed, { force: true })
  }

  /**
   * Runs we carry on that their owner reports again, from a live snapshot of its own (it was
   * only frozen and re-established itself): given back. A stall we declared is closed by a
   * `recovered` (once per episode, like any recovery), not a second stall from the owner.
   */
  async #handBack(session: Session, live: Snapshot[]): Promise<void> {
    const { actor } = session.runtime
    let changed = false
    for (const snapshot of live) {
      for (const run of snapshot.runs) {
        if (!isActive(run)) continue
        const mine = actor.run(run.hash)
        if (mine === undefined || !isActive(mine) || run.startedAt < mine.startedAt) continue
        if (run.startedAt === mine.startedAt) {
          if (run.lastProgressAt <= mine.lastProgressAt) continue
          actor.progress(run.hash, run.lastProgressAt, run.expectNextIn)
        }
        actor.forget(run.hash)
        changed = true
        this.#options.log.info('handed-back', { repo: this.root, hash: run.hash, owner: snapshot.owner.id, pid: snapshot.owner.pid, host: snapshot.owner.host })
      }
    }
    if (changed) await session.writer.flush()
  }

  /** Forgets runs ended more than `keepEndedMs` ago, so the daemon's snapshot does not grow forever. */
  #prune(session: Session): void {
    const { actor } = session.runtime
    const now = this.#options.clock.now()
    let changed = false
    for (const run of actor.runs()) {
      if (isActive(run)) continue
      const endedAt = session.endedAt.get(run.hash)
      if (endedAt === undefined) session.endedAt.set(run.hash, now)
      else if (now - endedAt > this.#options.keepEndedMs) {
        session.endedAt.delete(run.hash)
        changed = actor.forget(run.hash) || changed
      }
    }
    if (changed) session.writer.markDirty()
  }

  #logError(event: string, error: unknown, fields: Record<string, string> = {}): void {
    const plain = toPlainError(error)
    this.#options.log.error(event, { repo: this.root, ...fields, code: plain.code, error: plain.message })
  }
}
