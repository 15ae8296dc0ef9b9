/**
 * One repo under the daemon, orchestrated: the {@link Sender} decides whether this daemon sends
 * for the repo; while it does, a session holds the daemon's {@link DurableOwner} (its own fenced
 * snapshot, acting under the sender's lease), a {@link RepoRuntime} (the same actor and outbox the
 * training process runs) and the repo's Python-Aim runs; each scan asks {@link Discovery} what is
 * there and the planner what to do, and carries the plans out.
 *
 * ```
 *            sender lease or watcher.lock held elsewhere          both taken
 *   start --> standby (tried again every pollMs) -----------------------------> active
 *                 ^                                                              |  scan: fs.watch + poll
 *                 +-------- a lock lost (this daemon was frozen and replaced) ---+
 *   close (SIGTERM/SIGINT): from either state -> flush, release, closed
 * ```
 *
 * An orphan (dead pid, exit marker, or a lease gone stale) is adopted under its lease at a raised
 * fencing generation, so two daemons never both adopt it and a frozen owner that wakes up finds
 * it has lost its lease. What was adopted is made durable in the daemon's snapshot before the
 * orphan's snapshot is retired. A daemon that was itself frozen asks "may I act?" before each
 * scan and each send, and stands by instead when its standby has taken over.
 *
 * Python-Aim runs (`.aim/check_ins/`) are read at the end of each scan, after the Node owners
 * have been looked at, so that a hash a Node owner holds is known before its check-ins could
 * announce it a second time. The reader's state travels in the daemon's snapshot
 * (`extra.checkins`) to the next daemon.
 * @module
 */
import { existsSync, watch as fsWatch, type FSWatcher } from 'node:fs'
import { monotonicNow, systemClock, type Clock } from '../clock.js'
import { DEFAULT_CHECKIN_GRACE } from '../aim/checkin-reader.js'
import { AimStatusError, ErrorCodes, toPlainError } from '../errors.js'
import { announceWatcher } from '../notify/manage.js'
import { watcherEventOf } from '../notify/delivery-record.js'
import { RepoRuntime, type RuntimeOptions } from '../actor/runtime.js'
import { DurableOwner } from '../owner/durable-owner.js'
import { repoPaths, type RepoPaths } from '../repo.js'
import { ownerFileOf, prepareStatusFolders, snapshotPath, statusLayout, type StatusLayout } from '../state/layout.js'
import { adoptOrphan, type Adoption } from '../state/lease.js'
import type { Snapshot } from '../state/snapshot.js'
import type { OwnerInfo } from '../state/owner.js'
import { AimRuns, NOTHING_QUEUED, type AimScanFindings } from './aim-runs.js'
import { Discovery, type Orphan } from './discovery.js'
import { drainConcurrently } from './pool.js'
import type { DaemonLog } from './log.js'
import { adoptionOrder } from './planner.js'
import { Quarantine } from './quarantine.js'
import { Sender, type SenderHold } from './sender.js'
import { Takeover } from './takeover.js'
import { aimRun, mergeRuns, type RepoObserver, type WatchedRun } from './run-view.js'
import { DeadlineTimer } from '../timer.js'
import { writeToTerminal } from '../terminal.js'
import type { RunEvent } from '../model.js'

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

/** Everything that exists while this daemon is the repo's sender. */
interface Session {
  hold: SenderHold
  /** The daemon's own snapshot, acting under the sender's lease. */
  owner: DurableOwner
  runtime: RepoRuntime
  /** The repo's Python-Aim runs. */
  aim: AimRuns
  watchers: FSWatcher[]
  /** What is done to other owners' runs. */
  takeover: Takeover
  /** Hashes held by live Node owners' snapshots, as of the last scan that read them (for the read model). */
  nodeHashes: Set<string>
  /** Live training processes and orphans found by the last scan: something to watch. */
  ownersSeen: number
  /** Live training processes' snapshots, as of the last scan that read them (for the read model). */
  live: Snapshot[]
  /** Scans made in this session: the first is summed up at `info`, every one at `debug`. */
  scans: number
  closed: boolean
}

/** What one scan found and did, for its log line. */
interface ScanCounts {
  /** Live training processes' snapshots. */
  live: number
  /** Orphaned owners found, and adopted by this scan. */
  orphans: number
  adopted: number
  /** Exit markers without a snapshot. */
  markers: number
  /** Owner entries that could not be looked at. */
  errors: number
  /** The check-ins: transitions found, of which already notified. */
  checkins: AimScanFindings | null
}

const isActive = (status: string): boolean => status === 'running' || status === 'stalled'

/**
 * The adoption work one scan does before it yields, ms: the next scan starts at once and finds a
 * process that died meanwhile (adopted first), so a backlog delays a fresh death's report by
 * about this much.
 */
const ADOPTION_BUDGET_MS = 250
/** Orphans adopted per commit of the daemon's snapshot. */
const ADOPTION_BATCH = 100
/** Adoptions in flight at once (each mostly waits for its writes to be durable). */
const ADOPTION_CONCURRENCY = 8

/** The daemon's work on one repo. */
export class RepoWatch {
  readonly root: string
  readonly paths: RepoPaths
  readonly layout: StatusLayout
  readonly #options: RepoWatchOptions
  readonly #sender: Sender
  readonly #discovery: Discovery
  #state: RepoWatchState = 'idle'
  #session: Session | null = null
  /** The next step: a poll, or the retry of a standby. Referenced: it keeps the daemon's process alive. */
  readonly #pollTimer: DeadlineTimer
  /** A scan soon after file events, gathering a burst of them into one scan. */
  readonly #soonTimer: DeadlineTimer
  #busy: Promise<void> | null = null
  #again = false
  #standbyHolder: string | null = null
  #closing: Promise<void> | null = null
  /** Owner entries that failed lately: said once, retried with backoff. */
  readonly #quarantine: Quarantine
  /** The last message of each repo-level trouble (`repo-error`, `state-unreadable`, …): said once until it changes or clears. */
  readonly #said = new Map<string, string>()
  readonly #observers = new Set<RepoObserver>()
  /** What else keeps the repo busy (open sessions): see {@link keepBusyWhile}. */
  readonly #busyWhile: Array<() => boolean> = []

  constructor(options: RepoWatchOptions) {
    this.#options = options
    this.root = options.root
    this.paths = repoPaths(options.root)
    this.layout = statusLayout(this.paths)
    this.#sender = new Sender({
      layout: this.layout,
      paths: this.paths,
      owner: options.owner,
      staleMs: options.staleMs,
      warn: (message) => options.log.warn('aim-lock', { repo: this.root, message }),
      onLost: (which, error) => this.#lost(which, error),
    })
    this.#discovery = new Discovery({ layout: this.layout, staleMs: options.staleMs, selfId: options.owner.id })
    this.#quarantine = new Quarantine(options.pollMs)
    // The poll paces reads of the file system, which happen in real time whatever clock the
    // deadlines run on (tests move the injected clock without starving the scans).
    this.#pollTimer = new DeadlineTimer(systemClock, () => void this.#step(), { keepsProcessAlive: true })
    this.#soonTimer = new DeadlineTimer(systemClock, () => void this.#step())
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

  /**
   * Whether this daemon has anything to watch in the repo: it is the sender and the last scan
   * found a live training process or an orphan, or it carries a run or a pending notification,
   * or a Python run is live. A standby has nothing (another daemon sends). For the idle exit.
   */
  get busy(): boolean {
    const session = this.#session
    if (this.#state !== 'active' || session === null || session.closed) return false
    if (session.ownersSeen > 0 || session.runtime.hasOutstanding()) return true
    if (this.#busyWhile.some((check) => check())) return true
    for (const run of session.aim.runs.values()) if (run.status === 'running') return true
    return false
  }

  /** Counts the repo as busy (no idle exit) while `check` says so: a daemon serving sessions is needed. */
  keepBusyWhile(check: () => boolean): void {
    this.#busyWhile.push(check)
  }

  /** Makes the runtime's state durable now (the daemon's snapshot); rejects when not active. */
  commit(): Promise<void> {
    const session = this.#session
    if (session === null || session.closed) return Promise.reject(new AimStatusError(ErrorCodes.STANDBY, `this daemon does not send for ${this.root} now`))
    return session.owner.commit()
  }

  /** Tells `observer` of changes, events and delivery outcomes from now on; returns the unsubscribe. */
  observe(observer: RepoObserver): () => void {
    this.#observers.add(observer)
    return () => void this.#observers.delete(observer)
  }

  /**
   * Every run this daemon knows of while it is the repo's sender: live training processes' (from
   * their snapshots at the last scan), its own adopted ones, and Python-Aim ones; one per hash.
   * Empty on a standby (it reads nothing).
   */
  runs(): WatchedRun[] {
    const session = this.#session
    if (session === null) return []
    const { owner } = this.#options
    const self = { id: owner.id, kind: owner.kind, pid: owner.pid, host: owner.host }
    const all: WatchedRun[] = []
    for (const snapshot of session.live) {
      const who = { id: snapshot.owner.id, kind: snapshot.owner.kind, pid: snapshot.owner.pid, host: snapshot.owner.host }
      for (const run of snapshot.runs) all.push({ ...run, repo: this.root, source: 'process', owner: who })
    }
    for (const run of session.runtime.actor.runs()) all.push({ ...run, repo: this.root, source: 'adopted', owner: self })
    for (const [hash, state] of session.aim.runs) if (!session.nodeHashes.has(hash) && session.runtime.actor.run(hash) === undefined) all.push(aimRun(this.root, hash, state, session.aim.graceSeconds))
    return mergeRuns(all)
  }

  /** Notifications waiting in this daemon's outbox (0 on a standby). */
  outboxDepth(): number {
    return this.#session?.runtime.delivery.state().pending.length ?? 0
  }

  #tell(call: (observer: RepoObserver) => void): void {
    // Most daemons have no observer (no HTTP face): no iterator per event for an empty set.
    if (this.#observers.size === 0) return
    for (const observer of this.#observers) {
      try {
        call(observer)
      } catch (error) {
        this.#logError('observer-error', error)
      }
    }
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

  /** Stops: flushes the snapshot, releases every lease (a standby takes over at once). A second call waits for the first. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#state = 'closed'
    this.#pollTimer.close()
    this.#soonTimer.close()
    // Let a scan in progress end: it may be between adopting and retiring an orphan.
    await this.#busy?.catch(() => undefined)
    const session = this.#session
    this.#session = null
    if (session !== null) {
      this.#tell((o) => o.sending?.(false))
      await this.#endSession(session, true)
    }
    await this.#sender.close()
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
        else if (this.#state === 'active' && this.#session !== null) await this.#scanAndSay(this.#session)
      } while (this.#again && this.#state !== 'closed')
    }
    this.#busy = run()
      .then(() => void this.#said.delete('repo-error'))
      .catch((error: unknown) => this.#logOnce('repo-error', error))
      .finally(() => {
        this.#busy = null
        this.#schedule()
      })
    return this.#busy
  }

  #schedule(): void {
    if (this.#state === 'closed') return
    this.#pollTimer.arm(systemClock.now() + this.#options.pollMs)
  }

  /**
   * A file event: Discovery says what it asks for (see {@link Discovery.noticed}). Only a change
   * that needs the daemon now (an exit marker, a snapshot that appeared or vanished, a rewrite
   * by an owner whose runs we carry) scans soon, gathering a burst of events into one scan; a
   * live owner's rewrite (or journal append) only marks it for a look at the next poll, so a thousand owners
   * reporting do not keep the daemon scanning. An entry held back after failing waits its turn.
   */
  #fileEvent(folder: 'owners' | 'exits', name: string | null): void {
    const session = this.#session
    if (this.#state !== 'active' || session === null) return
    // Every owner's lock is refreshed every few seconds (200 events a second at 1,000 owners) and
    // never asks for anything (Discovery.noticed): dropped before any parsing.
    if (name?.endsWith('.json.lock') === true) return
    if (name !== null) {
      const id = ownerFileOf(name)?.id ?? null
      if (id === null || this.#quarantine.blocked(id) || session.takeover.isTombstone(id)) return
      const { actor } = session.runtime
      if (this.#discovery.noticed(folder, name, (hash) => isActive(actor.run(hash)?.status ?? 'none')) !== 'scan') return
    }
    if (this.#soonTimer.dueAt !== null) return
    this.#soonTimer.arm(systemClock.now() + 25)
  }

  async #tryActivate(): Promise<void> {
    const { owner, staleMs, log } = this.#options
    // Real folders inside the repo, or a coded error (a status folder linked elsewhere, unwritable, full).
    prepareStatusFolders(this.layout)
    const attempt = await this.#sender.attempt()
    if (attempt.kind === 'standby') {
      // Said once per holder, not once per retry.
      const who = `${attempt.lock}: ${attempt.holder}`
      if (who !== this.#standbyHolder) log.info('standby', { repo: this.root, lock: attempt.lock, holder: attempt.holder })
      this.#standbyHolder = who
      return
    }
    this.#standbyHolder = null
    const { hold } = attempt
    let durable: DurableOwner | null = null
    let runtime: RepoRuntime | null = null
    try {
      durable = await DurableOwner.acquire({
        path: snapshotPath(this.layout, owner.id),
        owner,
        clock: this.#options.clock,
        staleMs,
        actsUnder: [hold.daemonLease],
        onLost: (error) => this.#lost('snapshot lease', error),
        onError: (error) => this.#logError('snapshot-error', error),
      })
      const own = durable
      const terminals = new Map<string, string>()
      runtime = new RepoRuntime({
        root: this.root,
        host: owner.host,
        pid: owner.pid,
        clock: this.#options.clock,
        writeLine: this.#options.writeLine,
        onEvent: (event, muted) => {
          log.info(event.kind, { repo: this.root, hash: event.run.hash, reason: event.run.reason, episode: event.run.episode, overdue: event.overdueSeconds, key: event.key, muted: muted !== null || undefined })
          this.#tellTerminal(event, terminals, rt)
          this.#tell((o) => o.event?.(event, muted))
          this.#tell((o) => o.changed?.())
        },
        onReport: (record) => {
          this.#tell((o) => o.report?.(record))
          const level = record.kind === 'notified' ? 'info' : record.kind === 'failed' ? 'error' : 'warn'
          log[level](watcherEventOf(record), {
            repo: this.root,
            hash: record.hash,
            eventKind: record.eventKind,
            notifier: record.notifierId,
            type: record.notifierType,
            attempts: record.attempts,
            error: record.error,
            reason: record.reason,
            nextTimeoutMs: record.nextTimeoutMs,
            key: record.eventKey,
          })
        },
        // An invalid notifier entry or config file is its own, loud, record.
        onError: (error) =>
          this.#logError(
            (error as { code?: unknown }).code === ErrorCodes.INVALID_NOTIFIER ? 'invalid-notifier' : (error as { code?: unknown }).code === ErrorCodes.CORRUPT_FILE ? 'invalid-config' : 'runtime-error',
            error,
          ),
        owner: own,
        ...(this.#options.delivery !== undefined ? { delivery: this.#options.delivery } : {}),
      })
      const rt: RepoRuntime = runtime
      const nodeHashes = new Set<string>()
      const aim = new AimRuns({
        paths: this.paths,
        clock: this.#options.clock,
        graceSeconds: this.#options.checkinGrace ?? DEFAULT_CHECKIN_GRACE,
        host: owner.host,
        pid: owner.pid,
        log,
        accept: (event) => {
          const muted = rt.muteOf(event)
          this.#tell((o) => o.event?.(event, muted))
          this.#tell((o) => o.changed?.())
          // What no notifier wants is not handed to the outbox (it would queue nothing): most of
          // a first scan's transitions, whose promises and frames are most of its garbage. A
          // muted one still goes (a recovery ends a mute until healthy).
          if (muted === null && !rt.wantsKind(event.kind)) return NOTHING_QUEUED
          return rt.accept(event, muted).then((queued) => ({ queued, muted: muted !== null }))
        },
        wanted: (transition) => this.#observers.size > 0 || rt.wantsKind(transition.kind) || rt.mutes.covering(transition.hash, transition.at) !== null,
        // Adopted runs stay in the actor (ended ones for keepEndedMs): still the Node owner's.
        nodeRuns: async () => {
          const held = await this.#discovery.nodeHashes()
          return (hash) => nodeHashes.has(hash) || rt.actor.run(hash) !== undefined || held.has(hash)
        },
        onStateChanged: () => own.changed(),
      })
      own.serve(() => {
        const checkins = aim.state()
        return { owner, ...rt.snapshotState(), extra: checkins !== null ? { checkins } : {} }
      })
      await runtime.start()
      await own.commit()
      const takeover = new Takeover(
        {
          root: this.root,
          paths: this.paths,
          layout: this.layout,
          daemonOwner: owner,
          clock: this.#options.clock,
          tombstoneMs: this.#options.tombstoneMs,
          keepEndedMs: this.#options.keepEndedMs,
          log,
          ownerError: (id, error) => this.#ownerError(id, error),
          terminals,
        },
        { runtime, owner: own, aim },
      )
      const session: Session = { hold, owner: own, runtime, aim, takeover, watchers: [], nodeHashes, ownersSeen: 0, live: [], scans: 0, closed: false }
      this.#session = session
      this.#state = 'active'
      // Events were not followed while this daemon was not the sender: start from nothing.
      this.#discovery.reset()
      session.watchers = this.#watchFolders()
      log.info('active', { repo: this.root, pid: owner.pid, generation: hold.daemonLease.generation, aimLock: hold.aimLock.kind, checkinGrace: aim.graceSeconds })
      if (this.#options.announce === true) this.#announce()
      this.#tell((o) => o.sending?.(true))
      this.#again = true
    } catch (error) {
      await runtime?.close().catch(() => undefined)
      await durable?.end(() => ({ outstanding: true })).catch(() => undefined)
      await this.#sender.release(hold, false).catch(() => undefined)
      throw error
    }
  }

  #announce(): void {
    const { log } = this.#options
    void announceWatcher(this.root, { writeLine: (line) => log.info('message', { text: line }) }).then(
      (results) => {
        for (const r of results) log.info(r.outcome.kind === 'delivered' ? 'announced' : 'announce-failed', { repo: this.root, notifier: r.id, type: r.type, ...('error' in r.outcome ? { error: r.outcome.error } : {}) })
      },
      (error: unknown) => this.#logError('announce-failed', error),
    )
  }

  #watchFolders(): FSWatcher[] {
    const watchers: FSWatcher[] = []
    for (const [kind, folder] of [
      ['owners', this.layout.owners],
      ['exits', this.layout.exits],
    ] as const) {
      try {
        const watcher = fsWatch(folder, { persistent: false }, (_event, name) => this.#fileEvent(kind, typeof name === 'string' ? name : null))
        // Where fs.watch fails later (a folder removed, NFS), the poll carries on alone, and
        // looks at every owner each time (no event tells of a change any more).
        watcher.on('error', () => {
          watcher.close()
          this.#discovery.watching = false
        })
        watchers.push(watcher)
      } catch {
        // No inotify here (NFS, some containers): the poll finds everything, a little later.
      }
    }
    this.#discovery.watching = watchers.length === 2
    return watchers
  }

  /** A lock of the active session was lost: this daemon was frozen and another took over. */
  #lost(which: string, error: Error): void {
    const session = this.#session
    if (session === null || session.closed) return
    this.#options.log.error('lease-lost', { repo: this.root, lease: which, error: error.message, then: 'standby: another daemon sends for this repo' })
    this.#session = null
    if (this.#state === 'active') this.#state = 'standby'
    this.#tell((o) => o.sending?.(false))
    void this.#endSession(session, false).finally(() => this.#schedule())
  }

  async #endSession(session: Session, graceful: boolean): Promise<void> {
    if (session.closed) return
    session.closed = true
    for (const watcher of session.watchers) watcher.close()
    this.#discovery.watching = false
    const { runtime, owner, aim } = session
    // Before the runtime: what is being accepted reaches the outbox, and is recorded.
    await aim.close().catch((error: unknown) => this.#logError('runtime-error', error))
    await runtime.close().catch((error: unknown) => this.#logError('runtime-error', error))
    if (aim.hasRuns) owner.changed()
    // Anything still to watch or send (known Python runs count: their first sights and notified
    // idx are for the next daemon): the snapshot is left, released, for the next daemon to adopt
    // at once. Nothing: it is removed.
    await owner.end(() => ({ outstanding: runtime.hasOutstanding() || aim.hasRuns })).catch((error: unknown) => this.#logError('snapshot-error', error))
    await session.takeover.releaseTombstones()
    // Last, so that a standby, once it holds the daemon lease, finds our snapshot released.
    await this.#sender.release(session.hold, graceful).catch((error: unknown) => this.#logError('aim-lock', error))
    if (graceful) this.#options.log.info('stopped', { repo: this.root, runs: runtime.actor.runs().filter((r) => isActive(r.status)).length, aimRuns: aim.runs.size })
  }

  /**
   * A scan, and its line: the first of a session sums up what the daemon found on taking the
   * repo (`first-scan`, info); every scan is a `scan` line at debug (with how long it took),
   * which tests wait for instead of sleeping. Nothing per run at info.
   */
  async #scanAndSay(session: Session): Promise<void> {
    const { log } = this.#options
    const started = monotonicNow()
    const counts = await this.#scan(session)
    if (counts === null) return
    session.scans++
    const first = session.scans === 1
    if (!first && !log.enabled('debug')) return
    const aim = session.aim.counts()
    const fields = {
      repo: this.root,
      ms: Math.round(monotonicNow() - started),
      ownersLive: counts.live,
      orphans: counts.orphans,
      adopted: counts.adopted,
      markers: counts.markers,
      ownerErrors: counts.errors,
      aimRunning: aim.running,
      aimStalled: aim.stalled,
      aimFinished: aim.finished,
      aimTransitions: counts.checkins?.transitions,
      aimAlreadyNotified: counts.checkins?.alreadyNotified,
    }
    if (first) log.info('first-scan', fields)
    log.debug('scan', fields)
  }

  /** One scan; null when it stopped early (frozen, closed, nothing readable). */
  async #scan(session: Session): Promise<ScanCounts | null> {
    // A daemon that was frozen finds out here, before it adopts or reports anything.
    if (!session.owner.mayAct()) {
      this.#lost('sender lease', new Error("a newer generation holds this daemon's leases"))
      return null
    }
    let findings
    try {
      // A status folder swapped for a link out of the repo is refused before anything in it is read.
      // A repo folder removed while watched is not made again: there is nothing left to watch.
      if (!existsSync(this.root)) throw new AimStatusError(ErrorCodes.INVALID_PATH, `The repo folder ${this.root} is gone`)
      prepareStatusFolders(this.layout)
      findings = await this.#discovery.scan((id) => session.takeover.isTombstone(id), {
        stillOpen: () => !session.closed,
        isHeldBack: (id) => this.#quarantine.blocked(id),
        // Live owners' snapshots are read only for a question that needs them: a run we carry that
        // its owner may report again (hand-back), or a status page showing live runs. "Is this
        // hash a Node run?" reads them itself when a check-in asks (Discovery.nodeHashes).
        readLive: this.#observers.size > 0 || session.runtime.actor.hasActiveRuns(),
      })
      this.#said.delete('state-unreadable')
    } catch (error) {
      this.#logOnce('state-unreadable', error)
      // Nothing can be seen: nothing holds an on-demand daemon up (it exits when idle).
      session.ownersSeen = 0
      return null
    }
    this.#quarantine.keepOnly(findings.listed)
    const { takeover } = session
    session.ownersSeen = findings.liveOwners + findings.orphans.length + findings.markerOnly.length
    await takeover.retireTombstones()
    for (const { id, error } of findings.errors) this.#ownerError(id, error)
    const counts: ScanCounts = { live: findings.liveOwners, orphans: findings.orphans.length, adopted: 0, markers: findings.markerOnly.length, errors: findings.errors.length, checkins: null }
    for (const id of findings.markerOnly) {
      if (session.closed) return null
      await takeover.markerOnly(id).catch((error: unknown) => this.#ownerError(id, error))
    }
    const adopted = await this.#adopt(session, findings.orphans)
    if (adopted === null) return null
    counts.adopted = adopted
    if (findings.live.length > 0) await takeover.handBack(findings.live)
    takeover.prune()
    session.nodeHashes.clear()
    for (const snapshot of findings.live) for (const run of snapshot.runs) session.nodeHashes.add(run.hash)
    session.live = findings.live
    if (session.closed) return null
    try {
      counts.checkins = await session.aim.scan()
      this.#said.delete('checkins-error')
    } catch (error) {
      this.#logOnce('checkins-error', error)
    }
    this.#tell((o) => o.changed?.())
    return counts
  }

  /**
   * Adopts orphans in batches of at most {@link ADOPTION_BATCH} (one commit each) within
   * {@link ADOPTION_BUDGET_MS} of work; the rest waits for the next scan, which then starts at
   * once. A process that dies meanwhile is found by that scan and adopted before the backlog
   * (see `adoptionOrder`), so a backlog delays its report by about one budget, not by the
   * backlog's length. Resolves how many were adopted; null when the session closed.
   */
  async #adopt(session: Session, orphans: Orphan[]): Promise<number | null> {
    const queue = adoptionOrder(orphans)
    const until = systemClock.now() + ADOPTION_BUDGET_MS
    let next = 0
    let adopted = 0
    while (next < queue.length) {
      if (session.closed) return null
      if (systemClock.now() >= until) {
        this.#again = true
        break
      }
      const batch: Array<{ order: number; id: string; adoption: Adoption }> = []
      let started = 0
      const take = (): { order: number; id: string } | undefined => {
        if (next >= queue.length || started >= ADOPTION_BATCH || systemClock.now() >= until || session.closed) return undefined
        started++
        const order = next++
        return { order, id: (queue[order] as Orphan).id }
      }
      await drainConcurrently(ADOPTION_CONCURRENCY, take, async ({ order, id }) => {
        try {
          const adoption = await adoptOrphan(snapshotPath(this.layout, id), this.#options.owner, { staleMs: this.#options.staleMs })
          // Not adoptable after all (alive again, or another daemon won): looked at afresh next time.
          if (adoption === null) this.#discovery.lookAgain(id)
          else batch.push({ order, id, adoption })
          this.#quarantine.cleared(id)
        } catch (error) {
          this.#ownerError(id, error)
        }
      })
      // Taken in in adoption order, not in the order the claims completed: a daemon's outbox
      // (its settled keys) must be in before any run it already reported is failed again.
      await session.takeover.adopt(batch.sort((a, b) => a.order - b.order))
      adopted += batch.length
    }
    return session.closed ? null : adopted
  }

  /**
   * Zero configuration still tells someone: with no notifier configured (the default logger,
   * whose line goes to this daemon's log), a failure or stall of a run whose process recorded
   * the terminal it was started from is written there too, when that terminal is this user's.
   */
  #tellTerminal(event: RunEvent, terminals: ReadonlyMap<string, string>, runtime: RepoRuntime | undefined): void {
    if (event.kind !== 'failed' && event.kind !== 'stalled') return
    const path = terminals.get(event.run.hash)
    if (path === undefined || runtime === undefined || !runtime.notifiers.usesDefaultOnly()) return
    const who = event.run.name !== undefined ? `'${event.run.name}' (${event.run.hash})` : `'${event.run.hash}'`
    const what = event.kind === 'failed' ? `failed: ${event.run.reason ?? 'unknown reason'}` : `stalled: no progress for ${event.overdueSeconds ?? 0} s past its deadline`
    const line = `aim-watcher (pid ${process.pid}): run ${who} ${what}. No notifier is configured: see aim-watcher --repo ${this.root} notifiers add --help`
    if (writeToTerminal(path, line)) this.#options.log.info('told-terminal', { repo: this.root, hash: event.run.hash, terminal: path })
  }

  /** One owner entry's trouble: logged the first time (and when it changes), then retried with backoff, silently. */
  #ownerError(id: string, error: unknown): void {
    const plain = toPlainError(error)
    // A set-aside file's new name changes every time: the problem is what is left of the message.
    if (!this.#quarantine.failed(id, `${plain.code ?? plain.name}: ${plain.message.replace(/\.corrupt-\d+/g, '')}`)) return
    const code = (error as { code?: unknown }).code
    if (code === ErrorCodes.CORRUPT_FILE) this.#options.log.error('corrupt-state-file', { repo: this.root, owner: id, error: toPlainError(error).message })
    else this.#logError('owner-error', error, { owner: id })
  }

  /** A repo-level trouble that may repeat every poll: said once until its message changes or it clears. */
  #logOnce(event: string, error: unknown): void {
    const plain = toPlainError(error)
    const message = `${plain.code ?? ''} ${plain.message}`
    if (this.#said.get(event) === message) return
    this.#said.set(event, message)
    this.#logError(event, error)
  }

  #logError(event: string, error: unknown, fields: Record<string, string> = {}): void {
    const plain = toPlainError(error)
    this.#options.log.error(event, { repo: this.root, ...fields, code: plain.code, error: plain.message })
  }
}
