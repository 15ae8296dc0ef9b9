/**
 * The model every layer shares: a run's status and state, the events of its transitions, their
 * keys, and the layout of the shared memory a run handle reports into. It imports nothing of
 * ours, so that the state layer, the notifiers, Aim's formats and the actor can all speak of
 * runs without importing one another.
 * @module
 */

/** What happened to a run. */
export type RunEventKind = 'started' | 'stalled' | 'recovered' | 'finished' | 'failed'

/** All event kinds, in lifecycle order. */
export const RUN_EVENT_KINDS: readonly RunEventKind[] = ['started', 'stalled', 'recovered', 'finished', 'failed']

/** A run's status as the watcher sees it. */
export type RunStatus = 'running' | 'stalled' | 'finished' | 'failed'

/** A run as seen in an event, a query or a snapshot. Times are epoch milliseconds. */
export interface RunInfo {
  /** The run's hash (Aim's run id). */
  hash: string
  /** Human name given to `watch()`, if any. */
  name?: string
  /** Experiment given to `watch()`, if any. */
  experiment?: string
  status: RunStatus
  /** When the run was opened. */
  startedAt: number
  /** When progress was last reported (or the run opened), as far as the watcher knows. */
  lastProgressAt: number
  /** The last promise in seconds: the next report is due this long after the last one; 0 = no deadline. */
  expectNextIn: number
  /** When the next report is due (`lastProgressAt + expectNextIn`), or null without a deadline. */
  deadlineAt: number | null
  /** Seconds allowed past the deadline before the run counts as stalled. */
  grace: number
  /** How many stall episodes this run has had; the current one while stalled. */
  episode: number
  /** Why the run failed, when it did. */
  reason?: string
  /**
   * The last lines its command wrote to standard error, secrets scrubbed, when it failed with
   * them (`aim-watcher run`, or `reportFailure(reason, { logTail })`).
   */
  logTail?: string
  /**
   * Where the run's process reports from, when it reports over a session (a remote run, or a
   * local one over the daemon's Unix socket) instead of owning a snapshot of its own. Default:
   * none (a local run).
   */
  origin?: RunOrigin
  /** How many processes (ranks) make up the run; set for runs of many ranks. Default: none (one process). */
  worldSize?: number
  /** When a run of many ranks counts as finished: every rank finished (`all`), or rank 0 (`rank0`). Default `all`. */
  finishOn?: FinishOn
  /** The ranks that have joined a run of many ranks, by rank number. Default: none. */
  ranks?: RankState[]
}

/** When a run of many ranks counts as finished. */
export type FinishOn = 'all' | 'rank0'

/**
 * The state of the session a process reports over: `open` (connected), `lost` (no word for a
 * while, or the daemon restarted: its deadline carries on, nothing is failed), `closed` (ended
 * without a goodbye: the process died), `ended` (said goodbye).
 */
export type SessionState = 'open' | 'lost' | 'closed' | 'ended'

/** Where a process reports from. */
export interface RunOrigin {
  host: string
  pid: number
  /** How it reaches the daemon. */
  via: 'tcp' | 'unix'
  session: SessionState
}

/** One rank of a run of many ranks. Times are epoch milliseconds. */
export interface RankState {
  rank: number
  host: string
  pid: number
  status: RunStatus
  lastProgressAt: number
  /** Seconds of its last promise; 0 = no deadline. */
  expectNextIn: number
  deadlineAt: number | null
  session: SessionState
  /** Why it failed, when it did. */
  reason?: string
}

/** A transition of one run, as delivered to notifiers and to event listeners. */
export interface RunEvent {
  kind: RunEventKind
  /**
   * A key that is the same for every delivery of this one transition, and different for any
   * other; outboxes deduplicate on it, so a retry or a takeover never sends one event twice to
   * a notifier. Its format is {@link eventKey}'s.
   */
  key: string
  /** When the transition happened. */
  at: number
  run: RunInfo
  /** Absolute path of the repo root. */
  repo: string
  /** Host name of the watcher that saw the transition. */
  host: string
  /** Process id of the watcher that saw the transition. */
  pid: number
  /** For stalls: seconds past the deadline when it was declared. */
  overdueSeconds?: number
}

/** The kinds that happen once per stall episode rather than once per run. */
export type EpisodeKind = 'stalled' | 'recovered'

/** Whether an event of this kind belongs to one stall episode (its key then names the episode). */
export function isEpisodeKind(kind: RunEventKind): kind is EpisodeKind {
  return kind === 'stalled' || kind === 'recovered'
}

/**
 * What an event key says. Run hashes are `[A-Za-z0-9_]` (see `RUN_HASH_PATTERN`), so the `@` and
 * `/` separators never occur inside a part and every key reads back unambiguously.
 */
export type EventKeyParts =
  /**
   * A Node run's transition. `startedAt` (the run's start, epoch ms, rounded) names the run's
   * instance, so a run resumed under the same hash has new keys.
   */
  | { source: 'node'; hash: string; startedAt: number; kind: Exclude<RunEventKind, EpisodeKind> }
  | { source: 'node'; hash: string; startedAt: number; kind: EpisodeKind; episode: number }
  /** A Python Aim run's transition, read from its check-ins: one per (kind, check-in idx), as Aim notifies. */
  | { source: 'aim'; hash: string; kind: RunEventKind; idx: number }

/**
 * The key of an event: the one builder every event's key comes from.
 *
 * - Node runs: `<hash>@<startedAt>/<kind>` for `started`, `finished` and `failed` (once per run),
 *   `<hash>@<startedAt>/<kind>/<episode>` for `stalled` and `recovered` (once per stall episode);
 *   `startedAt` is the run's start in whole epoch milliseconds. Example: `a1b2c3@1718000000000/stalled/2`.
 * - Python Aim runs: `<hash>@aim/<kind>/<idx>`, `idx` being the check-in's counter. Example:
 *   `a1b2c3@aim/stalled/7`.
 *
 * {@link parseEventKey} reads one back.
 */
export function eventKey(parts: EventKeyParts): string {
  if (parts.source === 'aim') return `${parts.hash}@aim/${parts.kind}/${parts.idx}`
  const instance = `${parts.hash}@${Math.round(parts.startedAt)}/${parts.kind}`
  return 'episode' in parts ? `${instance}/${parts.episode}` : instance
}

const KEY_PATTERN = /^([A-Za-z0-9_]{1,64})@(aim|\d+)\/(started|stalled|recovered|finished|failed)(?:\/(\d+))?$/

/** The parts of a key built by {@link eventKey}, or null for anything else (a key of another format, or malformed). */
export function parseEventKey(key: string): EventKeyParts | null {
  const match = KEY_PATTERN.exec(key)
  if (match === null) return null
  const [, hash, instance, kindText, countText] = match as unknown as [string, string, string, string, string | undefined]
  const kind = kindText as RunEventKind
  const count = countText === undefined ? undefined : Number(countText)
  if (count !== undefined && !Number.isSafeInteger(count)) return null
  if (instance === 'aim') return count === undefined ? null : { source: 'aim', hash, kind, idx: count }
  const startedAt = Number(instance)
  if (!Number.isSafeInteger(startedAt)) return null
  if (isEpisodeKind(kind)) return count === undefined ? null : { source: 'node', hash, startedAt, kind, episode: count }
  return count === undefined ? { source: 'node', hash, startedAt, kind } : null
}

/**
 * Shared memory a run handle writes on every report and the actor reads when a stall falls due:
 * `[lastProgressAt, deadlineAt]`, epoch ms, `Infinity` for "no deadline". Backed by a
 * SharedArrayBuffer, so both threads see the same two numbers.
 */
export type ProgressSlot = Float64Array

/** Index of the last report's time in a {@link ProgressSlot}. */
export const SLOT_LAST_PROGRESS = 0
/** Index of the deadline in a {@link ProgressSlot}; written before the time, so a newer time implies its deadline. */
export const SLOT_DEADLINE = 1
/** How many numbers a {@link ProgressSlot} holds. */
export const SLOT_LENGTH = 2

/** A new shared slot: reported at `at`, no deadline. */
export function createProgressSlot(at: number): ProgressSlot {
  const slot = new Float64Array(new SharedArrayBuffer(SLOT_LENGTH * Float64Array.BYTES_PER_ELEMENT))
  slot[SLOT_DEADLINE] = Number.POSITIVE_INFINITY
  slot[SLOT_LAST_PROGRESS] = at
  return slot
}
