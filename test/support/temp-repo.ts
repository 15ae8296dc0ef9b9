// Temporary repos for tests that run watchers: the watcher is closed before its folder is
// removed (a watcher writes its snapshot until it is closed).
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A new empty folder, removed after the test once everything registered with `closeFirst` has closed. */
export function tempRepo(t: Teardown, prefix = 'aim-status-test-'): { repo: string; closeFirst(close: () => Promise<unknown>): void } {
  const repo = mkdtempSync(join(tmpdir(), prefix))
  const closers: Array<() => Promise<unknown>> = []
  t.teardown(async () => {
    for (const close of closers) await close().catch(() => undefined)
    await rm(repo, { recursive: true, force: true })
  })
  return { repo, closeFirst: (close) => closers.push(close) }
}
