// Runs a command on a real pseudo-terminal, through `script` from util-linux, so that a program
// sees a TTY on stdin and its prompts can be answered key by key. Tests wait for text to show
// on the screen before typing, never for time to pass.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

export interface Terminal {
  process: ChildProcess
  /** Everything shown so far, without colours and cursor moves. */
  screen(): string
  /** Resolves once `text` is on the screen after the position `from` (default 0); rejects if the program ends first. */
  waitFor(text: string | RegExp, from?: number): Promise<number>
  /** Types keys: text, `\r` for Enter, `\x03` for Ctrl-C, `\x1b[B` for arrow down, `\x15` to clear the line. */
  type(keys: string): void
  exited: Promise<number | null>
}

/** ANSI escape sequences (colours, cursor moves, erasures). */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r/g

/** Quotes one word for `sh -c`. */
const quote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`

export function startTerminal(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Terminal {
  // -q: no "Script started" banner; -e: exit with the program's code; -c: the command.
  const child = spawn('script', ['-qec', [command, ...args].map(quote).join(' '), '/dev/null'], {
    cwd: options.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, TERM: 'xterm', NO_COLOR: '1' },
  })
  let raw = ''
  const waiters = new Set<() => void>()
  const wake = (): void => {
    for (const w of [...waiters]) w()
  }
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    raw += chunk
    wake()
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    raw += chunk
    wake()
  })
  let ended = false
  const exited = once(child, 'close').then(([code]) => {
    ended = true
    wake()
    return code as number | null
  })
  const screen = (): string => raw.replace(ANSI, '')
  const timeoutMs = options.timeoutMs ?? 30_000
  return {
    process: child,
    screen,
    exited,
    type: (keys) => void child.stdin!.write(keys),
    waitFor(text, from = 0) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`not shown within ${timeoutMs} ms: ${String(text)}; screen:\n${screen()}`)), timeoutMs)
        const check = (): void => {
          const rest = screen().slice(from)
          const found = typeof text === 'string' ? { at: rest.indexOf(text), length: text.length } : ((m) => ({ at: m?.index ?? -1, length: m?.[0].length ?? 0 }))(text.exec(rest))
          if (found.at >= 0) done(null, from + found.at + found.length)
          else if (ended) done(new Error(`the program ended before showing ${String(text)}; screen:\n${screen()}`))
        }
        function done(error: Error | null, position = 0): void {
          clearTimeout(timer)
          waiters.delete(check)
          if (error !== null) reject(error)
          else resolve(position)
        }
        waiters.add(check)
        check()
      })
    },
  }
}
