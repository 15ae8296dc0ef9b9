/**
 * `watch()`: the one call a training script needs. The module behind it loads only main-thread
 * code (the run handle, the Watcher, the actor's host); nothing of the daemon.
 * @module
 */
import { joinTarget, joinWrapperRun } from './join.js'
import { resolveWatchOptions, type WatchOptions } from './options.js'
import type { Run } from './run.js'
import { watchOverSession } from './remote/remote-watch.js'
import { resolveSessionChoice } from './remote/session-options.js'
import { Watcher } from './watcher.js'

/**
 * Starts watching a run: its repo's watcher thread is started if needed. Options are checked
 * here; a mistake rejects with a coded error naming the option.
 *
 * ```ts
 * const run = await watch({ repo: './runs', grace: 30 })
 * for (const batch of data) { step(batch); run.reportProgress(3) }
 * await run.reportSuccessfulFinish()
 * ```
 *
 * Inside a command run by `aim-watcher run`, it joins the wrapper's run instead (see the
 * `join` option). With a `server` (or `AIM_STATUS_SERVER`), the run is reported to that daemon
 * and no repo folder is touched; a run of many ranks (`rank`, `worldSize`, or a launcher's
 * environment) is reported to a daemon too, the repo's own over its Unix socket without a server.
 */
export async function watch(options: WatchOptions = {}): Promise<Run> {
  const target = joinTarget(options)
  if (target !== undefined) {
    // Checked as for a run of its own, so that a mistake shows inside and outside a wrapper alike.
    resolveWatchOptions(options)
    const joined = await joinWrapperRun(target)
    if (joined !== undefined) return joined
  }
  const resolved = resolveWatchOptions(options)
  // A server (given or from AIM_STATUS_SERVER), or a run of many ranks: the run lives in a daemon.
  const choice = resolveSessionChoice(options)
  if (choice.servers !== undefined || choice.ranked !== undefined) return watchOverSession(resolved, choice)
  const watcher = await Watcher.open({ ...(options?.repo !== undefined ? { repo: options.repo } : {}) })
  // The remaining options, `daemon` included, are checked and applied by the watcher.
  return watcher.watch(options)
}
