/**
 * The daemon's log: one line per notification accepted for sending, per delivery outcome and
 * per takeover step, on a stream (stdout by default). Human-readable by default; JSON lines with
 * `--json-logs` (`{"time","level","event","repo","hash","reason",...}`), for log shippers.
 *
 * Levels: `debug` < `info` < `warn` < `error`; records below the log's level are dropped before
 * anything is formatted. What is per run but sends nothing (a Python run seen, one already
 * notified, one a Node owner watches) and each scan's counts are `debug`: at 10k Python runs
 * they would be 10k lines (2 MB) at every start.
 *
 * Values come from files other processes wrote (reasons, names, errors): control characters are
 * escaped so one record is always one line, every configured secret is scrubbed (before a long
 * value is cut, so a cut cannot leave half a token), and long values are cut.
 * @module
 */
import { oneLine } from '../text.js'
import { scrubAndCut } from '../notify/redact.js'

/** How bad a record is, from the least. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Default {@link LogOptions.level}. */
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'

/** Whether a value names a level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)
}

/** The fields of one record, besides time, level and event. */
export type LogFields = Record<string, string | number | boolean | null | undefined>

/** Where the daemon's records go. */
export interface DaemonLog {
  /** Whether records of this level are written: lets a caller skip gathering their fields. */
  enabled(level: LogLevel): boolean
  debug(event: string, fields?: LogFields): void
  info(event: string, fields?: LogFields): void
  warn(event: string, fields?: LogFields): void
  error(event: string, fields?: LogFields): void
}

/** Options of {@link createLog}. */
export interface LogOptions {
  /** JSON lines instead of human-readable lines. Default false. */
  json?: boolean
  /** The least level written. Default {@link DEFAULT_LOG_LEVEL} (`info`). */
  level?: LogLevel
  /** Receives each line, without its newline. Default: written to stdout. */
  write?: (line: string) => void
  /** The time stamp. Default: the wall clock (logs are read by people, next to other logs). */
  now?: () => number
}

const MAX_VALUE = 1000
const RESERVED = new Set(['time', 'level', 'event'])

function clean(value: string): string {
  // Escaped onto one line, then secrets scrubbed before the value is cut to its length.
  return scrubAndCut(oneLine(value), MAX_VALUE)
}

function human(value: string | number | boolean | null): string {
  const text = clean(String(value))
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)
}

/** Creates a log writing one line per record. */
export function createLog(options: LogOptions = {}): DaemonLog {
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const now = options.now ?? Date.now
  const least = LOG_LEVELS.indexOf(options.level ?? DEFAULT_LOG_LEVEL)
  const enabled = (level: LogLevel): boolean => LOG_LEVELS.indexOf(level) >= least
  const record = (level: LogLevel, event: string, fields: LogFields = {}): void => {
    if (!enabled(level)) return
    const time = new Date(now()).toISOString()
    // time, level and event are the record's own: a field of the same name cannot replace them.
    const present = Object.entries(fields).filter((entry): entry is [string, string | number | boolean | null] => entry[1] !== undefined && !RESERVED.has(entry[0]))
    if (options.json === true) {
      const out: Record<string, unknown> = { time, level, event }
      for (const [key, value] of present) out[key] = typeof value === 'string' ? clean(value) : value
      write(JSON.stringify(out))
      return
    }
    const parts = [time, level.toUpperCase().padEnd(5), event]
    for (const [key, value] of present) parts.push(`${key}=${human(value)}`)
    write(parts.join(' '))
  }
  return {
    enabled,
    debug: (event, fields) => record('debug', event, fields),
    info: (event, fields) => record('info', event, fields),
    warn: (event, fields) => record('warn', event, fields),
    error: (event, fields) => record('error', event, fields),
  }
}
