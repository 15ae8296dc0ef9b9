/**
 * `aim-watcher start` and `aim-watcher status`.
 * @module
 */
import type { Command } from 'commander'
import { DEFAULT_DAEMON_GRACE, DEFAULT_POLL_MS, Daemon } from '../daemon/daemon.js'
import { formatStatus, repoStatus } from '../daemon/status.js'
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, type LogLevel } from '../daemon/log.js'
import type { HttpFace } from '../daemon/http/server.js'
import { Access, parseListenAddress, type AccessOptions } from '../daemon/http/access.js'
import { DEFAULT_STALE_MS, MIN_STALE_MS } from '../state/lease.js'
import { fail, failWith, numberFlag, out, repoRoot, repoRoots } from './common.js'
import { ensureDaemon } from '../daemon-launch.js'
import { systemClock } from '../clock.js'
import { toPlainError } from '../errors.js'
import { readFileSync } from 'node:fs'
import { DEFAULT_HEARTBEAT_MS, DEFAULT_RECONNECT_WINDOW_MS } from '../session/protocol.js'

/** The daemon's option names as its flags, for its error messages. */
const DAEMON_FLAGS: Readonly<Record<string, string>> = {
  grace: '--grace',
  staleMs: '--stale-ms',
  pollMs: '--poll-ms',
  exitWhenIdle: '--exit-when-idle',
  logFile: '--log-file',
  logLevel: '--log-level',
  heartbeatMs: '--heartbeat-ms',
  reconnectWindowMs: '--reconnect-window-ms',
}

interface StartFlags {
  grace?: number
  staleMs?: number
  pollMs?: number
  jsonLogs?: boolean
  logLevel?: string
  announce?: boolean
  logFile?: string
  exitWhenIdle?: number
  http?: string
  tokenFile?: string
  httpPublicRead?: boolean
  heartbeatMs?: number
  reconnectWindowMs?: number
  tlsCert?: string
  tlsKey?: string
}

/** The face's certificate and key from `--tls-cert` / `--tls-key` (both or neither, and only with --http); read before anything starts. */
function httpTls(options: StartFlags): { cert: Buffer; key: Buffer } | null {
  if (options.tlsCert === undefined && options.tlsKey === undefined) return null
  if (options.tlsCert === undefined || options.tlsKey === undefined) throw fail(2, 'AIM_STATUS_INVALID_OPTION: --tls-cert and --tls-key go together')
  if (options.http === undefined) throw fail(2, 'AIM_STATUS_INVALID_OPTION: --tls-cert and --tls-key need --http HOST:PORT')
  const read = (path: string, flag: string): Buffer => {
    try {
      return readFileSync(path)
    } catch (error) {
      throw fail(2, `AIM_STATUS_INVALID_OPTION: ${flag} ${path} cannot be read (${(error as Error).message})`)
    }
  }
  return { cert: read(options.tlsCert, '--tls-cert'), key: read(options.tlsKey, '--tls-key') }
}

/** The HTTP face's access options from the flags, checked before anything starts (exit 2 when refused); null without --http. */
function httpAccess(options: StartFlags): AccessOptions | null {
  if (options.http === undefined) {
    if (options.tokenFile !== undefined || options.httpPublicRead === true) throw fail(2, 'AIM_STATUS_INVALID_OPTION: --token-file and --http-public-read need --http HOST:PORT')
    return null
  }
  try {
    const access: AccessOptions = { listen: parseListenAddress(options.http), ...(options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {}), publicRead: options.httpPublicRead === true }
    new Access(access)
    return access
  } catch (error) {
    throw failWith(error)
  }
}

/** Resolves at the first SIGTERM or SIGINT. */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on)
      process.off('SIGINT', on)
      resolve(signal)
    }
    process.on('SIGTERM', on)
    process.on('SIGINT', on)
  })
}

/**
 * An idle daemon has let go of its repos; a training process that started in the meantime may
 * have found it still holding them, and started none. Looked at again now that the leases are
 * released: a repo with a live training process gets a fresh daemon (unless one holds it now).
 */
async function handOverIfNeeded(daemon: Daemon, options: { staleMs?: number; pollMs?: number; jsonLogs?: boolean; exitWhenIdle?: number }): Promise<void> {
  for (const repo of daemon.repos) {
    try {
      const status = await repoStatus(repo.root, { staleMs: daemon.staleMs })
      const live = status.runs.some((run) => run.owner.kind === 'process' && run.owner.state === 'alive' && (run.status === 'running' || run.status === 'stalled'))
      if (!live) continue
      const started = await ensureDaemon(repo.root, {
        staleMs: daemon.staleMs,
        ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
        ...(options.jsonLogs === true ? { jsonLogs: true } : {}),
        ...(options.exitWhenIdle !== undefined ? { exitWhenIdle: options.exitWhenIdle } : {}),
      })
      daemon.log.info('handed-over', { repo: repo.root, pid: started.pid, started: started.started })
    } catch (error) {
      daemon.log.error('hand-over-failed', { repo: repo.root, error: toPlainError(error).message })
    }
  }
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('start')
    .description("watch the repo(s): take over the runs of processes that died, exited or froze, and watch Python-Aim runs' check-ins")
    .option('--grace <S>', `seconds of grace for runs that carry none: Python-Aim check-ins; at least 30 (default: ${DEFAULT_DAEMON_GRACE}, as Aim)`, numberFlag('--grace', false))
    .option('--stale-ms <MS>', `a lease untouched this long counts as orphaned; at least ${MIN_STALE_MS} (default: ${DEFAULT_STALE_MS})`, numberFlag('--stale-ms', true))
    .option('--poll-ms <MS>', `scan interval where file events are not available, and standby retry interval (default: ${DEFAULT_POLL_MS})`, numberFlag('--poll-ms', true))
    .option('--json-logs', 'log JSON lines instead of human-readable lines')
    .option('--log-level <LEVEL>', `least level logged: ${LOG_LEVELS.join(', ')}; debug adds a line per Python run seen and per scan (default: ${DEFAULT_LOG_LEVEL})`)
    .option('--log-file <PATH>', 'append the log to this file (never through a link; rotated past 10 MiB, 3 old files kept) instead of stdout')
    .option('--announce', 'send Aim\'s "Watcher is running for repo …" through the notifiers on becoming a repo\'s sender')
    .option(
      '--exit-when-idle <S>',
      'exit after S seconds with nothing to watch (no live training process, nothing pending), or at once when another daemon holds every repo; for daemons started on demand (default: run until stopped)',
      numberFlag('--exit-when-idle', false),
    )
    .option('--http <HOST:PORT>', 'serve the status page, JSON API, /metrics, /healthz and /readyz there (port 0: any free port); off by default')
    .option('--token-file <FILE>', 'bearer token for the HTTP face (mode 0600); required to listen beyond loopback')
    .option('--http-public-read', 'with --token-file: reads need no token (mutations still do)')
    .option('--tls-cert <FILE>', 'with --http and --tls-key: serve HTTPS with this certificate (PEM); sessions then on wss://')
    .option('--tls-key <FILE>', "the --tls-cert certificate's private key (PEM)")
    .option('--heartbeat-ms <MS>', `ping each session this often; one that misses a ping is lost (default: ${DEFAULT_HEARTBEAT_MS})`, numberFlag('--heartbeat-ms', true))
    .option(
      '--reconnect-window-ms <MS>',
      `how long the runs of a session closed without a goodbye wait for their process to resume them before they fail (default: ${DEFAULT_RECONNECT_WINDOW_MS})`,
      numberFlag('--reconnect-window-ms', true),
    )
    .action(async (options: StartFlags, command: Command) => {
      const roots = repoRoots(command, 'folder')
      const access = httpAccess(options)
      const tls = httpTls(options)
      let daemon: Daemon
      try {
        daemon = new Daemon({
          repos: roots,
          ...(options.grace !== undefined ? { grace: options.grace } : {}),
          ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
          ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
          jsonLogs: options.jsonLogs === true,
          ...(options.logLevel !== undefined ? { logLevel: options.logLevel as LogLevel } : {}),
          announce: options.announce === true,
          ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
          ...(options.exitWhenIdle !== undefined ? { exitWhenIdle: options.exitWhenIdle } : {}),
          ...(options.heartbeatMs !== undefined ? { heartbeatMs: options.heartbeatMs } : {}),
          ...(options.reconnectWindowMs !== undefined ? { reconnectWindowMs: options.reconnectWindowMs } : {}),
        })
      } catch (error) {
        throw failWith(error, DAEMON_FLAGS)
      }
      // Listening before starting: a signal during start-up still stops cleanly.
      const signal = stopSignal()
      // The face listens before the daemon takes anything over: a port in use stops it first.
      let face: HttpFace | null = null
      if (access !== null) {
        try {
          // Loaded only with --http: the face and prom-client are most of a daemon's modules.
          const { HttpFace } = await import('../daemon/http/server.js')
          face = await HttpFace.start({ ...access, repos: daemon.repos, owner: daemon.owner, staleMs: daemon.staleMs, log: daemon.log, sessions: daemon.sessions, ...(tls !== null ? { tls } : {}) })
        } catch (error) {
          throw failWith(error)
        }
      }
      await daemon.start()
      const why = await Promise.race([signal, daemon.idle])
      // Sessions first: their upgraded sockets would hold the face's server open.
      await daemon.sessions.close()
      await face?.close()
      await daemon.close()
      if (why === 'idle') await handOverIfNeeded(daemon, options)
    })
  program
    .command('status')
    .description('list every run known in the repo (Node and Python), its owner, who watches it, its deadline')
    .option('--json', 'print JSON (with --watch: one document per line)')
    .option('--watch', 'refresh until interrupted')
    .option('--interval <S>', 'seconds between refreshes with --watch, 0.1 to 3600 (default: 1)', numberFlag('--interval', false))
    .option('--stale-ms <MS>', `staleness used to judge owners, as the daemon's (default: ${DEFAULT_STALE_MS})`, numberFlag('--stale-ms', true))
    .action(async (options: { json?: boolean; watch?: boolean; interval?: number; staleMs?: number }, command: Command) => {
      const root = repoRoot(command, 'repo')
      const interval = options.interval ?? 1
      if (!(interval >= 0.1 && interval <= 3600)) throw fail(2, `AIM_STATUS_OUT_OF_RANGE: --interval expects 0.1 to 3600 seconds, got ${interval}`)
      const print = async (): Promise<void> => {
        let status
        try {
          status = await repoStatus(root, options.staleMs !== undefined ? { staleMs: options.staleMs } : {})
        } catch (error) {
          throw failWith(error, DAEMON_FLAGS)
        }
        if (options.json === true) out(options.watch === true ? JSON.stringify(status) : JSON.stringify(status, null, 2))
        // On a terminal, each refresh replaces the last one; piped, they follow one another.
        else out(`${options.watch === true && process.stdout.isTTY ? '\x1b[H\x1b[2J' : ''}${formatStatus(status)}${options.watch === true && !process.stdout.isTTY ? '\n' : ''}`)
      }
      await print()
      if (options.watch !== true) return
      const stop = stopSignal()
      let stopped = false
      void stop.then(() => (stopped = true))
      while (!stopped) {
        await Promise.race([stop, new Promise<void>((resolve) => systemClock.setTimer(() => resolve(), interval * 1000, { keepsProcessAlive: true }))])
        if (!stopped) await print()
      }
    })
}
