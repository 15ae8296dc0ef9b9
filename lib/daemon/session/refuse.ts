/**
 * An upgrade refused before it happens: a plain HTTP answer on the raw socket, with the same JSON
 * error body as every other answer of the daemon, so a client reads the code (a wrong token:
 * 401 `AIM_STATUS_UNAUTHORIZED`) instead of a bare failed handshake.
 * @module
 */
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'

/** Writes `status` with `{"error":{"code","message"}}` and closes the socket. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } })
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`, 'cache-control: no-store', 'connection: close']
  if (socket.writable) socket.end(`${head.join('\r\n')}\r\n\r\n${body}`)
  else socket.destroy()
}
