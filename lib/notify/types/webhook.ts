/**
 * The `webhook` notifier: a JSON document describing the event, POSTed to any URL, optionally
 * signed. Not in Python Aim; its entries are skipped there with a warning, as Aim skips any
 * unknown type.
 *
 * The request: `POST <url>`, `Content-Type: application/json`, the configured `headers`,
 * `Idempotency-Key: <event key>` (the same for every attempt and every owner, so a receiver can
 * drop the copy that a timed-out attempt may have delivered), and with a `secret` the header `X-Aim-Signature: sha256=<hex>`: the HMAC-SHA256 of the exact body bytes
 * keyed by the secret. A receiver verifies it by computing the same HMAC over the raw body and
 * comparing in constant time (`crypto.timingSafeEqual`); `at` in the signed body lets it refuse
 * old replays. The body is a {@link WebhookDocument}.
 *
 * 2xx is delivered; 429 and 5xx are transient (with `Retry-After`); redirects and other 4xx
 * are permanent.
 * @module
 */
import { createHmac } from 'node:crypto'
import type { NotifierType } from '../contract.js'
import type { FinishOn, RunEvent, RunEventKind, RunOrigin, RunStatus, SessionState } from '../../model.js'
import { silentRanksOf } from '../template.js'
import { httpNotifier } from '../http-notifier.js'
import { redactSecret } from '../redact.js'
import { checkMessageArgument, invalidArgument } from './arguments.js'
import { checkHttpUrl } from './url-argument.js'

/** The header that carries the body's signature. */
export const SIGNATURE_HEADER = 'X-Aim-Signature'

/** The header that carries the event key (draft-ietf-httpapi-idempotency-key-header). */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key'

/**
 * The body of a webhook request (`version` 1). Times are ISO 8601 strings in UTC.
 * New fields may be added within a version; a field's meaning never changes within one.
 */
export interface WebhookDocument {
  /** The document's format version: 1. */
  version: 1
  /** What happened: `started`, `stalled`, `recovered`, `finished` or `failed`. */
  event: RunEventKind
  /**
   * The same for every delivery of this transition, different for any other: deduplicate on it.
   * A Node run's is `<hash>@<startedAt>/<kind>` (`started`, `finished`, `failed`) or
   * `<hash>@<startedAt>/<kind>/<episode>` (`stalled`, `recovered`), `startedAt` in whole epoch
   * milliseconds; a Python Aim run's is `<hash>@aim/<kind>/<idx>`. Built by `eventKey` and read by `parseEventKey`.
   */
  key: string
  /** When the transition happened. */
  at: string
  /** The rendered message template (what Slack would show). */
  message: string
  run: {
    hash: string
    name?: string
    experiment?: string
    status: RunStatus
    startedAt: string
    lastProgressAt: string
    /** Seconds promised until the next report; 0 = no deadline. */
    expectNextIn: number
    /** When the next report was due, or null without a deadline. */
    deadlineAt: string | null
    /** Seconds allowed past the deadline. */
    grace: number
    /** Stall episode number. */
    episode: number
    /** Why the run failed, when it did. */
    reason?: string
    /** The last lines of its command's standard error, secrets scrubbed, when it failed with them (`aim-watcher run`). */
    logTail?: string
    /** Where a run reporting over a session reports from. */
    origin?: RunOrigin
    /** A run of many ranks: how many ranks make it up. */
    worldSize?: number
    /** A run of many ranks: when it counts as finished. */
    finishOn?: FinishOn
    /** A run of many ranks: each rank that joined, by rank number. */
    ranks?: WebhookRank[]
    /** A run of many ranks: the numbers of its silent ranks, first silent first (empty when none is). */
    silentRanks?: number[]
  }
  /** Absolute path of the repo root. */
  repo: string
  /** Host and process id of the watcher that saw the transition. */
  host: string
  pid: number
  /** For stalls: seconds past the deadline when it was declared; otherwise null. */
  overdueSeconds: number | null
}

/** One rank of a run of many ranks in a {@link WebhookDocument}. */
export interface WebhookRank {
  rank: number
  host: string
  pid: number
  status: RunStatus
  lastProgressAt: string
  /** Seconds promised until its next report; 0 = no deadline. */
  expectNextIn: number
  deadlineAt: string | null
  session: SessionState
  /** Why it failed, when it did. */
  reason?: string
}

/** The document sent for an event. */
export function webhookDocument(event: RunEvent, message: string): WebhookDocument {
  const iso = (ms: number): string => new Date(ms).toISOString()
  const { run } = event
  return {
    version: 1,
    event: event.kind,
    key: event.key,
    at: iso(event.at),
    message,
    run: {
      hash: run.hash,
      ...(run.name !== undefined ? { name: run.name } : {}),
      ...(run.experiment !== undefined ? { experiment: run.experiment } : {}),
      status: run.status,
      startedAt: iso(run.startedAt),
      lastProgressAt: iso(run.lastProgressAt),
      expectNextIn: run.expectNextIn,
      deadlineAt: run.deadlineAt === null ? null : iso(run.deadlineAt),
      grace: run.grace,
      episode: run.episode,
      ...(run.reason !== undefined ? { reason: run.reason } : {}),
      ...(run.logTail !== undefined ? { logTail: run.logTail } : {}),
      ...(run.origin !== undefined ? { origin: { ...run.origin } } : {}),
      ...(run.worldSize !== undefined ? { worldSize: run.worldSize } : {}),
      ...(run.finishOn !== undefined ? { finishOn: run.finishOn } : {}),
      ...(run.ranks !== undefined
        ? {
            ranks: run.ranks.map((rank) => ({
              rank: rank.rank,
              host: rank.host,
              pid: rank.pid,
              status: rank.status,
              lastProgressAt: iso(rank.lastProgressAt),
              expectNextIn: rank.expectNextIn,
              deadlineAt: rank.deadlineAt === null ? null : iso(rank.deadlineAt),
              session: rank.session,
              ...(rank.reason !== undefined ? { reason: rank.reason } : {}),
            })),
            silentRanks: silentRanksOf(run).map((rank) => rank.rank),
          }
        : {}),
    },
    repo: event.repo,
    host: event.host,
    pid: event.pid,
    overdueSeconds: event.overdueSeconds ?? null,
  }
}

/** `sha256=<hex>`: the value of {@link SIGNATURE_HEADER} for a body. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`
}

// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/
// Headers the request itself owns: letting a config set them would break the body or its signature.
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'transfer-encoding', 'host', 'connection', SIGNATURE_HEADER.toLowerCase(), IDEMPOTENCY_HEADER.toLowerCase()])

function checkHeaders(value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument('webhook', 'headers', 'must be an object of header name -> string value')
  const out: Record<string, string> = {}
  for (const [name, headerValue] of Object.entries(value)) {
    if (!HEADER_NAME.test(name)) throw invalidArgument('webhook', 'headers', `has an invalid header name ${JSON.stringify(name.slice(0, 40))}`)
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw invalidArgument('webhook', 'headers', `may not set ${name}: the notifier sets it`)
    // The value is not shown: headers carry credentials (Authorization).
    if (typeof headerValue !== 'string' || /[\r\n\0]/.test(headerValue)) throw invalidArgument('webhook', 'headers', `value of ${name} must be a string without line breaks`)
    out[name] = headerValue
  }
  return out
}

/**
 * Header values redacted, names kept: how `headers` should be shown (`notifiers list`, logs).
 * Every value is treated as a secret, since any header may carry a credential.
 */
export function redactHeaders(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (headers === null || typeof headers !== 'object') return out
  for (const [name, value] of Object.entries(headers)) out[name] = redactSecret(value)
  return out
}

export const webhookType: NotifierType = {
  type: 'webhook',
  // `headers` is an object: every value is a secret (see redactHeaders).
  secretArguments: ['url', 'secret', 'headers'],
  flags: [
    { flag: '--url', argument: 'url', required: true, secret: true, prompt: 'Webhook URL', placeholder: 'URL', description: 'webhook: the URL to POST to (secret)' },
    {
      flag: '--secret',
      argument: 'secret',
      required: false,
      secret: true,
      prompt: 'HMAC signing secret (empty: requests are not signed)',
      placeholder: 'SECRET',
      description: 'webhook: HMAC signing secret (secret; default: none, requests unsigned)',
    },
  ],
  validate(args) {
    const checked: Record<string, unknown> = { url: checkHttpUrl('webhook', 'url', args['url']) }
    if (args['headers'] !== undefined) checked['headers'] = checkHeaders(args['headers'])
    if (args['secret'] !== undefined) {
      if (typeof args['secret'] !== 'string' || args['secret'] === '') throw invalidArgument('webhook', 'secret', 'must be a non-empty string')
      checked['secret'] = args['secret']
    }
    return checkMessageArgument(args, checked)
  },
  create(entry) {
    const headers = (entry.arguments['headers'] ?? {}) as Record<string, string>
    const secret = typeof entry.arguments['secret'] === 'string' ? entry.arguments['secret'] : undefined
    return httpNotifier({
      entry,
      url: String(entry.arguments['url']),
      request(event, rendered) {
        const body = JSON.stringify(webhookDocument(event, rendered))
        const signature: Record<string, string> = secret === undefined ? {} : { [SIGNATURE_HEADER]: signBody(secret, body) }
        return { body, headers: { ...headers, [IDEMPOTENCY_HEADER]: event.key, ...signature } }
      },
      secrets: [...Object.values(headers), ...(secret === undefined ? [] : [secret])],
    })
  },
}
