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
import { snapshotPath, statusLayout } from '../state/layout.js'
import { highestEpisode } from '../state/snapshot-query.js'
import { RepoRuntime } from './runtime.js'
import { registerRemoteTypes } from './custom-types.js'
import { portEndpoint } from './port-endpoint.js'
import type { ActorControl, ActorMessage, ActorStartup, HostMessage } from './protocol.js'

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
  let runtime: RepoRuntime | undefined
  const owner =
    dependencies.durable === false
      ? undefined
      : await DurableOwner.acquire({
          path: snapshotPath(statusLayout(repoPaths(startup.root)), startup.owner.id),
          owner: startup.owner,
          clock,
          ...(startup.leaseStaleMs !== undefined ? { staleMs: startup.leaseStaleMs } : {}),
          // Fenced off: a daemon adopted our runs while we were frozen. Stop at once, say so;
          // the host starts a new owner and re-establishes the runs that still report.
          onLost: (error: AimStatusError) => {
            void runtime?.close()
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
  owner?.serve(() => ({ owner: startup.owner, ...state.snapshotState(), extra: {} }))
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
          actor.fail(message.hash, message.at, message.reason)
          break
        default:
          throw new Error(`unknown message kind ${JSON.stringify((message as { kind: unknown }).kind)}`)
      }
    } catch (error) {
      post({ kind: 'error', error: toPlainError(error) })
    }
  }
  port.on('message', onMessage)

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
