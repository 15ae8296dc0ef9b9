// Runs a fixture script as a real child process and collects its output line by line.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

export interface Child {
  process: ChildProcess
  lines: string[]
  /** Resolves with the first line matching, or rejects when the child exits first. */
  waitForLine(match: RegExp | string): Promise<string>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Starts `node script ...args`. A training fixture's `watch()` starts no daemon unless the test
 * asks for one (`env: { AIM_STATUS_DAEMON: '1' }`, or `daemon: true` in the fixture): a daemon
 * nobody ends would outlive the test and keep CI's pipe open.
 */
export function startChild(script: string, args: string[] = [], options: { env?: NodeJS.ProcessEnv } = {}): Child {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AIM_STATUS_DAEMON: '0', ...options.env } })
  const lines: string[] = []
  const waiters: Array<{ test: (l: string) => boolean; resolve: (l: string) => void }> = []
  let buffer = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      for (const w of [...waiters])
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
    }
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
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
