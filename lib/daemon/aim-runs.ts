/**
 * Python-Aim runs under the daemon: a repo's `.aim/check_ins/` read with Aim's watcher rules
 * (see `aim/checkin-reader.ts`), each transition handed to the same outbox as the Node runs'.
 *
 * - Time: the folder is scanned at the daemon's poll, and a timer at the reader's next deadline
 *   calls `evaluate()`, so a stall is announced when it falls due, not up to a poll late.
 * - Once per (run, idx): an event's key is `<hash>@aim/<kind>/<idx>` (see `eventKey`), the outbox refuses a key
 *   it has settled, and the reader marks what it has notified (kept in the daemon's snapshot
 *   and in Aim's `last_run_notifications`), so neither a restart nor a switch between Python's
 *   `aim-watcher` and this daemon sends one twice.
 * - Node runs first: a hash that a live Node owner or the daemon's actor holds is announced by
 *   that owner (Node runs write check-ins too); its check-in transitions are skipped here. A
 *   Node owner writes its snapshot with a run before the run's first check-in, and the question
 *   is asked after the listing (once for all the transitions it found), so a Node run is never
 *   taken for a Python one.
 * - Transitions are handled in order, one at a time (a run's `started` before its `stalled`).
 * - The log: a transition accepted for sending (or muted) is one `info` line; one that sends
 *   nothing (no notifier wants it, already notified, left to a Node owner) is `debug`. A repo of
 *   10k Python runs would otherwise log 10k lines at every start.
 * @module
 */
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import { OutOfRangeError, describeValue, toPlainError } from '../errors.js'
import { CheckinReader, MIN_CHECKIN_GRACE, checkReaderState, type CheckinReaderState, type CheckinRunState, type CheckinTransition } from '../aim/checkin-reader.js'
import { readLastRunNotifications, recordLastRunNotifications, type LastRunNotifications } from '../aim/last-run-notifications.js'
import { eventKey, type RunEvent, type RunInfo } from '../model.js'
import type { RepoPaths } from '../repo.js'
import type { DaemonLog } from './log.js'

/** The answer for an event nobody takes (no notifier wants it, no mute covers it): nothing queued. */
export const NOTHING_QUEUED: Accepted = Object.freeze({ queued: [], muted: false })

/** Options of {@link AimRuns}. */
export interface AimRunsOptions {
  /** The repo's paths: `checkins` is read, `lastRunNotifications` read and updated. */
  paths: RepoPaths
  /** The clock first sights and deadlines are measured on (the daemon's). */
  clock: Clock
  /** Seconds past a promise before a run counts as stalled. At least 30 (the reader refuses less). */
  graceSeconds: number
  /** Host and pid stamped on the events (the daemon's). */
  host: string
  pid: number
  log: DaemonLog
  /**
   * Hands an event to the repo's outbox; resolves once it is durable there, with the notifiers
   * it was queued for and whether a mute held it back. An event no notifier wants may be
   * answered at once, without a promise: most of a first scan's are.
   */
  accept(event: RunEvent): Accepted | Promise<Accepted>
  /**
   * Whether anything would take an event of this transition now (a notifier that wants its kind,
   * a mute covering its run, someone observing events). When not, no event is made for it: a
   * first scan's thousands of first sights then cost no event each. Default: always.
   */
  wanted?(transition: Readonly<CheckinTransition>): boolean
  /**
   * Which hashes a Node owner (live, or adopted by the daemon) holds: it announces those runs,
   * not us. Asked once per batch of transitions, after the listing that found them: a Node
   * owner's snapshot holds its run before the run's first check-in is written, so a fresh look
   * at the snapshots then cannot miss it. The answer is a test, asked per transition.
   */
  nodeRuns(): Promise<(hash: string) => boolean>
  /** The reader's state changed: the snapshot should be written (coalesced). */
  onStateChanged(): void
}

/** What the outbox did with an event. */
export interface Accepted {
  /** The notifiers it was queued for. */
  queued: readonly string[]
  /** A mute covers the run: nothing was queued. */
  muted: boolean
}

/** What one scan of the check-ins found, for the daemon's scan line. */
export interface AimScanFindings {
  /** Transitions found. */
  transitions: number
  /** Of those, transitions of an idx already notified (Aim's record, or an earlier life): not sent again. */
  alreadyNotified: number
}

/** Python runs known, by status. */
export type AimRunCounts = Record<CheckinRunState['status'], number>

/** How many events of one batch are handed to the outbox before their acceptance is awaited. */
const ACCEPT_WINDOW = 256

/** Whether Aim would record this transition in `last_run_notifications` (the reader's `notifiedIdx` rule). */
export function isAimNotification(transition: Pick<CheckinTransition, 'kind' | 'flag'>): boolean {
  return transition.kind === 'stalled' || transition.kind === 'finished' || (transition.kind === 'started' && transition.flag === 'starting')
}

const STATUS_OF: Readonly<Record<CheckinTransition['kind'], RunInfo['status']>> = {
  started: 'running',
  recovered: 'running',
  stalled: 'stalled',
  finished: 'finished',
}

/** The event for a check-in transition, in the shape of a Node run's. */
export function checkinEvent(transition: CheckinTransition, context: { repo: string; host: string; pid: number; graceSeconds: number }): RunEvent {
  const { hash, idx, kind, expectNextIn, firstSeenAt } = transition
  // Aim trusts neither the client's clock nor the file's mtime: the only times known are when
  // this watcher first saw the idx, so they stand for both the start and the last progress.
  const live = kind !== 'finished' && transition.flag !== 'finished' && expectNextIn > 0
  const event: RunEvent = {
    kind,
    key: eventKey({ source: 'aim', hash, kind, idx }),
    at: transition.at,
    run: {
      hash,
      status: STATUS_OF[kind],
      startedAt: firstSeenAt,
      lastProgressAt: firstSeenAt,
      expectNextIn,
      deadlineAt: live ? firstSeenAt + expectNextIn * 1000 : null,
      grace: context.graceSeconds,
      // The idx numbers a Python run's stall episodes: one notification per idx, as in Aim.
      episode: idx,
    },
    repo: context.repo,
    host: context.host,
    pid: context.pid,
  }
  if (transition.overdueSeconds !== undefined) event.overdueSeconds = transition.overdueSeconds
  return event
}

function newerOf(a: CheckinRunState, b: CheckinRunState): CheckinRunState {
  const notifiedIdx = Math.max(a.notifiedIdx, b.notifiedIdx)
  if (a.idx !== b.idx) return { ...(a.idx > b.idx ? a : b), notifiedIdx }
  // The same idx seen by two lives: the earlier sight keeps the promise counting, and a stall
  // either of them declared stays declared.
  const status = a.status === 'stalled' || b.status === 'stalled' ? 'stalled' : a.status
  return { ...a, firstSeenAt: Math.min(a.firstSeenAt, b.firstSeenAt), status, notifiedIdx }
}

/**
 * Merges two reader states (this daemon's and an adopted predecessor's): per run the newer idx,
 * the highest idx notified by either.
 */
export function mergeReaderStates(a: CheckinReaderState | null, b: CheckinReaderState): CheckinReaderState {
  const runs: Record<string, CheckinRunState> = { ...(a?.runs ?? {}) }
  for (const [hash, theirs] of Object.entries(b.runs)) {
    const mine = runs[hash]
    runs[hash] = mine === undefined ? { ...theirs } : newerOf(mine, theirs)
  }
  return { version: 1, savedAt: Math.max(a?.savedAt ?? -Infinity, b.savedAt), runs }
}

/** One repo's Python-Aim runs, while the daemon is the repo's sender. */
export class AimRuns {
  readonly graceSeconds: number
  readonly #options: AimRunsOptions
  #reader: CheckinReader | null = null
  /** State to start the reader from (adopted from a predecessor before the first scan). */
  #pending: CheckinReaderState | null = null
  /** Aim's `last_run_notifications` as read when the reader was opened. */
  #seed: LastRunNotifications = new Map()
  /** Armed for the reader's next deadline (see #arm); closed with this. */
  readonly #timer: DeadlineTimer
  readonly #inflight = new Set<Promise<void>>()
  /** Transitions are handled one after another, in the order found. */
  #handling: Promise<void> = Promise.resolve()
  readonly #toRecord = new Map<string, number>()
  #recording: Promise<void> | null = null
  #closed = false

  constructor(options: AimRunsOptions) {
    this.#options = options
    this.#timer = new DeadlineTimer(options.clock, () => this.#deadlineReached())
    // Checked here as well as by the reader, so a bad grace fails at activation, not at the first scan.
    if (typeof options.graceSeconds !== 'number' || !(options.graceSeconds >= MIN_CHECKIN_GRACE) || !Number.isFinite(options.graceSeconds)) {
      throw new OutOfRangeError(`Expected \`grace\` to be a number of seconds, ${MIN_CHECKIN_GRACE} or more, got ${describeValue(options.graceSeconds)}`)
    }
    this.graceSeconds = options.graceSeconds
  }

  /** Whether any run is known (or may be, before the first scan): the daemon's snapshot must then be kept. */
  get hasRuns(): boolean {
    return this.#reader === null ? this.#pending !== null && Object.keys(this.#pending.runs).length > 0 : this.#reader.runs.size > 0
  }

  /** Whether the folder has been read yet. */
  get opened(): boolean {
    return this.#reader !== null
  }

  /** The runs as the reader knows them. */
  get runs(): ReadonlyMap<string, Readonly<CheckinRunState>> {
    return this.#reader?.runs ?? new Map()
  }

  /** The runs known, by status (for the daemon's scan lines). */
  counts(): AimRunCounts {
    const counts: AimRunCounts = { running: 0, stalled: 0, finished: 0 }
    for (const run of this.runs.values()) counts[run.status]++
    return counts
  }

  /** The reader's state, for the daemon's snapshot (`extra.checkins`); null when there is none. */
  state(): CheckinReaderState | null {
    return this.#reader?.toJSON() ?? this.#pending
  }

  /**
   * Takes in a predecessor's state (an adopted daemon snapshot's `extra.checkins`): its first
   * sights and its notified idx carry on here. Throws `AIM_STATUS_CORRUPT_FILE` for a bad state
   * (nothing taken in).
   */
  absorb(state: unknown): void {
    const mine = this.state()
    const merged = mergeReaderStates(mine === null ? null : checkReaderState(mine), checkReaderState(state))
    if (this.#reader === null) {
      this.#pending = merged
      return
    }
    // The reader takes a state only when made: a new one, whose first listing re-reads the
    // folder and keeps the saved first sights of every idx still there.
    this.#reader = this.#newReader(merged)
    this.#options.onStateChanged()
    this.#arm()
  }

  /** Reads the folder and announces what changed; resolves with what it found. The first call opens the reader. */
  async scan(): Promise<AimScanFindings> {
    const findings: AimScanFindings = { transitions: 0, alreadyNotified: 0 }
    if (this.#closed) return findings
    if (this.#reader === null) await this.#open()
    const reader = this.#reader as CheckinReader
    const revision = reader.revision
    const transitions = await reader.scan()
    if (this.#closed) return findings
    // Only a real change is worth a write: a listing may have moved first sights (a newer idx
    // without a transition), but one that found nothing new (the reader lists a quiet folder
    // every `fullRescanMs` all the same) changes nothing durable.
    if (reader.revision !== revision) this.#options.onStateChanged()
    findings.transitions = transitions.length
    for (const transition of transitions) if (transition.alreadyNotified) findings.alreadyNotified++
    this.#handle(transitions)
    this.#arm()
    return findings
  }

  /** Resolves when every accepted event has been recorded in `last_run_notifications`. */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0 || this.#recording !== null) {
      await Promise.all([...this.#inflight])
      await this.#recording
    }
  }

  /** Stops the timer and waits for what is being accepted and recorded. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true
    this.#timer.close()
    await this.idle()
  }

  async #open(): Promise<void> {
    const { paths, log } = this.#options
    try {
      this.#seed = await readLastRunNotifications(paths.lastRunNotifications)
    } catch (error) {
      // Carry on with what the snapshot knows; the next record sets the bad file aside.
      log.error('last-run-notifications-unreadable', { repo: paths.root, code: toPlainError(error).code, error: toPlainError(error).message })
    }
    if (this.#closed) return
    this.#reader = this.#newReader(this.#pending)
    this.#pending = null
    // A predecessor that died between accepting a notification and recording it: record it now,
    // or Python's watcher, run next, would send it again.
    for (const [hash, run] of this.#reader.runs) {
      if (run.notifiedIdx > (this.#seed.get(hash) ?? -1)) this.#record(hash, run.notifiedIdx)
    }
  }

  #newReader(state: CheckinReaderState | null): CheckinReader {
    const { paths, clock, log } = this.#options
    return new CheckinReader({
      folder: paths.checkins,
      clock,
      graceSeconds: this.graceSeconds,
      alreadyNotified: this.#seed,
      ...(state !== null ? { state } : {}),
      onWarning: (message) => log.warn('checkin-ignored', { repo: paths.root, message }),
    })
  }

  /** Arms one timer at the reader's next deadline (re-armed only when that changes). */
  #arm(): void {
    const reader = this.#reader
    if (this.#closed || reader === null) return
    this.#timer.arm(reader.nextDeadlineAt() ?? Number.POSITIVE_INFINITY)
  }

  /** The timer's time came: what fell due is announced, and the timer armed for the next. */
  #deadlineReached(): void {
    // Armed only with a reader; the current one (absorb() may have replaced it) is evaluated.
    const reader = this.#reader as CheckinReader
    const revision = reader.revision
    const transitions = reader.evaluate()
    if (reader.revision !== revision) this.#options.onStateChanged()
    this.#handle(transitions)
    this.#arm()
  }

  #handle(transitions: CheckinTransition[]): void {
    if (transitions.length === 0) return
    const task = (this.#handling = this.#handling
      .then(() => this.#handleInOrder(transitions))
      .catch((error: unknown) => {
        const plain = toPlainError(error)
        this.#options.log.error('runtime-error', { repo: this.#options.paths.root, code: plain.code, error: plain.message })
      })).finally(() => this.#inflight.delete(task))
    this.#inflight.add(task)
  }

  async #handleInOrder(transitions: CheckinTransition[]): Promise<void> {
    const { paths, log, host, pid } = this.#options
    const isNodeRun = await this.#options.nodeRuns()
    let accepting: Promise<void>[] = []
    for (let i = 0; i < transitions.length; i++) {
      const transition = transitions[i] as CheckinTransition
      const { hash, idx, kind } = transition
      if (isNodeRun(hash)) {
        if (log.enabled('debug')) log.debug('checkin-skipped', { repo: paths.root, hash, idx, eventKind: kind, why: 'a Node owner watches this run' })
        continue
      }
      if (transition.alreadyNotified) {
        this.#say('debug', transition, false)
        continue
      }
      if (this.#options.wanted?.(transition) === false) {
        this.#accepted(NOTHING_QUEUED, transition)
        continue
      }
      const event = checkinEvent(transition, { repo: paths.root, host, pid, graceSeconds: this.graceSeconds })
      const answer = this.#options.accept(event)
      if (!(answer instanceof Promise)) {
        this.#accepted(answer, transition)
        continue
      }
      accepting.push(
        answer.then(
          (accepted) => this.#accepted(accepted, transition),
          (error: unknown) => {
            const plain = toPlainError(error)
            log.error('runtime-error', { repo: paths.root, hash, key: event.key, code: plain.code, error: plain.message })
          },
        ),
      )
      // A window of accepts at a time, not all of a first scan's at once: each holds its event
      // and its promises until the outbox has it (10 MiB at 10k runs, kept past young-generation
      // collections, which then grow the heap for good). The accepts of a window share a write.
      if (accepting.length >= ACCEPT_WINDOW) {
        await Promise.all(accepting)
        accepting = []
      }
    }
    await Promise.all(accepting)
  }

  #accepted({ queued, muted }: Accepted, transition: CheckinTransition): void {
    this.#say(queued.length > 0 || muted ? 'info' : 'debug', transition, muted)
    if (isAimNotification(transition)) this.#record(transition.hash, transition.idx)
  }

  /** A transition's line: info for one queued for sending (or muted), debug for the rest. */
  #say(level: 'debug' | 'info', transition: CheckinTransition, muted: boolean): void {
    const { log, paths } = this.#options
    if (!log.enabled(level)) return
    const { hash, kind, idx } = transition
    log[level](kind, {
      repo: paths.root,
      hash,
      // As in the event (see checkinEvent): the idx numbers the episodes.
      episode: idx,
      overdue: transition.overdueSeconds,
      key: eventKey({ source: 'aim', hash, kind, idx }),
      source: 'aim-checkin',
      idx: transition.idx,
      alreadyNotified: transition.alreadyNotified || undefined,
      muted: muted || undefined,
    })
  }

  /** Records `hash -> idx` in Aim's file; records asked for while one is written go in the next write. */
  #record(hash: string, idx: number): void {
    this.#toRecord.set(hash, Math.max(this.#toRecord.get(hash) ?? -1, idx))
    this.#recording ??= this.#writeRecords().finally(() => {
      this.#recording = null
    })
  }

  async #writeRecords(): Promise<void> {
    const { paths, log } = this.#options
    // Let the accepts of one scan gather into one write.
    await Promise.resolve()
    while (this.#toRecord.size > 0) {
      const batch = new Map(this.#toRecord)
      this.#toRecord.clear()
      try {
        const result = await recordLastRunNotifications(paths.lastRunNotifications, batch)
        if (result.corruptMovedTo !== undefined) log.warn('corrupt-state-file', { repo: paths.root, file: paths.lastRunNotifications, movedTo: result.corruptMovedTo })
        for (const [hash, idx] of batch) this.#seed.set(hash, Math.max(this.#seed.get(hash) ?? -1, idx))
      } catch (error) {
        const plain = toPlainError(error)
        log.error('last-run-notifications-error', { repo: paths.root, code: plain.code, error: plain.message })
      }
    }
  }
}
