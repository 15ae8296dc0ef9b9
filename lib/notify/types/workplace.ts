/**
 * The `workplace` notifier: a post in a Workplace group through the Graph API, as Python Aim
 * sends it: POST `<base_url>/v14.0/<group_id>/feed?access_token=<token>` with `{"message": …}`.
 *
 * The Graph API answers errors as `{"error": {"message", "type", "code", "is_transient"}}`
 * (https://developers.facebook.com/docs/graph-api/guides/error-handling). Rate limits (codes 4,
 * 17, 32, 613) and temporary failures (1, 2, or `is_transient: true`) are transient, whatever
 * the HTTP status (Graph sends rate limits as 400 or 403); OAuth and permission errors (190, 10,
 * 200–299) and any other 4xx are permanent; 5xx is transient.
 * @module
 */
import type { DeliveryOutcome, NotifierType } from '../contract.js'
import { classifyStatus, parseRetryAfter, type HttpAnswer } from '../http.js'
import { httpNotifier } from '../http-notifier.js'
import { checkMessageArgument, invalidArgument } from './arguments.js'
import { checkHttpUrl } from './url-argument.js'

/** Where Aim posts: the public Graph API. */
export const DEFAULT_GRAPH_BASE_URL = 'https://graph.facebook.com'

/** The Graph API version in Aim's request path. */
export const GRAPH_API_VERSION = 'v14.0'

/** Graph error codes that mean "later": unknown/temporary (1, 2) and throttling (4, 17, 32, 613). */
const TRANSIENT_GRAPH_CODES = new Set([1, 2, 4, 17, 32, 613])

/** What a Graph API answer means. */
export function classifyGraphAnswer(answer: HttpAnswer): DeliveryOutcome {
  if (answer.status >= 200 && answer.status < 300) return classifyStatus(answer)
  const error = readGraphError(answer.body)
  if (error === undefined) return classifyStatus(answer)
  const text = `HTTP ${answer.status}: Graph error ${error.code ?? '?'}${error.type ? ` (${error.type})` : ''}${error.message ? `: ${error.message}` : ''}`
  if (error.transient || (error.code !== undefined && TRANSIENT_GRAPH_CODES.has(error.code)) || answer.status === 429 || answer.status >= 500) {
    const retryAfterMs = parseRetryAfter(answer.headers.get('retry-after'))
    return retryAfterMs === undefined ? { kind: 'transient', error: text } : { kind: 'transient', error: text, retryAfterMs }
  }
  return { kind: 'permanent', error: text }
}

interface GraphError {
  code?: number
  type?: string
  message?: string
  transient: boolean
}

function readGraphError(body: string): GraphError | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return undefined
  }
  const error = (parsed as { error?: unknown } | null)?.error
  if (error === null || typeof error !== 'object') return undefined
  const { code, type, message, is_transient } = error as Record<string, unknown>
  return {
    ...(typeof code === 'number' ? { code } : {}),
    ...(typeof type === 'string' ? { type } : {}),
    // Already scrubbed by the HTTP helper (redaction before any cut): safe to shorten.
    ...(typeof message === 'string' ? { message: message.length > 200 ? `${message.slice(0, 197)}...` : message } : {}),
    transient: is_transient === true,
  }
}

/**
 * A group id: a positive integer, or a string of digits. A digit string is turned into a number
 * when that is exact; a longer one is kept as a string (Graph ids are 64-bit, past what a
 * JavaScript number holds exactly), which builds the same request path.
 */
function checkGroupId(value: unknown): number | string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) throw invalidArgument('workplace', 'group_id', `must be a positive integer, got ${value}`)
    return value
  }
  if (typeof value === 'string' && /^[0-9]{1,20}$/.test(value) && !/^0+$/.test(value)) {
    const number = Number(value)
    return Number.isSafeInteger(number) ? number : value
  }
  throw invalidArgument('workplace', 'group_id', 'must be a positive integer (or a string of digits)')
}

export const workplaceType: NotifierType = {
  type: 'workplace',
  aim: true,
  secretArguments: ['access_token'],
  flags: [
    { flag: '--group-id', argument: 'group_id', required: true, secret: false, prompt: 'Workplace group id', placeholder: 'N', description: 'workplace: the group id' },
    { flag: '--access-token', argument: 'access_token', required: true, secret: true, prompt: 'Workplace access token', placeholder: 'TOKEN', description: 'workplace: the access token (secret)' },
    { flag: '--base-url', argument: 'base_url', required: false, secret: false, prompt: 'Graph API base URL', placeholder: 'URL', description: `workplace: the Graph API base URL (default: ${DEFAULT_GRAPH_BASE_URL})` },
  ],
  secretsOf(args) {
    const token = String(args['access_token'])
    return [token, encodeURIComponent(token), requestUrl(args)]
  },
  validate(args) {
    const token = args['access_token']
    if (typeof token !== 'string' || !/^\S+$/.test(token)) throw invalidArgument('workplace', 'access_token', 'must be a non-empty string without spaces')
    const checked: Record<string, unknown> = { group_id: checkGroupId(args['group_id']), access_token: token }
    if (args['base_url'] !== undefined) checked['base_url'] = checkHttpUrl('workplace', 'base_url', args['base_url']).replace(/\/+$/, '')
    return checkMessageArgument(args, checked)
  },
  create(entry) {
    const token = String(entry.arguments['access_token'])
    return httpNotifier({
      entry,
      url: requestUrl(entry.arguments),
      request: (_event, rendered) => ({ body: JSON.stringify({ message: rendered }) }),
      secrets: [token, encodeURIComponent(token)],
      classify: classifyGraphAnswer,
    })
  },
}

/** Aim's request URL: `<base_url>/v14.0/<group_id>/feed?access_token=<token>`. */
function requestUrl(args: Record<string, unknown>): string {
  const base = typeof args['base_url'] === 'string' ? args['base_url'] : DEFAULT_GRAPH_BASE_URL
  return `${base}/${GRAPH_API_VERSION}/${encodeURIComponent(String(args['group_id']))}/feed?access_token=${encodeURIComponent(String(args['access_token']))}`
}
