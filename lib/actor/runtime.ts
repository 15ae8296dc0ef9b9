/**
 * A repo's watching machinery, assembled: the actor (runs and deadlines), the live notifier
 * set (the repo's `config.json`, followed without restart, plus notifiers given in code), and
 * the delivery engine (the durable outbox). The training process runs one in its repo's worker
 * thread (service.ts); the daemon runs one per repo in its own process. Clock-injected.
 * @module
 */
import type { Clock } from '../clock.js'
import { AimStatusError, ErrorCodes, toPlainError } from '../errors.js'
import { wantsEvent, type NotifierEntry } from '../notify/contract.js'
import type { RunEvent, RunEventKind, RunInfo } from '../model.js'
import type { DeliveryRecord } from '../notify/delivery-record.js'
import { DeliveryEngine, type DeliveryOptions, type OutboxState } from '../notify/delivery.js'
import { readNotificationsConfig, type NotificationsConfig } from '../notify/config.js'
import { watchNotificationsConfig, type ConfigWatch } from '../notify/config-watch.js'
import { recordDelivery } from '../notify/status-file.js'
import { scrub, scrubError } from '../notify/redact.js'
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
  /** Each delivery record (the one model of an outcome: delivery-record.ts). */
  onReport?(record: DeliveryRecord): void
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
  /** Overrides for delivery (timeouts, backoff, budget, the grace of a vanished notifier). */
  delivery?: Pick<DeliveryOptions, 'timeoutMs' | 'timeoutsMs' | 'backoff' | 'budgetMs' | 'random' | 'vanishGraceMs'>
  /** How often to re-check `config.json` where file events are not available (NFS). Default 1000 ms. */
  configPollMs?: number
}

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
  readonly #openingCheckins = new Set<Promise<void>>()
  /** Configured ids that cannot be used now (invalid entries, unknown types): their items wait. */
  #unusable: ReadonlySet<string> = new Set()
  /** Problems of the configuration already reported, so each is said once. */
  #reportedProblems = new Set<string>()

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
        unusable: () => this.#unusable,
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

  /**
   * Opens a run's Aim check-ins once the owner's snapshot holding the run is durable: a daemon
   * that lists the run's first check-in then finds the run in the snapshot, and never takes it
   * for a Python run (which it would announce a second time, under another key).
   */
  openCheckins(hash: string): void {
    const opening = (this.#options.owner?.commit() ?? Promise.resolve())
      .catch((error: unknown) => this.#error(error))
      .then(() => {
        if (!this.#closed) this.checkins.open(hash)
      })
    this.#openingCheckins.add(opening)
    void opening.finally(() => this.#openingCheckins.delete(opening))
  }

  /** Resolves when every check-in asked for so far has been written. */
  async checkinsIdle(): Promise<void> {
    await Promise.all([...this.#openingCheckins])
    await this.checkins.idle()
  }

  /** Notifiers given in code to this process. */
  setProgrammaticNotifiers(entries: NotifierEntry[]): void {
    this.notifiers.setProgrammatic(entries)
    void this.delivery.notifiersChanged().catch((error: unknown) => this.#error(error))
  }

  /**
   * Stops timers, the config watch and sending. Pending items stay in the outbox state: the
   * owner's snapshot keeps them for a daemon (see {@link hasOutstanding}). Resolves with how many
   * were left, and says so on the watcher's output when there are any.
   */
  async close(): Promise<number> {
    if (this.#closed) return 0
    this.#closed = true
    this.actor.close()
    this.checkins.close()
    this.#configWatch?.close()
    await this.delivery.close()
    await Promise.allSettled([...this.#statusWrites])
    const left = this.delivery.state().pending.length
    if (left > 0) this.#options.writeLine(`aim-status: ${left} notification(s) not delivered yet (waiting for a retry) are left in this owner's snapshot for the aim-watcher daemon to deliver`)
    return left
  }

  #applyConfig(config: NotificationsConfig): void {
    // Entries of unknown types count as configured (the user chose them): they are skipped
    // with a warning, and the default logger does not stand in for them. Invalid entries count
    // too: a typo must not make the default logger take over, nor drop what waits for them.
    this.notifiers.setConfigured(
      [...config.notifiers, ...config.unknownTypes],
      config.invalid.map((problem) => problem.id),
    )
    const current = new Set(this.notifiers.current().map((n) => n.entry.id))
    this.#unusable = new Set([...config.unknownTypes.map((e) => e.id), ...config.invalid.map((p) => p.id)].filter((id) => !current.has(id)))
    // Said loudly, once per problem: the daemon logs it as an error, a Watcher emits `error`.
    const problems = new Set<string>()
    for (const problem of config.invalid) {
      const text = `notifier ${problem.id} in ${this.paths.config} is invalid and not used until it is fixed: ${problem.error}`
      problems.add(text)
      if (!this.#reportedProblems.has(text)) this.#error(new AimStatusError(ErrorCodes.INVALID_NOTIFIER, text))
    }
    this.#reportedProblems = problems
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

  /**
   * Whether a notifier in use wants events of this kind: the outbox's own test, so that a caller
   * with many events nobody wants (a daemon's first sight of 10k Python runs) can leave them out.
   */
  wantsKind(kind: RunEventKind): boolean {
    return this.notifiers.current().some((notifier) => wantsEvent(notifier.entry, kind))
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

  #onOutcome(record: DeliveryRecord): void {
    this.#options.onReport?.(record)
    // The default logger is not in config.json: it has no status to keep.
    if (this.notifiers.isConfigured(record.notifierId)) {
      const write = recordDelivery(this.paths, record).catch((error: unknown) => this.#error(error))
      this.#statusWrites.add(write)
      void write.finally(() => this.#statusWrites.delete(write))
    }
  }

  #error(error: unknown): void {
    // Every error leaves the runtime scrubbed: it may quote a notifier's URL or token.
    const plain = toPlainError(error)
    const wrapped = error instanceof Error ? scrubError(error) : new Error(scrub(plain.message))
    if (this.#options.onError !== undefined) this.#options.onError(wrapped)
    else this.#options.writeLine(`aim-status: ${wrapped.message}`)
  }
}
