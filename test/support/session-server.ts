// A small daemon stand-in that speaks lib/session/protocol.ts on 127.0.0.1 port 0, for the
// client's tests: it records every frame in order (with the connection it came on), answers
// hello with welcome (or a standby's error), acknowledges run messages unless told to hold
// them, and can drop a connection or refuse a token, as a real daemon or network would.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { SESSION_PATH, parseClientMessage, type ClientMessage } from '../../lib/session/protocol.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Received {
  connection: number
  message: ClientMessage
}

export interface SessionServerOptions {
  /** Required bearer token; a wrong or missing one gets 401. Default: none required. */
  token?: string
  /** Answer hello with AIM_STATUS_STANDBY (`'hello'`) or refuse the upgrade with 503 (`'upgrade'`). Default: no. */
  standby?: 'hello' | 'upgrade'
  /** welcome.heartbeatMs. Default 5000. */
  heartbeatMs?: number
  /** Refuses a run message with this error instead of acknowledging it. Default: none refused. */
  refuse?: (message: ClientMessage) => { code: string; message: string } | undefined
  /** Listen on this Unix socket instead of 127.0.0.1 port 0. Default: TCP. */
  socketPath?: string
}

export interface SessionServer {
  url: string
  port: number
  received: Received[]
  connections: WebSocket[]
  /** While true, run messages are recorded but not acknowledged. */
  holdAcks: boolean
  /** The token required from the next upgrade on (changeable). */
  token: string | undefined
  /** Acknowledges every message received so far (cumulatively) on the latest connection. */
  ackAll(): void
  /** Sends a frame on the latest connection. */
  send(frame: unknown): void
  /** Ends the latest connection abruptly, as a network failure or a killed daemon would. */
  drop(): void
  close(): Promise<void>
}

export async function sessionServer(t: Teardown, options: SessionServerOptions = {}): Promise<SessionServer> {
  const http: Server = createServer((_req, res) => {
    res.statusCode = 404
    res.end()
  })
  const wss = new WebSocketServer({ noServer: true })
  const received: Received[] = []
  const connections: WebSocket[] = []
  let lastSeq = 0
  http.on('upgrade', (req, socket, head) => {
    const refuse = (status: string, code: string): void => {
      const body = JSON.stringify({ error: { code, message: code } })
      socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    }
    if (req.url !== SESSION_PATH) return refuse('404 Not Found', 'AIM_STATUS_NOT_FOUND')
    if (server.token !== undefined && req.headers.authorization !== `Bearer ${server.token}`) return refuse('401 Unauthorized', 'AIM_STATUS_UNAUTHORIZED')
    if (options.standby === 'upgrade') return refuse('503 Service Unavailable', 'AIM_STATUS_STANDBY')
    wss.handleUpgrade(req, socket, head, (ws) => {
      const connection = connections.push(ws) - 1
      ws.on('message', (data) => {
        const message = parseClientMessage(data.toString())
        received.push({ connection, message })
        if (message.t === 'hello') {
          if (options.standby === 'hello') {
            ws.send(JSON.stringify({ t: 'error', code: 'AIM_STATUS_STANDBY', message: 'standby' }))
            ws.close()
            return
          }
          ws.send(JSON.stringify({ t: 'welcome', v: 1, daemon: { host: 'test', pid: process.pid, repo: '/srv/repo' }, heartbeatMs: options.heartbeatMs ?? 5000 }))
          return
        }
        if (message.t === 'bye') return
        const refusal = options.refuse?.(message)
        if (refusal !== undefined) {
          ws.send(JSON.stringify({ t: 'error', ...refusal, seq: message.seq }))
          return
        }
        lastSeq = message.seq
        if (!server.holdAcks) ws.send(JSON.stringify({ t: 'ack', seq: message.seq }))
      })
      ws.on('error', () => undefined)
    })
  })
  await new Promise<void>((resolve) => (options.socketPath !== undefined ? http.listen(options.socketPath, resolve) : http.listen(0, '127.0.0.1', resolve)))
  const port = options.socketPath !== undefined ? 0 : (http.address() as AddressInfo).port
  const latest = (): WebSocket | undefined => connections[connections.length - 1]
  const server: SessionServer = {
    url: options.socketPath !== undefined ? `unix:${options.socketPath}` : `http://127.0.0.1:${port}`,
    port,
    received,
    connections,
    holdAcks: false,
    token: options.token,
    ackAll: () => latest()?.send(JSON.stringify({ t: 'ack', seq: lastSeq })),
    send: (frame) => latest()?.send(JSON.stringify(frame)),
    drop: () => latest()?.terminate(),
    close: async () => {
      for (const ws of connections) ws.terminate()
      wss.close()
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    },
  }
  t.teardown(() => server.close())
  return server
}
