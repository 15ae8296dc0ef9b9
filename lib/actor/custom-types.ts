/**
 * Notifier types registered from code live in the thread that registered them (functions do
 * not cross threads). The repo's actor thread knows them by name only: for each, it registers
 * a stand-in whose `send` asks the registering thread, over a comlink port, to render and send
 * with the real type. Such a notifier is therefore sent from the main thread: it waits while
 * the main thread is blocked, unlike the built-in types, which the actor thread sends itself.
 * @module
 */
import type { MessagePort } from 'node:worker_threads'
import { expose, wrap, type Remote } from 'comlink'
import { toPlainError } from '../errors.js'
import type { DeliveryOutcome, NotifierEntry } from '../notify/contract.js'
import type { RunEvent } from '../model.js'
import { builtInTypeNames, createNotifier, findNotifierType, notifierTypeNames, registerNotifierType } from '../notify/registry.js'
import { scrub } from '../notify/redact.js'
import { sendOnce } from '../notify/send-once.js'
import { portEndpoint } from './port-endpoint.js'

/** Names of the types registered from code in this thread (every thread has the built-in ones). */
export function customTypeNames(): string[] {
  const builtIn = new Set(builtInTypeNames())
  return notifierTypeNames().filter((name) => !builtIn.has(name))
}

/** What the registering thread offers to actor threads. */
export interface CustomTypeHost {
  send(entry: NotifierEntry, event: RunEvent, timeoutMs: number): Promise<DeliveryOutcome>
}

/** Main thread: answers the actor thread's sends for custom types on `port`. */
export function serveCustomTypes(port: MessagePort, writeLine: (line: string) => void): void {
  const host: CustomTypeHost = {
    async send(entry, event, timeoutMs) {
      let notifier
      try {
        notifier = createNotifier(entry, { writeLine })
      } catch (error) {
        return { kind: 'permanent', error: scrub(toPlainError(error).message) }
      }
      // The same rules as the actor thread's attempt, with the time that attempt allows.
      return (await sendOnce(notifier, event, { timeoutMs })).outcome
    },
  }
  expose(host, portEndpoint(port))
  // Answering must never keep the process alive by itself.
  port.unref()
}

/** Actor thread: registers a stand-in for each custom type name not known here yet. */
export function registerRemoteTypes(port: MessagePort, names: readonly string[]): void {
  const remote: Remote<CustomTypeHost> = (remoteByPort.get(port) as Remote<CustomTypeHost> | undefined) ?? wrap<CustomTypeHost>(portEndpoint(port))
  remoteByPort.set(port, remote)
  port.unref()
  for (const type of names) {
    if (findNotifierType(type) !== undefined) continue
    registerNotifierType({
      type,
      secretArguments: [],
      // Checked by the registering thread when the notifier was configured.
      validate: (args) => args,
      create: (entry) => ({
        entry,
        render: () => '',
        // The attempt's own time limit travels with it; the actor thread's sendOnce enforces it here too.
        send: (event, _rendered, _signal, context) => remote.send(entry, event, context?.timeoutMs ?? 10_000),
      }),
    })
  }
}

const remoteByPort = new WeakMap<MessagePort, unknown>()
