/**
 * The daemon's HTTP face (`aim-watcher start --http HOST:PORT`): the status page, the JSON API,
 * Prometheus metrics, health and readiness, on `node:http`.
 *
 * | route | needs | answer |
 * | --- | --- | --- |
 * | `GET /`, `/app.js`, `/app.css` | public | the page (no run data in it) |
 * | `GET /healthz` | public | 200 while the process serves |
 * | `GET /readyz[?repo=ROOT]` | public | 200 when this daemon is the sender of every repo (or of ROOT), else 503 |
 * | `GET /metrics` | read | Prometheus text exposition |
 * | `GET /api/v1/status` | read | the daemon and its repos |
 * | `GET /api/v1/runs`, `/api/v1/runs/:hash` | read | runs |
 * | `GET /api/v1/notifiers`, `/api/v1/mutes` | read | notifiers (redacted), mutes |
 * | `GET /api/v1/events` | read | live updates (server-sent events) |
 * | `POST /api/v1/runs/:hash/mute`, `DELETE /api/v1/runs/:hash/mute` | write | mute, unmute |
 *
 * Errors are JSON, `{"error": {"code": "AIM_STATUS_…", "message": "…"}}`, with the HTTP status
 * of their code. Bounded: request headers 16 KiB and 10 s, a whole request 15 s, bodies 16 KiB,
 * 256 connections, {@link MAX_STREAMS} live streams. Access: see `access.ts`.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { SESSION_PATH } from '../../session/protocol.js'
import type { SessionHub } from '../session/hub.js'
import { refuseUpgrade } from '../session/refuse.js'
import { endUpgraded, trackSockets } from '../session/unix-socket.js'
import { AimStatusError, ErrorCodes, toPlainError } from '../../errors.js'
import type { OwnerInfo } from '../../state/owner.js'
import type { DaemonLog } from '../log.js'
import type { RepoWatch } from '../repo-watch.js'
import { Access, type AccessOptions, type Need } from './access.js'
import { Api } from './api.js'
import { LiveFeed, MAX_STREAMS } from './live-feed.js'
import { DaemonMetrics } from './metrics.js'
import { PAGE_CSS, PAGE_JS, pageHtml } from './page.js'
import { StatusModel } from './status-model.js'

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 16 * 1024

/** Options of {@link HttpFace.start}. */
export interface HttpFaceOptions extends AccessOptions {
  repos: readonly RepoWatch[]
  /** The daemon's identity (shown in `/api/v1/status`). */
  owner: OwnerInfo
  /** Staleness to judge snapshots by while a repo stands by (the daemon's `staleMs`). */
  staleMs: number
  log: DaemonLog
  /** Where session upgrades on {@link SESSION_PATH} go. Default: none (the path answers 404). */
  sessions?: SessionHub
  /** A certificate and its key (PEM): the face is served over HTTPS (sessions over `wss://`). Default: none (plain HTTP). */
  tls?: { cert: string | Buffer; key: string | Buffer }
}

const STATUS_OF: Partial<Record<string, number>> = {
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.METHOD_NOT_ALLOWED]: 405,
  [ErrorCodes.BAD_REQUEST]: 400,
  [ErrorCodes.INVALID_OPTION]: 400,
  [ErrorCodes.OUT_OF_RANGE]: 400,
  [ErrorCodes.INVALID_ID]: 400,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCodes.UNSUPPORTED_MEDIA_TYPE]: 415,
  [ErrorCodes.UNAUTHORIZED]: 401,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.LOCKED]: 503,
  [ErrorCodes.BUSY]: 503,
}

type Handler = (request: IncomingMessage, response: ServerResponse, match: RegExpExecArray, query: URLSearchParams) => Promise<void>
interface Route {
  method: 'GET' | 'POST' | 'DELETE'
  path: RegExp
  need: Need
  handle: Handler
}

const COMMON_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' }
const PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

function sendJson(response: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...extra })
  response.end(text)
}

function sendText(response: ServerResponse, contentType: string, text: string, extra: Record<string, string> = {}): void {
  response.writeHead(200, { ...COMMON_HEADERS, 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...extra })
  response.end(text)
}

/** Reads a JSON body of at most {@link MAX_BODY_BYTES}. */
async function readJson(request: IncomingMessage): Promise<unknown> {
  const type = request.headers['content-type'] ?? ''
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new AimStatusError(ErrorCodes.UNSUPPORTED_MEDIA_TYPE, 'Send the body as Content-Type: application/json')
  const declared = Number(request.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new AimStatusError(ErrorCodes.PAYLOAD_TOO_LARGE, `A body may hold at most ${MAX_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new AimStatusError(ErrorCodes.PAYLOAD_TOO_LARGE, `A body may hold at most ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new AimStatusError(ErrorCodes.BAD_REQUEST, `The body is not valid JSON (${(error as Error).message})`)
  }
}

/** The HTTP face of a daemon. */
export class HttpFace {
  readonly model: StatusModel
  readonly metrics: DaemonMetrics
  readonly access: Access
  readonly #server: Server
  readonly #api: Api
  readonly #feed: LiveFeed
  readonly #options: HttpFaceOptions
  readonly #routes: Route[]
  #closing: Promise<void> | null = null

  private constructor(options: HttpFaceOptions) {
    this.#options = options
    // First: a refused address must refuse before anything else is set up.
    this.access = new Access(options)
    this.metrics = new DaemonMetrics()
    this.model = new StatusModel({
      repos: options.repos,
      staleMs: options.staleMs,
      onTransition: (repo, kind, muted) => this.metrics.transition(repo, kind, muted),
      onEvent: (repo, event, muted) => this.metrics.event(repo, event, muted),
      onReport: (repo, report) => this.metrics.report(repo, report),
    })
    this.metrics.attach(this.model)
    this.#api = new Api(this.model)
    this.#feed = new LiveFeed(this.model, this.#api)
    this.#routes = this.#table()
    const serverOptions = { maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 15_000, keepAliveTimeout: 5_000 }
    const serve = (request: IncomingMessage, response: ServerResponse): void => void this.#serve(request, response)
    this.#server = options.tls !== undefined ? createTlsServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key }, serve) : createServer(serverOptions, serve)
    this.#server.maxConnections = 256
    trackSockets(this.#server)
    this.#server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head))
  }

  /**
   * Checks the access rules (`AIM_STATUS_TOKEN_REQUIRED` off loopback without a token file),
   * listens, and takes the first look at the repos. Rejects when the address cannot be bound.
   */
  static async start(options: HttpFaceOptions): Promise<HttpFace> {
    const face = new HttpFace(options)
    await new Promise<void>((resolve, reject) => {
      face.#server.once('error', reject)
      face.#server.listen(options.listen.port, options.listen.host, () => {
        face.#server.off('error', reject)
        resolve()
      })
    })
    face.#server.on('error', (error) => options.log.error('http-error', { error: error.message }))
    await face.model.refresh()
    options.log.info('http-listening', { url: face.url, token: face.access.hasToken, publicRead: face.access.publicRead })
    return face
  }

  /** The address it listens on. */
  get address(): AddressInfo {
    return this.#server.address() as AddressInfo
  }

  /** `http://host:port` of the face (`https://` with TLS). */
  get url(): string {
    const { address, port, family } = this.address
    return `${this.#options.tls !== undefined ? 'https' : 'http'}://${family === 'IPv6' ? `[${address}]` : address}:${port}`
  }

  /** A session's upgrade: access checked as a mutation's, refused with a JSON answer before any handshake. */
  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    try {
      const url = new URL(request.url ?? '/', 'http://face.invalid')
      const sessions = this.#options.sessions
      if (url.pathname !== SESSION_PATH || sessions === undefined) throw new AimStatusError(ErrorCodes.NOT_FOUND, `No route ${url.pathname}`)
      this.access.check(request, 'write')
      sessions.upgrade(request, socket, head, 'tcp')
    } catch (error) {
      const plain = toPlainError(error)
      const status = STATUS_OF[plain.code ?? ''] ?? 500
      if (status === 500) this.#options.log.error('http-error', { method: 'UPGRADE', path: request.url ?? '', code: plain.code, error: plain.message })
      refuseUpgrade(socket, status, status === 500 ? ErrorCodes.INTERNAL : (plain.code as string), status === 500 ? 'Internal error (see the daemon log)' : plain.message)
    }
  }

  /** Stops listening, ends live streams and open connections. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#feed.close()
      this.model.close()
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
      this.#server.closeAllConnections()
      await endUpgraded(this.#server, closed)
    })()
    return this.#closing
  }

  #table(): Route[] {
    const api = this.#api
    const json =
      (produce: (match: RegExpExecArray, query: URLSearchParams, request: IncomingMessage) => Promise<unknown>): Handler =>
      async (request, response, match, query) =>
        sendJson(response, 200, await produce(match, query, request))
    return [
      {
        method: 'GET',
        path: /^\/$/,
        need: 'public',
        handle: async (_q, response) => sendText(response, 'text/html; charset=utf-8', pageHtml(this.access.csrfToken), { 'content-security-policy': PAGE_POLICY, 'x-frame-options': 'DENY' }),
      },
      { method: 'GET', path: /^\/app\.js$/, need: 'public', handle: async (_q, response) => sendText(response, 'text/javascript; charset=utf-8', PAGE_JS) },
      { method: 'GET', path: /^\/app\.css$/, need: 'public', handle: async (_q, response) => sendText(response, 'text/css; charset=utf-8', PAGE_CSS) },
      { method: 'GET', path: /^\/healthz$/, need: 'public', handle: async (_q, response) => sendJson(response, 200, { ok: true }) },
      { method: 'GET', path: /^\/readyz$/, need: 'public', handle: async (_q, response, _m, query) => this.#ready(response, query) },
      {
        method: 'GET',
        path: /^\/metrics$/,
        need: 'read',
        handle: async (_q, response) => {
          const { text, contentType } = await this.metrics.render()
          sendText(response, contentType, text)
        },
      },
      { method: 'GET', path: /^\/api\/v1\/status$/, need: 'read', handle: json(async () => this.#status()) },
      { method: 'GET', path: /^\/api\/v1\/runs$/, need: 'read', handle: async (_q, response, _m, query) => sendText(response, 'application/json; charset=utf-8', await api.runsText(query)) },
      { method: 'GET', path: /^\/api\/v1\/runs\/([^/]+)$/, need: 'read', handle: json((m, query) => api.run(decodeURIComponent(m[1] as string), query)) },
      { method: 'GET', path: /^\/api\/v1\/notifiers$/, need: 'read', handle: json(() => api.notifiers()) },
      { method: 'GET', path: /^\/api\/v1\/mutes$/, need: 'read', handle: json(() => api.mutes()) },
      {
        method: 'GET',
        path: /^\/api\/v1\/events$/,
        need: 'read',
        handle: async (_q, response) => {
          if (this.#feed.full) throw new AimStatusError(ErrorCodes.BUSY, `At most ${MAX_STREAMS} live streams at once`)
          await this.#feed.open(response)
        },
      },
      { method: 'POST', path: /^\/api\/v1\/runs\/([^/]+)\/mute$/, need: 'write', handle: json(async (m, _query, request) => api.mute(decodeURIComponent(m[1] as string), await readJson(request))) },
      { method: 'DELETE', path: /^\/api\/v1\/runs\/([^/]+)\/mute$/, need: 'write', handle: json((m, query) => api.unmute(decodeURIComponent(m[1] as string), query)) },
    ]
  }

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const url = new URL(request.url ?? '/', 'http://face.invalid')
      const matching = this.#routes.filter((route) => route.path.test(url.pathname))
      if (matching.length === 0) throw new AimStatusError(ErrorCodes.NOT_FOUND, `No route ${url.pathname}`)
      const method = request.method === 'HEAD' ? 'GET' : request.method
      const route = matching.find((r) => r.method === method)
      if (route === undefined) {
        response.setHeader('allow', [...new Set(matching.map((r) => r.method))].join(', '))
        throw new AimStatusError(ErrorCodes.METHOD_NOT_ALLOWED, `${request.method} is not allowed on ${url.pathname}`)
      }
      this.access.check(request, route.need)
      await route.handle(request, response, route.path.exec(url.pathname) as RegExpExecArray, url.searchParams)
    } catch (error) {
      this.#fail(request, response, error)
    }
  }

  #fail(request: IncomingMessage, response: ServerResponse, error: unknown): void {
    const plain = toPlainError(error)
    const status = STATUS_OF[plain.code ?? ''] ?? 500
    if (status === 500) this.#options.log.error('http-error', { method: request.method ?? '', path: request.url ?? '', code: plain.code, error: plain.message })
    if (response.headersSent) {
      response.destroy()
      return
    }
    const code = status === 500 && plain.code === undefined ? ErrorCodes.INTERNAL : plain.code
    const extra: Record<string, string> = status === 401 ? { 'www-authenticate': 'Bearer realm="aim-watcher"' } : {}
    // The rest of an oversized body is not read: the connection closes after the answer.
    if (status === 413) extra['connection'] = 'close'
    sendJson(response, status, { error: { code, message: status === 500 && plain.code === undefined ? "Internal error (see the daemon's log)" : plain.message } }, extra)
  }

  #ready(response: ServerResponse, query: URLSearchParams): void {
    const only = query.get('repo')
    const repos = this.#options.repos.filter((r) => only === null || r.root === only)
    if (repos.length === 0) throw new AimStatusError(ErrorCodes.NOT_FOUND, `This daemon does not watch ${only}`)
    const states = repos.map((r) => ({ repo: r.root, state: r.state }))
    const ready = states.every((s) => s.state === 'active')
    sendJson(response, ready ? 200 : 503, { ready, repos: states })
  }

  async #status(): Promise<unknown> {
    const { owner } = this.#options
    return { version: 1, daemon: { pid: owner.pid, host: owner.host, id: owner.id }, repos: this.model.repoStates(), serverTime: new Date().toISOString() }
  }
}
