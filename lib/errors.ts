/**
 * Every error this package throws carries a stable `code` (`AIM_STATUS_…`): match on the code,
 * never on the message. Errors cross a thread as plain `{ name, code, message, stack, details }`,
 * because a class instance sent through `postMessage` arrives as a bare `Error` without its code;
 * on the other side one table ({@link ERROR_CLASSES}) turns the code back into its class.
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
  /** A message between threads of an unknown kind (a thread of another version of the package). */
  UNKNOWN_MESSAGE: 'AIM_STATUS_UNKNOWN_MESSAGE',
  /** A folder or file under `.aim/` cannot be written: permission denied, or a read-only file system. The error's `path` names it. */
  STATE_UNWRITABLE: 'AIM_STATUS_STATE_UNWRITABLE',
  /** The file system of the repo's state is full (or over quota). The error's `path` names what could not be written. */
  STATE_FULL: 'AIM_STATUS_STATE_FULL',
  /** A folder under `.aim/` (`status/`, `owners/`, `check_ins/`, …) exists but is not a folder. The error's `path` names it. */
  STATE_NOT_A_FOLDER: 'AIM_STATUS_STATE_NOT_A_FOLDER',
  /** A folder under `.aim/` is a link that leads outside the repo: refused. The error's `path` names it. */
  STATE_OUTSIDE_REPO: 'AIM_STATUS_STATE_OUTSIDE_REPO',
  /**
   * A file under `.aim/` is not a plain file this package could have written (a symbolic link, a
   * FIFO, a device, a folder, a file with other hard links) or is larger than its cap: it is never
   * read, written or followed. The error's `path` names it.
   */
  UNSAFE_FILE: 'AIM_STATUS_UNSAFE_FILE',
  /** HTTP: no such route, run or repo. */
  NOT_FOUND: 'AIM_STATUS_NOT_FOUND',
  /** HTTP: the route exists, not with this method. */
  METHOD_NOT_ALLOWED: 'AIM_STATUS_METHOD_NOT_ALLOWED',
  /** HTTP: a request body that is not valid JSON, or a malformed request. */
  BAD_REQUEST: 'AIM_STATUS_BAD_REQUEST',
  /** HTTP: a request body larger than the server accepts. */
  PAYLOAD_TOO_LARGE: 'AIM_STATUS_PAYLOAD_TOO_LARGE',
  /** HTTP: a mutation whose body is not `application/json`. */
  UNSUPPORTED_MEDIA_TYPE: 'AIM_STATUS_UNSUPPORTED_MEDIA_TYPE',
  /** HTTP: a bearer token is required and was missing or wrong. */
  UNAUTHORIZED: 'AIM_STATUS_UNAUTHORIZED',
  /** HTTP: refused whoever asks: a cross-site request, a missing CSRF token, a foreign `Host`. */
  FORBIDDEN: 'AIM_STATUS_FORBIDDEN',
  /** HTTP: the server is at one of its limits (live streams); try again later. */
  BUSY: 'AIM_STATUS_BUSY',
  /** HTTP: an unexpected error of the server (details in the daemon's log). */
  INTERNAL: 'AIM_STATUS_INTERNAL',
  /** The HTTP face would listen beyond loopback without a token file. */
  TOKEN_REQUIRED: 'AIM_STATUS_TOKEN_REQUIRED',
  /** A session reached a standby daemon (another daemon sends for the repo): the client tries its next server. */
  STANDBY: 'AIM_STATUS_STANDBY',
  /** No server given to `watch()` (or `AIM_STATUS_SERVER`) could be reached within the connect timeout. */
  SERVER_UNREACHABLE: 'AIM_STATUS_SERVER_UNREACHABLE',
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

/**
 * A state file that could not be parsed or validated. When it was one of the status folder's
 * own files, it has been renamed aside (`setAsidePath`) so that it is never read again.
 */
export class CorruptFileError extends AimStatusError {
  override readonly name = 'CorruptFileError'
  /** The file, when known. */
  readonly path: string | undefined
  /** Where the file was set aside; null when it could not be; undefined when it was not tried. */
  readonly setAsidePath: string | null | undefined
  constructor(message: string, options: { path?: string; setAsidePath?: string | null; cause?: unknown } = {}) {
    super(ErrorCodes.CORRUPT_FILE, message, 'cause' in options ? { cause: options.cause } : undefined)
    this.path = options.path
    this.setAsidePath = options.setAsidePath
  }
}

/** A class of this module whose constructor takes only the message (its code is fixed). */
type FixedCodeErrorClass = new (message: string) => Error & { readonly code: ErrorCode }

/**
 * Which class carries each code: the one table an error is rebuilt from when it comes back from
 * a thread. A code without a class of its own is an {@link AimStatusError}.
 */
export const ERROR_CLASSES: { readonly [C in ErrorCode]: typeof AimStatusError | FixedCodeErrorClass } = {
  [ErrorCodes.INVALID_OPTION]: InvalidOptionError,
  [ErrorCodes.OUT_OF_RANGE]: OutOfRangeError,
  [ErrorCodes.INVALID_ID]: InvalidIdError,
  [ErrorCodes.RUN_ENDED]: AimStatusError,
  [ErrorCodes.RUN_ALREADY_OPEN]: AimStatusError,
  [ErrorCodes.CLOSED]: AimStatusError,
  [ErrorCodes.WORKER_EXITED]: AimStatusError,
  [ErrorCodes.INVALID_PATH]: AimStatusError,
  [ErrorCodes.INVALID_NOTIFIER]: AimStatusError,
  [ErrorCodes.UNKNOWN_NOTIFIER]: AimStatusError,
  [ErrorCodes.INVALID_TEMPLATE]: AimStatusError,
  [ErrorCodes.CORRUPT_FILE]: CorruptFileError,
  [ErrorCodes.LOCKED]: AimStatusError,
  [ErrorCodes.LEASE_LOST]: AimStatusError,
  [ErrorCodes.UNKNOWN_MESSAGE]: AimStatusError,
  [ErrorCodes.STATE_UNWRITABLE]: AimStatusError,
  [ErrorCodes.STATE_FULL]: AimStatusError,
  [ErrorCodes.STATE_NOT_A_FOLDER]: AimStatusError,
  [ErrorCodes.STATE_OUTSIDE_REPO]: AimStatusError,
  [ErrorCodes.UNSAFE_FILE]: AimStatusError,
  [ErrorCodes.NOT_FOUND]: AimStatusError,
  [ErrorCodes.METHOD_NOT_ALLOWED]: AimStatusError,
  [ErrorCodes.BAD_REQUEST]: AimStatusError,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: AimStatusError,
  [ErrorCodes.UNSUPPORTED_MEDIA_TYPE]: AimStatusError,
  [ErrorCodes.UNAUTHORIZED]: AimStatusError,
  [ErrorCodes.FORBIDDEN]: AimStatusError,
  [ErrorCodes.BUSY]: AimStatusError,
  [ErrorCodes.INTERNAL]: AimStatusError,
  [ErrorCodes.TOKEN_REQUIRED]: AimStatusError,
  [ErrorCodes.STANDBY]: AimStatusError,
  [ErrorCodes.SERVER_UNREACHABLE]: AimStatusError,
}

/** An error of the class {@link ERROR_CLASSES} gives for `code`. */
export function createError(code: ErrorCode, message: string): Error & { readonly code: ErrorCode } {
  const Class = ERROR_CLASSES[code]
  return Class === AimStatusError ? new AimStatusError(code, message) : new (Class as FixedCodeErrorClass)(message)
}

const isErrorCode = (code: string | undefined): code is ErrorCode => code !== undefined && Object.hasOwn(ERROR_CLASSES, code)

/** The plain form of an error, safe to send through `postMessage`. */
export interface PlainError {
  name: string
  code?: string
  message: string
  stack?: string
  /** The error's other own fields that are plain values (a CorruptFileError's `path`, say). */
  details?: Record<string, string | number | boolean | null>
}

const OWN_FIELDS = new Set(['name', 'code', 'message', 'stack', 'cause'])

/** Turns any thrown value into its plain form. */
export function toPlainError(error: unknown): PlainError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    const details: Record<string, string | number | boolean | null> = {}
    for (const [field, value] of Object.entries(error)) {
      if (OWN_FIELDS.has(field)) continue
      if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') details[field] = value
    }
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(error.stack !== undefined ? { stack: error.stack } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    }
  }
  return { name: 'Error', message: String(error) }
}

/**
 * Rebuilds an error from its plain form: a known code comes back as its class from
 * {@link ERROR_CLASSES}, with its code, message, stack and details; an unknown `AIM_STATUS_`
 * code (a newer version's) as an {@link AimStatusError}; anything else as an `Error`.
 */
export function fromPlainError(plain: PlainError): Error {
  let error: Error
  if (isErrorCode(plain.code)) {
    error = createError(plain.code, plain.message)
  } else if (plain.code?.startsWith('AIM_STATUS_')) {
    error = new AimStatusError(plain.code as ErrorCode, plain.message)
  } else {
    error = new Error(plain.message)
    if (plain.code !== undefined) (error as { code?: string }).code = plain.code
  }
  if (plain.details !== undefined) Object.assign(error, plain.details)
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
