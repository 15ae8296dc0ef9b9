/**
 * Who may use the HTTP face, and how a request proves it.
 *
 * - Where it listens: loopback (`localhost`, `127.0.0.0/8`, `::1`) needs nothing; any other
 *   address (`0.0.0.0`, a LAN address, a host name) needs a token file, refused otherwise.
 * - With a token file, every mutation and (unless reads are public) every read needs
 *   `Authorization: Bearer <token>`, compared in constant time. The page shell, `/healthz` and
 *   `/readyz` are public: they hold no run data, and probes seldom carry credentials.
 * - Without one (loopback only), the `Host` header must name a loopback address, so that a web
 *   page on another site cannot reach the face through DNS rebinding.
 * - Mutations are refused when the browser says the request is cross-site (`Sec-Fetch-Site`,
 *   `Origin` naming another origin), must be JSON (a cross-site form cannot send that without a
 *   preflight, which is never granted: no CORS headers are ever sent), and a request from a
 *   browser without a bearer token must carry the page's CSRF token (`X-CSRF-Token`, embedded in
 *   the page this server served).
 * @module
 */
import { timingSafeEqual, createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'
import { AimStatusError, ErrorCodes, InvalidOptionError, OutOfRangeError, describeValue } from '../../errors.js'

/** Where to listen. */
export interface ListenAddress {
  host: string
  port: number
}

/** Whether an address or name is loopback: `localhost`, `127.0.0.0/8`, `::1`. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (bare.toLowerCase() === 'localhost') return true
  if (isIP(bare) === 4) return bare.split('.')[0] === '127'
  if (isIP(bare) === 6) return bare === '::1' || bare === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(bare)
  return false
}

/** Parses `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `localhost:0`); port 0 picks a free one. */
export function parseListenAddress(value: string): ListenAddress {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(value)
  if (match === null) throw new InvalidOptionError(`Expected --http to be HOST:PORT (such as 127.0.0.1:9465 or [::1]:9465), got ${describeValue(value)}`)
  const port = Number(match[2])
  if (port > 65535) throw new OutOfRangeError(`Expected the --http port to be 0 to 65535, got ${port}`)
  const host = match[1] as string
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port }
}

/** How the face is protected. */
export interface AccessOptions {
  /** Where it listens. */
  listen: ListenAddress
  /** A file holding the bearer token (one line, at least 16 characters, not readable by group or others). */
  tokenFile?: string
  /** Reads without the token (mutations still need it). Needs `tokenFile`. Default false. */
  publicRead?: boolean
}

const MIN_TOKEN = 16

/** Reads and checks a token file. */
export function readTokenFile(path: string): string {
  let text: string
  try {
    const info = statSync(path)
    // As ssh does with keys: a secret others can read is refused, not used.
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new AimStatusError(ErrorCodes.INVALID_OPTION, `--token-file ${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`)
    }
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if (error instanceof AimStatusError) throw error
    throw new AimStatusError(ErrorCodes.INVALID_OPTION, `--token-file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error })
  }
  const token = text.trim()
  if (token.length < MIN_TOKEN || /\s/.test(token)) throw new AimStatusError(ErrorCodes.INVALID_OPTION, `--token-file ${path} must hold one token of at least ${MIN_TOKEN} characters without spaces`)
  return token
}

/** What a route needs. */
export type Need = 'public' | 'read' | 'write'

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** The face's access rules, checked on every request. */
export class Access {
  readonly listen: ListenAddress
  readonly publicRead: boolean
  /** The CSRF token the page carries (random per daemon). */
  readonly csrfToken = randomBytes(24).toString('base64url')
  readonly #token: Buffer | null

  /** Throws `AIM_STATUS_TOKEN_REQUIRED` for a non-loopback address without a token file. */
  constructor(options: AccessOptions) {
    this.listen = options.listen
    if (options.publicRead === true && options.tokenFile === undefined) throw new InvalidOptionError('--http-public-read needs --token-file (without a token every read is public already)')
    if (options.tokenFile === undefined && !isLoopbackHost(options.listen.host)) {
      throw new AimStatusError(ErrorCodes.TOKEN_REQUIRED, `Listening on ${options.listen.host} (not loopback) needs --token-file FILE: anyone who reaches the address could read and mute runs`)
    }
    this.#token = options.tokenFile === undefined ? null : digest(readTokenFile(options.tokenFile))
    this.publicRead = options.publicRead === true
  }

  /** Whether a token protects the face. */
  get hasToken(): boolean {
    return this.#token !== null
  }

  /** Throws a coded error when the request may not do what the route does. */
  check(request: IncomingMessage, need: Need): void {
    const headers = request.headers
    if (this.#token === null && !isLoopbackHost(hostOf(headers.host))) {
      throw new AimStatusError(ErrorCodes.FORBIDDEN, `Host ${describeValue(headers.host ?? '')} is not a loopback name: refused (DNS rebinding)`)
    }
    const bearer = this.#bearer(headers.authorization)
    if (this.#token !== null && (need === 'write' || (need === 'read' && !this.publicRead)) && !bearer) {
      throw new AimStatusError(ErrorCodes.UNAUTHORIZED, "This needs Authorization: Bearer <token> (the daemon's --token-file)")
    }
    if (need !== 'write') return
    const site = headers['sec-fetch-site']
    if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new AimStatusError(ErrorCodes.FORBIDDEN, `Cross-site request refused (Sec-Fetch-Site: ${describeValue(site)})`)
    const origin = headers.origin
    // One port serves one scheme: the page over HTTPS (--tls-cert) is as much this origin as over HTTP.
    if (origin !== undefined && origin !== `http://${headers.host}` && origin !== `https://${headers.host}`) throw new AimStatusError(ErrorCodes.FORBIDDEN, `Cross-site request refused (Origin ${describeValue(origin)})`)
    const fromBrowser = origin !== undefined || site !== undefined || headers.cookie !== undefined
    if (fromBrowser && !bearer && !this.#csrfMatches(headers['x-csrf-token'])) throw new AimStatusError(ErrorCodes.FORBIDDEN, 'Missing or wrong X-CSRF-Token (reload the page)')
  }

  #bearer(header: string | undefined): boolean {
    if (this.#token === null || header === undefined) return false
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    return match !== null && timingSafeEqual(digest(match[1] as string), this.#token)
  }

  #csrfMatches(header: string | string[] | undefined): boolean {
    return typeof header === 'string' && timingSafeEqual(digest(header), digest(this.csrfToken))
  }
}

/** The host name of a `Host` header (`[::1]:80` → `::1`, `localhost:8080` → `localhost`). */
function hostOf(header: string | undefined): string {
  if (header === undefined) return ''
  const match = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(header)
  return match === null ? '' : (match[1] as string)
}
