/**
 * A repo's watching machinery, assembled: the actor (runs and deadlines), the live notifier
 * set (the repo's `config.json`, followed without restart, plus notifiers given in code), and
 * the delivery engine (the durable outbox). The training process runs one in its repo's worker
 * thread (service.ts); the daemon runs one per repo in its own process. Clock-injected.
 * @module
 */
import type { Clock } from '../clock.js'
import { toPlainError } from '../errors.js'
import type { NotifierEntry } from '../notify/contract.js'
import type { RunEvent, RunInfo } from '../model.js'
import type { DeliveryReport } from '../notify/delivery-report.js'
import { DeliveryEngine, type DeliveryOptions, type DeliveryReport as EngineReport, type OutboxState } from '../notify/delivery.js'
import { readNotificationsConfig, type NotificationsConfig } from '../notify/config.js'
import { watchNotificationsConfig, type ConfigWatch } from '../notify/config-watch.js'
import { recordDeliveryOutcome } from '../notify/status-file.js'
import { repoPaths, type RepoPaths } from '../repo.js'
import { MuteView, endMuteUntilHealthy, mutesPath, type Mute } from '../state/mutes.js'
import { RepoActor } from './actor.js'
import { NotifierSet } from './notifications.js'
import { CheckinPublisher } from './checkin-publisher.js'

export interface RuntimeOptions {
  /** Absolute repo root. */
  root: string
  host: string
  pid: number
  clock: Clock
  /** One line of the watcher's output (the logger notifier, warnings). */
  writeLine(line: string): void
  /** Each transition, after it was handed to the outbox (or, its run being muted, recorded without it). */
  onEvent?(event: RunEvent, muted: Mute | null): void
  /** Each delivery outcome. */
  onReport?(report: DeliveryReport): void
  /** Something went wrong that nobody awaits (a config file that does not parse, a failed write). */
  onError?(error: Error): void
  /** The outbox of a previous owner, to carry on. */
  restoredOutbox?: OutboxState
  /**
   * The durable owner this runtime acts for: its state is written through it, and every side
   * effect (accepting an event, each send, each check-in write) first asks it "may I act?".
   * Default: none (state kept in memory only, always allowed to act).
   */
  owner?: OwnerPort
  /** Overrides for delivery (timeouts, backoff, budget). */
  delivery?: Pick<DeliveryOptions, 'timeoutMs' | 'backoff' | 'budgetMs' | 'random'>
  /** How often to re-check `config.json` where file events are not available (NFS). Default 1000 ms. */
  configPollMs?: number
}

const toWire = (report: EngineReport): DeliveryReport => ({
  kind: report.kind === 'dropped' ? 'delivery-failed' : report.kind,
  notifierId: report.notifierId,
  notifierType: report.notifierType ?? 'unknown',
  eventKey: report.key,
  eventKind: report.event.kind,
  hash: report.event.run.hash,
  attempts: report.attempts,
  at: report.at,
  ...('error' in report ? { error: report.error } : {}),
})

const outcomeOf = (report: DeliveryReport) =>
  report.kind === 'notified'
    ? ({ kind: 'delivered' } as const)
    : report.kind === 'retrying'
      ? ({ kind: 'transient', error: report.error ?? '' } as const)
      : ({ kind: 'permanent', error: report.error ?? '' } as const)

/** What a runtime needs of its durable owner (lib/owner/durable-owner.ts). */
export interface OwnerPort {
  /** May the owner act now? Asked at the moment of every side effect. */
  mayAct(): boolean
  /** Makes the state durable now (the outbox awaits it before sending). */
  commit(): Promise<void>
  /** An ordinary change: written within the coalescing interval. */
  changed(): void
  /** A new or earlier deadline: written at once, for a daemon that may take over. */
  tightened(): void
}

/** The actor, its notifiers and its outbox for one repo. */
export class RepoRuntime {
  readonly actor: RepoActor
  readonly notifiers: NotifierSet
  readonly delivery: DeliveryEngine
  readonly paths: RepoPaths
  /** Aim check-ins of the runs opened with them (see {@link openCheckins}). */
  readonly checkins: CheckinPublisher
  /** The repo's mutes (`status/mutes.json`): a muted run's transitions are not queued. */
  readonly mutes: MuteView
  readonly #options: RuntimeOptions
  #configWatch: ConfigWatch | undefined
  #closed = false
  /** Delivery-status writes under way: close() waits for them, so nothing lands after it. */
  readonly #statusWrites = new Set<Promise<unknown>>()

  constructor(options: RuntimeOptions) {
    this.#options = options
    this.paths = repoPaths(options.root)
    const warn = (message: string) => options.writeLine(`aim-status: ${message}`)
    this.mutes = new MuteView(mutesPath(this.paths), (error) => this.#error(error))
    this.notifiers = new NotifierSet({ writeLine: options.writeLine }, warn)
    this.delivery = new DeliveryEngine(
      {
        clock: options.clock,
        notifiers: () => this.notifiers.current(),
        commit: options.owner?.commit ?? (async () => undefined),
        mayAct: () => this.#mayAct(),
        ...options.delivery,
        onOutcome: (report) => this.#onOutcome(report),
        onPersistError: (error) => this.#error(error),
      },
      options.restoredOutbox,
    )
    this.checkins = new CheckinPublisher({
      folder: this.paths.checkins,
      clock: options.clock,
      runOf: (hash) => this.actor.run(hash),
      onError: (error) => this.#error(error),
      mayAct: () => this.#mayAct(),
    })
    this.actor = new RepoActor({
      clock: options.clock,
      repo: options.root,
      host: options.host,
      pid: options.pid,
      onEvent: (event) => this.#onEvent(event),
      onProgress: (info, previous) => {
        this.checkins.sync(info.hash, info.deadlineAt)
        if (info.deadlineAt !== null && (previous === null || info.deadlineAt < previous)) options.owner?.tightened()
      },
      ...(options.owner !== undefined ? { onChange: options.owner.changed } : {}),
    })
  }

  /**
   * Reads the repo's notifier configuration (so the very first event already goes to the
   * configured notifiers) and then follows it.
   */
  async start(): Promise<void> {
    try {
      this.#applyConfig(await readNotificationsConfig(this.paths))
    } catch (error) {
      this.#error(error)
    }
    if (this.#closed) return
    this.#configWatch = watchNotificationsConfig(this.paths, (config) => this.#applyConfig(config), {
      clock: this.#options.clock,
      ...(this.#options.configPollMs !== undefined ? { pollMs: this.#options.configPollMs } : {}),
      onError: (error: unknown) => this.#error(error),
    })
  }

  /** The runs and the outbox, for the owner's snapshot. */
  snapshotState(): { runs: RunInfo[]; outbox: OutboxState } {
    return { runs: this.actor.runs(), outbox: this.delivery.state() }
  }

  /** Whether anything is left to watch or to send: a closing owner then leaves its snapshot for a daemon. */
  hasOutstanding(): boolean {
    return this.actor.runs().some((run) => run.status === 'running' || run.status === 'stalled') || this.delivery.state().pending.length > 0
  }

  /** Notifiers given in code to this process. */
  setProgrammaticNotifiers(entries: NotifierEntry[]): void {
    this.notifiers.setProgrammatic(entries)
    void this.delivery.notifiersChanged().catch((error: unknown) => this.#error(error))
  }

  /** Stops timers, the config watch and sending (pending items stay in the outbox state). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.actor.close()
    this.checkins.close()
    this.#configWatch?.close()
    await this.delivery.close()
    await Promise.allSettled([...this.#statusWrites])
  }

  #applyConfig(config: NotificationsConfig): void {
    // Entries of unknown types count as configured (the user chose them): they are skipped
    // with a warning, and the default logger does not stand in for them.
    this.notifiers.setConfigured([...config.notifiers, ...config.unknownTypes])
    void this.delivery.notifiersChanged().catch((error: unknown) => this.#error(error))
  }

  #mayAct(): boolean {
    return this.#options.owner?.mayAct() ?? true
  }

  #onEvent(event: RunEvent): void {
    if (this.#closed || !this.#mayAct()) return
    if (event.kind === 'finished') this.checkins.finish(event.run.hash)
    else if (event.kind === 'failed') this.checkins.stop(event.run.hash)
    const muted = this.muteOf(event)
    this.accept(event, muted).catch((error: unknown) => this.#error(error))
    this.#options.onEvent?.(event, muted)
  }

  /** The mute covering an event's run at the event's time, or null. */
  muteOf(event: RunEvent): Mute | null {
    return this.mutes.covering(event.run.hash, event.at)
  }

  /**
   * Hands an event to the outbox unless its run is muted (then nothing is queued, and a mute
   * until healthy ends with a recovery or a finish). Resolves with the notifier ids queued.
   */
  async accept(event: RunEvent, muted: Mute | null = this.muteOf(event)): Promise<string[]> {
    if (muted === null) return this.delivery.accept(event)
    if (muted.untilHealthy && (event.kind === 'recovered' || event.kind === 'finished')) {
      await endMuteUntilHealthy(this.mutes.path, muted, Date.now())
    }
    return []
  }

  #onOutcome(report: EngineReport): void {
    const wire = toWire(report)
    this.#options.onReport?.(wire)
    // The default logger is not in config.json: it has no status to keep.
    if (this.notifiers.isConfigured(report.notifierId)) {
      const write = recordDeliveryOutcome(this.paths, report.notifierId, outcomeOf(wire), report.at).catch((error: unknown) => this.#error(error))
      this.#statusWrites.add(write)
      void write.finally(() => this.#statusWrites.delete(write))
    }
  }

  #error(error: unknown): void {
    const plain = toPlainError(error)
    const wrapped = error instanceof Error ? error : new Error(plain.message)
    if (this.#options.onError !== undefined) this.#options.onError(wrapped)
    else this.#options.writeLine(`aim-status: ${plain.message}`)
  }
}
