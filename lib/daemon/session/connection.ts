/**
 * One session's socket: checks every frame, wants `hello` first, pings, and acknowledges the
 * messages in the order they came. What a message does to the runs is its repo's business
 * ({@link RepoSide}); this module only speaks the protocol.
 *
 * ```
 *   upgraded --hello--> bound to a repo (welcome) --run messages--> acks, in order
 *      |                    |  bye --> ended      socket closes --> died
 *      +-- other frame: error, close     no pong by the next ping --> lost (terminated)
 * ```
 * @module
 */
import type { WebSocket } from 'ws'
import { systemClock } from '../../clock.js'
import { ErrorCodes } from '../../errors.js'
import { DeadlineTimer } from '../../timer.js'
import { parseClientMessage, type ClientInfo, type ClientMessage, type ServerMessage } from '../../session/protocol.js'
import type { Applied, Reporter, RunMessage } from './apply.js'

/** How a session ended, as its repo sees it. */
export type Departure =
  /** Said goodbye: nothing is failed. */
  | 'bye'
  /** Closed without a goodbye: the process died; its runs fail after the reconnect window. */
  | 'died'
  /** Stopped answering pings: nothing is failed, deadlines carry on. */
  | 'lost'
  /** Replaced by a newer connection of the same client, or closed by the daemon (standby, stop): nothing is failed. */
  | 'let-go'

/** What a connection needs of the repo it is bound to. */
export interface RepoSide {
  welcome(): ServerMessage
  apply(conn: SessionConnection, m: RunMessage): Applied
  /** Makes what was applied durable (the daemon's snapshot). */
  commit(): Promise<void>
  departed(conn: SessionConnection, how: Departure): void
}

/** Options of a {@link SessionConnection}. */
export interface ConnectionOptions {
  via: Reporter['via']
  heartbeatMs: number
  /** Bad frames tolerated before the connection is closed. */
  maxBadFrames: number
  /** Picks the repo for a hello, or refuses it (`closeCode`: the WebSocket close code to use). */
  hello(conn: SessionConnection, hello: Extract<ClientMessage, { t: 'hello' }>): RepoSide | { code: string; message: string; closeCode: number }
  warn(event: string, fields: Record<string, string | number | undefined>): void
}

/** Bad frames tolerated on one connection before it is closed (a client that is broken, or hostile). */
export const MAX_BAD_FRAMES = 100
/** Heartbeats a new socket has to say hello in before it is closed (it holds a slot and says nothing). */
export const HELLO_PINGS = 3

/** One session's socket. */
export class SessionConnection {
  readonly #ws: WebSocket
  readonly #options: ConnectionOptions
  #repo: RepoSide | null = null
  #client: ClientInfo | null = null
  #badFrames = 0
  /** The acks in order: each waits for the one before it (and, for a durable message, for the commit). */
  #acks: Promise<void> = Promise.resolve()
  #awaitingPong = false
  /** Pings sent before a hello came: a socket that never says who it is is closed after {@link HELLO_PINGS}. */
  #pingsBeforeHello = 0
  readonly #pinger: DeadlineTimer
  /** Set once the end is decided (so a close event later does not decide it again). */
  #departure: Departure | null = null

  constructor(ws: WebSocket, options: ConnectionOptions) {
    this.#ws = ws
    this.#options = options
    // Pings pace the network, which runs in real time whatever clock the deadlines run on.
    this.#pinger = new DeadlineTimer(systemClock, () => this.#ping())
    ws.on('message', (data, isBinary) => this.#frame(isBinary ? null : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8')))
    ws.on('pong', () => (this.#awaitingPong = false))
    ws.on('close', () => this.#closed())
    // A socket error is followed by close: the process is gone, or the network is.
    ws.on('error', (error) => options.warn('session-socket-error', { error: error.message }))
    this.#pinger.arm(systemClock.now() + options.heartbeatMs)
  }

  /** The client, once it said hello. */
  get client(): ClientInfo | null {
    return this.#client
  }

  /** The process it speaks for, once it said hello. */
  get reporter(): Reporter | null {
    return this.#client === null ? null : { host: this.#client.host, pid: this.#client.pid, via: this.#options.via }
  }

  send(message: ServerMessage): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(JSON.stringify(message))
  }

  /** Closes it on the daemon's side; its runs are let go, nothing is failed. */
  letGo(code: number, reason: string): void {
    this.#end('let-go')
    this.#ws.close(code, reason)
    // A peer that never answers the closing handshake is cut off.
    setTimeout(() => this.#ws.terminate(), 2000).unref()
  }

  #error(code: string, message: string, seq?: number): void {
    this.send(seq === undefined ? { t: 'error', code, message } : { t: 'error', code, message, seq })
  }

  #frame(text: string | null): void {
    if (this.#departure !== null) return
    let m: ClientMessage
    try {
      if (text === null) throw new Error('frames must be text')
      m = parseClientMessage(text)
    } catch (error) {
      this.#bad((error as Error).message)
      return
    }
    if (this.#repo === null) {
      if (m.t !== 'hello') {
        this.#error(ErrorCodes.BAD_REQUEST, 'the first frame must be hello')
        this.#ws.close(1008, 'hello first')
        this.#end('let-go')
        return
      }
      this.#hello(m)
      return
    }
    if (m.t === 'hello') {
      this.#bad('hello was already said on this session')
      return
    }
    if (m.t === 'bye') {
      this.#end('bye')
      // What was sent before the goodbye is acknowledged first.
      void this.#acks.then(() => this.#ws.close(1000, 'bye'))
      return
    }
    this.#run(this.#repo, m)
  }

  #bad(message: string): void {
    this.#error(ErrorCodes.BAD_REQUEST, message)
    if (++this.#badFrames > this.#options.maxBadFrames) {
      this.#options.warn('session-bad-frames', { client: this.#client?.id, frames: this.#badFrames })
      this.#ws.close(1008, 'too many bad frames')
      if (this.#repo === null) this.#end('let-go')
    }
  }

  #hello(m: Extract<ClientMessage, { t: 'hello' }>): void {
    this.#client = m.client
    const picked = this.#options.hello(this, m)
    if ('code' in picked) {
      this.#end('let-go')
      this.#error(picked.code, picked.message)
      this.#ws.close(picked.closeCode, picked.code)
      return
    }
    this.#repo = picked
    this.send(picked.welcome())
  }

  #run(repo: RepoSide, m: RunMessage): void {
    let applied: Applied
    try {
      applied = repo.apply(this, m)
    } catch (error) {
      applied = { ok: false, code: ErrorCodes.INTERNAL, message: (error as Error).message }
    }
    if (!applied.ok) {
      const { code, message } = applied
      this.#acks = this.#acks.then(() => this.#error(code, message, m.seq))
      return
    }
    const { durable, tell } = applied
    this.#acks = this.#acks.then(async () => {
      try {
        if (durable) await repo.commit()
      } catch (error) {
        this.#error(ErrorCodes.INTERNAL, `not made durable: ${(error as Error).message}`, m.seq)
        return
      }
      if (tell !== undefined) this.send({ t: 'event', event: tell })
      this.send({ t: 'ack', seq: m.seq })
    })
  }

  #ping(): void {
    if (this.#departure !== null) return
    if (this.#awaitingPong) {
      this.#end('lost')
      this.#ws.terminate()
      return
    }
    if (this.#repo === null && ++this.#pingsBeforeHello > HELLO_PINGS) {
      this.#error(ErrorCodes.BAD_REQUEST, 'no hello came')
      this.#end('let-go')
      this.#ws.close(1008, 'no hello')
      return
    }
    this.#awaitingPong = true
    this.#ws.ping()
    this.#pinger.arm(systemClock.now() + this.#options.heartbeatMs)
  }

  #closed(): void {
    this.#end('died')
  }

  /** Decides how the session ended, once; the repo is told. */
  #end(how: Departure): void {
    if (this.#departure !== null) return
    this.#departure = how
    this.#pinger.close()
    this.#repo?.departed(this, how)
  }
}
