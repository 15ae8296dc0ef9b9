/**
 * The `url` argument check shared by the HTTP notifier types.
 * @module
 */
import { invalidArgument } from './arguments.js'

/**
 * Checks that `value` is an absolute http(s) URL and returns it as given. The error text shows
 * neither the URL nor a part of it: a webhook URL is a secret.
 */
export function checkHttpUrl(type: string, name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw invalidArgument(type, name, 'must be a non-empty string')
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw invalidArgument(type, name, 'must be an absolute http:// or https:// URL')
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalidArgument(type, name, `must be an http:// or https:// URL, not ${parsed.protocol}`)
  return value
}
