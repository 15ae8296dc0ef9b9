/**
 * The messages between a repo's host (main thread) and its actor (worker thread). Both sides
 * import these types. Data-plane messages are plain objects discriminated by `kind`, sent
 * fire-and-forget on the actor's port; the control plane is comlink RPC on the same port (so
 * both are ordered: a `flush()` after a `finish` sees the finish).
 * @module
 */
import type { DeliveryRecord } from '../notify/delivery-record.js'
import type { NotifierEntry } from '../notify/contract.js'
import type { RunEvent, RunInfo } from '../model.js'
import type { PlainError } from '../errors.js'
import type { OwnerInfo } from '../state/owner.js'

/** What the host passes to a new actor thread. */
export interface ActorStartup {
  /** The actor's end of the channel (transferred). */
  port: import('node:worker_threads').MessagePort
  /** Absolute repo root. */
  root: string
  host: string
  pid: number
  /** Notifiers given in code to this process (not stored in the repo's config). */
  notifiers: NotifierEntry[]
  /** Who this actor is: it names the snapshot, its lease and the exit marker. */
  owner: OwnerInfo
  /** Lease staleness for the snapshot, ms. Default: the state layer's. */
  leaseStaleMs?: number
  /**
   * The terminal the process was started from (`/dev/pts/N`), when its output goes to one: kept
   * in the snapshot, so a daemon that finds the process dead can say so there. Default: none.
   */
  terminal?: string
  /** The port to the main thread's notifier types registered from code, and their names. */
  customTypes: { port: import('node:worker_threads').MessagePort; names: string[] }
}

/** Host -> actor, fire-and-forget. */
export type HostMessage =
  | {
      kind: 'open'
      hash: string
      name?: string
      experiment?: string
      grace: number
      at: number
      /** SharedArrayBuffer-backed `[lastProgressAt, deadlineAt]` written by the run handle. */
      slot: Float64Array
      /** Write Aim check-ins for the run, so Python's `aim-watcher` sees it. */
      checkins: boolean
      /**
       * The run is re-established, not started: its thread was restarted, or its owner lost the
       * lease while frozen. No `started` event; its episode continues from the highest any
       * owner of the repo has recorded for it.
       */
      resume?: boolean
    }
  | { kind: 'progress'; hash: string; at: number; expectNextIn: number }
  | { kind: 'finish'; hash: string; at: number }
  | { kind: 'fail'; hash: string; at: number; reason: string; logTail?: string }
  /**
   * The process is dying (lib/process-death.ts): fail these runs with `reason`, make it
   * durable, send it, and say how far it got in `answer[0]` (`LAST_WORDS` states, with
   * `Atomics.notify`): the main thread waits on it synchronously until `until` (epoch ms).
   */
  | { kind: 'last-words'; hashes: string[]; at: number; reason: string; until: number; answer: Int32Array }

/** Actor -> host, fire-and-forget. */
export type ActorMessage =
  | { kind: 'event'; event: RunEvent }
  | { kind: 'delivery'; record: DeliveryRecord }
  | { kind: 'error'; error: PlainError }
  /** A newer generation adopted this actor's runs (it was frozen); it has stopped acting. */
  | { kind: 'lease-lost'; error: PlainError }

/** The actor's control plane (comlink). Every method is async on the host side. */
export interface ActorControl {
  /** Resolves when every message sent before it has been handled. */
  ping(): Promise<number>
  /** Resolves when every message sent before it has been handled and the state is durable. */
  flush(): Promise<void>
  /**
   * Like {@link flush}, then waits for the notifications being sent to get their answer: a
   * run's last words (its finish, its failure, a recovery) reach the notifiers before a
   * script that ends goes away.
   */
  settle(): Promise<void>
  /** Every run the actor knows. */
  runs(): RunInfo[]
  /** The notifiers in use now (configured and given in code, or the default logger). */
  activeNotifiers(): Array<{ id: string; type: string; status: 'enabled' | 'disabled' }>
  /** Replaces the notifiers given in code; `customTypes` names the types registered from code. */
  setNotifiers(entries: NotifierEntry[], customTypes: string[]): void
  /** Stops timers and sending, and lets go of the actor's resources. */
  close(): Promise<void>
}

/** A guard for the data-plane messages (comlink's own messages carry `type` and `id` instead). */
export function isActorMessage(data: unknown): data is ActorMessage {
  return typeof data === 'object' && data !== null && typeof (data as { kind?: unknown }).kind === 'string'
}
