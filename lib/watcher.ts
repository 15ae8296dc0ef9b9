/**
 * The per-repo `Watcher`: one per repo per process, shared by every run of that repo. It owns
 * the repo's actor thread (through {@link ActorHost}), hands out run handles, routes events to
 * them, and re-emits every run's events, typed, for programs that watch many runs.
 *
 * Its lifecycle (drawn in the README): `Watcher.open()` resolves once the thread answers; it is
 * then open (a thread that dies is restarted, with an `error` event); `close()` is graceful and
 * a second call joins the first; `destroy()` ends the thread at once; once either has been
 * called, every other method rejects with `AIM_STATUS_CLOSED`.
 * @module
 */
import { EventEmitter } from 'eventemitter3'
import { AimStatusError, ErrorCodes, fromPlainError } from './errors.js'
import { testHooks, type WatcherTestHooks } from './internal.js'
import type { NotifierEntry } from './notify/contract.js'
import type { RunEvent, RunInfo } from './model.js'
import { watcherEventOf, type DeliveryRecord } from './notify/delivery-record.js'
import { repoPaths, resolveRepoRoot } from './repo.js'
import { installExitMarker } from './state/exit-marker.js'
import { muteFromRequest, mutesPath, readMutes, removeMute, setMute, type Mute, type MuteRequest } from './state/mutes.js'
import { holdsNewestGeneration } from './state/fence.js'
import { snapshotPath, statusLayout } from './state/layout.js'
import type { OwnerInfo } from './state/owner.js'
import { DEFAULT_EXIT_TIMEOUT_SECONDS, defaultDaemonChoice, resolveWatchOptions, resolveWatcherOptions, type DaemonChoice, type ResolvedWatcherOptions, type WatchOptions, type WatcherOptions } from './options.js'
import { monotonicNow } from './clock.js'
import { controllingTerminal } from './terminal.js'
import { ActorHost } from './actor/host.js'
import { ensureDaemon } from './daemon-launch.js'
import { customTypeNames } from './actor/custom-types.js'
import { addNotifier, disableNotifier, enableNotifier, listNotifiers, removeNotifier, testNotifiers, type NotifierListing, type NotifierSpec, type NotifierTestResult } from './notify/manage.js'
import type { ActorMessage } from './actor/protocol.js'
import { Run, type RunChannel } from './run.js'

/** The events of a {@link Watcher}. */
export interface WatcherEvents {
  /** A run was opened. */
  started: [event: RunEvent]
  /** A run missed its deadline by more than its grace. */
  stalled: [event: RunEvent]
  /** A stalled run reported progress again. */
  recovered: [event: RunEvent]
  /** A run reported a successful finish. */
  finished: [event: RunEvent]
  /** A run reported a failure, or its process died. */
  failed: [event: RunEvent]
  /** A notifier delivered a notification. */
  notified: [record: DeliveryRecord]
  /** A notifier failed to deliver: permanently, or past its retry budget (`record.reason`). */
  'delivery-failed': [record: DeliveryRecord]
  /** An attempt failed; another is scheduled (`record.nextAttemptAt`, `record.nextTimeoutMs`). */
  retrying: [record: DeliveryRecord]
  /** A notification was not sent by choice: its notifier was disabled, or removed from the configuration (`record.reason`). */
  dropped: [record: DeliveryRecord]
  /**
   * Something went wrong in the watcher itself (the thread died and was restarted, …), or the
   * repo's `config.json` has an invalid entry or cannot be read (`AIM_STATUS_INVALID_NOTIFIER`,
   * `AIM_STATUS_CORRUPT_FILE`): said once per problem, the last good configuration stays.
   */
  error: [error: Error]
}

const watchers = new Map<string, Promise<Watcher>>()

/** The terminal this process was started from, for its snapshot (read once: it does not change). */
let terminal: string | undefined | null = null
function terminalOption(): { terminal?: string } {
  if (terminal === null) terminal = controllingTerminal()
  return terminal === undefined ? {} : { terminal }
}

/** Watches the runs of one repo from this process. */
export class Watcher extends EventEmitter<WatcherEvents> {
  /** The absolute repo root. */
  readonly root: string
  #host: ActorHost | undefined
  #runs = new Map<string, Run>()
  #notifiers: NotifierEntry[] = []
  /** Runs opened here that have neither finished nor failed (a closed handle's run included). */
  #unfinished = new Set<string>()
  #uninstallExitMarker: (() => void) | undefined
  /** `open` until close() or destroy() is called; `closed` once the watcher has let go of everything. */
  #state: 'open' | 'closing' | 'closed' = 'open'
  #closing: Promise<void> | undefined
  /** The entry this watcher has in the per-process table, so that only its own is removed. */
  #registration: Promise<Watcher> | undefined
  #daemonEnsured: Promise<void> | undefined
  /** Whether to make sure a daemon watches the repo (the last choice given, else the default). */
  #daemon: DaemonChoice = defaultDaemonChoice()
  /** The daemon choice was given in code (a failure to start one is then an error, not a warning). */
  #daemonExplicit = false
  /** Seconds a dying process waits for its runs' failure to be sent. */
  #exitTimeout = DEFAULT_EXIT_TIMEOUT_SECONDS

  private constructor(root: string) {
    super()
    this.root = root
  }

  /**
   * The watcher of a repo, started on first use and shared by every later call for the same
   * root in this process.
   */
  static async open(options: WatcherOptions = {}): Promise<Watcher> {
    const resolved = resolveWatcherOptions(options)
    const root = resolveRepoRoot(resolved.repo)
    let pending = watchers.get(root)
    if (pending === undefined) {
      pending = Watcher.#start(root)
      watchers.set(root, pending)
      pending.catch(() => watchers.delete(root))
    }
    const watcher = await pending
    watcher.#apply(resolved)
    if (resolved.notifiers.length > 0) await watcher.#addNotifiers(resolved.notifiers)
    return watcher
  }

  static #start(root: string): Promise<Watcher> {
    const watcher = new Watcher(root)
    watcher.#registration = (async () => {
      watcher.#host = await ActorHost.start({
        root,
        notifiers: [],
        onMessage: (message) => watcher.#onActorMessage(message),
        onRestart: (error) => watcher.#onActorRestart(error),
        onOwner: (owner) => watcher.#onOwner(owner),
        ...terminalOption(),
      })
      return watcher
    })()
    return watcher.#registration
  }

  /** Starts watching a run of this repo. See `watch()` for the options. */
  async watch(options: WatchOptions = {}): Promise<Run> {
    this.#assertOpen('watch')
    const resolved = resolveWatchOptions(options)
    if (resolved.repo !== undefined && resolveRepoRoot(resolved.repo) !== this.root) {
      throw new AimStatusError(ErrorCodes.INVALID_PATH, `This watcher watches ${this.root}, not ${resolveRepoRoot(resolved.repo)}`)
    }
    const host = this.#liveHost()
    if (this.#runs.has(resolved.hash)) {
      throw new AimStatusError(ErrorCodes.RUN_ALREADY_OPEN, `Run '${resolved.hash}' is already being watched in this process`)
    }
    this.#apply(resolved)
    if (resolved.notifiers.length > 0) await this.#addNotifiers(resolved.notifiers)
    const channel: RunChannel = {
      post: (message) => this.#host?.post(message),
      // A finish or failure is on disk before the caller goes on (and may exit): a daemon
      // that later finds the process gone must see the run ended, not unfinished.
      settle: async () => {
        await this.#liveHost().call((control) => control.settle())
      },
      release: (hash) => this.#runs.delete(hash),
    }
    const run = new Run({ hash: resolved.hash, name: resolved.name, experiment: resolved.experiment, grace: resolved.grace, checkins: resolved.checkins, channel })
    this.#runs.set(run.hash, run)
    this.#unfinished.add(run.hash)
    // The run is in the snapshot before the caller starts training: a process killed a moment
    // later is still known to a daemon.
    await host.call((control) => control.flush())
    // After the flush: a daemon deciding, just now, that it has nothing left to watch either
    // sees this run's snapshot or has let go of the repo, so that this check starts a new one.
    await this.#ensureDaemon()
    return run
  }

  /**
   * Resolves when everything reported so far is on disk: the watcher's snapshot and the runs'
   * Aim check-ins. Useful before a planned stop, or to read the files in a test.
   */
  async flush(): Promise<void> {
    await this.#liveHost().call((control) => control.flush())
  }

  /** Every run this watcher knows, with its status, last progress and deadline. */
  async runs(): Promise<RunInfo[]> {
    return this.#liveHost().call((control) => control.runs())
  }

  /** One run's state, or undefined. */
  async run(hash: string): Promise<RunInfo | undefined> {
    return (await this.runs()).find((r) => r.hash === hash)
  }

  /**
   * The notifiers this watcher uses now: the repo's configured ones (as last read; a change of
   * `config.json` is picked up within about a second) and the ones given in code, or the
   * default logger when there are none.
   */
  async activeNotifiers(): Promise<Array<{ id: string; type: string; status: 'enabled' | 'disabled' }>> {
    return this.#liveHost().call((control) => control.activeNotifiers())
  }

  /**
   * Adds a notifier to the repo's `config.json` (shared with the CLI and Python Aim) and
   * returns its entry. Running watchers, this one included, use it from the next event on.
   */
  async addNotifier(spec: NotifierSpec): Promise<NotifierEntry> {
    this.#assertOpen('addNotifier')
    const entry = await addNotifier(this.root, spec)
    // A type registered from code since the thread started must be made known to it.
    const all = this.#notifiers
    await this.#liveHost().call((control) => control.setNotifiers(all, customTypeNames()))
    return entry
  }

  /** The repo's configured notifiers, secrets redacted, with their last delivery or error. */
  async listNotifiers(): Promise<NotifierListing[]> {
    this.#assertOpen('listNotifiers')
    return listNotifiers(this.root)
  }

  /** Enables a configured notifier (`AIM_STATUS_UNKNOWN_NOTIFIER` if there is none with this id). */
  async enableNotifier(id: string): Promise<void> {
    this.#assertOpen('enableNotifier')
    await enableNotifier(this.root, id)
  }

  /** Disables a configured notifier; its pending notifications are dropped. */
  async disableNotifier(id: string): Promise<void> {
    this.#assertOpen('disableNotifier')
    await disableNotifier(this.root, id)
  }

  /** Removes a configured notifier. */
  async removeNotifier(id: string): Promise<void> {
    this.#assertOpen('removeNotifier')
    await removeNotifier(this.root, id)
  }

  /** Sends a test message through every enabled notifier, or the one given, and returns each outcome. */
  async testNotifiers(id?: string): Promise<NotifierTestResult[]> {
    this.#assertOpen('testNotifiers')
    return testNotifiers(this.root, id)
  }

  /**
   * Mutes a run of this repo: its transitions are still recorded, shown and emitted here, but
   * not sent, by this process or any other process or daemon of the repo. Exactly one of
   * `for` (seconds, or `'90m'`, `'2h'`, `'1d'`; at most 30 days) and `untilHealthy: true` (until
   * its next recovery or finish). The run need not have started. Replaces an earlier mute.
   */
  async muteRun(hash: string, request: MuteRequest): Promise<Mute> {
    this.#assertOpen('muteRun')
    const mute = muteFromRequest(hash, request, Date.now())
    await setMute(mutesPath(repoPaths(this.root)), mute)
    return mute
  }

  /** Ends a run's mute; resolves with whether it had one. */
  async unmuteRun(hash: string): Promise<boolean> {
    this.#assertOpen('unmuteRun')
    return removeMute(mutesPath(repoPaths(this.root)), hash, Date.now())
  }

  /** The repo's mutes in force. */
  async mutes(): Promise<Mute[]> {
    this.#assertOpen('mutes')
    return [...(await readMutes(mutesPath(repoPaths(this.root)), Date.now())).values()]
  }

  /**
   * Stops watching: notifications under way are finished, the thread ends. Runs that have not
   * finished are left as they are (a daemon, if one runs, carries on watching them). A second
   * call returns the first call's promise; every other method rejects with
   * `AIM_STATUS_CLOSED` from the first call on.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close())
  }

  /**
   * Stops at once: the thread is terminated without finishing what is under way (a notification
   * being sent, a snapshot write), and a `close()` in progress ends with it. What the snapshot
   * already holds stays for a daemon to take over, as after a crash. Safe to call twice.
   */
  async destroy(): Promise<void> {
    if (this.#state === 'closed') return
    const host = this.#host
    this.#letGo()
    await host?.destroy()
  }

  async #close(): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closing'
    this.#unregister()
    try {
      await this.#host?.close()
    } finally {
      this.#letGo()
    }
  }

  /** Lets go of the thread, the exit marker and the runs; the watcher is closed. */
  #letGo(): void {
    this.#state = 'closed'
    this.#unregister()
    this.#uninstallExitMarker?.()
    this.#uninstallExitMarker = undefined
    this.#host = undefined
    for (const run of this.#runs.values()) void run.close()
    this.#runs.clear()
  }

  /** A later `Watcher.open()` of this root starts a new watcher. */
  #unregister(): void {
    if (watchers.get(this.root) === this.#registration) watchers.delete(this.root)
  }

  /** @internal */
  get [testHooks](): WatcherTestHooks {
    return {
      terminateThread: () => this.#liveHost()[testHooks].terminateThread(),
      receiveFromThread: (message) => this.#onActorMessage(message as ActorMessage),
    }
  }

  /** The options that last until changed: keep-alive, the daemon choice, the exit timeout. */
  #apply(resolved: ResolvedWatcherOptions): void {
    if (resolved.keepAlive !== undefined) this.#liveHost().setKeepAlive(resolved.keepAlive)
    if (resolved.daemon !== undefined) {
      this.#daemon = resolved.daemon
      this.#daemonExplicit = true
    }
    if (resolved.exitTimeout !== undefined) this.#exitTimeout = resolved.exitTimeout
  }

  /**
   * Starts a daemon for this repo unless one holds it (once per watcher, when its first run is
   * watched). Asked for in code, a failure rejects; by default it is said on standard error and
   * watching goes on: the training must not stop because a daemon could not start.
   */
  async #ensureDaemon(): Promise<void> {
    const choice = this.#daemon
    if (choice === false) return
    const explicit = this.#daemonExplicit
    this.#daemonEnsured ??= ensureDaemon(this.root, { exitWhenIdle: choice.exitWhenIdle }).then(
      () => undefined,
      (error: unknown) => {
        if (explicit) throw error
        process.stderr.write(`@aim/status: could not start an aim-watcher daemon for ${this.root} (${error instanceof Error ? error.message : String(error)}); runs are watched by this process only\n`)
      },
    )
    try {
      await this.#daemonEnsured
    } catch (error) {
      this.#daemonEnsured = undefined
      throw error
    }
  }

  #liveHost(): ActorHost {
    this.#assertOpen()
    return this.#host as ActorHost
  }

  #assertOpen(method?: string): void {
    if (this.#state !== 'open' || this.#host === undefined) {
      throw new AimStatusError(ErrorCodes.CLOSED, `The watcher of ${this.root} is closed${method === undefined ? '' : `: ${method}() after close()`}`)
    }
  }

  async #addNotifiers(entries: NotifierEntry[]): Promise<void> {
    const known = new Set(this.#notifiers.map((e) => JSON.stringify({ ...e, id: '' })))
    const fresh = entries.filter((e) => !known.has(JSON.stringify({ ...e, id: '' })))
    if (fresh.length === 0) return
    this.#notifiers = [...this.#notifiers, ...fresh]
    const all = this.#notifiers
    await this.#liveHost().call((control) => control.setNotifiers(all, customTypeNames()))
  }

  #onActorMessage(message: ActorMessage): void {
    switch (message.kind) {
      case 'event': {
        const event = message.event
        if (event.kind === 'finished' || event.kind === 'failed') this.#unfinished.delete(event.run.hash)
        this.#runs.get(event.run.hash)?.deliver(event)
        this.emit(event.kind, event)
        break
      }
      case 'delivery':
        this.emit(watcherEventOf(message.record), message.record)
        break
      case 'error':
        this.emit('error', fromPlainError(message.error))
        break
      default: {
        // A thread of another build, say: said as an error event, since a throw here would
        // land in the port's message listener and take the process down.
        const kind = (message as { kind?: unknown }).kind
        this.emit('error', new AimStatusError(ErrorCodes.UNKNOWN_MESSAGE, `The watcher thread of ${this.root} sent a message of unknown kind ${JSON.stringify(kind)?.slice(0, 80)}`))
      }
    }
  }

  /**
   * Each owner (one per actor thread) reports its process's death: if this process exits with
   * runs unfinished, the thread fails them (`exited with code 1 (Error: …)`, `killed by
   * SIGTERM`) and sends that while the process waits, bounded; then the exit marker says so
   * synchronously, so that a daemon reports what the process could not, once.
   */
  #onOwner(owner: OwnerInfo): void {
    this.#uninstallExitMarker?.()
    const paths = repoPaths(this.root)
    const snapshot = snapshotPath(statusLayout(paths), owner.id)
    this.#uninstallExitMarker = installExitMarker(
      paths,
      owner,
      () => [...this.#unfinished],
      () => holdsNewestGeneration(snapshot, owner.id),
      // The process reports its own death: the thread fails the runs and sends that while this
      // thread waits, at most exitTimeout seconds.
      (runs, reason) => (this.#exitTimeout > 0 ? (this.#host?.lastWords(runs, reason, monotonicNow(), Date.now() + this.#exitTimeout * 1000) ?? null) : null),
    )
  }

  /**
   * The thread came back empty with a new owner. After a crash, our runs are opened again at
   * once so they stay watched. After a lost lease (this process was frozen and a daemon adopted
   * the runs), each run comes back at its own next report, and the daemon hands it back.
   */
  #onActorRestart(error: AimStatusError): void {
    const host = this.#host
    if (host !== undefined) {
      if (this.#notifiers.length > 0) void host.call((control) => control.setNotifiers(this.#notifiers, customTypeNames())).catch(() => undefined)
      const leaseLost = error.code === ErrorCodes.LEASE_LOST
      for (const run of this.#runs.values()) {
        if (leaseLost) run.detach()
        else run.reopenAfterRestart()
      }
    }
    // Last: a listener that reports at once finds its run ready to be re-established.
    this.emit('error', error)
  }
}
