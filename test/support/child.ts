// The one way tests run real child processes: a node script read line by line (startChild), a
// TypeScript fixture speaking JSON lines (startFixture), or a program run to its end (exec).
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'

type Exit = { code: number | null; signal: NodeJS.Signals | null }

/** Calls `onLine` with every complete line the stream gives. */
function readLines(stream: Readable, onLine: (line: string) => void): void {
  let buffer = ''
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const line of parts) onLine(line)
  })
}

function exitOf(child: ChildProcess): Promise<Exit> {
  return once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
}

export interface Child {
  process: ChildProcess
  lines: string[]
  /** Resolves with the first line matching, or rejects when the child exits first. */
  waitForLine(match: RegExp | string): Promise<string>
  exited: Promise<Exit>
}

/**
 * Starts `node script ...args`. A training fixture's `watch()` starts no daemon unless the test
 * asks for one (`env: { AIM_STATUS_DAEMON: '1' }`, or `daemon: true` in the fixture): a daemon
 * nobody ends would outlive the test and keep CI's pipe open.
 */
export function startChild(script: string, args: string[] = [], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Child {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AIM_STATUS_DAEMON: '0', ...options.env },
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  })
  const lines: string[] = []
  const waiters: Array<{ test: (l: string) => boolean; resolve: (l: string) => void }> = []
  readLines(child.stdout!, (line) => {
    lines.push(line)
    for (const w of [...waiters])
      if (w.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = exitOf(child)
  return {
    process: child,
    lines,
    exited,
    waitForLine(match) {
      const test = (l: string) => (typeof match === 'string' ? l.includes(match) : match.test(l))
      const found = lines.find(test)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        waiters.push({ test, resolve })
        void exited.then(({ code, signal }) => reject(new Error(`child exited (code ${code}, signal ${signal}) before printing ${String(match)}; stdout: ${lines.join('\\n')}; stderr: ${stderr}`)))
      })
    },
  }
}

export interface FixtureChild {
  child: ChildProcess
  /** Every JSON line received so far (a line that is not JSON arrives as `{ event: 'text', text }`). */
  lines: Record<string, unknown>[]
  /** Resolves with the first line (already received or to come) that matches; rejects if the child exits first or after `timeoutMs` (default 20 000). */
  waitFor(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Resolves with the exit code and signal. */
  exited: Promise<Exit>
  stderr(): string
  send(line: string): void
}

/**
 * Starts the TypeScript fixture at `script` (a path or a file URL, through tsx) with a stdin to talk to and reads its
 * JSON lines, so tests wait for events instead of sleeping. `uid` runs it as another user (root only).
 */
export function startFixture(script: string | URL, args: string[], options: { uid?: number } = {}): FixtureChild {
  const path = typeof script === 'string' ? script : fileURLToPath(script)
  const child = spawn(process.execPath, ['--import', 'tsx', path, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.uid } : {}),
  })
  const lines: Record<string, unknown>[] = []
  const waiters = new Set<() => void>()
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  readLines(child.stdout!, (text) => {
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>)
    } catch {
      lines.push({ event: 'text', text })
    }
    for (const wake of waiters) wake()
  })
  const exited = exitOf(child)
  let done = false
  void exited.then(() => {
    done = true
    for (const wake of waiters) wake()
  })
  return {
    child,
    lines,
    exited,
    stderr: () => stderr,
    send: (line) => void child.stdin!.write(`${line}\n`),
    waitFor(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out waiting; lines: ${JSON.stringify(lines)}; stderr: ${stderr}`)), timeoutMs)
        const check = (): void => {
          const found = lines.find(match)
          if (found !== undefined) finish(null, found)
          else if (done) finish(new Error(`child exited first; lines: ${JSON.stringify(lines)}; stderr: ${stderr}`))
        }
        function finish(error: Error | null, line?: Record<string, unknown>): void {
          clearTimeout(timer)
          waiters.delete(check)
          if (error !== null) reject(error)
          else resolve(line!)
        }
        waiters.add(check)
        check()
      })
    },
  }
}

/** What a program run to its end printed, and its exit code. */
export interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `command ...args` to its end and collects its output; `env` defaults to this process's environment. */
export function exec(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
