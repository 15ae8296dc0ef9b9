/**
 * The exit marker: when a training process exits while some of its runs neither finished nor
 * failed, it leaves `status/exits/<ownerId>.json` with the exit code (or signal) and those
 * runs, so that a daemon never takes them for live, and reports them failed at once unless the
 * process reported them itself.
 *
 * It is written synchronously as the process dies (see lib/process-death.ts for what is seen:
 * a normal end, `process.exit(n)`, an uncaught exception or rejection, SIGTERM/SIGINT/SIGHUP
 * without a handler of the program's), after the process's own last words: the watcher thread
 * fails the runs, makes that durable and sends it while the main thread waits (bounded). The
 * runs whose failure was made durable so are listed in `reportedRuns`, and no daemon reports
 * them again (their snapshot says failed, and its outbox carries the notification). SIGKILL
 * cannot be caught: the daemon finds that owner's pid dead instead. It runs on the main thread,
 * which knows the run handles; the lease is held by the repo's actor thread.
 * @module
 */
import { rmSync } from 'node:fs'
import type { RepoPaths } from '../repo.js'
import { checkRunHash } from '../repo.js'
import { ErrorCodes, describeValue } from '../errors.js'
import { LAST_WORDS, onProcessDeath, type Death, type LastWords } from '../process-death.js'
import { setAside, unreadableError, writeFileAtomicSync } from './files.js'
import { exitMarkerPath, statusLayout } from './layout.js'
import { readStateFileSync } from './safe-fs.js'
import { parseOwnerInfo } from './owner.js'
import type { OwnerInfo } from './owner.js'

export { MARKED_SIGNALS } from '../process-death.js'

/** The `format` tag of an exit marker. */
export const EXIT_MARKER_FORMAT = 'aim-status/exit'

/** What an exiting process leaves behind. */
export interface ExitMarker {
  format: typeof EXIT_MARKER_FORMAT
  version: 1
  owner: OwnerInfo
  /** When the process exited (epoch ms, wall clock). */
  exitedAt: number
  /** The exit code; null when it was ended by a signal. */
  exitCode: number | null
  /** The signal that ended it, or null. */
  signal: string | null
  /** The uncaught exception that ended it, if any: `Name: message`, at most 500 characters. */
  error?: string
  /** The runs that had not finished nor failed. */
  unfinishedRuns: string[]
  /**
   * Of those, the runs whose failure the process itself made durable before it went (its
   * snapshot says failed, its outbox holds the notification): never reported again. Absent in
   * markers of older versions: none.
   */
  reportedRuns?: string[]
}

/** The reason given to a run whose process exited without finishing it: `exited with code 1 (Error: loss is NaN)`, `killed by SIGTERM`. */
export function exitReason(exit: Pick<ExitMarker, 'exitCode' | 'signal' | 'error'>): string {
  const how = exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.exitCode ?? 'unknown'}`
  return exit.error !== undefined ? `${how} (${exit.error})` : how
}

/**
 * Sends a dying process's last words: fails `runs` with `reason` on the watcher thread and
 * returns the word to wait on, or null when nothing can be sent.
 */
export type LastWordsSender = (runs: string[], reason: string) => LastWords | null

/**
 * Records an exit marker when the process exits with unfinished runs, after letting
 * `lastWords` report them. `unfinishedRuns` is called at exit and must be synchronous and
 * cheap. Returns a function that removes the hooks.
 */
export function installExitMarker(paths: Pick<RepoPaths, 'status'>, owner: OwnerInfo, unfinishedRuns: () => string[], mayAct: () => boolean = () => true, lastWords?: LastWordsSender): () => void {
  const path = exitMarkerPath(statusLayout(paths), owner.id)
  let runs: string[] = []

  const begin = (death: Death): LastWords | null => {
    try {
      runs = unfinishedRuns().filter((hash) => typeof hash === 'string')
    } catch {
      runs = []
    }
    if (runs.length === 0 || lastWords === undefined) return null
    return lastWords(runs, exitReason(death))
  }

  const end = (death: Death, state: number): void => {
    if (runs.length === 0) return
    // An owner whose runs were adopted (it was frozen) speaks for them no more.
    try {
      if (!mayAct()) return
    } catch {
      return
    }
    const reported = state === LAST_WORDS.durable || state === LAST_WORDS.answered
    const marker: ExitMarker = {
      format: EXIT_MARKER_FORMAT,
      version: 1,
      owner,
      exitedAt: Date.now(),
      exitCode: death.exitCode,
      signal: death.signal,
      ...(death.error !== undefined ? { error: death.error } : {}),
      unfinishedRuns: runs,
      ...(reported ? { reportedRuns: runs } : {}),
    }
    try {
      writeFileAtomicSync(path, JSON.stringify(marker))
    } catch (error) {
      // The process is exiting: say why the marker is missing, never throw from here.
      process.stderr.write(`@aim/status: could not write the exit marker ${path}: ${(error as Error).message}\n`)
    }
  }

  return onProcessDeath({ begin, end })
}

function parseExitMarker(value: unknown): ExitMarker {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the top level is not an object')
  const m = value as Record<string, unknown>
  if (m['format'] !== EXIT_MARKER_FORMAT || m['version'] !== 1) throw new Error(`format/version is ${describeValue(m['format'])}/${describeValue(m['version'])}`)
  const exitCode = m['exitCode']
  const signal = m['signal']
  if (exitCode !== null && !Number.isSafeInteger(exitCode)) throw new Error(`exitCode is ${describeValue(exitCode)}`)
  if (signal !== null && (typeof signal !== 'string' || !/^SIG[A-Z0-9]{1,10}$/.test(signal))) throw new Error(`signal is ${describeValue(signal)}`)
  if (typeof m['exitedAt'] !== 'number' || !Number.isFinite(m['exitedAt'])) throw new Error(`exitedAt is ${describeValue(m['exitedAt'])}`)
  if (m['error'] !== undefined && (typeof m['error'] !== 'string' || m['error'].length > 500)) throw new Error(`error is ${describeValue(m['error'])}`)
  if (!Array.isArray(m['unfinishedRuns'])) throw new Error(`unfinishedRuns is ${describeValue(m['unfinishedRuns'])}`)
  if (m['reportedRuns'] !== undefined && !Array.isArray(m['reportedRuns'])) throw new Error(`reportedRuns is ${describeValue(m['reportedRuns'])}`)
  const marker: ExitMarker = {
    format: EXIT_MARKER_FORMAT,
    version: 1,
    owner: parseOwnerInfo(m['owner'], 'owner'),
    exitedAt: m['exitedAt'],
    exitCode: exitCode as number | null,
    signal: signal as string | null,
    unfinishedRuns: m['unfinishedRuns'].map((hash: unknown, i: number) => checkRunHash(hash, `unfinishedRuns[${i}]`)),
  }
  if (m['error'] !== undefined) marker.error = m['error'] as string
  if (Array.isArray(m['reportedRuns'])) marker.reportedRuns = m['reportedRuns'].map((hash: unknown, i: number) => checkRunHash(hash, `reportedRuns[${i}]`))
  return marker
}

/**
 * Reads an owner's exit marker: null when there is none. An invalid one is set aside and
 * rejects with `AIM_STATUS_CORRUPT_FILE`; an unreadable folder with `AIM_STATUS_INVALID_PATH`.
 */
export async function readExitMarker(paths: Pick<RepoPaths, 'status'>, ownerId: string): Promise<ExitMarker | null> {
  const path = exitMarkerPath(statusLayout(paths), ownerId)
  let text: string | null
  try {
    // Never blocks on a FIFO, never follows a link, never reads more than a marker can hold.
    text = readStateFileSync(path)
  } catch (error) {
    if ((error as { code?: unknown }).code === ErrorCodes.UNSAFE_FILE) throw await setAside(path, (error as Error).message)
    throw unreadableError(path, error)
  }
  if (text === null) return null
  try {
    const marker = parseExitMarker(JSON.parse(text))
    if (marker.owner.id !== ownerId) throw new Error(`owner.id ${marker.owner.id} is not the file's ${ownerId}`)
    return marker
  } catch (error) {
    throw await setAside(path, (error as Error).message)
  }
}

/** Removes an owner's exit marker once it has been acted on. */
export function removeExitMarker(paths: Pick<RepoPaths, 'status'>, ownerId: string): void {
  rmSync(exitMarkerPath(statusLayout(paths), ownerId), { force: true })
}
