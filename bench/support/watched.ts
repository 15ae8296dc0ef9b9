/**
 * A process the benchmarks start and read: its stdout lines kept with the time each arrived
 * (JSON lines parsed for `event` and `hash`), how many bytes it wrote to stdout and stderr (a
 * daemon's own log output, told apart from what it writes to files), and waits on its lines.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface Logged {
  at: number
  line: string
  event: string | undefined
  hash: string | undefined
  /** The JSON record, when the line is one. */
  record: Record<string, unknown> | undefined
}

/** A process whose stdout lines are kept with the time each arrived. */
export class Watched {
  readonly process: ChildProcess
  readonly lines: Logged[] = []
  stderr = ''
  /** Bytes received from its stdout and stderr so far. */
  outputBytes = 0
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  #waiters: Array<() => void> = []

  /** Runs `node ARGS…` from the package's root, or `command ARGS…` when `command` is given. */
  constructor(args: string[], command: string = process.execPath) {
    this.process = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT })
    let buffer = ''
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const at = performance.now()
      this.outputBytes += Buffer.byteLength(chunk)
      buffer += chunk
      const parts = buffer.split('\n')
      buffer = parts.pop() ?? ''
      for (const line of parts) this.lines.push({ at, line, ...parseLine(line) })
      this.#wake()
    })
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.outputBytes += Buffer.byteLength(chunk)
      if (this.stderr.length < 4000) this.stderr += chunk
    })
    this.process.on('exit', (code, signal) => {
      this.exit = { code, signal }
      this.#wake()
    })
  }

  /** How it exited, if it did. (A method: a property read would stay narrowed across awaits.) */
  exitState(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exit
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake()
  }

  /** Resolves at its next line or its exit, or after `ms`. */
  #next(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** The first line (from index `from`) that matches, or undefined after `timeoutMs` or on exit. */
  async waitFor(test: (l: Logged) => boolean, timeoutMs: number, from = 0): Promise<Logged | undefined> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const found = this.lines.slice(from).find(test)
      if (found !== undefined) return found
      const left = deadline - performance.now()
      if (left <= 0 || this.exit !== undefined) return undefined
      await this.#next(left)
    }
  }

  /** The `count`-th matching line (from index `from`), or undefined after `timeoutMs` or on exit. */
  async waitForCount(test: (l: Logged) => boolean, count: number, timeoutMs: number, from = 0): Promise<Logged | undefined> {
    const deadline = performance.now() + timeoutMs
    let seen = 0
    let index = from
    for (;;) {
      for (; index < this.lines.length; index++) {
        const line = this.lines[index] as Logged
        if (test(line) && ++seen === count) return line
      }
      const left = deadline - performance.now()
      if (left <= 0 || this.exit !== undefined) return undefined
      await this.#next(left)
    }
  }

  /**
   * Resolves once it has written nothing for `quietMs` (its start-up done), or after `timeoutMs`
   * in all; true when it went quiet.
   */
  async waitQuiet(quietMs: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const bytes = this.outputBytes
      await new Promise((resolve) => setTimeout(resolve, Math.min(quietMs, Math.max(0, deadline - performance.now()))))
      if (this.exit !== undefined) return false
      if (this.outputBytes === bytes) return true
      if (performance.now() >= deadline) return false
    }
  }

  async stop(): Promise<void> {
    if (this.exit !== undefined) return
    this.process.kill('SIGKILL')
    await new Promise<void>((resolve) => (this.exit !== undefined ? resolve() : this.process.once('exit', () => resolve())))
  }
}

function parseLine(line: string): Omit<Logged, 'at' | 'line'> {
  try {
    const record = JSON.parse(line) as Record<string, unknown>
    const { event, hash } = record
    return { event: typeof event === 'string' ? event : undefined, hash: typeof hash === 'string' ? hash : undefined, record }
  } catch {
    return { event: undefined, hash: undefined, record: undefined }
  }
}
