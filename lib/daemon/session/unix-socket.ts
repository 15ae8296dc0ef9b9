/**
 * The repo's session socket, `<root>/.aim/status/session.sock`: listened on while this daemon is
 * the repo's sender, so that a process on the same machine (a run of many ranks without a
 * server, say) reaches it without any address or token; the folder's permissions guard it.
 *
 * A file left by a daemon that died is removed first, only after `lstat` says it is a socket
 * (never through a link, never anything else). A path longer than a socket address can hold is
 * skipped with a warning: processes of that repo then need `server`.
 * @module
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { lstat, unlink } from 'node:fs/promises'
import type { Duplex } from 'node:stream'
import type { DaemonLog } from '../log.js'

/**
 * Longest socket path used, bytes: `sun_path` holds 108 bytes on Linux and 104 on macOS, with its
 * terminating zero; 100 leaves room on both.
 */
export const MAX_SOCKET_PATH_BYTES = 100

/** Removes `path` when it is a socket (a dead daemon's); true when nothing is in the way now. */
async function clearStale(path: string, log: DaemonLog): Promise<boolean> {
  try {
    const stats = await lstat(path)
    if (!stats.isSocket()) {
      log.warn('session-socket-skipped', { path, why: 'something other than a socket is in the way (never removed)' })
      return false
    }
    await unlink(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true
    throw error
  }
}

/** One repo's listening socket. */
export class SessionSocket {
  readonly path: string
  readonly #server: Server
  #closing: Promise<void> | null = null

  private constructor(path: string, server: Server) {
    this.path = path
    this.#server = server
  }

  /**
   * Listens at `path`, handing each upgrade to `upgrade`; null (and a warn line) when it cannot:
   * a path too long, something else in the way, a bind that failed.
   */
  static async listen(path: string, upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void, log: DaemonLog): Promise<SessionSocket | null> {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
      log.warn('session-socket-skipped', { path, why: `a socket path may hold at most ${MAX_SOCKET_PATH_BYTES} bytes: processes of this repo need a server address` })
      return null
    }
    try {
      if (!(await clearStale(path, log))) return null
      // Plain requests on the socket have nothing to get: only the session upgrade is served.
      const server = createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 15_000 }, (_request, response) => {
        const body = JSON.stringify({ error: { code: 'AIM_STATUS_NOT_FOUND', message: 'Only the session upgrade is served here' } })
        response.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
        response.end(body)
      })
      server.on('upgrade', upgrade)
      trackSockets(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(path, () => {
          server.off('error', reject)
          resolve()
        })
      })
      server.on('error', (error) => log.error('session-socket-error', { path, error: error.message }))
      log.info('session-socket-listening', { path })
      return new SessionSocket(path, server)
    } catch (error) {
      log.warn('session-socket-skipped', { path, why: (error as Error).message })
      return null
    }
  }

  /**
   * Stops listening; closing the server removes its socket file (libuv unlinks what it bound), so
   * nothing is unlinked here: a standby that took over may already listen at the same path.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
      this.#server.closeAllConnections()
      await endUpgraded(this.#server, closed)
    })()
    return this.#closing
  }
}

/** How long sockets taken over by a session get to finish their close handshake before they are cut. */
export const SESSION_CLOSE_MS = 1000

/**
 * Waits for a closing server, cutting the sockets still open after {@link SESSION_CLOSE_MS}:
 * upgraded (session) sockets are not the HTTP server's to close, and a peer that never answers
 * the close frame (frozen, or gone without a FIN) must not hold the daemon's exit.
 */
export async function endUpgraded(server: import('node:net').Server, closed: Promise<void>): Promise<void> {
  const open = new Set<import('node:net').Socket>()
  const cut = setTimeout(() => {
    for (const socket of open) socket.destroy()
  }, SESSION_CLOSE_MS)
  cut.unref()
  trackedSockets.get(server)?.forEach((socket) => open.add(socket))
  await closed
  clearTimeout(cut)
}

/** The sockets each server accepted and that are still open (for {@link endUpgraded}). */
const trackedSockets = new WeakMap<import('node:net').Server, Set<import('node:net').Socket>>()

/** Keeps track of a server's open sockets, so that {@link endUpgraded} can cut them. */
export function trackSockets(server: import('node:net').Server): void {
  const open = new Set<import('node:net').Socket>()
  trackedSockets.set(server, open)
  server.on('connection', (socket: import('node:net').Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
  })
}
