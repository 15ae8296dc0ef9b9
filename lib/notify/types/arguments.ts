/**
 * Argument checks shared by the notifier types.
 * @module
 */
import { AimStatusError, ErrorCodes } from '../../errors.js'
import { compileTemplate } from '../template.js'

/** A coded error about one notifier argument. */
export function invalidArgument(type: string, name: string, why: string): AimStatusError {
  return new AimStatusError(ErrorCodes.INVALID_NOTIFIER, `${type} notifier: argument "${name}" ${why}`)
}

/**
 * Checks the optional Aim `message` argument (a template) and copies the other, already
 * checked, arguments; unknown arguments are kept as they are, as Aim keeps them.
 */
export function checkMessageArgument(args: Record<string, unknown>, checked: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...args, ...checked }
  if (args['message'] !== undefined) {
    if (typeof args['message'] !== 'string') throw invalidArgument('notifier', 'message', 'must be a string')
    compileTemplate(args['message'])
  }
  return out
}
