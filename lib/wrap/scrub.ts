/**
 * Scrubs secrets from a wrapped command's output before it leaves the machine in a
 * notification. A traceback may print a request with its token, a URL with its password, or the
 * environment. Three nets, each redacted the way every secret is shown (`redactSecret`):
 * - the values of the command's environment variables whose names say they hold a secret
 *   (`HF_TOKEN`, `WANDB_API_KEY`, `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`, …), wherever they appear;
 * - `name=value` and `name: value` where the name says secret, `Bearer …`, passwords in URLs;
 * - token shapes that are secrets by themselves (Slack, GitHub, Hugging Face, AWS access keys,
 *   OpenAI-style `sk-…` keys, Slack webhook URLs).
 * @module
 */
import { MIN_SCRUBBED_LENGTH, redactSecret, scrubSecrets } from '../notify/redact.js'

/** Names of environment variables whose values are secrets. */
export const SECRET_NAME = /token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth/i

const ASSIGNED = /\b([A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*)(["']?\s*[=:]\s*["']?)([^\s"',;&]{4,})/gi
const BEARER = /\b(Bearer|Basic)\s+([A-Za-z0-9._~+/=-]{8,})/g
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^/\s:@]+):([^/\s@]+)@/gi
const TOKEN_SHAPES = [
  /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]+/g,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g,
  /\bgh[pousr]_[A-Za-z0-9]{30,}/g,
  /\bhf_[A-Za-z0-9]{30,}/g,
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g,
  /\bsk-[A-Za-z0-9_-]{20,}/g,
]

/** The values of `env` that are secrets by their variable's name (long enough to be searched for). */
export function environmentSecrets(env: NodeJS.ProcessEnv): string[] {
  const values: string[] = []
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value.length >= MIN_SCRUBBED_LENGTH && SECRET_NAME.test(name)) values.push(value)
  }
  return values
}

/** `text` with every secret it can recognise redacted; `secrets` are values known to be secrets. */
export function scrubOutput(text: string, secrets: readonly string[] = []): string {
  let out = scrubSecrets(text, '', secrets)
  out = out.replace(URL_PASSWORD, (_whole, before: string) => `${before}:…@`)
  out = out.replace(ASSIGNED, (whole, name: string, between: string, value: string) => (value.includes('…') ? whole : `${name}${between}${redactSecret(value)}`))
  out = out.replace(BEARER, (whole, scheme: string, value: string) => (value.includes('…') ? whole : `${scheme} ${redactSecret(value)}`))
  for (const shape of TOKEN_SHAPES) out = out.replace(shape, (token) => redactSecret(token))
  return out
}
