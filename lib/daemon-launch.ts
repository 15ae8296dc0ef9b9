/**
 * `ensureDaemon()`: starts an `aim-watcher` daemon for a repo unless one already holds it.
 *
 * `watch()` calls it by default (its `daemon` option), so that a training process that is
 * killed (SIGKILL, out-of-memory killer) or frozen is still reported: the in-process watcher
 * dies with its process, the daemon does not. Where a service manager (systemd, see
 * `examples/aim-watcher.service`) runs the daemon, that one holds the repo and is simply used.
 * The daemon it starts outlives the caller, and exits by itself once it has had nothing to watch
 * for `exitWhenIdle` seconds (`start --exit-when-idle`); SIGTERM stops it cleanly at any time.
 *
 * It lives beside the facade, not in `daemon/`: it only spawns the daemon's program and reads
 * its lease, so that the module behind `watch()` loads none of the daemon's code.
 * @module
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AimStatusError, ErrorCodes, InvalidOptionError, describeValue } from './errors.js'
import { repoPaths, resolveRepoRoot } from './repo.js'
import { STATE_FILE_MODE } from './state/files.js'
import { openAppendReplacingSync } from './state/safe-fs.js'
import { inspectLease, DEFAULT_STALE_MS } from './state/lease.js'
import { daemonLeasePath, prepareStatusFolders, statusLayout } from './state/layout.js'

/** Options of {@link ensureDaemon}. */
export interface EnsureDaemonOptions {
  /** `--stale-ms` of the daemon, and the staleness used to judge a present one. Default 10 000. */
  staleMs?: number
  /** `--poll-ms` of the daemon. Default: the daemon's (1000). */
  pollMs?: number
  /** `--json-logs` for the daemon's log. Default false. */
  jsonLogs?: boolean
  /**
   * `--exit-when-idle`: the daemon exits once it has had nothing to watch (no live training
   * process, no run or notification outstanding) for this many seconds. Default: none (it runs
   * until stopped); `watch()` passes its `daemon.exitWhenIdle` (300 s unless given).
   */
  exitWhenIdle?: number
}

/** The daemon's log in the repo: `<root>/.aim/status/daemon.log` (rotated by the daemon itself, see `start --log-file`). */
export const DAEMON_LOG_NAME = 'daemon.log'

/** What {@link ensureDaemon} did. */
export interface EnsureDaemonResult {
  /** True when a daemon was started now; false when one already held the repo. */
  started: boolean
  /** The pid of the daemon started, or of the one holding the repo. */
  pid?: number
}

/** The compiled `aim-watcher` entry beside this module (`dist/cli/bin.js`). */
export function daemonBinPath(): string {
  const here = fileURLToPath(import.meta.url)
  // Run from source (tests), the daemon is still the compiled one, as the actor's worker is.
  return here.endsWith('.ts') ? fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url)) : fileURLToPath(new URL('./cli/bin.js', import.meta.url))
}

/**
 * Starts a detached `aim-watcher --repo <root> start` unless a live daemon holds the repo's
 * daemon lease. Its output is appended to `<root>/.aim/status/daemon.log`, never through a link
 * planted at that name, and rotated by the daemon; it is unref'd, so the caller's process may end at any time. Two
 * callers racing may both start one: the second finds the repo held, and (started with
 * `exitWhenIdle`) exits at once, else waits as a hot standby.
 */
export async function ensureDaemon(root: string, options: EnsureDaemonOptions = {}): Promise<EnsureDaemonResult> {
  if (typeof root !== 'string' || root === '') throw new InvalidOptionError(`Expected \`root\` to be a folder path, got ${describeValue(root)}`)
  if (options === null || typeof options !== 'object') throw new InvalidOptionError(`Expected options to be an object, got ${describeValue(options)}`)
  const resolved = resolveRepoRoot(root)
  const layout = statusLayout(repoPaths(resolved))
  const holder = await inspectLease(daemonLeasePath(layout), { staleMs: options.staleMs ?? DEFAULT_STALE_MS })
  if (!holder.orphaned && holder.holder !== null) return { started: false, pid: holder.holder.pid }
  const bin = daemonBinPath()
  // The package was not built (`npm run build` compiles the entry).
  if (!existsSync(bin)) throw new AimStatusError(ErrorCodes.INVALID_PATH, `The aim-watcher entry ${bin} does not exist: build the package (npm run build)`)
  prepareStatusFolders(layout)
  const args = [bin, '--repo', resolved, 'start']
  if (options.staleMs !== undefined) args.push('--stale-ms', String(options.staleMs))
  if (options.pollMs !== undefined) args.push('--poll-ms', String(options.pollMs))
  if (options.jsonLogs === true) args.push('--json-logs')
  if (options.exitWhenIdle !== undefined) args.push('--exit-when-idle', String(options.exitWhenIdle))
  // Never through a link planted at the name (it is set aside); the daemon rotates the file.
  const logPath = join(layout.status, DAEMON_LOG_NAME)
  args.push('--log-file', logPath)
  const { fd: log, setAsidePath } = openAppendReplacingSync(logPath, STATE_FILE_MODE)
  if (setAsidePath !== null) writeSync(log, `${new Date().toISOString()} WARN  log-set-aside file=${logPath} setAside=${setAsidePath} why="not a plain file with one link: never written through"\n`)
  try {
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], cwd: resolved })
    // A failure to start (no such file, no permission) rejects instead of crashing the caller.
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
    child.unref()
    return { started: true, pid: child.pid as number }
  } finally {
    closeSync(log)
  }
}
