/**
 * This process's own death, seen from inside: one set of process hooks shared by every
 * listener (one per watcher thread's owner), so that two repos watched from one process neither
 * take each other's signal listener for the program's own nor wait one after the other.
 *
 * What is seen, and how the process then goes on dying exactly as it would have:
 * - `process.exit(n)`, the end of the event loop, an uncaught exception and an unhandled
 *   rejection that ends the process (Node's default `--unhandled-rejections=throw`) all reach
 *   the `exit` event, where only synchronous code runs: the exit code is Node's, unchanged.
 *   The error of an uncaught exception is taken from `uncaughtExceptionMonitor`, which changes
 *   nothing about how it is handled; Node prints it after the `exit` listeners have run.
 * - SIGTERM, SIGINT and SIGHUP, when the program has no handler of its own: after the
 *   listeners have run, our hooks are removed and the signal is raised again, so the default
 *   action (or signal-exit's cleanup, then the default action) ends the process by that signal.
 *   A program that handles the signal itself decides; if it then exits, `exit` records it.
 *
 * Each listener may leave "last words" under way on another thread (the watcher thread sends
 * the runs' failure while this one waits): {@link LastWords} is a shared word that the other
 * thread raises. The waits run together, synchronously (`Atomics.wait`: nothing asynchronous
 * runs in an `exit` listener), each bounded by its own deadline.
 * @module
 */

/** How the process is dying. */
export interface Death {
  /** The exit code; null when a signal ends it. */
  exitCode: number | null
  /** The signal ending it, or null. */
  signal: NodeJS.Signals | null
  /** The uncaught exception or rejection ending it, as `Name: message`, at most 500 characters. */
  error?: string
}

/**
 * A wait handle for last words sent from another thread: `state[0]` starts at
 * {@link LAST_WORDS.pending}; the other thread stores a later state and calls `Atomics.notify`.
 */
export interface LastWords {
  state: Int32Array
  /** Stop waiting at this wall-clock instant (epoch ms). */
  until: number
}

/** The states of a {@link LastWords} word. */
export const LAST_WORDS = {
  /** Nothing known yet. */
  pending: 0,
  /** The failure is on disk (a daemon would find it, and its outbox, if this process went now). */
  durable: 1,
  /** The notifications being sent have their answer. */
  answered: 2,
  /** Nothing was done (the owner may no longer act, or there was nothing to say). */
  declined: 3,
} as const

/** One listener of this process's death. */
export interface DeathListener {
  /** Called first, for every listener: start sending last words, or return null. Must not throw. */
  begin(death: Death): LastWords | null
  /** Called once every wait has ended (answered or timed out), synchronously. Must not throw. */
  end(death: Death, state: number): void
}

/** The signals recorded when nobody else handles them. */
export const MARKED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const

// signal-exit listens to the same signals and re-raises them only when it counts itself as the
// sole listener. proper-lockfile loads v3 (count on `process.__signal_exit_emitter__`); test
// runners and other tools load v4 (count on `globalThis[Symbol.for('signal-exit emitter')]`).
// Those listeners are "polite": they are not the program handling the signal.
function politeSignalListeners(): number {
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__
  const v4 = (globalThis as unknown as Record<symbol, { count?: unknown } | undefined>)[Symbol.for('signal-exit emitter')]
  let count = 0
  for (const emitter of [v3, v4]) {
    if (typeof emitter?.count === 'number') count += emitter.count
  }
  return count
}

const listeners = new Set<DeathListener>()
let uncaught: string | undefined
let dying = false

const onExit = (code: number): void => die({ exitCode: code, signal: null, ...(uncaught !== undefined ? { error: uncaught } : {}) })

const onUncaught = (error: unknown): void => {
  // A program with its own handler goes on living: nothing is ending.
  if (process.listenerCount('uncaughtException') > 0) return
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  uncaught = text.length > 500 ? `${text.slice(0, 497)}...` : text
}

const onSignal = (signal: NodeJS.Signals): void => {
  // Someone else handles it: the program decides whether to exit, and `exit` records it then.
  if (process.listenerCount(signal) - 1 - politeSignalListeners() > 0) return
  die({ exitCode: null, signal })
  removeHooks()
  // With our listener gone, the default action (or signal-exit's cleanup, then the default
  // action) ends the process by this signal.
  process.kill(process.pid, signal)
}

function installHooks(): void {
  process.on('exit', onExit)
  process.on('uncaughtExceptionMonitor', onUncaught)
  for (const signal of MARKED_SIGNALS) process.on(signal, onSignal)
}

function removeHooks(): void {
  process.off('exit', onExit)
  process.off('uncaughtExceptionMonitor', onUncaught)
  for (const signal of MARKED_SIGNALS) process.off(signal, onSignal)
}

/** Lets every listener speak, waits for all of them together (bounded), then lets each end. Once. */
function die(death: Death): void {
  if (dying) return
  dying = true
  const present = [...listeners]
  const waits = present.map((listener) => {
    try {
      return listener.begin(death)
    } catch {
      return null
    }
  })
  for (const wait of waits) {
    if (wait === null) continue
    for (;;) {
      const state = Atomics.load(wait.state, 0)
      const left = wait.until - Date.now()
      if (state === LAST_WORDS.answered || state === LAST_WORDS.declined || left <= 0) break
      Atomics.wait(wait.state, 0, state, left)
    }
  }
  present.forEach((listener, i) => {
    try {
      listener.end(death, waits[i] === null || waits[i] === undefined ? LAST_WORDS.declined : Atomics.load((waits[i] as LastWords).state, 0))
    } catch {
      // The process is dying: a listener's trouble must not change how.
    }
  })
}

/**
 * Listens for this process's death (see the module comment). The hooks are installed with the
 * first listener and removed with the last. Returns a function that removes the listener.
 */
export function onProcessDeath(listener: DeathListener): () => void {
  if (listeners.size === 0 && !dying) installHooks()
  listeners.add(listener)
  return () => {
    if (!listeners.delete(listener)) return
    if (listeners.size === 0 && !dying) removeHooks()
  }
}
