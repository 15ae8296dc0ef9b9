/**
 * Live updates as server-sent events (`GET /api/v1/events`, `text/event-stream`): on connect a
 * `hello` (server time, repos), every run (`runs` with `full: true`) and the notifiers; then only
 * what changed (`runs` with the changed rows and the removed ones), `repos` when a repo's state
 * changes, `notifiers` after deliveries. A comment line every 15 s keeps proxies from closing an
 * idle stream. The page reads it with `fetch()` rather than `EventSource`, so that a bearer
 * token travels in a header, never in the URL.
 * @module
 */
import type { ServerResponse } from 'node:http'
import { systemClock } from '../../clock.js'
import { DeadlineTimer } from '../../timer.js'
import { runJson, type Api } from './api.js'
import type { ModelChange, StatusModel } from './status-model.js'

/** At most this many streams at once; more are refused (503), so a runaway page cannot exhaust the daemon. */
export const MAX_STREAMS = 64
const KEEPALIVE_MS = 15_000

/** The server-sent event streams of the face. */
export class LiveFeed {
  readonly #model: StatusModel
  readonly #api: Api
  readonly #streams = new Set<ServerResponse>()
  readonly #keepalive: DeadlineTimer
  readonly #unsubscribe: () => void
  /** The notifiers frame last sent: sent again only when it changes. */
  #notifiers = ''

  constructor(model: StatusModel, api: Api) {
    this.#model = model
    this.#api = api
    this.#unsubscribe = model.subscribe((change) => this.#broadcast(change))
    this.#keepalive = new DeadlineTimer(systemClock, () => {
      for (const stream of this.#streams) stream.write(': keepalive\n\n')
      this.#keepalive.arm(systemClock.now() + KEEPALIVE_MS)
    })
  }

  /** Whether another stream may open. */
  get full(): boolean {
    return this.#streams.size >= MAX_STREAMS
  }

  /** Starts a stream on `response`. */
  async open(response: ServerResponse): Promise<void> {
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
    response.socket?.setNoDelay(true)
    this.#streams.add(response)
    response.on('close', () => this.#streams.delete(response))
    if (this.#keepalive.dueAt === null) this.#keepalive.arm(systemClock.now() + KEEPALIVE_MS)
    await this.#model.current()
    write(response, frame('hello', { serverTime: new Date().toISOString(), repos: this.#model.repoStates() }))
    write(response, frame('runs', { full: true, runs: this.#model.rows().map((row) => runJson(row, true)) }))
    this.#notifiers = frame('notifiers', await this.#api.notifiers())
    write(response, this.#notifiers)
  }

  /** Ends every stream. */
  close(): void {
    this.#unsubscribe()
    this.#keepalive.close()
    for (const stream of this.#streams) stream.end()
    this.#streams.clear()
  }

  #broadcast(change: ModelChange): void {
    if (this.#streams.size === 0) return
    const serverTime = new Date().toISOString()
    if (change.reposChanged) this.#all(frame('repos', { serverTime, repos: this.#model.repoStates() }))
    if (change.changed.length > 0 || change.removed.length > 0) {
      this.#all(frame('runs', { full: false, serverTime, runs: change.changed.map((row) => runJson(row, true)), removed: change.removed }))
    }
    // Training processes record their own deliveries in the repo's status file: looked at
    // whenever runs change, not only after this daemon's deliveries.
    if (change.deliveries || change.changed.length > 0) {
      void this.#api.notifiers().then(
        (data) => {
          const text = frame('notifiers', data)
          if (text === this.#notifiers) return
          this.#notifiers = text
          this.#all(text)
        },
        () => undefined,
      )
    }
  }

  /** Writes one frame (serialised once) to every stream. */
  #all(text: string): void {
    for (const stream of this.#streams) write(stream, text)
  }
}

const frame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

function write(stream: ServerResponse, text: string): void {
  if (!stream.writableEnded && !stream.destroyed) stream.write(text)
}
