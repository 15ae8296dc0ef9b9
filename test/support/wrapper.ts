// Runs `aim-watcher run` as a real process, keeping its output as raw bytes, and a fake Slack
// that counts what the run's notifications said.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { addNotifier } from '../../lib/notify/manage.js'
import type { RunEventKind } from '../../lib/model.js'
import { BIN } from '../fixtures/daemon/helpers.js'

export const FIXTURES = fileURLToPath(new URL('../fixtures/run/', import.meta.url))

export interface Wrapper {
  process: ChildProcess
  stdout(): Buffer
  stderr(): Buffer
  /** Resolves once standard output contains `text`; rejects if the wrapper exits first. */
  waitForOutput(text: string): Promise<void>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** `aim-watcher --repo <root> run --no-daemon <flags> -- <command...>` */
export function startWrapper(root: string, flags: string[], command: string[], env: NodeJS.ProcessEnv = {}): Wrapper {
  const child = spawn(process.execPath, [BIN, '--repo', root, 'run', '--no-daemon', ...flags, '--', ...command], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  const out: Buffer[] = []
  const err: Buffer[] = []
  const waiters: Array<() => void> = []
  child.stdout!.on('data', (chunk: Buffer) => {
    out.push(chunk)
    for (const w of [...waiters]) w()
  })
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk))
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  return {
    process: child,
    stdout: () => Buffer.concat(out),
    stderr: () => Buffer.concat(err),
    exited,
    waitForOutput(text) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (Buffer.concat(out).toString('utf8').includes(text)) {
            waiters.splice(waiters.indexOf(check), 1)
            resolve()
          }
        }
        waiters.push(check)
        check()
        void exited.then(({ code, signal }) => reject(new Error(`wrapper exited (${code}, ${signal}) before printing ${text}; stdout: ${Buffer.concat(out).toString()}; stderr: ${Buffer.concat(err).toString()}`)))
      })
    },
  }
}

/** The bytes a command writes when run directly, without the wrapper. */
export function runDirectly(command: string[], env: NodeJS.ProcessEnv = {}): { stdout: Buffer; stderr: Buffer; status: number | null } {
  const result = spawnSync(command[0] as string, command.slice(1), { env: { ...process.env, PYTHONUNBUFFERED: '1', ...env } })
  return { stdout: result.stdout, stderr: result.stderr, status: result.status }
}

/** A Slack notifier at the fake endpoint whose text is `<event> <hash> <reason>` then the log tail. */
export async function slackWithTail(root: string, base: string, events: RunEventKind[]): Promise<void> {
  await addNotifier(root, { type: 'slack', arguments: { url: `${base}/services/T0/B0/secret-token-123` }, events, messages: Object.fromEntries(events.map((e) => [e, '{event} {run.hash} {run.reason}\n{run.log_tail}'])) })
}

/** The Slack texts received so far, as `[event, text]`. */
export function slackTexts(requests: Array<{ body: string }>): Array<{ event: string; text: string }> {
  return requests.map((r) => {
    const text = (JSON.parse(r.body) as { text: string }).text
    return { event: text.split(' ')[0] as string, text }
  })
}

/** Whether a process is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
