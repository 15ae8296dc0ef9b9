/**
 * The wrapper's end of the join channel (see `join-protocol.ts`): a Unix socket in a private
 * folder (mode 0700, under the system's temp folder: a socket path must stay short), accepting
 * any number of joining processes (a launcher's ranks, say), each one's messages applied in
 * order.
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunEvent } from '../model.js'
import { MAX_SECONDS } from '../options.js'
import { JOIN_PROTOCOL_VERSION, jsonLines, type JoinReply } from './join-protocol.js'

/** What the wrapper does with what joined code reports. */
export interface JoinHandlers {
  progress(expectNextIn: number): void
  /** The joined code reported a successful finish. */
  finish(): void
  /** The joined code reported a failure; resolves once it is recorded. */
  fail(reason: string, logTail: string | undefined): Promise<void>
  /** Resolves once everything applied so far is on disk. */
  settle(): Promise<void>
}

/** Options of {@link JoinServer.listen}. */
export interface JoinServerOptions {
  hash: string
  welcome: { grace: number; name?: string; experiment?: string }
  handlers: JoinHandlers
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** The wrapper's join socket. */
export class JoinServer {
  readonly socketPath: string
  readonly #folder: string
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #options: JoinServerOptions
  /** Sockets past `join`: they receive the run's events. */
  readonly #joined = new Set<Socket>()

  private constructor(folder: string, server: Server, options: JoinServerOptions) {
    this.#folder = folder
    this.socketPath = join(folder, 'run.sock')
    this.#server = server
    this.#options = options
  }

  /** Listens; the socket's path is {@link socketPath}. */
  static async listen(options: JoinServerOptions): Promise<JoinServer> {
    const folder = mkdtempSync(join(tmpdir(), 'aim-run-'))
    const server = createServer()
    const joinServer = new JoinServer(folder, server, options)
    server.on('connection', (socket) => joinServer.#accept(socket))
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(joinServer.socketPath, () => resolve())
      })
    } catch (error) {
      rmSync(folder, { recursive: true, force: true })
      throw error
    }
    server.on('error', () => undefined)
    // The wrapper lives as long as its command: the socket never keeps it alive on its own.
    server.unref()
    return joinServer
  }

  /** Sends a transition of the run to every joined process (their handles emit it). */
  broadcast(event: RunEvent): void {
    for (const socket of this.#joined) send(socket, { kind: 'event', event })
  }

  /** Stops listening, ends every connection and removes the socket's folder. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    for (const socket of this.#sockets) socket.end()
    for (const socket of this.#sockets) socket.destroySoon()
    await closed
    rmSync(this.#folder, { recursive: true, force: true })
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket)
    socket.unref()
    socket.on('error', () => undefined)
    socket.on('close', () => {
      this.#sockets.delete(socket)
      this.#joined.delete(socket)
    })
    // One chain per connection: a `settle` is answered after the messages before it.
    let chain: Promise<void> = Promise.resolve()
    let welcomed = false
    socket.setEncoding('utf8').on(
      'data',
      jsonLines((value) => {
        chain = chain.then(async () => {
          if (!welcomed) {
            welcomed = this.#greet(socket, value)
            return
          }
          await this.#apply(socket, value)
        })
      }),
    )
  }

  #greet(socket: Socket, value: unknown): boolean {
    const { hash, welcome } = this.#options
    if (!isRecord(value) || value['kind'] !== 'join' || value['version'] !== JOIN_PROTOCOL_VERSION || value['hash'] !== hash) {
      send(socket, { kind: 'refused', reason: `this wrapper watches run ${hash} with protocol version ${JOIN_PROTOCOL_VERSION}` })
      socket.end()
      return false
    }
    send(socket, { kind: 'welcome', hash, ...welcome })
    this.#joined.add(socket)
    return true
  }

  async #apply(socket: Socket, value: unknown): Promise<void> {
    const { handlers } = this.#options
    // Anything unknown or malformed is dropped: joined code is outside input.
    if (!isRecord(value)) return
    switch (value['kind']) {
      case 'progress': {
        const expect = value['expectNextIn']
        if (typeof expect === 'number' && expect >= 0 && expect <= MAX_SECONDS) handlers.progress(expect)
        return
      }
      case 'finish':
        handlers.finish()
        return
      case 'fail': {
        const reason = typeof value['reason'] === 'string' ? value['reason'].slice(0, 2000) : 'reported failure'
        const logTail = typeof value['logTail'] === 'string' ? value['logTail'] : undefined
        await handlers.fail(reason, logTail)
        return
      }
      case 'settle': {
        const id = value['id']
        if (!Number.isSafeInteger(id)) return
        await handlers.settle().catch(() => undefined)
        send(socket, { kind: 'settled', id: id as number })
        return
      }
      default:
        return
    }
  }
}

function send(socket: Socket, reply: JoinReply): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(reply)}\n`)
}
