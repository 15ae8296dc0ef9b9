/**
 * One session with a daemon (lib/session/protocol.ts), seen from a training process: it
 * connects to the first server of a list that answers (rotating through them with backoff, a
 * standby passing the turn at once), says `hello`, and keeps an outbound queue of run messages
 * numbered by `seq` that the daemon acknowledges cumulatively. After every reconnect it first
 * re-establishes the runs still active (what {@link SessionClientOptions.resume} gives: `open`
 * with `resume: true`, then the latest report), then replays every message not yet
 * acknowledged, in order. Every message is idempotent, so a replay is harmless.
 *
 * It never keeps the process alive on its own: sockets and timers are unref'd, and only while
 * someone waits for it (the first connect, an acknowledgement being awaited) does one ref'd
 * timer hold the event loop, so that `await run.reportSuccessfulFinish()` is not cut short.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { isIP, connect as netConnect, type NetConnectOpts } from 'node:net'
import { hostname } from 'node:os'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { AimStatusError, ErrorCodes } from '../errors.js'
import type { RunEvent } from '../model.js'
import { SESSION_PATH, SESSION_PROTOCOL, parseServerMessage, type ClientInfo, type ClientMessage } from '../session/protocol.js'

/** A run message before the session numbers it. */
export type RunMessage = Exclude<ClientMessage, { t: 'hello' } | { t: 'bye' }> extends infer M ? (M extends { seq: number } ? Omit<M, 'seq'> : never) : never

/** Default {@link SessionClientOptions.connectTimeoutMs}: how long the first connect may take, ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/** The first reconnect delay, ms; it doubles up to {@link MAX_BACKOFF_MS}. */
export const FIRST_BACKOFF_MS = 100
/** The longest reconnect delay, ms. */
export const MAX_BACKOFF_MS = 2000
/** How long an open socket may wait for `welcome`, ms. */
const WELCOME_TIMEOUT_MS = 5000
/** A daemon silent for this many heartbeats is taken for gone. */
const SILENT_HEARTBEATS = 3

/** Options of a {@link SessionClient}. */
export interface SessionClientOptions {
  /** The daemons to try, in order: `http(s)://host:port`, `ws(s)://host:port/path`, `unix:/abs/session.sock`. */
  urls: string[]
  /** Sent as `Authorization: Bearer <token>`. Default: none. */
  token?: string
  /** The repo root on the daemon's side, sent in `hello`. Default: the daemon's own repo. */
  repo?: string
  /** How long the first connect may take before {@link SessionClient.ready} rejects with `AIM_STATUS_SERVER_UNREACHABLE`, ms. Default 10 000. */
  connectTimeoutMs?: number
  /** The messages that re-establish the active runs after a reconnect (`open` with `resume`, then each one's latest report). */
  resume(): RunMessage[]
  /** An `event` frame from the daemon. */
  onEvent(event: RunEvent): void
  /** Trouble after the first connect (a refused token, a refused message, a bad frame): connecting goes on. */
  onError(error: Error): void
}

/** A queued message and whoever waits for its acknowledgement. */
interface Entry {
  message: RunMessage
  seq: number
  /** Made by {@link SessionClientOptions.resume}: regenerated, never replayed. */
  resume: boolean
  waiters: Waiter[]
}

/** Someone awaiting a message's acknowledgement: resolved by an ack, rejected by a refusal. */
interface Waiter {
  resolve(): void
  reject(error: Error): void
}

/** Turns one server of the list into what `ws` connects to. */
export function sessionTarget(url: string): string {
  if (url.startsWith('unix:')) return `ws+unix:${url.slice('unix:'.length)}:${SESSION_PATH}`
  const parsed = new URL(url)
  if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') return url
  const scheme = parsed.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${parsed.host}${SESSION_PATH}`
}

const unauthorized = (url: string): AimStatusError => new AimStatusError(ErrorCodes.UNAUTHORIZED, `The daemon at ${url} refused the session's token (or it needs one): set \`token\` or AIM_STATUS_TOKEN`)

/** The session of this process with one list of daemons. */
export class SessionClient {
  readonly #options: SessionClientOptions
  readonly #client: ClientInfo = { id: randomBytes(12).toString('hex'), host: hostname(), pid: process.pid }
  #queue: Entry[] = []
  #nextSeq = 1
  #socket: WebSocket | undefined
  /** The socket that said welcome; messages are written only on it. */
  #live: WebSocket | undefined
  #urlIndex = 0
  #backoff = FIRST_BACKOFF_MS
  #closed = false
  #everWelcomed = false
  #retry: NodeJS.Timeout | undefined
  #silence: NodeJS.Timeout | undefined
  #hold: NodeJS.Timeout | undefined
  #ready: Promise<void>
  #resolveReady!: () => void
  #rejectReady!: (error: Error) => void
  #firstPending = true
  /** Whom the last welcome came from, for messages. */
  #daemon: { host: string; pid: number; repo: string } | undefined

  constructor(options: SessionClientOptions) {
    if (options.urls.length === 0) throw new AimStatusError(ErrorCodes.INVALID_OPTION, 'A session needs at least one server')
    this.#options = options
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve
      this.#rejectReady = reject
    })
    this.#ready.catch(() => undefined)
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    const giveUp = setTimeout(() => this.#failFirst(new AimStatusError(ErrorCodes.SERVER_UNREACHABLE, `No daemon answered within ${timeoutMs} ms at ${options.urls.join(', ')}`)), timeoutMs)
    giveUp.unref()
    this.#ready.then(
      () => clearTimeout(giveUp),
      () => clearTimeout(giveUp),
    )
    this.#updateHold()
    this.#connect()
  }

  /** Resolves at the first welcome; rejects with `AIM_STATUS_UNAUTHORIZED` or `AIM_STATUS_SERVER_UNREACHABLE`. */
  ready(): Promise<void> {
    return this.#ready
  }

  /** The daemon that welcomed the session last, if any. */
  get daemon(): { host: string; pid: number; repo: string } | undefined {
    return this.#daemon
  }

  /** Queues a run message (sent at once when connected); resolves when the daemon acknowledged it. */
  send(message: RunMessage): Promise<void> {
    if (this.#closed) return Promise.resolve()
    const entry: Entry = { message, seq: this.#nextSeq++, resume: false, waiters: [] }
    this.#queue.push(entry)
    const acked = new Promise<void>((resolve, reject) => entry.waiters.push({ resolve, reject }))
    this.#write(entry)
    this.#updateHold()
    return acked
  }

  /**
   * Writes a message synchronously, as far as the socket takes it, for a dying process (see
   * lib/process-death.ts): no acknowledgement is awaited.
   */
  sendNow(message: RunMessage): void {
    const entry: Entry = { message, seq: this.#nextSeq++, resume: false, waiters: [] }
    this.#queue.push(entry)
    this.#write(entry)
  }

  /** Resolves when every message queued so far has been acknowledged (at once when none waits). */
  settle(): Promise<void> {
    const last = this.#queue[this.#queue.length - 1]
    if (last === undefined || this.#closed) return Promise.resolve()
    const acked = new Promise<void>((resolve, reject) => last.waiters.push({ resolve, reject }))
    this.#updateHold()
    return acked
  }

  /** Says goodbye (the daemon fails nothing) and closes; messages not yet acknowledged are dropped. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const live = this.#live
    if (live !== undefined && live.readyState === WebSocket.OPEN) {
      live.send(JSON.stringify({ t: 'bye' } satisfies ClientMessage))
      live.close(1000)
    } else this.#socket?.terminate()
    this.#stopTimers()
    for (const entry of this.#queue) for (const waiter of entry.waiters) waiter.resolve()
    this.#queue = []
    this.#failFirst(new AimStatusError(ErrorCodes.CLOSED, 'The session was closed before it connected'))
    this.#updateHold()
  }

  #stopTimers(): void {
    clearTimeout(this.#retry)
    clearTimeout(this.#silence)
    this.#retry = this.#silence = undefined
  }

  #failFirst(error: Error): void {
    if (!this.#firstPending) return
    this.#firstPending = false
    this.#rejectReady(error)
    if (!this.#closed) this.close()
  }

  /** One ref'd timer holds the event loop while anyone waits; nothing else ever does. */
  #updateHold(): void {
    const waiting = !this.#closed && (this.#firstPending || this.#queue.some((entry) => entry.waiters.length > 0))
    if (waiting && this.#hold === undefined) this.#hold = setInterval(() => undefined, 1 << 30)
    else if (!waiting && this.#hold !== undefined) {
      clearInterval(this.#hold)
      this.#hold = undefined
    }
  }

  #write(entry: Entry): void {
    const live = this.#live
    if (live === undefined || live.readyState !== WebSocket.OPEN) return
    live.send(JSON.stringify({ ...entry.message, seq: entry.seq }))
  }

  #connect(): void {
    if (this.#closed) return
    const urls = this.#options.urls
    const url = urls[this.#urlIndex % urls.length] as string
    let socket: WebSocket
    try {
      socket = new WebSocket(sessionTarget(url), {
        perMessageDeflate: false,
        handshakeTimeout: WELCOME_TIMEOUT_MS,
        ...(this.#options.token !== undefined ? { headers: { authorization: `Bearer ${this.#options.token}` } } : {}),
        // Unref'd from the start: a session never keeps the process alive by itself.
        createConnection: ((opts: { host?: string; socketPath?: string; servername?: string }) => {
          // As ws itself does: `path` is the Unix socket for net (the HTTP path otherwise), none for TLS.
          const s = isSecure(url)
            ? tlsConnect({ ...opts, path: undefined, servername: opts.servername ?? (isIP(opts.host ?? '') ? '' : opts.host) } as ConnectionOptions)
            : netConnect({ ...opts, path: opts.socketPath } as NetConnectOpts)
          s.unref()
          return s
        }) as unknown as never,
      })
    } catch (error) {
      this.#lost(url, error instanceof Error ? error : new Error(String(error)), false)
      return
    }
    this.#socket = socket
    let settled = false
    let standby = false
    const welcomeTimer = setTimeout(() => socket.terminate(), WELCOME_TIMEOUT_MS * 2)
    welcomeTimer.unref()
    socket.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk
      })
      res.on('end', () => {
        const code = errorCodeOf(body)
        settled = true
        clearTimeout(welcomeTimer)
        socket.terminate()
        if (res.statusCode === 401 || code === ErrorCodes.UNAUTHORIZED) this.#refused(url)
        else this.#lost(url, new Error(`HTTP ${res.statusCode ?? '?'}${code !== undefined ? ` ${code}` : ''}`), code === ErrorCodes.STANDBY)
      })
      res.on('error', () => undefined)
    })
    socket.on('open', () => {
      socket.send(JSON.stringify({ t: 'hello', v: SESSION_PROTOCOL, client: this.#client, ...(this.#options.repo !== undefined ? { repo: this.#options.repo } : {}) } satisfies ClientMessage))
    })
    socket.on('ping', () => this.#heard())
    socket.on('message', (data) => {
      this.#heard()
      let message
      try {
        message = parseServerMessage(data.toString())
      } catch (error) {
        this.#options.onError(new AimStatusError(ErrorCodes.BAD_REQUEST, `The daemon at ${url} sent a frame that is not of the session protocol: ${(error as Error).message}`))
        return
      }
      switch (message.t) {
        case 'welcome':
          clearTimeout(welcomeTimer)
          this.#welcomed(socket, message.daemon, message.heartbeatMs)
          return
        case 'ack':
          this.#acked(message.seq)
          return
        case 'event':
          this.#options.onEvent(message.event)
          return
        case 'error':
          if (message.seq !== undefined) {
            // A refused message is not retried (it would be refused again). A report to a run
            // that has ended meanwhile (another rank finished it, say) is no news; any other
            // refusal rejects whoever awaits it, so that a finish is never taken as recorded.
            const refusal = message.code === ErrorCodes.RUN_ENDED ? undefined : new AimStatusError(codeOf(message.code), `The daemon refused a message: ${message.message}`)
            this.#acked(message.seq, { error: refusal })
            if (refusal !== undefined) this.#options.onError(refusal)
            return
          }
          if (this.#live === socket) {
            this.#options.onError(new AimStatusError(codeOf(message.code), message.message))
            return
          }
          // A refused hello: a standby passes the turn at once; a refused token is said.
          settled = true
          clearTimeout(welcomeTimer)
          socket.terminate()
          if (message.code === ErrorCodes.UNAUTHORIZED) this.#refused(url)
          else {
            standby = message.code === ErrorCodes.STANDBY
            this.#lost(url, new AimStatusError(codeOf(message.code), message.message), standby)
          }
          return
      }
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(welcomeTimer)
      if (this.#socket === socket) this.#socket = undefined
      if (this.#live === socket) {
        this.#live = undefined
        clearTimeout(this.#silence)
      }
      if (!settled) this.#lost(url, new Error('the connection closed'), false)
    })
  }

  #refused(url: string): void {
    const error = unauthorized(url)
    if (this.#firstPending && !this.#everWelcomed) {
      this.#failFirst(error)
      return
    }
    this.#options.onError(error)
    this.#lost(url, error, false)
  }

  /** This server is out of reach (or a standby): the next one, at once for a standby, else after the backoff. */
  #lost(_url: string, _why: Error, standby: boolean): void {
    if (this.#closed || this.#retry !== undefined) return
    this.#urlIndex++
    const wrapped = this.#urlIndex % this.#options.urls.length === 0
    // A standby passes the turn at once, unless every server was tried since the last wait.
    const delay = standby && !wrapped ? 0 : this.#backoff * (0.5 + Math.random() / 2)
    if (!(standby && !wrapped)) this.#backoff = Math.min(MAX_BACKOFF_MS, this.#backoff * 2)
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      this.#connect()
    }, delay)
    this.#retry.unref()
  }

  #welcomed(socket: WebSocket, daemon: { host: string; pid: number; repo: string }, heartbeatMs: number): void {
    this.#live = socket
    this.#daemon = daemon
    this.#everWelcomed = true
    this.#backoff = FIRST_BACKOFF_MS
    // The runs first (regenerated: a resume of an earlier connection is stale), then the rest, in order.
    const resume = this.#options.resume().map((message): Entry => ({ message, seq: 0, resume: true, waiters: [] }))
    // A report not yet acknowledged of a run that is re-opened is superseded by the latest one
    // sent behind its `open` (a stale one replayed after it would move the deadline back).
    const reopened = new Set(resume.map((entry) => runKey(entry.message)))
    const replay: Entry[] = []
    for (const entry of this.#queue) {
      if (entry.resume) continue
      if (entry.message.t === 'progress' && reopened.has(runKey(entry.message))) for (const waiter of entry.waiters) waiter.resolve()
      else replay.push(entry)
    }
    this.#queue = [...resume, ...replay]
    // Renumbered in sending order, so that a cumulative ack never covers a message not yet applied.
    for (const entry of this.#queue) {
      entry.seq = this.#nextSeq++
      this.#write(entry)
    }
    this.#silenceMs = heartbeatMs * SILENT_HEARTBEATS
    this.#heard()
    if (this.#firstPending) {
      this.#firstPending = false
      this.#resolveReady()
      this.#updateHold()
    }
  }

  #silenceMs = 0

  /** Anything heard from the daemon: the silence timer starts over. */
  #heard(): void {
    const live = this.#live
    if (live === undefined || this.#silenceMs <= 0) return
    clearTimeout(this.#silence)
    this.#silence = setTimeout(() => live.terminate(), this.#silenceMs)
    this.#silence.unref()
  }

  /** An ack covers every message up to `seq`; a refusal only its own (`refused.error` undefined: refused as no news). */
  #acked(seq: number, refused?: { error: Error | undefined }): void {
    const refusal = refused?.error
    const kept: Entry[] = []
    for (const entry of this.#queue) {
      if (refused !== undefined ? entry.seq !== seq : entry.seq > seq) {
        kept.push(entry)
        continue
      }
      for (const waiter of entry.waiters) {
        if (refusal !== undefined) waiter.reject(refusal)
        else waiter.resolve()
      }
    }
    this.#queue = kept
    this.#updateHold()
  }
}

const runKey = (message: RunMessage): string => `${message.hash}/${message.rank ?? ''}`

const isSecure = (url: string): boolean => url.startsWith('https:') || url.startsWith('wss:')

/** The `error.code` of a JSON error body, if it has one. */
function errorCodeOf(body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { error?: { code?: unknown } }
    return typeof value?.error?.code === 'string' ? value.error.code : undefined
  } catch {
    return undefined
  }
}

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes))
/** A code from outside is kept when it is one of ours; anything else is the daemon's trouble. */
function codeOf(code: string): (typeof ErrorCodes)[keyof typeof ErrorCodes] {
  return KNOWN_CODES.has(code) ? (code as (typeof ErrorCodes)[keyof typeof ErrorCodes]) : ErrorCodes.INTERNAL
}
