/**
 * The one scrubber: how secrets are shown (never in full, the last 4 characters at most) and how
 * every text that leaves the process (logs, the status file, CLI output, exceptions, events) is
 * cleaned of them. A leaf module (it imports nothing), so that the HTTP helper, the notifier
 * types, the registry, the daemon's log and the CLI can all use it without importing one another.
 *
 * It knows every configured secret: the registry adds each notifier's secrets
 * ({@link rememberSecrets}) when an entry is validated or a notifier created, so a text that
 * names one anywhere (an error body echoing the request path, a Graph error quoting the token)
 * is scrubbed wherever it goes. A URL's secret parts are its userinfo, its path and query as a
 * whole, and every path segment or query value that looks like a token. Redaction always comes
 * before truncation ({@link scrubAndCut}): a token crossing the cut cannot leak its prefix.
 * @module
 */

/** Secrets (and parts of secrets) shorter than this are not searched for in texts. */
export const MIN_SCRUBBED_LENGTH = 6

/** How many characters of a secret may be shown: its last ones, so its owner can recognise it. */
export const SHOWN_CHARACTERS = 4

const URL_PATTERN = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#@]*@)?([^/?#]*)(.*)$/i

/**
 * Shows a secret so that its owner can recognise it and nobody can use it: at most the last 4
 * characters of a long value, nothing of a short one. URLs keep their scheme and host (never
 * their userinfo).
 */
export function redactSecret(value: unknown): string {
  const text = String(value)
  const url = URL_PATTERN.exec(text)
  if (url) {
    const rest = url[3] ?? ''
    return `${url[1]}${url[2]}/…${text.length > 12 && rest.length > SHOWN_CHARACTERS ? rest.slice(-SHOWN_CHARACTERS) : ''}`
  }
  return text.length >= 16 ? `…${text.slice(-SHOWN_CHARACTERS)}` : '…'
}

/** Whether a URL's path segment or query value looks like a credential rather than a word. */
const looksLikeToken = (part: string): boolean => part.length >= MIN_SCRUBBED_LENGTH && (/\d/.test(part) || part.length >= 16 || /[A-Z].*[a-z]|[a-z].*[A-Z]/.test(part))

function withEncodings(value: string): string[] {
  const out = [value]
  try {
    out.push(encodeURIComponent(value), decodeURIComponent(value))
  } catch {
    // Not valid percent-encoding: the value as given is enough.
  }
  return out
}

/**
 * A secret and the parts of it that must not appear either. For a URL: the URL, its userinfo
 * (and password), its path with the query, its query, and every segment or value that looks like
 * a token (Slack's `/services/T…/B…/XXXX`, a `?token=` value), each also URL-encoded and decoded.
 */
export function secretParts(value: string): string[] {
  if (typeof value !== 'string' || value === '') return []
  const parts = new Set<string>(withEncodings(value))
  const url = URL_PATTERN.exec(value)
  if (url !== null) {
    const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#@]*)@/i.exec(value)?.[1]
    if (userinfo !== undefined && userinfo !== '') {
      parts.add(userinfo)
      const password = userinfo.split(':').slice(1).join(':')
      if (password !== '') for (const p of withEncodings(password)) parts.add(p)
    }
    const rest = (url[3] ?? '').replace(/#.*$/, '')
    if (rest.length > 1) {
      parts.add(rest)
      const [path = '', query = ''] = rest.split('?')
      if (path.length > 1) parts.add(path)
      if (query !== '') parts.add(query)
      for (const segment of path.split('/')) if (looksLikeToken(segment)) for (const p of withEncodings(segment)) parts.add(p)
      for (const pair of query.split('&')) {
        const v = pair.slice(pair.indexOf('=') + 1)
        if (v.length >= MIN_SCRUBBED_LENGTH) for (const p of withEncodings(v)) parts.add(p)
      }
    }
  }
  return [...parts].filter((p) => p.length >= MIN_SCRUBBED_LENGTH)
}

/** Every configured secret this process has seen, in all its parts. */
const known = new Set<string>()
/** The known parts, longest first (rebuilt when a secret is added). */
let ordered: string[] = []

/**
 * Makes the scrubber know these secrets from now on (a notifier's URL, token, header values,
 * signing secret). Idempotent; values too short to search for are ignored.
 */
export function rememberSecrets(values: Iterable<unknown>): void {
  let added = false
  for (const value of values) {
    if (typeof value !== 'string') continue
    for (const part of secretParts(value)) {
      if (known.has(part)) continue
      known.add(part)
      added = true
    }
  }
  if (added) ordered = [...known].sort((a, b) => b.length - a.length)
}

/** URL userinfo anywhere in a text: hidden even when the URL is not a configured secret. */
const USERINFO_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@'"]+@/gi

/**
 * Replaces every known secret (and every `extra` one) in a text by its redacted form, and hides
 * the userinfo of any URL. Longest first, so that a secret inside a URL does not break the URL's
 * replacement. Never throws; a non-string is turned into text first.
 */
export function scrub(text: unknown, extra: readonly string[] = []): string {
  let out = typeof text === 'string' ? text : String(text)
  const candidates = extra.length === 0 ? ordered : [...new Set([...ordered, ...extra.flatMap((s) => secretParts(s))])].sort((a, b) => b.length - a.length)
  for (const secret of candidates) {
    if (out.includes(secret)) out = out.split(secret).join(redactSecret(secret))
  }
  return out.replace(USERINFO_IN_TEXT, '$1…@')
}

/** {@link scrub}, then cut to `max` characters: redaction first, so no secret is cut in two. */
export function scrubAndCut(text: unknown, max: number, extra: readonly string[] = []): string {
  const clean = scrub(text, extra)
  return clean.length > max ? `${clean.slice(0, Math.max(0, max - 3))}...` : clean
}

/**
 * Replaces the URL and every named secret in a text by their redacted forms (the known
 * secrets too). Kept for callers that name the URL apart.
 */
export function scrubSecrets(text: string, url: string, secrets: readonly string[] = []): string {
  return scrub(text, [url, ...secrets])
}

/**
 * Scrubs an error in place (message and stack) and returns it: for exceptions that leave the
 * process (events, logs, a CLI's message). The object stays the same, so its class and code do.
 */
export function scrubError<E>(error: E): E {
  if (error instanceof Error) {
    try {
      error.message = scrub(error.message)
      if (typeof error.stack === 'string') error.stack = scrub(error.stack)
    } catch {
      // A frozen error: nothing to do.
    }
  }
  return error
}
