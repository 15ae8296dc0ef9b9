// Temporary repos for tests that run watchers: the watcher is closed before its folder is
// removed (a watcher writes its snapshot until it is closed).
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A started process, as test/support/child.ts gives it. */
interface Started {
  process: { kill(signal: NodeJS.Signals): unknown }
  exited: Promise<unknown>
}

/** A temporary repo and what must end before it is removed. */
export interface TempRepo {
  repo: string
  /** Awaited before the folder is removed. */
  closeFirst(close: () => Promise<unknown>): void
  /** SIGKILLed, and its exit awaited, before the folder is removed (it may still be writing in it). */
  killFirst(started: Started): void
}

/** A new empty folder, removed after the test once everything registered with `closeFirst` has closed. */
export function tempRepo(t: Teardown, prefix = 'aim-status-test-'): TempRepo {
  const repo = mkdtempSync(join(tmpdir(), prefix))
  const closers: Array<() => Promise<unknown>> = []
  t.teardown(async () => {
    for (const close of closers) await close().catch(() => undefined)
    await rm(repo, { recursive: true, force: true })
  })
  const closeFirst = (close: () => Promise<unknown>): void => void closers.push(close)
  return {
    repo,
    closeFirst,
    killFirst: (started) =>
      closeFirst(async () => {
        started.process.kill('SIGKILL')
        await started.exited
      }),
  }
}
