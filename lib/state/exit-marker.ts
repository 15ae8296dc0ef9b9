/**
 * The exit marker: when a training process exits while some of its runs neither finished nor
 * failed, it leaves `status/exits/<ownerId>.json` with the exit code (or signal) and those
 * runs, so that the daemon reports them failed at once instead of after their deadline.
 *
 * It is written synchronously from `process.on('exit')` (nothing asynchronous runs there),
 * which covers a normal end, `process.exit(n)` and an uncaught exception (exit code 1, the
 * error recorded by `uncaughtExceptionMonitor`). SIGTERM, SIGINT and SIGHUP end a process
 * without an `exit` event; where the program has no handler of its own for them, the marker
 * records the signal and the signal is raised again with its default action, so the exit
 * status stays "killed by signal". SIGKILL cannot be caught: the daemon finds that owner's pid
 * dead instead. It runs on the main thread, which knows the run handles; the lease is held by
 * the repo's actor thread.
 * @module
 */
import { rmSync } from 'node:fs'
import type { RepoPaths } from '../repo.js'
import { checkRunHash } from '../repo.js'
import { ErrorCodes, describeValue } from '../errors.js'
import { setAside, unreadableError, writeFileAtomicSync } from './files.js'
import { exitMarkerPath, statusLayout } from './layout.js'
import { readStateFileSync } from './safe-fs.js'
import { parseOwnerInfo } from './owner.js'
import type { OwnerInfo } from './owner.js'

/** The `format` tag of an exit marker. */
export const EXIT_MARKER_FORMAT = 'aim-status/exit'

/** The signals recorded when nobody else handles them. */
export const MARKED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const

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
}

// signal-exit listens to the same signals and re-raises them only when it counts itself as the
// sole listener. proper-lockfile loads v3 (count on `process.__signal_exit_emitter__`); test
// runners and other tools load v4 (count on `globalThis[Symbol.for('signal-exit emitter')]`).
// Those listeners are "polite": they are not the program handling the signal.
function politeSignalListeners(): number {
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__
  const v4 = (globalThis as unknown as Record<symbol, { count?: unknown } | undefined>)[Symbol.for('signal-exit emitter')]
  let count = 0
  for (const emitter of [v3, v4]) {
    if (typeof emitter?.count === 'number') count += emitter.count
  }
  return count
}

/**
 * Records an exit marker when the process exits with unfinished runs. `unfinishedRuns` is
 * called at exit and must be synchronous and cheap. Returns a function that removes the hooks.
 */
export function installExitMarker(paths: Pick<RepoPaths, 'status'>, owner: OwnerInfo, unfinishedRuns: () => string[], mayAct: () => boolean = () => true): () => void {
  const path = exitMarkerPath(statusLayout(paths), owner.id)
  let uncaught: string | undefined
  let written = false

  const record = (exitCode: number | null, signal: string | null): void => {
    if (written) return
    written = true
    let runs: string[]
    try {
      runs = unfinishedRuns().filter((hash) => typeof hash === 'string')
    } catch {
      runs = []
    }
    if (runs.length === 0) return
    // An owner whose runs were adopted (it was frozen) speaks for them no more.
    try {
      if (!mayAct()) return
    } catch {
      return
    }
    const marker: ExitMarker = {
      format: EXIT_MARKER_FORMAT,
      version: 1,
      owner,
      exitedAt: Date.now(),
      exitCode,
      signal,
      ...(uncaught !== undefined ? { error: uncaught } : {}),
      unfinishedRuns: runs,
    }
    try {
      writeFileAtomicSync(path, JSON.stringify(marker))
    } catch (error) {
      // The process is exiting: say why the marker is missing, never throw from here.
      process.stderr.write(`@aim/status: could not write the exit marker ${path}: ${(error as Error).message}\n`)
    }
  }

  const onExit = (code: number): void => record(code, null)
  const onUncaught = (error: unknown): void => {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    uncaught = text.length > 500 ? `${text.slice(0, 497)}...` : text
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    // Someone else handles it: the program decides whether to exit, and `exit` records it then.
    if (process.listenerCount(signal) - 1 - politeSignalListeners() > 0) return
    record(null, signal)
    uninstall()
    // With our listener gone, the default action (or signal-exit's cleanup, then the default
    // action) ends the process by this signal.
    process.kill(process.pid, signal)
  }

  process.on('exit', onExit)
  process.on('uncaughtExceptionMonitor', onUncaught)
  for (const signal of MARKED_SIGNALS) process.on(signal, onSignal)

  function uninstall(): void {
    process.off('exit', onExit)
    process.off('uncaughtExceptionMonitor', onUncaught)
    for (const signal of MARKED_SIGNALS) process.off(signal, onSignal)
  }
  return uninstall
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
