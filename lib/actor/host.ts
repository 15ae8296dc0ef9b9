/**
 * Starts and supervises a repo's actor thread: one piscina pool of exactly one thread per repo
 * per process. The host holds the main-thread end of the actor's port: it posts data-plane
 * messages, calls the control plane through comlink, receives events, and restarts the actor
 * if its thread dies.
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
import { AimStatusError, ErrorCodes } from '../errors.js'
import type { NotifierEntry } from '../notify/contract.js'
import { currentOwner, type OwnerInfo } from '../state/owner.js'
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
}

/** The main-thread side of one repo's actor. */
export class ActorHost {
  readonly #options: HostOptions
  #pool: Piscina | undefined
  #port: MessagePort | undefined
  #control: Remote<ActorControl> | undefined
  #pendingCalls = 0
  #keepAlive = false
  #closing = false
  #generation = 0

  private constructor(options: HostOptions) {
    this.#options = options
  }

  /** Starts the actor thread and resolves once it answers. */
  static async start(options: HostOptions): Promise<ActorHost> {
    const host = new ActorHost(options)
    await host.#spawn()
    return host
  }

  /** Sends a data-plane message (fire-and-forget, never blocks). */
  post(message: HostMessage): void {
    this.#port?.postMessage(message)
  }

  /** Whether the actor's port keeps the process alive even when nothing is awaited. */
  setKeepAlive(keepAlive: boolean): void {
    this.#keepAlive = keepAlive
    if (keepAlive) this.#port?.ref()
    else if (this.#pendingCalls === 0) this.#port?.unref()
  }

  /** Calls the control plane, keeping the process alive until the answer arrives. */
  async call<T>(use: (control: Remote<ActorControl>) => Promise<T>): Promise<T> {
    const control = this.#control
    if (control === undefined || this.#closing) throw new AimStatusError(ErrorCodes.CLOSED, 'The watcher is closed')
    this.#pendingCalls++
    this.#port?.ref()
    try {
      return await use(control)
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

  /** @internal Ends the actor thread as a crash would (tests of supervision). */
  async terminateThread(): Promise<void> {
    await Promise.all((this.#pool?.threads ?? []).map((thread) => thread.terminate()))
  }

  /** At once: the thread is terminated without flushing. */
  async destroy(): Promise<void> {
    this.#closing = true
    await this.#teardown()
  }

  async #spawn(): Promise<void> {
    const generation = ++this.#generation
    const pool = new Piscina({
      filename: workerFilename(),
      minThreads: 1,
      maxThreads: 1,
      // The thread must stay when its start-up task returns: it is the actor.
      idleTimeout: Number.POSITIVE_INFINITY,
      // The default 'sync' freezes a worker's timers between tasks; the actor lives on timers.
      atomics: 'disabled',
    })
    // With no listener, piscina's 'error' event would throw in the main thread.
    pool.on('error', () => this.#onThreadExit(generation))
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
    }
    port1.on('message', (data: unknown) => {
      if (!isActorMessage(data)) return
      if (data.kind === 'lease-lost') this.#onThreadExit(generation, new AimStatusError(ErrorCodes.LEASE_LOST, `${data.error.message}; starting a new owner`))
      else this.#options.onMessage(data)
    })
    port1.on('close', () => this.#onThreadExit(generation))
    this.#pool = pool
    this.#port = port1
    this.#control = wrap<ActorControl>(portEndpoint(port1))
    if (!this.#keepAlive) port1.unref()
    await pool.run(startup, { transferList: [port2, types.port2] as never })
    await this.call((control) => control.ping())
  }

  #onThreadExit(generation: number, reason?: AimStatusError): void {
    if (this.#closing || generation !== this.#generation) return
    const error = reason ?? new AimStatusError(ErrorCodes.WORKER_EXITED, `The watcher thread of ${this.#options.root} exited unexpectedly; restarting it`)
    const old = this.#pool
    this.#control = undefined
    void old?.destroy().catch(() => undefined)
    this.#spawn().then(
      () => this.#options.onRestart(error),
      (spawnError: unknown) => this.#options.onMessage({ kind: 'error', error: { name: 'Error', code: ErrorCodes.WORKER_EXITED, message: String(spawnError) } }),
    )
  }

  async #teardown(): Promise<void> {
    const control = this.#control
    this.#control = undefined
    control?.[releaseProxy]()
    this.#port?.close()
    this.#port = undefined
    await this.#pool?.destroy()
    this.#pool = undefined
  }
}

