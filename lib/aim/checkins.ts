/**
 * Aim's check-in file names: empty files under `<root>/.aim/check_ins/` whose name carries
 * everything (see AIM-FORMAT.md):
 *
 *     {run_hash}-{idx:016d}-{flag}-{unix_time:011.2f}-{expect_next_in:05d}
 *
 * {@link formatCheckinName} writes exactly what Python Aim writes; {@link parseCheckinName}
 * accepts exactly what Python Aim can write and returns `null` for anything else (it never
 * throws: a check-ins folder is outside input).
 * @module
 */
import { InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import { RUN_HASH_PATTERN, checkRunHash } from '../repo.js'

/** The flags Aim writes. A Node writer only ever writes `starting`, `check_in` and `finished`. */
export const CHECKIN_FLAGS = ['starting', 'check_in', 'finished', 'progress', 'new_logs'] as const

/** One of {@link CHECKIN_FLAGS}. */
export type CheckinFlag = (typeof CHECKIN_FLAGS)[number]

/** The flags Aim's watcher reads; `progress` (automatic heartbeat) and `new_logs` are ignored. */
export type WatchedCheckinFlag = 'starting' | 'check_in' | 'finished'

/** Whether a flag counts for Aim's watcher. */
export function isWatchedFlag(flag: CheckinFlag): flag is WatchedCheckinFlag {
  return flag === 'starting' || flag === 'check_in' || flag === 'finished'
}

/** The largest `expect_next_in` a name can carry (five digits). Longer promises are renewed. */
export const MAX_EXPECT_NEXT_IN = 99_999

/** The largest idx we accept: 16 digits, but only as many as a JavaScript number holds exactly. */
export const MAX_CHECKIN_IDX = Number.MAX_SAFE_INTEGER

/** One check-in, as its file name says. */
export interface Checkin {
  /** The run's hash. */
  hash: string
  /** The run's counter, shared by every flag, strictly increasing. */
  idx: number
  flag: CheckinFlag
  /** Wall-clock seconds when written. Informational only: no watcher trusts it. */
  time: number
  /** Whole seconds until the next check-in is due; 0 = no expiry. */
  expectNextIn: number
}

const FLAG_SET: ReadonlySet<string> = new Set(CHECKIN_FLAGS)
const IDX_PATTERN = /^\d{16}$/
// `{:011.2f}` of a non-negative time: at least 8 integer digits, always two decimals.
const TIME_PATTERN = /^\d{8,}\.\d{2}$/
// `{:05d}`: at least five digits; more only if a Python run promised more than 99999 s.
const EXPECT_PATTERN = /^\d{5,15}$/

/** Formats a check-in's name exactly as Aim does. Throws a coded error on any bad field. */
export function formatCheckinName(checkin: Checkin): string {
  const { hash, idx, flag, time, expectNextIn } = checkin
  checkRunHash(hash)
  if (!Number.isSafeInteger(idx) || idx < 0) {
    throw new OutOfRangeError(`Expected \`idx\` to be an integer from 0 to ${MAX_CHECKIN_IDX}, got ${describeValue(idx)}`)
  }
  if (typeof flag !== 'string' || !FLAG_SET.has(flag)) {
    throw new InvalidOptionError(`Expected \`flag\` to be one of ${CHECKIN_FLAGS.join(', ')}, got ${describeValue(flag)}`)
  }
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) {
    throw new OutOfRangeError(`Expected \`time\` to be a finite number of seconds, 0 or more, got ${describeValue(time)}`)
  }
  if (!Number.isInteger(expectNextIn) || expectNextIn < 0 || expectNextIn > MAX_EXPECT_NEXT_IN) {
    throw new OutOfRangeError(`Expected \`expectNextIn\` to be an integer from 0 to ${MAX_EXPECT_NEXT_IN}, got ${describeValue(expectNextIn)}`)
  }
  return `${hash}-${String(idx).padStart(16, '0')}-${flag}-${formatTime(time)}-${String(expectNextIn).padStart(5, '0')}`
}

/**
 * Python's `{:011.2f}`. `toFixed(2)` rounds an exact tie up, Python rounds it to even; a tie
 * is only possible when the fraction is exactly .125, .375, .625 or .875 (x·8 an odd integer),
 * so those are rounded here by hand and everything else is `toFixed`'s correct rounding.
 */
function formatTime(seconds: number): string {
  let text: string
  if (Number.isInteger(seconds * 8) && !Number.isInteger(seconds * 4)) {
    const floor = Math.floor(seconds * 100)
    const cents = floor % 2 === 0 ? floor : floor + 1
    text = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`
  } else {
    text = seconds.toFixed(2)
  }
  return text.padStart(11, '0')
}

/**
 * Reads a check-in's name: exactly five `-`-separated fields, a safe run hash, a 16-digit idx,
 * a known flag, Aim's time format and a whole number of seconds. Anything else (a temp file,
 * a hostile name, a name from a future format) is `null`; this never throws.
 */
export function parseCheckinName(name: string): Checkin | null {
  if (typeof name !== 'string') return null
  const d1 = name.indexOf('-')
  const d2 = name.indexOf('-', d1 + 1)
  const d3 = name.indexOf('-', d2 + 1)
  const d4 = name.indexOf('-', d3 + 1)
  if (d1 < 0 || d2 < 0 || d3 < 0 || d4 < 0 || name.indexOf('-', d4 + 1) >= 0) return null
  const hash = name.slice(0, d1)
  const idxText = name.slice(d1 + 1, d2)
  const flag = name.slice(d2 + 1, d3)
  const timeText = name.slice(d3 + 1, d4)
  const expectText = name.slice(d4 + 1)
  if (!RUN_HASH_PATTERN.test(hash) || !IDX_PATTERN.test(idxText) || !FLAG_SET.has(flag)) return null
  if (!TIME_PATTERN.test(timeText) || !EXPECT_PATTERN.test(expectText)) return null
  const idx = Number(idxText)
  if (idx > MAX_CHECKIN_IDX) return null
  return { hash, idx, flag: flag as CheckinFlag, time: Number(timeText), expectNextIn: Number(expectText) }
}
