/**
 * Starts and supervises a repo's actor thread: one piscina pool of exactly one thread per repo
 * per process. The host holds the main-thread end of the actor's port: it posts data-plane
 * messages, calls the control plane through comlink, receives events, and restarts the actor
 * if its thread dies.
 *
 * What piscina does here, and the host does not redo: it starts the thread (with resource
 * limits, so that a runaway actor dies alone instead of taking the training process down),
 * reports the thread's end (`workerDestroy`, with the cause on `error`: an uncaught exception,
 * `process.exit`, out of memory, a terminate), starts a thread again when the actor's task is
 * run again after a death, and tears the thread down on close (`destroy()` waits for its exit).
 *
 * The port is unref'd while nothing is awaited, so a training script that finishes exits even
 * though its watcher thread is alive; it is ref'd for the duration of each control call, so
 * that `await run.reportSuccessfulFinish()` is never cut short.
 * @module
 */
import { writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import { wrap, releaseProxy, type Remote } from 'comlink'
import { Piscina } from 'piscina'
import { AimStatusError, ErrorCodes, fromPlainError, toPlainError, type PlainError } from '../errors.js'
import { testHooks, type HostTestHooks } from '../internal.js'
import type { NotifierEntry } from '../notify/contract.js'
import { currentOwner, type OwnerInfo } from '../state/owner.js'
import type { LastWords } from '../process-death.js'
import { customTypeNames, serveCustomTypes } from './custom-types.js'
import { portEndpoint } from './port-endpoint.js'
import { isActorMessage, type ActorControl, type ActorMessage, type ActorStartup, type HostMessage } from './protocol.js'

/**
 * The compiled worker entry. Workers always run compiled JavaScript: a TypeScript worker would
 * need a loader registered inside the thread (~0.5 s) and breaks piscina with top-level await.
 * When this module itself runs from source (tests), the build in `dist/` is used.
 */
export function workerFilename(): string {
  const here = fileURLToPath(import.meta.url)
  return here.endsWith('.ts') ? join(dirname(here), '..', '..', 'dist', 'actor', 'worker.js') : join(dirname(here), 'worker.js')
}

export interface HostOptions {
  root: string
  notifiers: NotifierEntry[]
  onMessage(message: ActorMessage): void
  /** Called when the actor thread died and was restarted; the host's owner re-opens its runs. */
  onRestart(error: AimStatusError): void
  /** Called with each new owner identity (at start, and after a restart). */
  onOwner?(owner: OwnerInfo): void
  /** Lease staleness for the snapshot, ms. Default: the state layer's. */
  leaseStaleMs?: number
  /** The terminal the process was started from, kept in its snapshot (lib/terminal.ts). Default: none. */
  terminal?: string
}

/**
 * The actor thread's heap limit. The actor holds a few hundred bytes per run and its outbox, so
 * this is far above any real need (10k runs take a few MB); it is there so that a leak in the
 * thread ends in ERR_WORKER_OUT_OF_MEMORY and a restart, not in the training process's death.
 */
export const ACTOR_MAX_OLD_GENERATION_MB = 512

/** The main-thread side of one repo's actor. */
export class ActorHost {
  readonly #options: HostOptions
  readonly #pool: Piscina
  #port: MessagePort | undefined
  #control: Remote<ActorControl> | undefined
  /** Rejects the calls waiting on the current thread when it ends. */
  #threadGone: ((error: AimStatusError) => void) | undefined
  #threadGonePromise: Promise<never> | undefined
  /** Why the current thread is being ended by the host itself (its lease was lost). */
  #endReason: AimStatusError | undefined
  /** The cause piscina gave for the thread's end (`error` comes right after `workerDestroy`). */
  #lastThreadError: Error | undefined
  /** Set while a dead thread is being replaced; calls wait for it. */
  #restarting: Promise<void> | undefined
  /** Set when a restart failed: the host has no thread any more. */
  #dead: AimStatusError | undefined
  #pendingCalls = 0
  #keepAlive = false
  #closing = false

  private constructor(options: HostOptions) {
    this.#options = options
    this.#pool = new Piscina({
      filename: workerFilename(),
      // No thread before the actor's task asks for one, and none started by piscina on its own
      // after a death: the host runs the task again, which starts exactly one.
      minThreads: 0,
      maxThreads: 1,
      // The thread must stay when its start-up task returns: it is the actor.
      idleTimeout: Number.POSITIVE_INFINITY,
      // The default 'sync' freezes a worker's timers between tasks; the actor lives on timers.
      atomics: 'disabled',
      resourceLimits: { maxOldGenerationSizeMb: ACTOR_MAX_OLD_GENERATION_MB },
    })
    // With no listener, piscina's 'error' event would throw in the main thread. It follows
    // `workerDestroy` synchronously when a thread dies of an error, hence the microtask there.
    this.#pool.on('error', (error: Error) => {
      this.#lastThreadError = error
    })
    this.#pool.on('workerDestroy', () => queueMicrotask(() => this.#onThreadGone()))
  }

  /** Starts the actor thread and resolves once it answers. */
  static async start(options: HostOptions): Promise<ActorHost> {
    const host = new ActorHost(options)
    try {
      await host.#spawn()
    } catch (error) {
      await host.destroy()
      throw error
    }
    return host
  }

  /** Sends a data-plane message (fire-and-forget, never blocks). */
  post(message: HostMessage): void {
    this.#port?.postMessage(message)
  }

  /**
   * The process is dying: asks the thread to fail `hashes` with `reason` and send it. Returns
   * the word the thread raises as it gets on (lib/process-death.ts), or null when there is no
   * thread to ask (closing, restarting).
   */
  lastWords(hashes: string[], reason: string, at: number, until: number): LastWords | null {
    if (this.#closing || this.#restarting !== undefined || this.#control === undefined || this.#port === undefined) return null
    const answer = new Int32Array(new SharedArrayBuffer(4))
    this.#port.postMessage({ kind: 'last-words', hashes, at, reason, until, answer } satisfies HostMessage)
    return { state: answer, until }
  }

  /** Whether the actor's port keeps the process alive even when nothing is awaited. */
  setKeepAlive(keepAlive: boolean): void {
    this.#keepAlive = keepAlive
    if (keepAlive) this.#port?.ref()
    else if (this.#pendingCalls === 0) this.#port?.unref()
  }

  /**
   * Calls the control plane, keeping the process alive until the answer arrives. During a
   * restart it waits for the new thread; if the thread dies meanwhile, it rejects with
   * `AIM_STATUS_WORKER_EXITED` instead of waiting for an answer that will never come.
   */
  async call<T>(use: (control: Remote<ActorControl>) => Promise<T>): Promise<T> {
    if (this.#closing) throw closedError()
    if (this.#restarting !== undefined) await this.#restarting
    const control = this.#control
    if (this.#closing) throw closedError()
    if (control === undefined || this.#threadGonePromise === undefined) throw this.#dead ?? closedError()
    this.#pendingCalls++
    this.#port?.ref()
    try {
      return await Promise.race([use(control), this.#threadGonePromise])
    } finally {
      if (--this.#pendingCalls === 0 && !this.#keepAlive) this.#port?.unref()
    }
  }

  /** Graceful: the actor finishes what is under way, then the thread ends. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closing) return
    try {
      await this.call((control) => control.close())
    } catch {
      // The thread is already gone: nothing left to close gracefully.
    }
    this.#closing = true
    await this.#teardown()
  }

  /** At once: the thread is terminated without flushing. */
  async destroy(): Promise<void> {
    this.#closing = true
    await this.#teardown()
  }

  /** @internal */
  get [testHooks](): HostTestHooks {
    return {
      // Ends the actor thread as a crash would (tests of supervision).
      terminateThread: async () => {
        await Promise.all(this.#pool.threads.map((thread) => thread.terminate()))
      },
    }
  }

  async #spawn(): Promise<void> {
    const { port1, port2 } = new MessageChannel()
    // A new owner for every thread: a restarted or fenced-off actor never reuses a lease.
    const owner = currentOwner('process')
    const types = new MessageChannel()
    serveCustomTypes(types.port1, (line) => writeSync(1, `${line}\n`))
    this.#options.onOwner?.(owner)
    const startup: ActorStartup = {
      port: port2,
      root: this.#options.root,
      host: hostname(),
      pid: process.pid,
      notifiers: this.#options.notifiers,
      owner,
      customTypes: { port: types.port2, names: customTypeNames() },
      ...(this.#options.leaseStaleMs !== undefined ? { leaseStaleMs: this.#options.leaseStaleMs } : {}),
      ...(this.#options.terminal !== undefined ? { terminal: this.#options.terminal } : {}),
    }
    port1.on('message', (data: unknown) => {
      if (!isActorMessage(data) || port1 !== this.#port) return
      if (data.kind === 'lease-lost') this.#endThread(new AimStatusError(ErrorCodes.LEASE_LOST, `${data.error.message}; starting a new owner`))
      else this.#options.onMessage(data)
    })
    this.#port = port1
    this.#lastThreadError = undefined
    const control = wrap<ActorControl>(portEndpoint(port1))
    const gone = new Promise<never>((_, reject) => {
      this.#threadGone = reject
    })
    // Rejected whether or not a call waits on it.
    gone.catch(() => undefined)
    // Piscina refs its own port while the start-up task runs; the ping is ours to ref.
    port1.ref()
    try {
      const started = (await Promise.race([this.#pool.run(startup, { transferList: [port2, types.port2] as never }), gone])) as { startFailed?: PlainError } | undefined
      // The thread could not start the service (a status folder linked out of the repo, a full disk): its coded error.
      if (started?.startFailed !== undefined) throw fromPlainError(started.startFailed)
      await Promise.race([control.ping(), gone])
    } catch (error) {
      control[releaseProxy]()
      throw error
    } finally {
      if (this.#pendingCalls === 0 && !this.#keepAlive) port1.unref()
    }
    this.#control = control
    this.#threadGonePromise = gone
  }

  /** The host ends a thread that is still alive (its lease was lost): it is replaced as if it had died. */
  #endThread(reason: AimStatusError): void {
    if (this.#closing || this.#control === undefined) return
    this.#endReason = reason
    void Promise.all(this.#pool.threads.map((thread) => thread.terminate())).catch(() => undefined)
  }

  /** Piscina says the thread is gone: reject what waited on it and start a new one. */
  #onThreadGone(): void {
    const lost = this.#threadGone
    this.#threadGone = undefined
    const cause = this.#lastThreadError
    const error =
      this.#endReason ??
      new AimStatusError(
        ErrorCodes.WORKER_EXITED,
        `The watcher thread of ${this.#options.root} exited unexpectedly${cause === undefined ? '' : ` (${cause.message})`}; restarting it`,
        cause === undefined ? undefined : { cause },
      )
    this.#endReason = undefined
    lost?.(error)
    // Closing, or a thread that never answered (its spawn rejects with the same news).
    if (this.#closing || this.#control === undefined) return
    this.#releaseThread()
    this.#restarting = this.#spawn().then(
      () => {
        this.#restarting = undefined
        this.#options.onRestart(error)
      },
      (spawnError: unknown) => {
        this.#restarting = undefined
        // Destroyed meanwhile: the spawn was cut short on purpose.
        if (this.#closing) return
        this.#dead = new AimStatusError(ErrorCodes.WORKER_EXITED, `The watcher thread of ${this.#options.root} could not be restarted: ${String(spawnError)}`, { cause: spawnError })
        this.#options.onMessage({ kind: 'error', error: toPlainError(this.#dead) })
      },
    )
  }

  /** Lets go of the current thread's port and control proxy. */
  #releaseThread(): void {
    const control = this.#control
    this.#control = undefined
    this.#threadGonePromise = undefined
    control?.[releaseProxy]()
    this.#port?.close()
    this.#port = undefined
  }

  async #teardown(): Promise<void> {
    this.#threadGone?.(closedError())
    this.#threadGone = undefined
    this.#releaseThread()
    await this.#pool.destroy()
  }
}

const closedError = (): AimStatusError => new AimStatusError(ErrorCodes.CLOSED, 'The watcher is closed')
