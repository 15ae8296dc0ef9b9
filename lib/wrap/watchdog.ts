/**
 * The watchdog that ends a wrapped command when its wrapper is killed outright (SIGKILL, the
 * out-of-memory killer), so that the command never goes on running unwatched.
 *
 * The command runs in its own process group (so that signals reach all of it: its data-loader
 * workers too). A second, tiny process, `/bin/sh` in its own session, reads a pipe of which
 * only the wrapper holds the writing end: it is told the group's id, and later either `done`
 * (the command ended and was reported) or nothing at all. When the wrapper dies, the kernel
 * closes its end and the shell's `read` returns at end of file without `done`: it sends
 * SIGTERM to the group, waits up to {@link WATCHDOG_KILL_AFTER_MS} for it to go, then SIGKILL.
 * A pipe's end of file needs no polling and cannot be missed, which is why it beats a timer
 * checking the wrapper's pid (reusable) or Linux's `PR_SET_PDEATHSIG` (out of Node's reach, and
 * tied to the thread that forked).
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'

/** How long the command's group gets to end after the watchdog's SIGTERM before SIGKILL. */
export const WATCHDOG_KILL_AFTER_MS = 5000

const TENTHS = Math.ceil(WATCHDOG_KILL_AFTER_MS / 100)

// POSIX sh (dash, bash, busybox): `kill -SIG -pgid` addresses the group; `read` fails at EOF.
const SCRIPT = [
  'read pgid || exit 0',
  'read word',
  '[ "$word" = done ] && exit 0',
  'kill -TERM -$pgid 2>/dev/null',
  'i=0',
  `while [ $i -lt ${TENTHS} ] && kill -0 -$pgid 2>/dev/null; do sleep 0.1; i=$((i+1)); done`,
  'kill -KILL -$pgid 2>/dev/null',
  'exit 0',
].join('\n')

/** A started watchdog. */
export interface Watchdog {
  /** The watchdog's own pid (for tests). */
  readonly pid: number | undefined
  /** Names the process group to end if the wrapper dies. */
  guard(pgid: number): void
  /** The command ended and was dealt with: the watchdog exits without touching anything. */
  standDown(): void
}

/** Starts the watchdog. It keeps no handle of this process alive. */
export function startWatchdog(): Watchdog {
  const child: ChildProcess = spawn('/bin/sh', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
  // Without /bin/sh nothing guards the command; the run is still watched and reported.
  child.on('error', () => undefined)
  const pipe = child.stdin
  pipe?.on('error', () => undefined)
  child.unref()
  ;(pipe as unknown as { unref?: () => void } | null)?.unref?.()
  let guarded = false
  let stood = false
  return {
    pid: child.pid,
    guard(pgid: number) {
      if (guarded || stood || !Number.isSafeInteger(pgid) || pgid <= 1) return
      guarded = true
      pipe?.write(`${pgid}\n`)
    },
    standDown() {
      if (stood) return
      stood = true
      pipe?.end(guarded ? 'done\n' : '')
    },
  }
}
