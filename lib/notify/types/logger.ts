/**
 * The `logger` notifier: one line on the standard output of the watcher's process, as Python
 * Aim's logger notifier writes its message as a log line. It is the default when a repo has no
 * notifier configured, so that a stall is never silent.
 * @module
 */
import type { Notifier, NotifierContext, NotifierEntry, NotifierType } from '../contract.js'
import { entryRenderer } from '../contract.js'
import { checkMessageArgument } from './arguments.js'
import { oneLine } from '../../text.js'

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
        // One line, always: a run's reason or name with a newline must not forge a line of the watcher's log.
        context.writeLine(oneLine(rendered))
        return { kind: 'delivered' }
      },
    }
  },
}
