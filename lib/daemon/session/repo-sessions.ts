/**
 * The sessions of one repo while this daemon is its sender: their connections (one per client
 * id), which runs each reports ({@link Bindings}), their events, and what a departure does.
 *
 * - goodbye: the runs' session is `ended`; nothing is failed (the run keeps its last promise).
 * - closed without a goodbye: `closed`, and after the reconnect window the runs (or ranks) the
 *   process did not resume on another connection fail, their reason naming the process.
 * - no pong: `lost`; nothing is failed, deadlines carry on.
 * - replaced by the same client's newer connection, or let go by the daemon: nothing changes.
 * @module
 */
import type { Clock } from '../../clock.js'
import type { RunEvent } from '../../model.js'
import type { RepoRuntime } from '../../actor/runtime.js'
import { DeadlineTimer } from '../../timer.js'
import { SESSION_PROTOCOL, type ServerMessage } from '../../session/protocol.js'
import type { DaemonLog } from '../log.js'
import { applyRunMessage, type Applied, type RunMessage } from './apply.js'
import { Bindings, type Binding } from './bindings.js'
import type { Departure, RepoSide, SessionConnection } from './connection.js'

/** Options of {@link RepoSessions}. */
export interface RepoSessionsOptions {
  root: string
  runtime: RepoRuntime
  /** Makes the runtime's state durable (the daemon's snapshot). */
  commit(): Promise<void>
  daemon: { host: string; pid: number }
  heartbeatMs: number
  reconnectWindowMs: number
  /** The runtime's clock: the reconnect window is a deadline like any other. */
  clock: Clock
  log: DaemonLog
}

const isActiveStatus = (status: string | undefined): boolean => status === 'running' || status === 'stalled'
/**
 * The longest a run whose session on the repo's Unix socket closed without a goodbye waits for its
 * process to come back, ms: a local socket closes only when its process dies or reconnects.
 */
export const UNIX_RECONNECT_WINDOW_MS = 100

/** The reason a run fails with when its process left without a goodbye. */
export const wentAwayReason = (pid: number, host: string): string => `process ${pid} on ${host} went away (its session closed without a goodbye)`

/** The sessions of one repo. */
export class RepoSessions {
  readonly #options: RepoSessionsOptions
  readonly #bindings = new Bindings<SessionConnection>()
  readonly #byClient = new Map<string, SessionConnection>()
  /** Which departure left a binding without a connection: only that departure's window may fail it. */
  readonly #leftBy = new WeakMap<Binding<SessionConnection>, object>()
  readonly #windows = new Set<DeadlineTimer>()
  #closed = false

  constructor(options: RepoSessionsOptions) {
    this.#options = options
  }

  /** Connections open now. */
  get open(): number {
    return this.#byClient.size
  }

  /** Binds a connection that said hello to this repo; an older connection of the same client is let go (its runs carry on, on the new one). */
  attach(conn: SessionConnection): RepoSide {
    const id = (conn.client as { id: string }).id
    const older = this.#byClient.get(id)
    this.#byClient.set(id, conn)
    if (older !== undefined && older !== conn) {
      this.#bindings.move(older, conn)
      older.letGo(4001, 'replaced by a newer connection of the same process')
    }
    return {
      welcome: (): ServerMessage => ({ t: 'welcome', v: SESSION_PROTOCOL, daemon: { ...this.#options.daemon, repo: this.#options.root }, heartbeatMs: this.#options.heartbeatMs }),
      apply: (c, m) => this.#apply(c, m),
      commit: () => this.#options.commit(),
      departed: (c, how) => this.#departed(c, how),
    }
  }

  /** A transition of the repo: sent to the sessions that report the run. */
  event(event: RunEvent): void {
    const bound = this.#bindings.ofRun(event.run.hash)
    if (bound.size === 0) return
    const sent = new Set<SessionConnection>()
    for (const binding of bound) {
      if (binding.conn === null || sent.has(binding.conn)) continue
      sent.add(binding.conn)
      binding.conn.send({ t: 'event', event })
    }
    if (event.kind === 'finished' || event.kind === 'failed') this.#bindings.dropRun(event.run.hash)
  }

  /** Lets every connection go (the daemon stands by or stops: clients reconnect, to a standby); nothing is failed. */
  close(code: number, reason: string): void {
    this.#closed = true
    for (const timer of this.#windows) timer.close()
    this.#windows.clear()
    for (const conn of [...this.#byClient.values()]) conn.letGo(code, reason)
    this.#byClient.clear()
    this.#bindings.clear()
  }

  #apply(conn: SessionConnection, m: RunMessage): Applied {
    const client = conn.client as NonNullable<SessionConnection['client']>
    const who = conn.reporter as NonNullable<SessionConnection['reporter']>
    const { runtime, root, daemon } = this.#options
    const applied = applyRunMessage(m, { actor: runtime.actor, who, repo: root, daemon, holds: (hash, rank) => this.#bindings.holds(hash, rank, client.id) })
    if (applied.ok && m.t === 'open' && applied.tell === undefined) this.#bindings.bind(m.hash, m.rank, client.id, conn)
    return applied
  }

  #departed(conn: SessionConnection, how: Departure): void {
    const id = conn.client?.id
    if (id !== undefined && this.#byClient.get(id) === conn) this.#byClient.delete(id)
    if (this.#closed || how === 'let-go') return
    const { actor } = this.#options.runtime
    const bound = this.#bindings.ofConnection(conn)
    const who = conn.reporter
    this.#options.log.info('session-ended', { repo: this.#options.root, how, client: id, pid: who?.pid, host: who?.host, runs: bound.length })
    if (how === 'bye') {
      for (const b of bound) {
        actor.setSession(b.hash, b.rank, 'ended')
        this.#bindings.drop(b)
      }
      return
    }
    const departure = {}
    for (const b of bound) {
      actor.setSession(b.hash, b.rank, how === 'lost' ? 'lost' : 'closed')
      b.conn = null
      this.#leftBy.set(b, departure)
    }
    if (how === 'lost' || bound.length === 0 || who === null) return
    const { clock, reconnectWindowMs } = this.#options
    const window = new DeadlineTimer(clock, () => {
      this.#windows.delete(window)
      this.#failLeft(bound, departure, wentAwayReason(who.pid, who.host))
    })
    this.#windows.add(window)
    // Over the Unix socket there is no network to break: a close without a goodbye is the
    // process's death (or its own reconnect, whose hello follows at once), so it waits less.
    window.arm(clock.now() + (who.via === 'unix' ? Math.min(reconnectWindowMs, UNIX_RECONNECT_WINDOW_MS) : reconnectWindowMs))
  }

  /** The runs (and ranks) a departure left that nobody resumed meanwhile: failed. */
  #failLeft(bound: Array<Binding<SessionConnection>>, departure: object, reason: string): void {
    const { actor } = this.#options.runtime
    const now = this.#options.clock.now()
    for (const b of bound) {
      if (b.conn !== null || this.#leftBy.get(b) !== departure) continue
      this.#bindings.drop(b)
      const run = actor.run(b.hash)
      if (!isActiveStatus(run?.status)) continue
      if (b.rank === undefined) actor.fail(b.hash, now, reason)
      else if (isActiveStatus(run?.ranks?.find((r) => r.rank === b.rank)?.status)) actor.rankFail(b.hash, b.rank, now, reason)
    }
  }
}
