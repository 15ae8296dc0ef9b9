/**
 * The repo runtime as a service on a port: it handles the host's data-plane messages, answers
 * the control plane (comlink), and sends each transition and delivery outcome to the host. It
 * runs in the repo's worker thread (worker.ts is a thin entry) and, in tests, in-process on one
 * end of a MessageChannel, so that all of its logic is covered.
 * @module
 */
import { writeSync } from 'node:fs'
import type { MessagePort } from 'node:worker_threads'
import { expose } from 'comlink'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { toPlainError } from '../errors.js'
import type { NotifierEntry } from '../notify/contract.js'
import { AimStatusError } from '../errors.js'
import { repoPaths } from '../repo.js'
import { DurableOwner } from '../owner/durable-owner.js'
import { prepareStatusFolders, snapshotPath, statusLayout } from '../state/layout.js'
import { highestEpisode } from '../state/snapshot-query.js'
import { LAST_WORDS } from '../process-death.js'
import { RepoRuntime } from './runtime.js'
import { registerRemoteTypes } from './custom-types.js'
import { portEndpoint } from './port-endpoint.js'
import type { ActorControl, ActorMessage, ActorStartup, HostMessage } from './protocol.js'

/** How often a dying process's last words look whether their notification has its answer, ms. */
const LAST_WORDS_POLL_MS = 5

/** What can be swapped for tests. */
export interface ServiceDependencies {
  /** Default: the real clock. */
  clock?: Clock
  /**
   * Writes one line of the watcher's output. Default: a synchronous write to file descriptor 1,
   * which reaches the terminal even while the main thread is blocked (a worker's
   * `process.stdout` is relayed through the main thread and would wait for it).
   */
  writeLine?: (line: string) => void
  /** Keep a leased snapshot (the daemon's way to take over). Default: true. */
  durable?: boolean
}

/** A warning line on standard error, written synchronously (it reaches the terminal while the main thread is blocked). */
function warnLine(line: string): void {
  try {
    writeSync(2, `${line}\n`)
  } catch {
    // No standard error to write to: the Watcher's `error` event still says it.
  }
}

/** A running actor service. */
export interface ActorService {
  readonly runtime: RepoRuntime
  /** Resolves when the notifier configuration has been read. */
  readonly ready: Promise<void>
  close(): Promise<void>
}

/**
 * Starts the service: takes the lease on the owner's snapshot first (so that nothing is
 * accepted before it can be made durable), then listens on the port.
 */
export async function startActorService(startup: ActorStartup, dependencies: ServiceDependencies = {}): Promise<ActorService> {
  const port = startup.port as MessagePort
  const post = (message: ActorMessage) => port.postMessage(message)
  const clock = dependencies.clock ?? systemClock
  // Assigned once, after the lease: a lease lost before then has no runtime to close.
  // eslint-disable-next-line prefer-const
  let runtime: RepoRuntime | undefined
  const layout = statusLayout(repoPaths(startup.root))
  // A status folder that is a link out of the repo, not writable or full rejects here, coded.
  if (dependencies.durable !== false) prepareStatusFolders(layout)
  const owner =
    dependencies.durable === false
      ? undefined
      : await DurableOwner.acquire({
          path: snapshotPath(layout, startup.owner.id),
          owner: startup.owner,
          clock,
          ...(startup.leaseStaleMs !== undefined ? { staleMs: startup.leaseStaleMs } : {}),
          // Fenced off: a daemon adopted our runs while we were frozen. Stop at once, say so;
          // the host starts a new owner and re-establishes the runs that still report.
          onLost: (error: AimStatusError) => {
            void runtime?.close()
            // Said where a person reads a training process's complaints, once per lost lease.
            warnLine(`aim-status: this process was frozen and another owner adopted its runs in ${startup.root}; sending nothing for them, they come back at their next report`)
            post({ kind: 'lease-lost', error: toPlainError(error) })
          },
          onError: (error) => post({ kind: 'error', error: toPlainError(error) }),
        })
  registerRemoteTypes(startup.customTypes.port, startup.customTypes.names)
  runtime = new RepoRuntime({
    root: startup.root,
    host: startup.host,
    pid: startup.pid,
    clock,
    writeLine: dependencies.writeLine ?? ((line: string) => writeSync(1, `${line}\n`)),
    onEvent: (event) => post({ kind: 'event', event }),
    onReport: (record) => post({ kind: 'delivery', record }),
    onError: (error) => post({ kind: 'error', error: toPlainError(error) }),
    ...(owner !== undefined ? { owner } : {}),
  })
  const state = runtime
  const extra = startup.terminal !== undefined ? { terminal: startup.terminal } : {}
  owner?.serve(() => ({ owner: startup.owner, ...state.snapshotState(), extra }))
  const live = runtime
  runtime.notifiers.setProgrammatic(startup.notifiers)
  const ready = runtime.start()
  const actor = runtime.actor
  let closed = false

  const onMessage = (message: HostMessage) => {
    if (closed || typeof message !== 'object' || message === null || !('kind' in message)) return
    try {
      switch (message.kind) {
        case 'open': {
          const opened = actor.open({
            hash: message.hash,
            grace: message.grace,
            at: message.at,
            slot: message.slot,
            ...(message.name !== undefined ? { name: message.name } : {}),
            ...(message.experiment !== undefined ? { experiment: message.experiment } : {}),
            ...(message.resume === true ? { resume: true } : {}),
          })
          if (opened && message.checkins) live.openCheckins(message.hash)
          if (opened && message.resume === true) {
            const { hash, at } = message
            void highestEpisode(statusLayout(repoPaths(startup.root)), hash, at, startup.owner.id).then(
              (episode) => actor.continueEpisode(hash, episode),
              (error: unknown) => post({ kind: 'error', error: toPlainError(error) }),
            )
          }
          break
        }
        case 'progress':
          actor.progress(message.hash, message.at, message.expectNextIn)
          break
        case 'finish':
          actor.finish(message.hash, message.at)
          break
        case 'fail':
          actor.fail(message.hash, message.at, message.reason, typeof message.logTail === 'string' ? message.logTail : undefined)
          break
        case 'last-words':
          void lastWords(message.hashes, message.at, message.reason, message.until, message.answer)
          break
        default:
          throw new Error(`unknown message kind ${JSON.stringify((message as { kind: unknown }).kind)}`)
      }
    } catch (error) {
      post({ kind: 'error', error: toPlainError(error) })
    }
  }
  port.on('message', onMessage)

  /**
   * The process is dying and its main thread waits: the runs fail here, as a daemon would fail
   * them, so that the failure is said once whoever says it (the snapshot says failed, the outbox
   * holds the notification under its event key for a daemon to finish sending).
   */
  async function lastWords(hashes: string[], at: number, reason: string, until: number, answer: Int32Array): Promise<void> {
    const say = (state: number): void => {
      Atomics.store(answer, 0, state)
      Atomics.notify(answer, 0)
    }
    try {
      await ready
      if (owner !== undefined && !owner.mayAct()) return say(LAST_WORDS.declined)
      let failed = 0
      for (const hash of hashes) {
        const run = actor.run(hash)
        if (run === undefined || (run.status !== 'running' && run.status !== 'stalled')) continue
        if (actor.fail(hash, at, reason)) failed++
      }
      if (failed === 0) return say(LAST_WORDS.declined)
      await owner?.commit()
      say(LAST_WORDS.durable)
      // Settled means an answer: delivered, or given up for good. A transient failure is tried
      // again meanwhile (the main thread stops waiting at `until`; what is left is on disk).
      const unsettled = () => live.delivery.state().pending.some((item) => item.event.kind === 'failed' && hashes.includes(item.event.run.hash))
      while (unsettled() && Date.now() < until) {
        await live.delivery.drain()
        if (unsettled()) await new Promise<void>((resolve) => clock.setTimer(resolve, LAST_WORDS_POLL_MS))
      }
      say(LAST_WORDS.answered)
    } catch (error) {
      post({ kind: 'error', error: toPlainError(error) })
      say(LAST_WORDS.declined)
    }
  }

  const control: ActorControl = {
    ping: async () => {
      await ready
      return live.actor.size
    },
    flush: async () => {
      await ready
      await live.checkinsIdle()
      await owner?.commit()
    },
    settle: async () => {
      await control.flush()
      await live.delivery.drain()
    },
    runs: () => actor.runs(),
    activeNotifiers: () => runtime.notifiers.current().map(({ entry }) => ({ id: entry.id, type: entry.type, status: entry.status })),
    setNotifiers(entries: NotifierEntry[], customTypes: string[]) {
      registerRemoteTypes(startup.customTypes.port, customTypes)
      live.setProgrammaticNotifiers(entries)
    },
    close: () => close(),
  }
  expose(control, portEndpoint(port))

  async function close(): Promise<void> {
    if (closed) return
    closed = true
    port.off('message', onMessage)
    await live.close()
    await owner?.end(() => ({ outstanding: live.hasOutstanding() }))
  }

  return { runtime: live, ready, close }
}
