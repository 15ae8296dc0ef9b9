/**
 * `aim-watcher notifiers …`: manage the notifiers of a repo.
 * @module
 */
import type { Command } from 'commander'

export function registerNotifierCommands(program: Command): void {
  program.command('notifiers').description('manage the notifiers of a repo (add, list, enable, disable, remove, test)')
}
