// Shared by the HTTP face's tests: a real daemon with --http on 127.0.0.1, its URL, and readers
// of its answers (JSON, Prometheus text).
import type { Test } from 'tap'
import { startDaemon, type DaemonChild } from '../fixtures/daemon/helpers.js'

export interface FaceDaemon {
  daemon: DaemonChild
  url: string
}

/** Starts `aim-watcher start --http 127.0.0.1:0 …` on the repos, ended (SIGKILL) after the test; resolves once it listens. */
export async function startFaceDaemon(t: Test, roots: string[], extra: string[] = []): Promise<FaceDaemon> {
  const daemon = startDaemon(roots, ['--http', '127.0.0.1:0', ...extra])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  const listening = await daemon.waitEvent((l) => l.event === 'http-listening')
  return { daemon, url: String(listening['url']) }
}

/** GET or another method; the parsed JSON body and the status. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field by the assertions
export async function call(url: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, init)
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON (metrics, the page)
  }
  return { status: response.status, body, headers: response.headers }
}

/** One sample of a Prometheus exposition: the value for `name` with exactly these labels, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const found: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found[key as string] = value as string
    const keys = Object.keys(labels)
    if (keys.length === Object.keys(found).length && keys.every((k) => found[k] === labels[k])) return Number(match[3])
  }
  return undefined
}

/** Polls `probe` until it returns a value that is not undefined (at most `ms`, default 20 s). */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
