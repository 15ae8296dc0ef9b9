// Shared by the session tests: a raw `ws` client speaking lib/session/protocol.ts (no client
// library in between), the frames it received, and waits for the next one that matches.
import { WebSocket, type ClientOptions } from 'ws'
import { parseServerMessage, type ServerMessage } from '../../lib/session/protocol.js'
import { eventually } from './eventually.js'

export interface RawSession {
  ws: WebSocket
  frames: ServerMessage[]
  send(message: unknown): void
  /** The first frame (past or future) matching. */
  frame<T extends ServerMessage['t']>(t: T, match?: (m: Extract<ServerMessage, { t: T }>) => boolean): Promise<Extract<ServerMessage, { t: T }>>
  closed: Promise<{ code: number; reason: string }>
}

/** Opens a session socket (`ws://…/api/v1/session`, or `ws+unix:PATH:/api/v1/session`); resolves once open. */
export async function rawSession(url: string, options: ClientOptions = {}): Promise<RawSession> {
  const ws = new WebSocket(url, options)
  const frames: ServerMessage[] = []
  ws.on('message', (data) => frames.push(parseServerMessage(String(data))))
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return {
    ws,
    frames,
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    frame: (t, match) => eventually(() => frames.find((f) => f.t === t && (match === undefined || match(f as never))) as never, `a ${t} frame`, { timeoutMs: 20_000 }),
    closed,
  }
}

/** A hello for a client id of its own. */
export function hello(id: string, pid = process.pid, host = 'test-host', repo?: string): unknown {
  return { t: 'hello', v: 1, client: { id, host, pid }, ...(repo !== undefined ? { repo } : {}) }
}
