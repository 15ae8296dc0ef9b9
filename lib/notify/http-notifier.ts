/**
 * The base of the HTTP notifier types: a type says what to POST for an event and what the
 * answer means; this owns the rest (templates compiled once, the request through the one HTTP
 * helper, secrets hidden from every error). A new HTTP type is one short file on it.
 * @module
 */
import type { DeliveryOutcome, Notifier, NotifierEntry, SendContext } from './contract.js'
import { entryRenderer } from './contract.js'
import type { RunEvent } from '../model.js'
import { postJson, type HttpAnswer } from './http.js'

/** What an HTTP type gives {@link httpNotifier}. */
export interface HttpNotifierSpec {
  entry: NotifierEntry
  /** Where to POST. A secret: never shown in full. */
  url: string
  /** The exact body (serialised JSON) and extra headers for one event and its rendered text. */
  request(event: RunEvent, rendered: string, context: SendContext | undefined): { body: string; headers?: Record<string, string> }
  /** What the answer means. Default: the status line (2xx delivered, 429/5xx transient, else permanent). */
  classify?: (answer: HttpAnswer) => DeliveryOutcome
  /** Values besides the URL to hide from error texts (tokens, header values, signing secrets). */
  secrets?: readonly string[]
}

/** A notifier that POSTs what `spec.request` builds. */
export function httpNotifier(spec: HttpNotifierSpec): Notifier {
  const { entry, url, classify, secrets = [] } = spec
  return {
    entry,
    render: entryRenderer(entry),
    send(event, rendered, signal, context) {
      const { body, headers } = spec.request(event, rendered, context)
      return postJson({ url, body, signal, secrets, ...(headers !== undefined ? { headers } : {}), ...(classify !== undefined ? { classify } : {}) })
    },
  }
}
