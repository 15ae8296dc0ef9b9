/**
 * Every error this package throws carries a stable `code` (`AIM_STATUS_…`): match on the code,
 * never on the message. Errors cross a thread as plain `{ name, code, message, stack }`, because
 * a class instance sent through `postMessage` arrives as a bare `Error` without its code.
 * @module
 */

/** The stable error codes. */
export const ErrorCodes = {
  /** An option or argument has the wrong type, or is not a known option. */
  INVALID_OPTION: 'AIM_STATUS_INVALID_OPTION',
  /** A number is out of its allowed range (negative, NaN, infinite, too large). */
  OUT_OF_RANGE: 'AIM_STATUS_OUT_OF_RANGE',
  /** A run hash, notifier id or other identifier has characters or a length that is not allowed. */
  INVALID_ID: 'AIM_STATUS_INVALID_ID',
  /** A report arrived for a run that has already finished or failed. */
  RUN_ENDED: 'AIM_STATUS_RUN_ENDED',
  /** The same run hash is already open in this process. */
  RUN_ALREADY_OPEN: 'AIM_STATUS_RUN_ALREADY_OPEN',
  /** The watcher or run was closed. */
  CLOSED: 'AIM_STATUS_CLOSED',
  /** The repo's actor thread exited unexpectedly. */
  WORKER_EXITED: 'AIM_STATUS_WORKER_EXITED',
  /** A path points outside the repo, or the repo folder cannot be used. */
  INVALID_PATH: 'AIM_STATUS_INVALID_PATH',
  /** A notifier type is unknown, or its configuration is invalid. */
  INVALID_NOTIFIER: 'AIM_STATUS_INVALID_NOTIFIER',
  /** No notifier with this id. */
  UNKNOWN_NOTIFIER: 'AIM_STATUS_UNKNOWN_NOTIFIER',
  /** A message template is malformed or names an unknown variable. */
  INVALID_TEMPLATE: 'AIM_STATUS_INVALID_TEMPLATE',
  /** A configuration or state file could not be parsed. */
  CORRUPT_FILE: 'AIM_STATUS_CORRUPT_FILE',
  /** Another owner holds the lock. */
  LOCKED: 'AIM_STATUS_LOCKED',
  /** This owner lost its lease (a newer generation adopted its runs). */
  LEASE_LOST: 'AIM_STATUS_LEASE_LOST',
} as const

/** One of {@link ErrorCodes}' values. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

/** The base of this package's own errors. */
export class AimStatusError extends Error {
  override readonly name: string = 'AimStatusError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** An option of the wrong type, or an unknown option. */
export class InvalidOptionError extends TypeError {
  override readonly name = 'InvalidOptionError'
  readonly code = ErrorCodes.INVALID_OPTION
}

/** A number outside its allowed range. */
export class OutOfRangeError extends RangeError {
  override readonly name = 'OutOfRangeError'
  readonly code = ErrorCodes.OUT_OF_RANGE
}

/** An identifier (run hash, notifier id) with characters or a length that is not allowed. */
export class InvalidIdError extends TypeError {
  override readonly name = 'InvalidIdError'
  readonly code = ErrorCodes.INVALID_ID
}

/** The plain form of an error, safe to send through `postMessage`. */
export interface PlainError {
  name: string
  code?: string
  message: string
  stack?: string
}

/** Turns any thrown value into its plain form. */
export function toPlainError(error: unknown): PlainError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(error.stack !== undefined ? { stack: error.stack } : {}),
    }
  }
  return { name: 'Error', message: String(error) }
}

/** Rebuilds a coded error from its plain form, choosing the class by `code`. */
export function fromPlainError(plain: PlainError): Error {
  let error: Error
  switch (plain.code) {
    case ErrorCodes.INVALID_OPTION:
      error = new InvalidOptionError(plain.message)
      break
    case ErrorCodes.OUT_OF_RANGE:
      error = new OutOfRangeError(plain.message)
      break
    case ErrorCodes.INVALID_ID:
      error = new InvalidIdError(plain.message)
      break
    default:
      if (plain.code !== undefined && plain.code.startsWith('AIM_STATUS_')) {
        error = new AimStatusError(plain.code as ErrorCode, plain.message)
      } else {
        error = new Error(plain.message)
        if (plain.code !== undefined) (error as { code?: string }).code = plain.code
      }
  }
  if (plain.stack !== undefined) error.stack = plain.stack
  return error
}

/** Describes a received value for an error message, without dumping large or secret objects. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return `an array of ${value.length}`
  return `a value of type ${typeof value}`
}
