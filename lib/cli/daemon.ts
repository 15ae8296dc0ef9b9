/**
 * `aim-watcher start` and `aim-watcher status`.
 * @module
 */
import type { Command } from 'commander'
import { DEFAULT_DAEMON_GRACE, DEFAULT_POLL_MS, Daemon } from '../daemon/daemon.js'
import { formatStatus, repoStatus } from '../daemon/status.js'
import { HttpFace } from '../daemon/http/server.js'
import { Access, parseListenAddress, type AccessOptions } from '../daemon/http/access.js'
import { DEFAULT_STALE_MS, MIN_STALE_MS } from '../state/lease.js'
import { fail, failWith, numberFlag, out, repoRoot, repoRoots } from './common.js'

/** The daemon's option names as its flags, for its error messages. */
const DAEMON_FLAGS: Readonly<Record<string, string>> = { grace: '--grace', staleMs: '--stale-ms', pollMs: '--poll-ms' }

interface StartFlags {
  grace?: number
  staleMs?: number
  pollMs?: number
  jsonLogs?: boolean
  announce?: boolean
  http?: string
  tokenFile?: string
  httpPublicRead?: boolean
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

export function registerDaemonCommands(program: Command): void {
  program
    .command('start')
    .description('watch the repo(s): take over the runs of processes that died, exited or froze, and watch Python-Aim runs\' check-ins')
    .option('--grace <S>', `seconds of grace for runs that carry none: Python-Aim check-ins; at least 30 (default: ${DEFAULT_DAEMON_GRACE}, as Aim)`, numberFlag('--grace', false))
    .option('--stale-ms <MS>', `a lease untouched this long counts as orphaned; at least ${MIN_STALE_MS} (default: ${DEFAULT_STALE_MS})`, numberFlag('--stale-ms', true))
    .option('--poll-ms <MS>', `scan interval where file events are not available, and standby retry interval (default: ${DEFAULT_POLL_MS})`, numberFlag('--poll-ms', true))
    .option('--json-logs', 'log JSON lines instead of human-readable lines')
    .option('--announce', "send Aim's \"Watcher is running for repo …\" through the notifiers on becoming a repo's sender")
    .option('--http <HOST:PORT>', 'serve the status page, JSON API, /metrics, /healthz and /readyz there (port 0: any free port); off by default')
    .option('--token-file <FILE>', 'bearer token for the HTTP face (mode 0600); required to listen beyond loopback')
    .option('--http-public-read', 'with --token-file: reads need no token (mutations still do)')
    .action(async (options: StartFlags, command: Command) => {
      const roots = repoRoots(command, 'folder')
      const access = httpAccess(options)
      let daemon: Daemon
      try {
        daemon = new Daemon({
          repos: roots,
          ...(options.grace !== undefined ? { grace: options.grace } : {}),
          ...(options.staleMs !== undefined ? { staleMs: options.staleMs } : {}),
          ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
          jsonLogs: options.jsonLogs === true,
          announce: options.announce === true,
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
          face = await HttpFace.start({ ...access, repos: daemon.repos, owner: daemon.owner, staleMs: daemon.staleMs, log: daemon.log })
        } catch (error) {
          throw failWith(error)
        }
      }
      await daemon.start()
      await signal
      await face?.close()
      await daemon.close()
    })
  program
    .command('status')
    .description('list the runs known in the repo, their owners and deadlines')
    .option('--json', 'print JSON')
    .option('--stale-ms <MS>', `staleness used to judge owners, as the daemon's (default: ${DEFAULT_STALE_MS})`, numberFlag('--stale-ms', true))
    .action(async (options: { json?: boolean; staleMs?: number }, command: Command) => {
      const root = repoRoot(command, 'repo')
      let status
      try {
        status = await repoStatus(root, options.staleMs !== undefined ? { staleMs: options.staleMs } : {})
      } catch (error) {
        throw failWith(error, DAEMON_FLAGS)
      }
      out(options.json === true ? JSON.stringify(status, null, 2) : formatStatus(status))
    })
}
