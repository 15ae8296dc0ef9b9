/**
 * comlink over a Node `MessagePort`. Neither of comlink's bundled Node adapters type-checks
 * under NodeNext, and a Node port delivers `MessageEvent`s through `addEventListener`, which is
 * what comlink wants; this adapter only fixes the types.
 * @module
 */
import type { Endpoint } from 'comlink'
import type { MessagePort } from 'node:worker_threads'

type Listener = Parameters<Endpoint['addEventListener']>[1]

export function portEndpoint(port: MessagePort): Endpoint {
  const target = port as unknown as { addEventListener(t: string, l: Listener): void; removeEventListener(t: string, l: Listener): void }
  return {
    postMessage: (message: unknown, transfer?: unknown[]) => port.postMessage(message, transfer as never),
    addEventListener: (type: string, listener: Listener) => target.addEventListener(type, listener),
    removeEventListener: (type: string, listener: Listener) => target.removeEventListener(type, listener),
    start: () => port.start(),
  }
}
