/**
 * The per-repo `Watcher`: one per repo per process, shared by every run of that repo. It owns
 * the repo's actor thread (through {@link ActorHost}), hands out run handles, routes events to
 * them, and re-emits every run's events, typed, for programs that watch many runs.
 * @module
 */
import { EventEmitter } from 'eventemitter3'
import { AimStatusError, ErrorCodes, fromPlainError } from './errors.js'
import type { NotifierEntry } from './notify/contract.js'
import type { RunEvent, RunInfo } from './model.js'
import type { DeliveryReport } from './notify/delivery-report.js'
import { repoPaths, resolveRepoRoot } from './repo.js'
import { installExitMarker } from './state/exit-marker.js'
import type { OwnerInfo } from './state/owner.js'
import { resolveWatchOptions, resolveWatcherOptions, type WatchOptions, type WatcherOptions } from './options.js'
import { ActorHost } from './actor/host.js'
import { ensureDaemon } from './daemon-launch.js'
import { customTypeNames } from './actor/custom-types.js'
import {
  addNotifier,
  disableNotifier,
  enableNotifier,
  listNotifiers,
  removeNotifier,
  testNotifiers,
  type NotifierListing,
  type NotifierSpec,
  type NotifierTestResult,
} from './notify/manage.js'
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
  notified: [report: DeliveryReport]
  /** A notifier failed to deliver (permanently, or past its retry budget). */
  'delivery-failed': [report: DeliveryReport]
  /** A transient delivery failure; another attempt is scheduled. */
  retrying: [report: DeliveryReport]
  /** Something went wrong in the watcher itself (the thread died and was restarted, …). */
  error: [error: Error]
}

const watchers = new Map<string, Promise<Watcher>>()

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
  #closed = false
  #daemonEnsured: Promise<void> | undefined

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
    if (resolved.daemon) await watcher.#ensureDaemon()
    if (resolved.keepAlive !== undefined) watcher.#liveHost().setKeepAlive(resolved.keepAlive)
    if (resolved.notifiers.length > 0) await watcher.#addNotifiers(resolved.notifiers)
    return watcher
  }

  static async #start(root: string): Promise<Watcher> {
    const watcher = new Watcher(root)
    watcher.#host = await ActorHost.start({
      root,
      notifiers: [],
      onMessage: (message) => watcher.#onActorMessage(message),
      onRestart: (error) => watcher.#onActorRestart(error),
      onOwner: (owner) => watcher.#onOwner(owner),
    })
    return watcher
  }

  /** Starts watching a run of this repo. See `watch()` for the options. */
  async watch(options: WatchOptions = {}): Promise<Run> {
    const resolved = resolveWatchOptions(options)
    if (resolved.keepAlive !== undefined) this.#liveHost().setKeepAlive(resolved.keepAlive)
    if (resolved.daemon) await this.#ensureDaemon()
    if (resolved.repo !== undefined && resolveRepoRoot(resolved.repo) !== this.root) {
      throw new AimStatusError(ErrorCodes.INVALID_PATH, `This watcher watches ${this.root}, not ${resolveRepoRoot(resolved.repo)}`)
    }
    const host = this.#liveHost()
    if (this.#runs.has(resolved.hash)) {
      throw new AimStatusError(ErrorCodes.RUN_ALREADY_OPEN, `Run '${resolved.hash}' is already being watched in this process`)
    }
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
    const entry = await addNotifier(this.root, spec)
    // A type registered from code since the thread started must be made known to it.
    const all = this.#notifiers
    await this.#liveHost().call((control) => control.setNotifiers(all, customTypeNames()))
    return entry
  }

  /** The repo's configured notifiers, secrets redacted, with their last delivery or error. */
  async listNotifiers(): Promise<NotifierListing[]> {
    return listNotifiers(this.root)
  }

  /** Enables a configured notifier (`AIM_STATUS_UNKNOWN_NOTIFIER` if there is none with this id). */
  async enableNotifier(id: string): Promise<void> {
    await enableNotifier(this.root, id)
  }

  /** Disables a configured notifier; its pending notifications are dropped. */
  async disableNotifier(id: string): Promise<void> {
    await disableNotifier(this.root, id)
  }

  /** Removes a configured notifier. */
  async removeNotifier(id: string): Promise<void> {
    await removeNotifier(this.root, id)
  }

  /** Sends a test message through every enabled notifier, or the one given, and returns each outcome. */
  async testNotifiers(id?: string): Promise<NotifierTestResult[]> {
    return testNotifiers(this.root, id)
  }

  /**
   * Stops watching: notifications under way are finished, the thread ends. Runs that have not
   * finished are left as they are (a daemon, if one runs, carries on watching them). Safe to
   * call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    watchers.delete(this.root)
    await this.#host?.close()
    this.#uninstallExitMarker?.()
    this.#host = undefined
    for (const run of this.#runs.values()) void run.close()
    this.#runs.clear()
  }

  /** @internal Ends the watcher thread as a crash would (tests of supervision). */
  async terminateThreadForTesting(): Promise<void> {
    await this.#liveHost().terminateThread()
  }

  /** Starts a daemon for this repo unless one holds it (once per watcher). */
  async #ensureDaemon(): Promise<void> {
    this.#daemonEnsured ??= ensureDaemon(this.root).then(() => undefined)
    await this.#daemonEnsured
  }

  #liveHost(): ActorHost {
    if (this.#closed || this.#host === undefined) throw new AimStatusError(ErrorCodes.CLOSED, `The watcher of ${this.root} is closed`)
    return this.#host
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
        this.emit(message.report.kind, message.report)
        break
      case 'error':
        this.emit('error', fromPlainError(message.error))
        break
      default:
        throw new Error(`unknown actor message ${JSON.stringify(message)}`)
    }
  }

  /**
   * Each owner (one per actor thread) gets an exit marker: if this process exits with runs
   * unfinished, the marker says so synchronously, with the exit code or signal, and a daemon
   * reports those runs failed at once instead of waiting for their deadlines.
   */
  #onOwner(owner: OwnerInfo): void {
    this.#uninstallExitMarker?.()
    this.#uninstallExitMarker = installExitMarker(repoPaths(this.root), owner, () => [...this.#unfinished])
  }

  /** The thread died and came back empty: open our runs again so they stay watched. */
  #onActorRestart(error: AimStatusError): void {
    this.emit('error', error)
    const host = this.#host
    if (host === undefined) return
    if (this.#notifiers.length > 0) void host.call((control) => control.setNotifiers(this.#notifiers, customTypeNames())).catch(() => undefined)
    for (const run of this.#runs.values()) run.reopenAfterRestart()
  }
}
