/**
 * The runs of this process that live in a daemon, reached over one session
 * ({@link SessionClient}): the same {@link Run} handles as locally (the same hot path, the same
 * coalescing), on a channel that turns their messages into session frames, adding the rank for
 * a run of many ranks. One per (servers, token, repo) per process.
 *
 * What it adds to the session:
 * - a tick about once a second sends the latest report of any run whose shared slot holds a
 *   newer one than was last sent, so the daemon is never more than about a second behind and
 *   a run sends about one message a second at most;
 * - this process's death (lib/process-death.ts) fails its unfinished runs with the same
 *   reason a local run gets (`exited with code 1 (Error: …)`, `killed by SIGTERM`), written
 *   synchronously on the socket; a SIGKILL says nothing, and the daemon fails the runs when the
 *   session closes without a goodbye;
 * - `close()` says goodbye: the daemon fails nothing, and unfinished runs stall if they never
 *   come back.
 *
 * A rank's handle is not ended by the run's `finished` or `failed` (another rank's doing): the
 * rank goes on and reports its own end; those events are emitted on the watcher, and on the
 * handle only when the run ended by this rank's own report.
 * @module
 */
import { EventEmitter } from 'eventemitter3'
import { AimStatusError, ErrorCodes } from '../errors.js'
import { SLOT_DEADLINE, SLOT_LAST_PROGRESS, type FinishOn, type ProgressSlot, type RunEvent } from '../model.js'
import { onProcessDeath } from '../process-death.js'
import { Run, type RunChannel } from '../run.js'
import { exitReason } from '../state/exit-marker.js'
import type { HostMessage } from '../actor/protocol.js'
import { SessionClient, type RunMessage } from './session-client.js'

/** How often the latest reports are sent, ms. */
export const REPORT_TICK_MS = 1000

/** The events of a {@link RemoteWatcher}: its runs' transitions, and trouble with the session. */
export interface RemoteWatcherEvents {
  started: [event: RunEvent]
  stalled: [event: RunEvent]
  recovered: [event: RunEvent]
  finished: [event: RunEvent]
  failed: [event: RunEvent]
  /** The session's trouble after it first connected (a refused token, a refused message): it keeps reconnecting. */
  error: [error: Error]
}

/** Where a remote watcher reports. */
export interface RemoteWatcherOptions {
  /** The daemons, in failover order. */
  servers: string[]
  token?: string | undefined
  /** The repo root on the daemon's side. Default: the daemon's. */
  repo?: string | undefined
  /** Default 10 000 ms. */
  connectTimeoutMs?: number
}

/** What a remote run is, besides its handle. */
export interface RemoteRunOptions {
  hash: string
  name: string | undefined
  experiment: string | undefined
  grace: number
  /** For a run of many ranks. */
  ranked?: { rank: number; worldSize: number; finishOn: FinishOn } | undefined
}

interface Tracked {
  run: Run
  open: Extract<RunMessage, { t: 'open' }>
  slot: ProgressSlot | undefined
  /** The last report sent: its time. */
  sentAt: number
  /** A report went out since the last tick: the handle's own coalescing keeps the daemon current, the tick stays quiet. */
  sentSinceTick: boolean
  /** Neither finish nor fail posted. */
  unfinished: boolean
  /** Re-opened after a reconnect: until its finish or failure is acknowledged (a daemon restarted before it may not have it). */
  resumable: boolean
  /** The handle was closed: no events for it. */
  released: boolean
  rank: number | undefined
}

const watchers = new Map<string, Promise<RemoteWatcher>>()

/** Runs of this process watched by a daemon over a session. */
export class RemoteWatcher extends EventEmitter<RemoteWatcherEvents> {
  readonly #session: SessionClient
  readonly #runs = new Map<string, Tracked>()
  readonly #tick: NodeJS.Timeout
  readonly #offDeath: () => void
  readonly #key: string
  #closed = false

  private constructor(key: string, options: RemoteWatcherOptions) {
    super()
    this.#key = key
    this.#session = new SessionClient({
      urls: options.servers,
      ...(options.token !== undefined ? { token: options.token } : {}),
      ...(options.repo !== undefined ? { repo: options.repo } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      resume: () => this.#resumeMessages(),
      onEvent: (event) => this.#onEvent(event),
      // An error event nobody listens for would throw: the session's trouble must not end training.
      onError: (error) => {
        if (this.listenerCount('error') > 0) this.emit('error', error)
      },
    })
    this.#tick = setInterval(() => this.#onTick(), REPORT_TICK_MS)
    this.#tick.unref()
    this.#offDeath = onProcessDeath({
      begin: (death) => {
        const reason = exitReason(death)
        for (const tracked of this.#runs.values()) {
          if (!tracked.unfinished) continue
          tracked.unfinished = false
          this.#session.sendNow({ t: 'fail', hash: tracked.open.hash, at: Date.now(), reason, ...rankOf(tracked) })
        }
        return null
      },
      end: () => undefined,
    })
  }

  /**
   * The remote watcher of these servers in this process, connected: shared by every later call
   * with the same servers, token and repo. Rejects with `AIM_STATUS_UNAUTHORIZED` or
   * `AIM_STATUS_SERVER_UNREACHABLE` when the first connect fails.
   */
  static async open(options: RemoteWatcherOptions): Promise<RemoteWatcher> {
    const key = JSON.stringify([options.servers, options.token ?? null, options.repo ?? null])
    let pending = watchers.get(key)
    if (pending === undefined) {
      const watcher = new RemoteWatcher(key, options)
      pending = watcher.#session.ready().then(
        () => watcher,
        (error: unknown) => {
          watcher.#shut()
          throw error
        },
      )
      watchers.set(key, pending)
      pending.catch(() => {
        if (watchers.get(key) === pending) watchers.delete(key)
      })
    }
    return pending
  }

  /** The daemon that welcomed the session last. */
  get daemon(): { host: string; pid: number; repo: string } | undefined {
    return this.#session.daemon
  }

  /** Starts watching a run in the daemon; resolves once the daemon has it in its snapshot. */
  async watch(options: RemoteRunOptions): Promise<Run> {
    if (this.#closed) throw new AimStatusError(ErrorCodes.CLOSED, 'The remote watcher is closed: watch() after close()')
    if (this.#runs.has(options.hash)) throw new AimStatusError(ErrorCodes.RUN_ALREADY_OPEN, `Run '${options.hash}' is already being watched in this process`)
    const ranked = options.ranked
    const open: Extract<RunMessage, { t: 'open' }> = {
      t: 'open',
      hash: options.hash,
      grace: options.grace,
      at: 0,
      ...(options.name !== undefined ? { name: options.name } : {}),
      ...(options.experiment !== undefined ? { experiment: options.experiment } : {}),
      ...(ranked !== undefined ? { rank: ranked.rank, worldSize: ranked.worldSize, finishOn: ranked.finishOn } : {}),
    }
    // The handle is set just below; its constructor posts `open`, which needs only the rest.
    const tracked: Tracked = { run: undefined as unknown as Run, open, slot: undefined, sentAt: 0, sentSinceTick: false, unfinished: true, resumable: true, released: false, rank: ranked?.rank }
    const channel: RunChannel = {
      post: (message) => this.#post(tracked, message),
      settle: () => this.#session.settle(),
      release: () => {
        tracked.released = true
      },
    }
    this.#runs.set(options.hash, tracked)
    // The handle posts its `open` from its constructor: the channel sees `tracked` already.
    tracked.run = new Run({ hash: options.hash, name: options.name, experiment: options.experiment, grace: options.grace, checkins: false, channel })
    await this.#session.settle()
    return tracked.run
  }

  /** Resolves when every message sent so far has been acknowledged by the daemon. */
  flush(): Promise<void> {
    return this.#session.settle()
  }

  /**
   * Says goodbye to the daemon and stops: unfinished runs are left as they are (they stall if
   * nobody reports them again). Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#sendLatest()
    this.#shut()
    for (const tracked of this.#runs.values()) void tracked.run.close()
  }

  #shut(): void {
    this.#closed = true
    if (watchers.get(this.#key) !== undefined) watchers.delete(this.#key)
    clearInterval(this.#tick)
    this.#offDeath()
    this.#session.close()
  }

  #post(tracked: Tracked, message: HostMessage): void {
    const rank = rankOf(tracked)
    switch (message.kind) {
      case 'open':
        tracked.slot = message.slot
        // Whole milliseconds: the start names the run's instance, and a daemon's snapshot keeps
        // whole ms, so a resume after a daemon restart must send the very same number.
        tracked.open.at = Math.round(message.at)
        tracked.sentAt = message.at
        // A handle re-established after a detach is not a new run: resumed.
        this.#send(message.resume === true ? { ...tracked.open, resume: true } : tracked.open)
        return
      case 'progress':
        tracked.sentAt = message.at
        tracked.sentSinceTick = true
        this.#send({ t: 'progress', hash: message.hash, at: message.at, expectNextIn: message.expectNextIn, ...rank })
        return
      case 'finish':
        this.#sendLatestOf(tracked)
        tracked.unfinished = false
        this.#send({ t: 'finish', hash: message.hash, at: message.at, ...rank }, () => (tracked.resumable = false))
        return
      case 'fail':
        tracked.unfinished = false
        this.#send({ t: 'fail', hash: message.hash, at: message.at, reason: message.reason, ...(message.logTail !== undefined ? { logTail: message.logTail } : {}), ...rank }, () => (tracked.resumable = false))
        return
      default:
        return
    }
  }

  /**
   * Sends without awaiting: a refusal was said as an `error` event already, and must not become
   * an unhandled rejection in a training process. `onAcked` runs once the daemon has it.
   */
  #send(message: RunMessage, onAcked?: () => void): void {
    this.#session.send(message).then(onAcked, () => undefined)
  }

  /** The report a slot holds, when newer than the last one sent. */
  #latestOf(tracked: Tracked): RunMessage | undefined {
    const slot = tracked.slot
    if (slot === undefined) return undefined
    const at = slot[SLOT_LAST_PROGRESS] as number
    if (!(at > tracked.sentAt)) return undefined
    const deadline = slot[SLOT_DEADLINE] as number
    return { t: 'progress', hash: tracked.open.hash, at, expectNextIn: deadline === Number.POSITIVE_INFINITY ? 0 : Math.max(0, (deadline - at) / 1000), ...rankOf(tracked) }
  }

  #sendLatestOf(tracked: Tracked): void {
    if (!tracked.unfinished) return
    const latest = this.#latestOf(tracked)
    if (latest === undefined || latest.t !== 'progress') return
    tracked.sentAt = latest.at
    this.#send(latest)
  }

  #sendLatest(): void {
    for (const tracked of this.#runs.values()) this.#sendLatestOf(tracked)
  }

  /** About once a second: the latest report of each run that sent none since the last tick (about one message a second a run, at most two). */
  #onTick(): void {
    for (const tracked of this.#runs.values()) {
      if (!tracked.sentSinceTick) this.#sendLatestOf(tracked)
      tracked.sentSinceTick = false
    }
  }

  /** After a reconnect: each active run opened again (its original start), then its latest report. */
  #resumeMessages(): RunMessage[] {
    const out: RunMessage[] = []
    for (const tracked of this.#runs.values()) {
      if (!tracked.resumable || tracked.slot === undefined) continue
      out.push({ ...tracked.open, resume: true })
      const slot = tracked.slot
      const at = slot[SLOT_LAST_PROGRESS] as number
      if (at > tracked.open.at) {
        const deadline = slot[SLOT_DEADLINE] as number
        out.push({ t: 'progress', hash: tracked.open.hash, at, expectNextIn: deadline === Number.POSITIVE_INFINITY ? 0 : Math.max(0, (deadline - at) / 1000), ...rankOf(tracked) })
        tracked.sentAt = Math.max(tracked.sentAt, at)
      }
    }
    return out
  }

  #onEvent(event: RunEvent): void {
    const tracked = this.#runs.get(event.run.hash)
    if (tracked !== undefined && !tracked.released) {
      // A rank whose own end is not yet reported goes on: the run's end is another rank's doing.
      const ending = event.kind === 'finished' || event.kind === 'failed'
      if (!(ending && tracked.rank !== undefined && tracked.unfinished)) tracked.run.deliver(event)
    }
    if (event.kind === 'finished' || event.kind === 'failed') {
      if (tracked !== undefined && tracked.rank === undefined) tracked.unfinished = tracked.resumable = false
    }
    this.emit(event.kind, event)
  }
}

function rankOf(tracked: Tracked): { rank?: number } {
  return tracked.rank !== undefined ? { rank: tracked.rank } : {}
}
