/**
 * The one HTTP helper of the notifiers: POST a JSON body with a timeout and keep-alive, and turn
 * whatever happens into a {@link DeliveryOutcome} instead of an exception. Each notifier type
 * passes its own `classify` for what the endpoint's answer means (Slack's `ok` body, the Graph
 * API's error codes); network errors, timeouts and aborts are classified here, once.
 *
 * Error texts never contain a URL or a secret in full: the answer's body is scrubbed (the URL,
 * its parts and every secret the caller names or the scrubber knows) before a `classify`
 * function sees it or anything cuts it, and the URL is shown through {@link redactSecret}.
 *
 * One timeout: the caller's signal (sendOnce's) bounds the exchange; only a caller without a
 * signal gets {@link DEFAULT_HTTP_TIMEOUT_MS} here.
 *
 * Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` (and their lower-case forms) are read for
 * every request, as Python's `requests` reads them (proxy-from-env decides; http-proxy-agent
 * forwards `http://` requests, https-proxy-agent tunnels `https://` ones with CONNECT).
 *
 * The client is loaded at the first request: node-fetch and the proxy agents weigh about 9 MiB
 * of a process's memory, and a daemon whose runs never stall never sends anything.
 * @module
 */
import type http from 'node:http'
import type { DeliveryOutcome } from './contract.js'
import { redactSecret, scrub, scrubAndCut } from './redact.js'

/** The time limit of a request made without a signal, response body included. */
export const DEFAULT_HTTP_TIMEOUT_MS = 10_000

/** A response body is read up to this size; a notifier's answer is a few bytes ("ok", a JSON error). */
export const MAX_RESPONSE_BYTES = 64 * 1024

/** The HTTP client: node-fetch and the agent for each request, loaded once, at the first request. */
interface Client {
  fetch: typeof import('node-fetch').default
  agentFor(url: URL): http.Agent
}

let client: Promise<Client> | null = null

function loadClient(): Promise<Client> {
  client ??= (async (): Promise<Client> => {
    const [{ default: fetch }, { default: nodeHttp }, { default: nodeHttps }, { HttpProxyAgent }, { HttpsProxyAgent }, { getProxyForUrl }] = await Promise.all([
      import('node-fetch'),
      import('node:http'),
      import('node:https'),
      import('http-proxy-agent'),
      import('https-proxy-agent'),
      import('proxy-from-env'),
    ])
    // Keep-alive: a burst of notifications (many runs stalling at once) reuses one connection per
    // endpoint. Node unrefs idle keep-alive sockets, so they never keep a process alive.
    const httpAgent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 8 })
    const httpsAgent = new nodeHttps.Agent({ keepAlive: true, maxSockets: 8 })
    /** One agent per proxy URL and scheme, kept (keep-alive to the proxy too). */
    const proxyAgents = new Map<string, http.Agent>()
    /**
     * The agent for a request: through the proxy the environment names for this URL, or direct.
     * Read per request, so a change of the environment applies to the next request.
     */
    const agentFor = (url: URL): http.Agent => {
      const proxy = getProxyForUrl(url.href)
      if (proxy === '') return url.protocol === 'https:' ? httpsAgent : httpAgent
      const key = `${url.protocol}${proxy}`
      let agent = proxyAgents.get(key)
      if (agent === undefined) {
        agent = url.protocol === 'https:' ? new HttpsProxyAgent(proxy, { keepAlive: true, maxSockets: 8 }) : new HttpProxyAgent(proxy, { keepAlive: true, maxSockets: 8 })
        proxyAgents.set(key, agent)
      }
      return agent
    }
    return { fetch, agentFor }
  })()
  return client
}

/** What the endpoint answered, as given to a `classify` function. */
export interface HttpAnswer {
  status: number
  /** Response headers, names in lower case. */
  headers: { get(name: string): string | null }
  /** The body as text, cut at {@link MAX_RESPONSE_BYTES} (empty when it could not be read). */
  body: string
}

/** One request of {@link postJson}. */
export interface PostJsonRequest {
  url: string
  /** The exact bytes to send (already serialised JSON, so that a signature can cover them). */
  body: string
  /** Extra request headers. `Content-Type: application/json` is always set. */
  headers?: Record<string, string>
  /** Time limit of the whole exchange. Default: none when `signal` is given (it carries the one timeout), else {@link DEFAULT_HTTP_TIMEOUT_MS}. */
  timeoutMs?: number
  /** Aborts the request: sendOnce's timeout, or the outbox's close. */
  signal?: AbortSignal
  /** Values to hide from error texts wherever they appear (tokens, signing secrets). The URL is always hidden. */
  secrets?: readonly string[]
  /** What the answer means. Default {@link classifyStatus}. */
  classify?: (answer: HttpAnswer) => DeliveryOutcome
}

/**
 * Reads a `Retry-After` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3). Returns
 * milliseconds from `nowMs`, never negative, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value == null) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowMs)
}

/** The status line as an outcome: 2xx delivered; 429 and 5xx transient (with `Retry-After`); anything else permanent. */
export function classifyStatus(answer: HttpAnswer, describe: string = shortBody(answer.body)): DeliveryOutcome {
  const { status } = answer
  if (status >= 200 && status < 300) return { kind: 'delivered', detail: `HTTP ${status}` }
  const error = `HTTP ${status}${describe === '' ? '' : `: ${describe}`}`
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(answer.headers.get('retry-after'))
    return retryAfterMs === undefined ? { kind: 'transient', error } : { kind: 'transient', error, retryAfterMs }
  }
  // 3xx lands here too: redirects are not followed, so that a body or signature meant for one
  // endpoint is never replayed to another.
  return { kind: 'permanent', error }
}

/** A body cut to one short line for an error text, scrubbed before it is cut. */
export function shortBody(body: string): string {
  return scrubAndCut(body.replace(/\s+/g, ' ').trim(), 200)
}

/**
 * Loads the HTTP client now, as the first request would. For a caller whose first send must not
 * wait for the load (tens of ms): a test that moves a manual clock while real requests travel.
 */
export async function loadHttpClient(): Promise<void> {
  await loadClient()
}

/** POSTs a JSON body and classifies the result. Never throws, never rejects. */
export async function postJson(request: PostJsonRequest): Promise<DeliveryOutcome> {
  const { url, secrets = [], classify = classifyStatus } = request
  const hidden = [url, ...secrets]
  const timeoutMs = request.timeoutMs ?? (request.signal === undefined ? DEFAULT_HTTP_TIMEOUT_MS : undefined)
  const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)
  const signal = timeout === undefined ? (request.signal as AbortSignal) : request.signal === undefined ? timeout : AbortSignal.any([timeout, request.signal])
  const where = redactSecret(url)
  try {
    const { fetch, agentFor } = await loadClient()
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...request.headers, 'Content-Type': 'application/json' },
      body: request.body,
      signal,
      redirect: 'manual',
      size: MAX_RESPONSE_BYTES,
      agent: agentFor,
    })
    let body = ''
    try {
      body = await response.text()
    } catch (error) {
      // A body too large, or cut off: the status line still says what happened, unless the
      // exchange was aborted (the caught error then is the abort, handled below).
      if (signal.aborted) throw error
    }
    // Scrubbed before anything reads or cuts it: an error body may echo the request path.
    const outcome = classify({ status: response.status, headers: response.headers, body: scrub(body, hidden) })
    return outcome.kind === 'delivered' ? outcome : { ...outcome, error: `${scrub(outcome.error, hidden)} (${where})` }
  } catch (error) {
    if (timeout?.aborted === true) return { kind: 'transient', error: `no answer within ${timeoutMs} ms (${where})` }
    if (request.signal?.aborted) return { kind: 'transient', error: `aborted (${where})` }
    return { kind: 'transient', error: `${scrub(describeNetworkError(error), hidden)} (${where})` }
  }
}

/** A network error in a few words: its code when it has one (ECONNREFUSED, ENOTFOUND), else its message. */
function describeNetworkError(error: unknown): string {
  const err = error as { code?: unknown; errno?: unknown; message?: unknown; type?: unknown }
  const code = typeof err.code === 'string' ? err.code : typeof err.errno === 'string' ? err.errno : undefined
  if (code !== undefined) return `network error ${code}`
  // node-fetch messages name the full URL; the caller scrubs it.
  return `request failed: ${typeof err.message === 'string' ? err.message : String(error)}`
}
