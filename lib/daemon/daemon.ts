/**
 * The `aim-watcher start` daemon: one {@link RepoWatch} per repo, one identity (owner kind
 * `daemon`) for the process, one log. It takes over the runs of training processes that died,
 * exited or froze, with the same actor and outbox code they run, and tells the notifiers.
 *
 * Lifecycle: `start()` resolves once every repo has made its first attempt (active, or
 * standby behind a live daemon); `close()` stops accepting, flushes every snapshot and
 * releases every lock (a standby daemon takes over at once), and is safe to call twice. An
 * error in one repo, one owner or one run is logged and never stops the others.
 * @module
 */
import { systemClock, type Clock } from '../clock.js'
import { InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import type { RuntimeOptions } from '../actor/runtime.js'
import { resolveRepoRoot } from '../repo.js'
import { DEFAULT_STALE_MS, MIN_STALE_MS } from '../state/lease.js'
import { MIN_CHECKIN_GRACE } from '../aim/checkin-reader.js'
import { currentOwner, type OwnerInfo } from '../state/owner.js'
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, createLog, isLogLevel, type DaemonLog, type LogLevel } from './log.js'
import { LogFile } from './log-file.js'
import { RepoWatch } from './repo-watch.js'
import { IdleExit } from './idle-exit.js'
import { SessionHub } from './session/hub.js'
import { DEFAULT_HEARTBEAT_MS, DEFAULT_RECONNECT_WINDOW_MS } from '../session/protocol.js'

/** Default {@link DaemonOptions.pollMs}. */
export const DEFAULT_POLL_MS = 1000
/** Default {@link DaemonOptions.grace}: Aim's watcher's 100 s. */
export const DEFAULT_DAEMON_GRACE = 100
/** Default {@link DaemonOptions.tombstoneMs}: one hour. */
export const DEFAULT_TOMBSTONE_MS = 60 * 60_000
/** Default {@link DaemonOptions.keepEndedMs}: one day. */
export const DEFAULT_KEEP_ENDED_MS = 24 * 60 * 60_000

/** Options of {@link Daemon}. */
export interface DaemonOptions {
  /** Repo roots (resolved as `--repo` is). Default: Aim's rule from the working folder. */
  repos?: string[]
  /**
   * Seconds of grace for runs that carry none of their own: Python-Aim check-ins, read with
   * Aim's rules (a run has stalled `expect_next_in + grace` seconds after its newest check-in
   * was first seen). Runs adopted from a snapshot keep the grace they were opened with.
   * Default 100 (Aim's); at least 30, because Aim's writer renews a 12–30 s promise up to
   * ~20 s late and a shorter grace would report live Python runs as stalled.
   */
  grace?: number
  /**
   * How long a lease may go untouched before its owner counts as orphaned, ms (a frozen process,
   * another host). A dead process on this host is found from its pid at once. Default 10 000;
   * at least 2000 (proper-lockfile's floor).
   */
  staleMs?: number
  /** How often each repo is scanned (and a standby retries), ms. File events make scans sooner where they work. Default 1000; at least 50. */
  pollMs?: number
  /** JSON lines on the log instead of human-readable lines. Default false. */
  jsonLogs?: boolean
  /**
   * The least level logged: `debug`, `info`, `warn` or `error`. At `info`, the start is one
   * summary line of what the first scan found and each notification accepted for sending is one
   * line; `debug` adds a line per Python run seen (already notified ones included), per check-in
   * left to a Node owner, and per scan (its counts and how long it took). Default `info`.
   */
  logLevel?: LogLevel
  /**
   * Send Aim's "Watcher is running for repo '<path>'" through the repo's enabled notifiers each
   * time this daemon becomes the repo's sender, as Python's watcher does on every start.
   * Default false (a chat message on every restart or takeover is noise).
   */
  announce?: boolean
  /**
   * How long a frozen owner's emptied snapshot is held (so that it finds its lease lost on
   * waking) before it is removed even if the owner never comes back, ms. Default one hour.
   */
  tombstoneMs?: number
  /** How long ended runs stay listed in the daemon's snapshot, ms. Default one day. */
  keepEndedMs?: number
  /** Where the log goes, one line at a time. Default: stdout, or {@link logFile}. */
  writeLine?: (line: string) => void
  /**
   * A file the log is appended to instead of stdout, opened safely (never through a link) and
   * rotated past 10 MiB, keeping 3 old files (see `log-file.ts`). `ensureDaemon()` passes
   * `status/daemon.log`. Default: none.
   */
  logFile?: string
  /** Time source of the runtimes. Default: the system clock. */
  clock?: Clock
  /** Delivery overrides (timeouts, backoff, budget). Default: the outbox's defaults. */
  delivery?: RuntimeOptions['delivery']
  /**
   * Seconds with nothing to watch (see lib/daemon/idle-exit.ts) after which {@link Daemon.idle}
   * resolves and the program ends the daemon; a daemon that finds every repo already held by
   * another sender at its start is idle at once. For daemons started on demand (`watch()`).
   * Default: none (runs until stopped).
   */
  exitWhenIdle?: number
  /**
   * How often the daemon pings each session, ms: a session that has not answered by the next
   * ping is `lost` (terminated; nothing is failed, deadlines carry on). Told to clients in
   * `welcome`. Default {@link DEFAULT_HEARTBEAT_MS} (5000); at least 50.
   */
  heartbeatMs?: number
  /**
   * How long the runs of a session that closed without a goodbye wait for their process to
   * resume them on another connection before they fail, ms. Default
   * {@link DEFAULT_RECONNECT_WINDOW_MS} (1000); at least 0.
   */
  reconnectWindowMs?: number
}

/** Why {@link Daemon.idle} resolved. */
export type IdleCause = 'idle' | 'already-watched'

function integer(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new OutOfRangeError(`Expected \`${name}\` to be an integer of at least ${min}, got ${describeValue(value)}`)
  return value
}

const KNOWN = new Set([
  'repos',
  'grace',
  'staleMs',
  'pollMs',
  'jsonLogs',
  'logLevel',
  'announce',
  'tombstoneMs',
  'keepEndedMs',
  'writeLine',
  'logFile',
  'clock',
  'delivery',
  'exitWhenIdle',
  'heartbeatMs',
  'reconnectWindowMs',
])

/** The daemon. */
export class Daemon {
  readonly owner: OwnerInfo
  readonly log: DaemonLog
  readonly repos: readonly RepoWatch[]
  readonly grace: number
  readonly staleMs: number
  readonly pollMs: number
  /** Seconds of nothing to watch before {@link idle} resolves, or null (runs until stopped). */
  readonly exitWhenIdle: number | null
  #started: Promise<void> | null = null
  #closing: Promise<void> | null = null
  readonly #logFile: LogFile | null
  #idleExit: IdleExit | null = null
  #becameIdle!: (cause: IdleCause) => void
  /**
   * Resolves when the daemon has had nothing to watch for {@link exitWhenIdle} seconds, or, at
   * start, found every repo held by another sender. Never without `exitWhenIdle`.
   */
  readonly idle: Promise<IdleCause> = new Promise((resolve) => {
    this.#becameIdle = resolve
  })
  readonly #clock: Clock
  /** Every session of every repo (over the HTTP face, or a repo's Unix socket). */
  readonly sessions: SessionHub

  constructor(options: DaemonOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionError(`Expected daemon options to be an object, got ${describeValue(options)}`)
    for (const key of Object.keys(options)) if (!KNOWN.has(key)) throw new InvalidOptionError(`Unknown daemon option \`${key}\``)
    const repos = options.repos ?? []
    if (!Array.isArray(repos) || repos.some((r) => typeof r !== 'string' || r === '')) throw new InvalidOptionError(`Expected \`repos\` to be a list of folder paths, got ${describeValue(repos)}`)
    this.grace = options.grace ?? DEFAULT_DAEMON_GRACE
    if (typeof this.grace !== 'number' || !Number.isFinite(this.grace) || this.grace < MIN_CHECKIN_GRACE)
      throw new OutOfRangeError(`Expected \`grace\` to be a number of seconds of at least ${MIN_CHECKIN_GRACE}, got ${describeValue(this.grace)}`)
    this.staleMs = integer('staleMs', options.staleMs ?? DEFAULT_STALE_MS, MIN_STALE_MS)
    this.pollMs = integer('pollMs', options.pollMs ?? DEFAULT_POLL_MS, 50)
    const tombstoneMs = integer('tombstoneMs', options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS, 0)
    const keepEndedMs = integer('keepEndedMs', options.keepEndedMs ?? DEFAULT_KEEP_ENDED_MS, 0)
    const heartbeatMs = integer('heartbeatMs', options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, 50)
    const reconnectWindowMs = integer('reconnectWindowMs', options.reconnectWindowMs ?? DEFAULT_RECONNECT_WINDOW_MS, 0)
    const idle = options.exitWhenIdle
    if (idle !== undefined && (typeof idle !== 'number' || !Number.isFinite(idle) || idle <= 0)) throw new OutOfRangeError(`Expected \`exitWhenIdle\` to be a number of seconds above 0, got ${describeValue(idle)}`)
    this.exitWhenIdle = idle ?? null
    const roots = [...new Set(repos.length > 0 ? repos.map((r) => resolveRepoRoot(r)) : [resolveRepoRoot(undefined)])]
    if (options.logFile !== undefined && (typeof options.logFile !== 'string' || options.logFile === '')) throw new InvalidOptionError(`Expected \`logFile\` to be a file path, got ${describeValue(options.logFile)}`)
    let setAside: string | null = null
    this.#logFile = options.logFile !== undefined && options.writeLine === undefined ? new LogFile(options.logFile, { onSetAside: (aside) => (setAside = aside) }) : null
    const file = this.#logFile
    const write = options.writeLine ?? (file !== null ? (line: string) => file.writeLine(line) : (line: string) => void process.stdout.write(`${line}\n`))
    const level = options.logLevel ?? DEFAULT_LOG_LEVEL
    if (!isLogLevel(level)) throw new InvalidOptionError(`Expected \`logLevel\` to be one of ${LOG_LEVELS.join(', ')}, got ${describeValue(level)}`)
    this.log = createLog({ json: options.jsonLogs === true, level, write })
    if (setAside !== null) this.log.warn('log-set-aside', { file: options.logFile, setAside, why: 'not a plain file with one link (a symbolic link?): never written through' })
    this.owner = currentOwner('daemon')
    const clock = options.clock ?? systemClock
    this.#clock = clock
    // The logger notifier's own lines: as they are in human mode, one record each in JSON mode.
    const writeLine = options.jsonLogs === true ? (line: string) => this.log.info('message', { text: line }) : write
    this.repos = roots.map(
      (root) =>
        new RepoWatch({
          root,
          owner: this.owner,
          staleMs: this.staleMs,
          pollMs: this.pollMs,
          tombstoneMs,
          keepEndedMs,
          clock,
          checkinGrace: this.grace,
          announce: options.announce === true,
          log: this.log,
          writeLine,
          ...(options.delivery !== undefined ? { delivery: options.delivery } : {}),
        }),
    )
    this.sessions = new SessionHub({ repos: this.repos, daemon: { host: this.owner.host, pid: this.owner.pid }, heartbeatMs, reconnectWindowMs, clock, log: this.log })
  }

  /** Starts every repo; resolves when each has made its first attempt. */
  start(): Promise<void> {
    this.#started ??= (async () => {
      this.log.info('daemon-started', {
        pid: this.owner.pid,
        host: this.owner.host,
        owner: this.owner.id,
        repos: this.repos.map((r) => r.root).join(','),
        staleMs: this.staleMs,
        pollMs: this.pollMs,
        grace: this.grace,
        exitWhenIdle: this.exitWhenIdle ?? undefined,
      })
      await Promise.all(this.repos.map((repo) => repo.start()))
      if (this.exitWhenIdle !== null && this.#closing === null) this.#watchIdle(this.exitWhenIdle)
    })()
    return this.#started
  }

  /** An on-demand daemon: one that is not needed ends (see {@link idle}). */
  #watchIdle(seconds: number): void {
    // Two processes started a daemon at once, or one already ran: this one is not needed.
    if (this.repos.every((repo) => repo.state === 'standby')) {
      this.log.info('exit-when-idle', { cause: 'already-watched', pid: this.owner.pid })
      this.#becameIdle('already-watched')
      return
    }
    this.#idleExit = new IdleExit({
      clock: this.#clock,
      idleMs: seconds * 1000,
      checkEveryMs: Math.min(this.pollMs, 1000),
      busy: () => this.repos.some((repo) => repo.busy),
      onIdle: () => {
        this.log.info('exit-when-idle', { cause: 'idle', seconds, pid: this.owner.pid })
        this.#becameIdle('idle')
      },
    })
    this.#idleExit.start()
  }

  /** Stops every repo: flushes, releases locks. Safe to call twice. */
  close(): Promise<void> {
    this.#idleExit?.close()
    this.#closing ??= (async () => {
      this.log.info('stopping', { pid: this.owner.pid })
      await this.#started?.catch(() => undefined)
      // Sessions first: let go (clients reconnect elsewhere), never taken for processes that died.
      await this.sessions.close()
      await Promise.all(this.repos.map((repo) => repo.close()))
      this.#logFile?.close()
    })()
    return this.#closing
  }
}
