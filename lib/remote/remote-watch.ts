/**
 * `watch()` over a session: a run reported to a daemon instead of into a repo folder, either a
 * daemon given by URL (`server`, `AIM_STATUS_SERVER`) or, for a run of many ranks on one
 * machine without a server, the repo's own daemon over its Unix socket (started if needed), so
 * that one code path serves both.
 * @module
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ensureDaemon } from '../daemon-launch.js'
import { AimStatusError, ErrorCodes, InvalidOptionError } from '../errors.js'
import { defaultDaemonChoice, type ResolvedRunOptions } from '../options.js'
import { repoPaths, resolveRepoRoot } from '../repo.js'
import type { Run } from '../run.js'
import { SESSION_SOCKET_NAME } from '../session/protocol.js'
import { RemoteWatcher } from './remote-watcher.js'
import type { SessionChoice } from './session-options.js'

/** How long a ranked run without a server waits for the repo daemon's session socket to appear, ms. */
export const SESSION_SOCKET_WAIT_MS = 15_000

/** The repo's session socket: `<root>/.aim/status/session.sock`. */
export function sessionSocketPath(root: string): string {
  return join(repoPaths(root).status, SESSION_SOCKET_NAME)
}

async function waitForSocket(path: string, timeoutMs: number): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs
  while (!existsSync(path)) {
    if (Date.now() > giveUpAt) throw new AimStatusError(ErrorCodes.SERVER_UNREACHABLE, `The repo's daemon did not open its session socket ${path} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Watches a run in a daemon (see the module comment); the options are checked already. */
export async function watchOverSession(resolved: ResolvedRunOptions, choice: SessionChoice): Promise<Run> {
  return (await openOverSession(resolved, choice)).run
}

/** As {@link watchOverSession}, with the watcher the run is on (a wrapper flushes and closes it). */
export async function openOverSession(resolved: ResolvedRunOptions, choice: SessionChoice): Promise<{ run: Run; watcher: RemoteWatcher }> {
  if (resolved.notifiers.length > 0) throw new InvalidOptionError("`notifiers` cannot be given to a run reported to a daemon: the daemon's repo configuration decides (aim-watcher notifiers add)")
  let servers = choice.servers
  let repo = resolved.repo
  if (servers === undefined) {
    // A run of many ranks on this machine: the repo's daemon holds it.
    const root = resolveRepoRoot(resolved.repo)
    const daemon = resolved.daemon ?? defaultDaemonChoice()
    if (daemon !== false) await ensureDaemon(root, { exitWhenIdle: daemon.exitWhenIdle })
    const socket = sessionSocketPath(root)
    await waitForSocket(socket, SESSION_SOCKET_WAIT_MS)
    servers = [`unix:${socket}`]
    repo = root
  }
  const watcher = await RemoteWatcher.open({ servers, token: choice.token, repo })
  const run = await watcher.watch({
    hash: choice.derivedHash ?? resolved.hash,
    name: resolved.name,
    experiment: resolved.experiment,
    grace: resolved.grace,
    ranked: choice.ranked,
  })
  return { run, watcher }
}
