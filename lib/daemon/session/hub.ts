/**
 * The daemon's session hub: every session of every repo, whichever way it came in (an upgrade on
 * the HTTP face's server at `SESSION_PATH`, checked by the face, or on a repo's Unix socket,
 * listened on while this daemon is that repo's sender). A hello picks the repo (its `repo`
 * when it names one of the daemon's roots, else the first; on a Unix socket, that socket's); a
 * repo this daemon only stands by for answers `AIM_STATUS_STANDBY` and closes (1013), so the
 * client tries its next server. When a repo goes standby or the daemon stops, its sessions are
 * closed with 1012 and nothing is failed: the clients reconnect, to whichever daemon sends now.
 * @module
 */
import type { IncomingMessage } from 'node:http'
import { join, resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import type { Clock } from '../../clock.js'
import { ErrorCodes } from '../../errors.js'
import { MAX_FRAME_BYTES, SESSION_PATH, SESSION_SOCKET_NAME } from '../../session/protocol.js'
import type { DaemonLog } from '../log.js'
import type { RepoWatch } from '../repo-watch.js'
import { MAX_BAD_FRAMES, SessionConnection, type RepoSide } from './connection.js'
import { RepoSessions } from './repo-sessions.js'
import { refuseUpgrade } from './refuse.js'
import { SessionSocket } from './unix-socket.js'

/** Options of {@link SessionHub}. */
export interface SessionHubOptions {
  repos: readonly RepoWatch[]
  /** The daemon process, named in `welcome` and in events. */
  daemon: { host: string; pid: number }
  heartbeatMs: number
  reconnectWindowMs: number
  /** The runtimes' clock (the reconnect window runs on it). */
  clock: Clock
  log: DaemonLog
}

interface RepoEntry {
  watch: RepoWatch
  sessions: RepoSessions | null
  socket: SessionSocket | null
  /** The socket being opened (awaited before it is closed). */
  opening: Promise<void> | null
  unobserve: () => void
}

/** The sessions of a daemon. */
export class SessionHub {
  readonly #options: SessionHubOptions
  readonly #wss: WebSocketServer
  readonly #entries: RepoEntry[] = []
  #closed = false

  constructor(options: SessionHubOptions) {
    this.#options = options
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES })
    for (const watch of options.repos) {
      const entry: RepoEntry = { watch, sessions: null, socket: null, opening: null, unobserve: () => undefined }
      entry.unobserve = watch.observe({
        event: (event) => entry.sessions?.event(event),
        sending: (active) => (active ? this.#activate(entry) : void this.#deactivate(entry)),
      })
      watch.keepBusyWhile(() => (entry.sessions?.open ?? 0) > 0)
      this.#entries.push(entry)
    }
  }

  /** Connections open now, over every repo. */
  get open(): number {
    return this.#entries.reduce((n, e) => n + (e.sessions?.open ?? 0), 0)
  }

  /** The repo's socket path while it is listened on, or null. */
  socketPath(root: string): string | null {
    return this.#entries.find((e) => e.watch.root === root)?.socket?.path ?? null
  }

  /**
   * Takes an upgrade whose access was checked (the face's) or needs none (a repo's socket).
   * `repo`: the repo it came in for (a Unix socket's), or undefined (the hello says).
   */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, via: 'tcp' | 'unix', repo?: RepoWatch): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#connected(ws, via, repo))
  }

  /** Lets every session go (1012) and stops listening on the repos' sockets. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all(this.#entries.map((e) => this.#deactivate(e, 'the daemon is stopping')))
    for (const e of this.#entries) e.unobserve()
    this.#wss.close()
  }

  #connected(ws: WebSocket, via: 'tcp' | 'unix', fixed: RepoWatch | undefined): void {
    const { heartbeatMs, log } = this.#options
    new SessionConnection(ws, {
      via,
      heartbeatMs,
      maxBadFrames: MAX_BAD_FRAMES,
      warn: (event, fields) => log.warn(event, fields),
      hello: (conn, hello): RepoSide | { code: string; message: string; closeCode: number } => {
        const entry = fixed !== undefined ? this.#entries.find((e) => e.watch === fixed) : this.#pick(hello.repo)
        const sessions = entry?.sessions
        if (entry === undefined || sessions === null || sessions === undefined || entry.watch.state !== 'active') {
          return { code: ErrorCodes.STANDBY, message: `this daemon stands by for ${entry?.watch.root ?? 'the repo'}: another daemon sends for it`, closeCode: 1013 }
        }
        log.info('session-opened', { repo: entry.watch.root, via, client: hello.client.id, pid: hello.client.pid, host: hello.client.host })
        return sessions.attach(conn)
      },
    })
  }

  #pick(repo: string | undefined): RepoEntry | undefined {
    if (repo !== undefined) {
      const wanted = resolve(repo)
      const match = this.#entries.find((e) => e.watch.root === wanted || e.watch.root === repo)
      if (match !== undefined) return match
    }
    return this.#entries[0]
  }

  #activate(entry: RepoEntry): void {
    if (this.#closed) return
    const runtime = entry.watch.runtime
    if (runtime === null) return
    entry.sessions?.close(1012, 'the daemon changed its role')
    const { daemon, heartbeatMs, reconnectWindowMs, clock, log } = this.#options
    entry.sessions = new RepoSessions({ root: entry.watch.root, runtime, commit: () => entry.watch.commit(), daemon, heartbeatMs, reconnectWindowMs, clock, log })
    const path = join(entry.watch.layout.status, SESSION_SOCKET_NAME)
    const opening = (async () => {
      const socket = await SessionSocket.listen(path, (request, raw, head) => this.#unixUpgrade(entry, request, raw, head), log)
      // Stood by (or stopped) while it was being opened: closed at once.
      if (entry.sessions === null || this.#closed) await socket?.close()
      else entry.socket = socket
    })()
    entry.opening = opening.finally(() => {
      if (entry.opening === opening) entry.opening = null
    })
  }

  #unixUpgrade(entry: RepoEntry, request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'http://socket.invalid')
    if (url.pathname !== SESSION_PATH) {
      refuseUpgrade(socket, 404, ErrorCodes.NOT_FOUND, `No route ${url.pathname}: sessions upgrade on ${SESSION_PATH}`)
      return
    }
    this.upgrade(request, socket, head, 'unix', entry.watch)
  }

  async #deactivate(entry: RepoEntry, reason = 'this daemon stands by now: reconnect'): Promise<void> {
    entry.sessions?.close(1012, reason)
    entry.sessions = null
    await entry.opening
    const socket = entry.socket
    entry.socket = null
    await socket?.close()
  }
}
