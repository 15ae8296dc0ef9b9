/**
 * How secrets are shown: never in full. A leaf module (it imports nothing), so that the HTTP
 * helper, the notifier types and the registry can all use it without importing one another.
 * @module
 */

/** Secrets shorter than this are not searched for in error texts. */
export const MIN_SCRUBBED_LENGTH = 6

/**
 * Shows a secret so that its owner can recognise it and nobody can use it: the first 4 and
 * last 4 characters of a long value, nothing of a short one. URLs keep their scheme and host.
 */
export function redactSecret(value: unknown): string {
  const text = String(value)
  const url = /^(https?:\/\/[^/?#]+)(.*)$/i.exec(text)
  if (url) return `${url[1]}/…${text.length > 12 ? text.slice(-4) : ''}`
  return text.length >= 16 ? `${text.slice(0, 4)}…${text.slice(-4)}` : '…'
}

/**
 * Replaces the URL and every named secret in a text by their redacted forms. Values shorter than
 * {@link MIN_SCRUBBED_LENGTH} are left alone: they match ordinary words by chance, and
 * {@link redactSecret} shows nothing of them anyway.
 */
export function scrubSecrets(text: string, url: string, secrets: readonly string[] = []): string {
  let out = text
  // Longest first, so that a secret inside the URL does not break the URL's replacement.
  for (const secret of [url, ...secrets].filter((s) => s.length >= MIN_SCRUBBED_LENGTH).sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join(redactSecret(secret))
  }
  return out
}
