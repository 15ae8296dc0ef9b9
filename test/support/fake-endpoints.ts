/**
 * Real HTTP servers on 127.0.0.1 (port 0) that answer as Slack webhooks and the Graph API do,
 * record every request, and can hang, refuse (stopped) or come back on the same port.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/** A request as the server received it. */
export interface RecordedRequest {
  method: string
  /** Path and query, as sent. */
  url: string
  path: string
  query: URLSearchParams
  /** Header names in lower case. */
  headers: http.IncomingHttpHeaders
  body: string
  /** Date.now() when the body had arrived. */
  receivedAt: number
}

/** How to answer one request. */
export type Reply = { status: number; body?: string | object; headers?: Record<string, string> } | 'hang'

/** Chooses the reply to the `index`-th request (0-based). */
export type Responder = (request: RecordedRequest, index: number) => Reply

export interface FakeEndpoint {
  /** `http://127.0.0.1:<port>` */
  readonly base: string
  readonly requests: RecordedRequest[]
  /** Replaces the responder. */
  respond(responder: Responder): void
  /** Resolves when at least `count` requests have arrived in total. */
  waitForRequests(count: number): Promise<RecordedRequest>
  /** Answers every hanging request with `reply`. */
  releaseHanging(reply: Exclude<Reply, 'hang'>): void
  /** Stops listening and cuts every connection: requests are refused until {@link start}. */
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
  close(): Promise<void>
}

/** A Slack webhook's answer: 200 `ok`, or a status and Slack's plain-text error code. */
export const slackReply = (status = 200, text = 'ok', headers?: Record<string, string>): Reply => ({ status, body: text, ...(headers ? { headers } : {}) })

/** A Graph API success (`{"id": …}`) for a post. */
export const graphOk = (id = '1234_5678'): Reply => ({ status: 200, body: { id } })

/** A Graph API error document. */
export const graphError = (status: number, code: number, type = 'OAuthException', message = 'Error'): Reply => ({
  status,
  body: { error: { message, type, code, fbtrace_id: 'AbCdEf' } },
})

/** Starts a recording server with a responder (default: Slack's 200 `ok`). */
export async function startEndpoint(responder: Responder = () => slackReply()): Promise<FakeEndpoint> {
  let current = responder
  const requests: RecordedRequest[] = []
  const waiters: { count: number; resolve: (r: RecordedRequest) => void }[] = []
  const hanging: http.ServerResponse[] = []

  const answer = (res: http.ServerResponse, reply: Exclude<Reply, 'hang'>): void => {
    if (res.writableEnded || res.destroyed) return
    const body = typeof reply.body === 'object' ? JSON.stringify(reply.body) : (reply.body ?? '')
    const type = typeof reply.body === 'object' ? 'application/json' : 'text/html'
    res.writeHead(reply.status, { 'Content-Type': type, ...reply.headers })
    res.end(body)
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1')
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
      }
      const index = requests.push(recorded) - 1
      const reply = current(recorded, index)
      if (reply === 'hang') hanging.push(res)
      else answer(res, reply)
      for (const waiter of [...waiters]) {
        if (requests.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(recorded)
        }
      }
    })
  })

  let port = 0
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        port = (server.address() as AddressInfo).port
        resolve()
      })
    })
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (!server.listening) return resolve()
      server.close(() => resolve())
      server.closeAllConnections()
    })
  await listen()

  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    respond(next) {
      current = next
    },
    waitForRequests(count) {
      const last = requests[count - 1]
      if (last !== undefined) return Promise.resolve(last)
      return new Promise((resolve) => waiters.push({ count, resolve }))
    },
    releaseHanging(reply) {
      for (const res of hanging.splice(0)) answer(res, reply)
    },
    stop,
    start: listen,
    close: stop,
  }
}
