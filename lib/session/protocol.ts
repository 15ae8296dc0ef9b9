/**
 * The session protocol between a training process and the daemon: JSON text frames on one
 * WebSocket, over TCP (`ws://`, `wss://`, the daemon's `--http` server, path
 * {@link SESSION_PATH}) or over the repo's Unix socket (`.aim/status/session.sock`).
 *
 * ```
 * client                                   daemon
 *   upgrade (Authorization: Bearer TOKEN) --> 401 AIM_STATUS_UNAUTHORIZED / 503 AIM_STATUS_STANDBY
 *   hello {client, repo?}                 --> welcome {daemon}        (or error, then close)
 *   open / progress / finish / fail {seq} --> ack {seq}               (cumulative, in order)
 *                                         <-- event {event}           (the run's transitions)
 *   bye                                   --> the socket closes: a goodbye, nothing is failed
 *   (socket closes without bye)               the process died: its unfinished runs fail
 *   (no pong to the daemon's pings)           the session is lost: deadlines carry on
 * ```
 *
 * Every message a client sends is idempotent, so a client that reconnects (to the same daemon
 * after a restart, or to a standby) re-sends what was not acknowledged: `open` with
 * `resume: true` for each of its active runs first, then the unacknowledged messages in order.
 * `ack` says the message was applied and, for `open`, `finish` and `fail`, made durable in the
 * daemon's snapshot; a client resolves `reportSuccessfulFinish()` and `reportFailure()` only then.
 *
 * Times are the client's epoch milliseconds. Both sides check every frame with
 * {@link parseClientMessage} / {@link parseServerMessage}: a frame from outside is input.
 * @module
 */
import type { FinishOn, RunEvent } from '../model.js'

/** The protocol's version, in `hello` and `welcome`. */
export const SESSION_PROTOCOL = 1
/** The HTTP path a session upgrades on. */
export const SESSION_PATH = '/api/v1/session'
/** The Unix socket a daemon listens on for the sessions of a repo, in the repo's `.aim/status/`. */
export const SESSION_SOCKET_NAME = 'session.sock'
/** Largest frame either side accepts, bytes. */
export const MAX_FRAME_BYTES = 64 * 1024
/** How often the daemon pings a session, ms (default). */
export const DEFAULT_HEARTBEAT_MS = 5000
/**
 * How long a run whose session closed without a goodbye waits for its process to come back on
 * another session before it is failed, ms (default): a client whose connection broke reconnects
 * well within it, a killed process never does.
 */
export const DEFAULT_RECONNECT_WINDOW_MS = 1000

/** Who the client is. */
export interface ClientInfo {
  /** Random per process: a reconnecting process is known as the same one. */
  id: string
  host: string
  pid: number
}

/** What one run message is about: a run, and for runs of many ranks, one of its ranks. */
export interface RunRef {
  hash: string
  /** The rank sending it; absent for a run of one process. */
  rank?: number
}

/** Client -> daemon. */
export type ClientMessage =
  | { t: 'hello'; v: number; client: ClientInfo; repo?: string }
  | (RunRef & {
      t: 'open'
      seq: number
      name?: string
      experiment?: string
      grace: number
      /** The run's (or rank's) start, epoch ms: names its instance, as locally. */
      at: number
      /** For runs of many ranks. */
      worldSize?: number
      finishOn?: FinishOn
      /** Re-established after a reconnect, not started: no `started` event. */
      resume?: boolean
    })
  | (RunRef & { t: 'progress'; seq: number; at: number; expectNextIn: number })
  | (RunRef & { t: 'finish'; seq: number; at: number })
  | (RunRef & { t: 'fail'; seq: number; at: number; reason: string; logTail?: string })
  | { t: 'bye' }

/** Daemon -> client. */
export type ServerMessage =
  /** `heartbeatMs`: how often the daemon pings; a client that hears nothing for three times that reconnects. */
  | { t: 'welcome'; v: number; daemon: { host: string; pid: number; repo: string }; heartbeatMs: number }
  | { t: 'ack'; seq: number }
  | { t: 'event'; event: RunEvent }
  /** A refused hello or message; `seq` names the message when there is one. */
  | { t: 'error'; code: string; message: string; seq?: number }

const HASH = /^[A-Za-z0-9_]{1,64}$/
const MAX_TEXT = 2000
const MAX_LOG_TAIL = 8000
const MAX_RANKS = 100_000

function fail(message: string): never {
  throw new Error(message)
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const time = (v: unknown, name: string): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fail(`${name} must be a time`))
const seqOf = (v: unknown): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail('seq must be an integer of at least 0'))
const text = (v: unknown, name: string, max: number): string => (typeof v === 'string' && v.length <= max ? v : fail(`${name} must be text of at most ${max} characters`))
const rankOf = (v: unknown, name: string): number => (Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < MAX_RANKS ? (v as number) : fail(`${name} must be an integer from 0 to ${MAX_RANKS - 1}`))

/**
 * Reads one frame from a client; throws a plain `Error` whose message says what is wrong (the
 * daemon answers it with `AIM_STATUS_BAD_REQUEST`).
 */
export function parseClientMessage(frame: string): ClientMessage {
  if (frame.length > MAX_FRAME_BYTES) fail(`a frame may hold at most ${MAX_FRAME_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(frame)
  } catch {
    fail('a frame must be JSON')
  }
  if (!isObject(value)) fail('a frame must be a JSON object')
  const m = value
  switch (m['t']) {
    case 'hello': {
      const client = m['client']
      if (!isObject(client)) fail('hello.client must be an object')
      const id = text(client['id'], 'client.id', 100)
      if (!/^[A-Za-z0-9_-]{8,100}$/.test(id)) fail('client.id must be 8 to 100 letters, digits, _ or -')
      const pid = client['pid']
      if (!Number.isSafeInteger(pid) || (pid as number) <= 0) fail('client.pid must be a process id')
      const out: ClientMessage = {
        t: 'hello',
        v: Number.isSafeInteger(m['v']) ? (m['v'] as number) : fail('hello.v must be an integer'),
        client: { id, host: text(client['host'], 'client.host', 255), pid: pid as number },
      }
      if (m['repo'] !== undefined) out.repo = text(m['repo'], 'repo', 4096)
      return out
    }
    case 'bye':
      return { t: 'bye' }
    case 'open':
    case 'progress':
    case 'finish':
    case 'fail': {
      const hash = typeof m['hash'] === 'string' && HASH.test(m['hash']) ? m['hash'] : fail('hash must be 1 to 64 letters, digits or _')
      const ref: RunRef = { hash }
      if (m['rank'] !== undefined) ref.rank = rankOf(m['rank'], 'rank')
      const seq = seqOf(m['seq'])
      const at = time(m['at'], 'at')
      if (m['t'] === 'progress') {
        const e = m['expectNextIn']
        if (typeof e !== 'number' || !Number.isFinite(e) || e < 0) fail('expectNextIn must be a number of seconds of at least 0')
        return { t: 'progress', seq, at, expectNextIn: e, ...ref }
      }
      if (m['t'] === 'finish') return { t: 'finish', seq, at, ...ref }
      if (m['t'] === 'fail') {
        const out: ClientMessage = { t: 'fail', seq, at, reason: text(m['reason'], 'reason', MAX_TEXT), ...ref }
        if (m['logTail'] !== undefined) out.logTail = text(m['logTail'], 'logTail', MAX_LOG_TAIL)
        return out
      }
      const grace = m['grace']
      if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) fail('grace must be a number of seconds of at least 0')
      const out: ClientMessage = { t: 'open', seq, at, grace, ...ref }
      if (m['name'] !== undefined) out.name = text(m['name'], 'name', MAX_TEXT)
      if (m['experiment'] !== undefined) out.experiment = text(m['experiment'], 'experiment', MAX_TEXT)
      if (m['resume'] !== undefined) out.resume = m['resume'] === true
      if (m['worldSize'] !== undefined) {
        const size = m['worldSize']
        if (!Number.isSafeInteger(size) || (size as number) < 1 || (size as number) > MAX_RANKS) fail(`worldSize must be an integer from 1 to ${MAX_RANKS}`)
        out.worldSize = size as number
        if (ref.rank !== undefined && ref.rank >= out.worldSize) fail('rank must be below worldSize')
      }
      if (m['finishOn'] !== undefined) out.finishOn = m['finishOn'] === 'rank0' ? 'rank0' : m['finishOn'] === 'all' ? 'all' : fail("finishOn must be 'all' or 'rank0'")
      return out
    }
    default:
      fail(`unknown message type ${JSON.stringify(m['t'])?.slice(0, 40)}`)
  }
}

/** Reads one frame from the daemon; throws a plain `Error` when it is not one. */
export function parseServerMessage(frame: string): ServerMessage {
  let value: unknown
  try {
    value = JSON.parse(frame)
  } catch {
    fail('a frame must be JSON')
  }
  if (!isObject(value)) fail('a frame must be a JSON object')
  switch (value['t']) {
    case 'welcome': {
      const d = value['daemon']
      if (!isObject(d)) fail('welcome.daemon must be an object')
      const heartbeatMs = Number(value['heartbeatMs'])
      return {
        t: 'welcome',
        v: Number(value['v']),
        daemon: { host: String(d['host']), pid: Number(d['pid']), repo: String(d['repo']) },
        heartbeatMs: Number.isFinite(heartbeatMs) && heartbeatMs > 0 ? heartbeatMs : DEFAULT_HEARTBEAT_MS,
      }
    }
    case 'ack':
      return { t: 'ack', seq: seqOf(value['seq']) }
    case 'event': {
      const e = value['event']
      if (!isObject(e) || typeof e['kind'] !== 'string' || !isObject(e['run'])) fail('event.event must be a run event')
      return { t: 'event', event: e as unknown as RunEvent }
    }
    case 'error': {
      const out: ServerMessage = { t: 'error', code: String(value['code']), message: String(value['message']) }
      if (value['seq'] !== undefined) out.seq = seqOf(value['seq'])
      return out
    }
    default:
      fail(`unknown message type ${JSON.stringify(value['t'])?.slice(0, 40)}`)
  }
}
