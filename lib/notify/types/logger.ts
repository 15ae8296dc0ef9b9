/**
 * The `logger` notifier: one line on the standard output of the watcher's process, as Python
 * Aim's logger notifier writes its message as a log line. It is the default when a repo has no
 * notifier configured, so that a stall is never silent.
 * @module
 */
import type { Notifier, NotifierContext, NotifierEntry, NotifierType } from '../contract.js'
import { entryRenderer } from '../contract.js'
import { checkMessageArgument } from './arguments.js'

export const loggerType: NotifierType = {
  type: 'logger',
  aim: true,
  secretArguments: [],
  validate(args) {
    return checkMessageArgument(args, {})
  },
  create(entry: NotifierEntry, context: NotifierContext): Notifier {
    return {
      entry,
      render: entryRenderer(entry),
      async send(_event, rendered) {
        context.writeLine(rendered)
        return { kind: 'delivered' }
      },
    }
  },
}
