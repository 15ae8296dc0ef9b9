/**
 * The actor as a service on a port: it handles the host's data-plane messages, answers the
 * control plane (comlink), sends each transition to the host and to the notifiers. It runs in
 * the repo's worker thread (see worker.ts, a thin entry) and, in tests, in-process on one end
 * of a MessageChannel, so that all of its logic is covered.
 * @module
 */
import { writeSync } from 'node:fs'
import type { MessagePort } from 'node:worker_threads'
import { expose } from 'comlink'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { toPlainError } from '../errors.js'
import type { NotifierEntry, RunEvent } from '../notify/contract.js'
import { wantsEvent } from '../notify/contract.js'
import type { DeliveryReport } from '../notify/delivery-report.js'
import { RepoActor } from './actor.js'
import { NotifierSet } from './notifications.js'
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
}

/** A running actor service. */
export interface ActorService {
  readonly actor: RepoActor
  close(): Promise<void>
}

const DEFAULT_SEND_TIMEOUT_MS = 10_000

export function startActorService(startup: ActorStartup, dependencies: ServiceDependencies = {}): ActorService {
  const clock = dependencies.clock ?? systemClock
  const writeLine = dependencies.writeLine ?? ((line: string) => writeSync(1, `${line}\n`))
  const port = startup.port as MessagePort
  const post = (message: ActorMessage) => port.postMessage(message)
  const notifiers = new NotifierSet({ writeLine }, (message) => writeLine(`aim-status: ${message}`))
  notifiers.setProgrammatic(startup.notifiers)
  const inFlight = new Set<Promise<void>>()
  let closed = false

  const report = (r: DeliveryReport) => post({ kind: 'delivery', report: r })

  // Each notifier is sent to independently: one slow endpoint never holds up another.
  const dispatch = (event: RunEvent) => {
    for (const notifier of notifiers.current()) {
      if (!wantsEvent(notifier.entry, event.kind)) continue
      const base = { notifierId: notifier.entry.id, notifierType: notifier.entry.type, eventKey: event.key, eventKind: event.kind, hash: event.run.hash, attempts: 1 }
      const sending = (async () => {
        let rendered: string
        try {
          rendered = notifier.render(event)
        } catch (error) {
          report({ ...base, kind: 'delivery-failed', error: `render failed: ${toPlainError(error).message}`, at: clock.now() })
          return
        }
        const outcome = await notifier.send(event, rendered, AbortSignal.timeout(DEFAULT_SEND_TIMEOUT_MS)).catch((error: unknown) => ({
          kind: 'permanent' as const,
          error: toPlainError(error).message,
        }))
        if (outcome.kind === 'delivered') report({ ...base, kind: 'notified', at: clock.now() })
        else report({ ...base, kind: 'delivery-failed', error: outcome.error, at: clock.now() })
      })()
      inFlight.add(sending)
      void sending.finally(() => inFlight.delete(sending))
    }
  }

  const actor = new RepoActor({
    clock,
    repo: startup.root,
    host: startup.host,
    pid: startup.pid,
    onEvent(event) {
      post({ kind: 'event', event })
      dispatch(event)
    },
  })

  const onMessage = (message: HostMessage) => {
    if (closed || typeof message !== 'object' || message === null || !('kind' in message)) return
    try {
      switch (message.kind) {
        case 'open':
          actor.open({
            hash: message.hash,
            grace: message.grace,
            at: message.at,
            slot: message.slot,
            ...(message.name !== undefined ? { name: message.name } : {}),
            ...(message.experiment !== undefined ? { experiment: message.experiment } : {}),
          })
          break
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
    ping: () => clock.now(),
    runs: () => actor.runs(),
    setNotifiers(entries: NotifierEntry[]) {
      notifiers.setProgrammatic(entries)
    },
    close: () => close(),
  }
  expose(control, portEndpoint(port))

  async function close(): Promise<void> {
    if (closed) return
    closed = true
    actor.close()
    port.off('message', onMessage)
    // Let notifications already under way finish (each has its own timeout).
    await Promise.allSettled([...inFlight])
  }

  return { actor, close }
}
