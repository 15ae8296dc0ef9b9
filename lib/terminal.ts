/**
 * The terminal a training process was started from: where the person who started it is most
 * likely looking. The process records it (its snapshot's `extra.terminal`); a daemon that later
 * finds the process dead, with no notifier configured, writes one line there, so that a
 * SIGKILL or an out-of-memory kill is seen even with zero configuration.
 *
 * Only a terminal of the daemon's own user is written to: the path must be a terminal device
 * (`/dev/pts/N`, `/dev/ttyN`), a character device when opened, and owned by the same uid. A
 * terminal that was closed meanwhile (or handed to somebody else) is left alone.
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, writeSync } from 'node:fs'
import { isatty } from 'node:tty'

const TERMINAL_PATH = /^\/dev\/(pts\/\d{1,6}|tty[A-Za-z0-9]{0,8})$/

/** Whether a path names a terminal device, as this module accepts them. */
export function isTerminalPath(path: unknown): path is string {
  return typeof path === 'string' && TERMINAL_PATH.test(path)
}

/**
 * The terminal this process writes to (its standard error, else output, else input), or
 * undefined when none of them is a terminal or it cannot be named (not Linux).
 */
export function controllingTerminal(): string | undefined {
  for (const fd of [2, 1, 0]) {
    if (!isatty(fd)) continue
    try {
      const path = readlinkSync(`/proc/self/fd/${fd}`)
      if (isTerminalPath(path)) return path
    } catch {
      // No /proc: unknown.
    }
  }
  return undefined
}

/**
 * Writes one line to a terminal of this user. Returns whether it was written; never throws and
 * never blocks (a terminal that does not take the line at once loses it).
 */
export function writeToTerminal(path: string, line: string): boolean {
  if (!isTerminalPath(path)) return false
  let fd: number
  try {
    // O_NOCTTY: a daemon opening a terminal must not make it its controlling terminal.
    fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK | constants.O_APPEND)
  } catch {
    return false
  }
  try {
    const info = fstatSync(fd)
    const uid = process.getuid?.()
    if (!info.isCharacterDevice() || uid === undefined || info.uid !== uid) return false
    // One record, one line: what came from files cannot move the cursor or forge lines.
    // eslint-disable-next-line no-control-regex
    const clean = line.replace(/[\u0000-\u001f\u007f\u009b]/g, ' ')
    writeSync(fd, `\r\n${clean}\r\n`)
    return true
  } catch {
    return false
  } finally {
    closeSync(fd)
  }
}
