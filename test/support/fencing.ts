// The three "told once" scenarios with frozen processes, driven end to end with real processes
// and real signals: used by test/fencing-e2e.test.ts (a few trials) and by the `fencing` bench
// scenario (ten trials each). Each returns what was sent per event, and how long things took.
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { startChild } from './child.js'
import { startEndpoint, slackReply, type FakeEndpoint } from './fake-endpoints.js'
import { deadOwner, makeRepo, runningRun, startDaemon, textsFor, useSlack, writeOwnerSnapshot, type DaemonChild } from '../fixtures/daemon/helpers.js'

const TRAIN = fileURLToPath(new URL('../fixtures/daemon/train.mjs', import.meta.url))
/** The daemons' lease staleness in these scenarios (proper-lockfile's floor), ms. */
export const STALE_MS = 2000
/** The daemons' poll, ms. */
export const POLL_MS = 200

/** What one trial saw. */
export interface TrialResult {
  /** Notifications of the event under test that reached the endpoint. */
  sends: number
  /** The figure the scenario measures, ms (see each scenario). */
  ms: number
}

/** Ends every process a trial started, whatever happened. */
class Cleanup {
  readonly #steps: Array<() => void | Promise<void>> = []
  add(step: () => void | Promise<void>): void {
    this.#steps.push(step)
  }
  async run(): Promise<void> {
    for (const step of this.#steps.reverse()) await Promise.resolve(step()).catch(() => undefined)
  }
}

const kill = (child: { process: { kill(signal: NodeJS.Signals): boolean } }, signal: NodeJS.Signals = 'SIGKILL'): void => {
  try {
    child.process.kill(signal)
  } catch {
    // already gone
  }
}

/** A daemon on `root`, waited for until it says it is active (or standby). */
async function daemonOn(root: string, cleanup: Cleanup, until: 'active' | 'standby'): Promise<DaemonChild> {
  const daemon = startDaemon([root], ['--stale-ms', String(STALE_MS), '--poll-ms', String(POLL_MS)])
  // SIGKILL ends a stopped process too.
  cleanup.add(() => kill(daemon))
  await daemon.waitEvent((l) => l.event === until)
  return daemon
}

/**
 * A training process with a 2 s promise and 1 s grace reports once and is frozen (SIGSTOP): the
 * daemon adopts it and sends the stall. Continued (SIGCONT), the process must send nothing for
 * that stall; it learns it lost its lease, reports again (handed back) and finishes. `ms`: the
 * time from SIGSTOP to the daemon's stall notification.
 */
export async function frozenTrainer(dir: string, trial: number, slack: FakeEndpoint): Promise<TrialResult> {
  const cleanup = new Cleanup()
  try {
    const root = makeRepo(join(dir, `frozen-trainer-${trial}`))
    await useSlack(root, slack.base, ['stalled'])
    const daemon = await daemonOn(root, cleanup, 'active')
    const hash = `frozen_${trial}`
    const child = startChild(TRAIN, [root, hash, 'once'])
    cleanup.add(() => kill(child))
    await child.waitForLine('READY')
    const stoppedAt = Date.now()
    child.process.kill('SIGSTOP')
    cleanup.add(() => kill(child, 'SIGCONT'))
    const notified = await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === hash && l['eventKind'] === 'stalled')
    child.process.kill('SIGCONT')
    // Its own stall timer fires at once on waking: it must find its lease lost instead.
    await child.waitForLine('WATCHER ERROR AIM_STATUS_LEASE_LOST')
    await child.waitForLine('FINISHED')
    await child.exited
    await daemon.waitEvent((l) => l.event === 'handed-back' && l['hash'] === hash)
    return { sends: textsFor(slack.requests, hash).filter((text) => text.startsWith('stalled')).length, ms: Date.parse(String(notified['time'])) - stoppedAt }
  } finally {
    await cleanup.run()
  }
}

/**
 * A daemon whose notification waits for a retry (the endpoint answered 503, Retry-After 3 s) is
 * frozen; its standby takes over and delivers. Continued, the old daemon must send nothing: it
 * finds its leases lost and stands by. `ms`: from SIGSTOP to the standby's delivery.
 */
export async function frozenDaemonWithRetry(dir: string, trial: number): Promise<TrialResult> {
  const cleanup = new Cleanup()
  const slack = await startEndpoint(() => slackReply(503, 'service_unavailable', { 'retry-after': '3' }))
  cleanup.add(() => slack.close())
  try {
    const root = makeRepo(join(dir, `frozen-daemon-${trial}`))
    await useSlack(root, slack.base, ['failed'])
    const first = await daemonOn(root, cleanup, 'active')
    const second = await daemonOn(root, cleanup, 'standby')
    const hash = `retried_${trial}`
    await writeOwnerSnapshot(root, deadOwner(), [runningRun(hash)])
    await first.waitEvent((l) => l.event === 'retrying' && l['hash'] === hash)
    const stoppedAt = Date.now()
    first.process.kill('SIGSTOP')
    cleanup.add(() => kill(first, 'SIGCONT'))
    const accepting = slack.requests.length
    slack.respond(() => slackReply())
    const delivered = await second.waitEvent((l) => l.event === 'notified' && l['hash'] === hash)
    first.process.kill('SIGCONT')
    await first.waitEvent((l) => l.event === 'lease-lost')
    await first.waitEvent((l) => l.event === 'standby')
    const answered = slack.requests.slice(accepting).filter((r) => textsFor([r], hash).length > 0)
    return { sends: answered.length, ms: Date.parse(String(delivered['time'])) - stoppedAt }
  } finally {
    await cleanup.run()
  }
}

/**
 * The active daemon is frozen; a standby waits behind it. A training process SIGKILLed
 * afterwards must be reported by the standby. `ms`: from the SIGKILL to the standby's
 * notification (at most about stale + poll + 2 s: the standby first has to take over).
 */
export async function frozenActiveDaemon(dir: string, trial: number, slack: FakeEndpoint): Promise<TrialResult> {
  const cleanup = new Cleanup()
  try {
    const root = makeRepo(join(dir, `frozen-active-${trial}`))
    await useSlack(root, slack.base, ['failed'])
    const first = await daemonOn(root, cleanup, 'active')
    const second = await daemonOn(root, cleanup, 'standby')
    first.process.kill('SIGSTOP')
    cleanup.add(() => kill(first, 'SIGCONT'))
    const hash = `killed_${trial}`
    const child = startChild(TRAIN, [root, hash, 'loop'])
    cleanup.add(() => kill(child))
    await child.waitForLine('READY')
    const killedAt = Date.now()
    child.process.kill('SIGKILL')
    const notified = await second.waitEvent((l) => l.event === 'notified' && l['hash'] === hash)
    first.process.kill('SIGCONT')
    await first.waitEvent((l) => l.event === 'lease-lost')
    return { sends: textsFor(slack.requests, hash).length, ms: Date.parse(String(notified['time'])) - killedAt }
  } finally {
    await cleanup.run()
  }
}
