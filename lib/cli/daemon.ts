/**
 * `aim-watcher start` and `aim-watcher status`.
 * @module
 */
import type { Command } from 'commander'

export function registerDaemonCommands(program: Command): void {
  program.command('start').description('watch the repo(s) and take over the runs of processes that died')
  program.command('status').description('list the runs known in the repo')
}
