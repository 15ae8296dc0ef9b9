/**
 * The outbox: accepted notifications, their delivery, retries and backoff. Pure and
 * clock-injected: it owns no files and no threads; its owner gives it the current notifiers, a
 * `commit` that makes {@link OutboxState} durable, and "may I act?".
 *
 * Guarantees:
 * - Durable before acknowledged: `accept()` resolves, and the first send starts, only after
 *   `commit` has stored the new items; each outcome is persisted before it is reported and
 *   before the next item is sent. A process that dies loses nothing it accepted (a send cut off
 *   mid-flight may be repeated by the next owner: at-least-once).
 * - Once per (event key, notifier): a key pending or settled (delivered, failed, dropped) for a
 *   notifier is never queued again, also after a restore, as long as it is remembered
 *   (the {@link DeliveryOptions.rememberKeys} most recent settled keys).
 * - Independent notifiers: one queue per notifier, one send in flight per queue, order kept
 *   within a queue. A slow or failing endpoint only delays its own queue.
 * - A retry follows only a failed attempt, never a delivered one, and never runs beside
 *   another send of the same queue.
 * - Duplicates bounded: an attempt that timed out may have been delivered (the endpoint got it
 *   and answered late), so the next one waits at least as long as that one was allowed, and is
 *   allowed longer ({@link DeliveryOptions.timeoutsMs}: 10 s, 30 s, 60 s by default). An endpoint
 *   that answers after 12 s gets 2 copies, one that answers after 30 s at most 3.
 * - Nothing lost to a configuration caught mid-edit: the items of a notifier that vanishes from
 *   the configuration wait ({@link DeliveryOptions.vanishGraceMs}) until the configuration has
 *   been without it for a while; those of an entry that is there but unusable (invalid, or of a
 *   type unknown here) wait while it stays so, up to the retry budget. A disabled notifier's
 *   items are dropped at once: somebody chose that.
 *
 * Every outcome is a {@link DeliveryRecord} (delivery-record.ts): the engine keeps no
 * statistics of its own.
 * @module
 */
import { AimStatusError, ErrorCodes, InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import type { Clock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import type { Notifier } from './contract.js'
import type { RunEvent } from '../model.js'
import { wantsEvent } from './contract.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { NOTIFIER_ID_PATTERN } from './registry.js'
import type { DeliveryEndReason, DeliveryRecord } from './delivery-record.js'
import { sendOnce } from './send-once.js'

/** How the wait between attempts grows: `initialMs * factor^(attempt-1)`, capped, ± jitter. */
export interface BackoffOptions {
  /** The wait after the first failed attempt. Default 500 ms. */
  initialMs?: number
  /** Growth per further attempt. Default 1.5. */
  factor?: number
  /** The longest wait. Default 60 000 ms. */
  maxMs?: number
  /** Relative spread, 0–1: a wait is multiplied by a factor in `[1 - jitter, 1 + jitter]`. Default 0.2. */
  jitter?: number
}

/** What a {@link DeliveryEngine} needs from its owner. */
export interface DeliveryOptions {
  /** Time and timers: backoff waits and the per-attempt timeout run on it. */
  clock: Clock
  /**
   * The notifiers as configured now. Called on every `accept()` and before every attempt, so a
   * change of configuration applies at once: a disabled notifier's pending items are dropped
   * (and reported) at their next attempt or at {@link DeliveryEngine.notifiersChanged}; a
   * vanished one's after {@link vanishGraceMs}.
   */
  notifiers(): readonly Notifier[]
  /**
   * Ids that are configured but cannot be used now (an invalid entry, a type unknown here): their
   * items are kept, unsent, while they stay so (at most {@link budgetMs}). Default: none.
   */
  unusable?(): ReadonlySet<string>
  /**
   * How long a notifier may be missing from a configuration before its pending items are
   * dropped (an editor that empties `config.json` while saving; a typo fixed a moment later).
   * Default 60 000 ms.
   */
  vanishGraceMs?: number
  /**
   * Makes the outbox's current state ({@link DeliveryEngine.state}) durable: the owner writes it
   * with the rest of its snapshot. Awaited after `accept()` queued items and after every outcome,
   * before acknowledging or sending on. Calls never overlap; a rejection is reported to
   * `onPersistError` and delivery carries on (sending from memory beats not sending).
   */
  commit(): Promise<void>
  /**
   * May the owner act now? Asked at the moment of every send, after any wait: an owner that was
   * frozen and whose runs were adopted meanwhile must not send what its adopter sends. When it
   * answers false, nothing more is sent and the items stay as they are. Default: always.
   */
  mayAct?(): boolean
  /** The time limit of a first attempt; the attempt is then aborted and counted as transient. Default 10 000 ms. */
  timeoutMs?: number
  /**
   * The time limits of an item's attempts after 0, 1, 2, … attempts that timed out (the last one
   * repeats). Default `[timeoutMs, 3 × timeoutMs, 6 × timeoutMs]`: 10 s, 30 s, 60 s.
   */
  timeoutsMs?: readonly number[]
  /** Waits between attempts. A server's `Retry-After` is honoured when longer. */
  backoff?: BackoffOptions
  /**
   * How long an item may keep failing, from its first attempt in this engine, before it is given
   * up: it is then removed from the outbox, remembered as failed (never re-queued for that
   * key) and reported as `delivery-failed`. An item restored from a state starts a new budget,
   * so time with no process alive never counts. Default 900 000 ms (15 min).
   */
  budgetMs?: number
  /** How many settled (event key, notifier) pairs are remembered to refuse duplicates. Default 1000. */
  rememberKeys?: number
  /** A number in [0, 1) for jitter. Default `Math.random`. */
  random?: () => number
  /** Told of every outcome, after it is persisted. Must not throw. */
  onOutcome?(record: DeliveryRecord): void
  /** Told when `commit` rejects. */
  onPersistError?(error: unknown): void
}

/** One notification waiting for one notifier. */
export interface OutboxItem {
  notifierId: string
  event: RunEvent
  /** When it was accepted (epoch ms). */
  acceptedAt: number
  /** Attempts made so far, across owners. */
  attempts: number
  /** Not before this instant (epoch ms): backoff or `Retry-After`. */
  nextAttemptAt: number
  lastError: string | null
  /** How many attempts in a row ran out of time (each may have been delivered). Absent: 0. */
  timedOut?: number
}

/** A (notifier, event key) pair that is done with, kept to refuse a second delivery. */
export interface SettledKey {
  notifierId: string
  key: string
  at: number
  result: 'delivered' | 'failed' | 'dropped'
}

/** The outbox as JSON: what a snapshot stores and a new owner restores. */
export interface OutboxState {
  version: 1
  /** Pending items, in sending order per notifier. */
  pending: OutboxItem[]
  /** The most recently settled pairs, oldest first. */
  settled: SettledKey[]
  /** Counters of an earlier version, read and ignored (statistics live in notifier-status.json). */
  stats?: Record<string, unknown>
}

/** Defaults of {@link DeliveryOptions}. */
export const DELIVERY_DEFAULTS = {
  timeoutMs: 10_000,
  vanishGraceMs: 60_000,
  budgetMs: 15 * 60_000,
  rememberKeys: 1000,
  backoff: { initialMs: 500, factor: 1.5, maxMs: 60_000, jitter: 0.2 },
} as const

/** The wait before attempt `attempts + 1`, after `attempts` failures (≥ 1). */
export function backoffDelay(attempts: number, backoff: Required<BackoffOptions>, random: () => number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** Math.max(0, attempts - 1))
  return Math.round(base * (1 + backoff.jitter * (2 * random() - 1)))
}

interface QueuedItem extends OutboxItem {
  /** Start of this engine's retry budget for the item: its first attempt here. */
  budgetFrom: number | null
}

/** One notifier's queue. */
interface Lane {
  readonly id: string
  items: QueuedItem[]
  /** Armed for the head's `nextAttemptAt` while it waits and nothing is sent; else disarmed. */
  readonly timer: DeadlineTimer
  sending: Promise<void> | null
  abort: AbortController | null
  /** Since when its notifier has been missing from a configuration (null: present). */
  missingSince: number | null
  /** Since when its notifier has been configured but unusable (null: usable or missing). */
  unusableSince: number | null
}
const pairKey = (notifierId: string, key: string): string => `${notifierId}\n${key}`

/** The outbox and its sender. See the module comment for what it guarantees. */
export class DeliveryEngine {
  readonly #options: DeliveryOptions
  readonly #clock: Clock
  readonly #timeoutsMs: readonly number[]
  readonly #vanishGraceMs: number
  readonly #budgetMs: number
  readonly #rememberKeys: number
  readonly #backoff: Required<BackoffOptions>
  readonly #random: () => number
  readonly #lanes = new Map<string, Lane>()
  /** Settled pairs, oldest first (a Map keeps insertion order). */
  readonly #settled = new Map<string, SettledKey>()
  #persistTail: Promise<void> = Promise.resolve()
  #persistQueued: Promise<void> | null = null
  #closing: Promise<void> | null = null

  constructor(options: DeliveryOptions, restored?: OutboxState) {
    this.#options = checkOptions(options)
    this.#clock = options.clock
    const first = options.timeoutMs ?? DELIVERY_DEFAULTS.timeoutMs
    this.#timeoutsMs = options.timeoutsMs ?? [first, 3 * first, 6 * first]
    this.#vanishGraceMs = options.vanishGraceMs ?? DELIVERY_DEFAULTS.vanishGraceMs
    this.#budgetMs = options.budgetMs ?? DELIVERY_DEFAULTS.budgetMs
    this.#rememberKeys = options.rememberKeys ?? DELIVERY_DEFAULTS.rememberKeys
    this.#backoff = { ...DELIVERY_DEFAULTS.backoff, ...options.backoff }
    this.#random = options.random ?? Math.random
    if (restored !== undefined) {
      this.#restore(checkOutboxState(restored))
      // Let the owner finish wiring before the first send.
      queueMicrotask(() => {
        for (const id of this.#lanes.keys()) this.#kick(id)
      })
    }
  }

  /**
   * Queues an event for every enabled notifier that wants it and has not had its key, persists,
   * then starts sending. Resolves with the ids of the notifiers it was queued for. Rejects with
   * `AIM_STATUS_CLOSED` after close, or with `commit`'s error (the items are sent anyway).
   */
  async accept(event: RunEvent): Promise<string[]> {
    if (this.#closing !== null) throw new AimStatusError(ErrorCodes.CLOSED, 'The outbox is closed')
    checkEvent(event, 'event')
    const now = this.#clock.now()
    const queued: string[] = []
    for (const notifier of this.#options.notifiers()) {
      const id = notifier.entry.id
      if (!wantsEvent(notifier.entry, event.kind) || this.#knows(id, event.key)) continue
      this.#lane(id).items.push({ notifierId: id, event, acceptedAt: now, attempts: 0, nextAttemptAt: now, lastError: null, budgetFrom: null })
      queued.push(id)
    }
    if (queued.length === 0) return queued
    try {
      await this.#save()
    } finally {
      for (const id of queued) this.#kick(id)
    }
    return queued
  }

  /**
   * Applies a change of configuration now: drops the pending items of disabled notifiers
   * (except one being sent, which settles first) and reports them as `dropped`; starts (or
   * stops) the grace period of vanished and unusable ones; sends to the ones that came back.
   */
  async notifiersChanged(): Promise<void> {
    const records: DeliveryRecord[] = []
    for (const lane of [...this.#lanes.values()]) {
      if (lane.sending !== null) continue
      records.push(...this.#review(lane))
      if (lane.items.length === 0 && !this.#currentNotifiers().has(lane.id)) {
        lane.timer.close()
        this.#lanes.delete(lane.id)
      } else {
        this.#kick(lane.id)
      }
    }
    await this.#saveThenReport(records)
  }

  /** The outbox as JSON, for a snapshot. */
  state(): OutboxState {
    const pending: OutboxItem[] = []
    for (const lane of this.#lanes.values()) {
      for (const { budgetFrom: _budget, ...item } of lane.items) pending.push(item)
    }
    return { version: 1, pending, settled: [...this.#settled.values()] }
  }

  /**
   * Takes in another owner's outbox while running (the daemon adopting an orphan's snapshot):
   * its settled pairs are remembered, so nothing it delivered is sent again; its pending items
   * are queued unless their (key, notifier) is already known here. Persists, then sends. Rejects with `AIM_STATUS_CORRUPT_FILE` for an invalid state (nothing
   * taken in) and with `AIM_STATUS_CLOSED` after close.
   */
  async absorb(state: unknown): Promise<void> {
    if (this.#closing !== null) throw new AimStatusError(ErrorCodes.CLOSED, 'The outbox is closed')
    const checked = checkOutboxState(state)
    for (const settled of checked.settled) if (!this.#settled.has(pairKey(settled.notifierId, settled.key))) this.#remember(settled)
    const now = this.#clock.now()
    const touched = new Set<string>()
    for (const item of checked.pending) {
      if (this.#knows(item.notifierId, item.event.key)) continue
      // As in a restore: another owner's wait is kept, never longer than the longest backoff.
      const nextAttemptAt = Math.min(Math.max(now, item.nextAttemptAt), now + this.#backoff.maxMs)
      this.#lane(item.notifierId).items.push({ ...item, nextAttemptAt, budgetFrom: null })
      touched.add(item.notifierId)
    }
    try {
      await this.#save()
    } finally {
      for (const id of touched) this.#kick(id)
    }
  }

  /**
   * Resolves when no attempt is in flight (each is bounded by the attempt timeout). For a
   * process about to end: what is being sent gets its answer; what waits for a retry stays in
   * the outbox (and in the snapshot, for a daemon to deliver).
   */
  async drain(): Promise<void> {
    // A few rounds: an item accepted just before may only start its first attempt after a turn.
    for (let round = 0; round < 5; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      const sends = [...this.#lanes.values()].flatMap((lane) => (lane.sending === null ? [] : [lane.sending]))
      if (sends.length === 0) return
      await Promise.allSettled(sends)
    }
  }

  /** How many items are waiting, per notifier id. */
  pendingCounts(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const lane of this.#lanes.values()) if (lane.items.length > 0) out[lane.id] = lane.items.length
    return out
  }

  /**
   * Stops: cancels waits, aborts sends in flight (their items stay pending, the attempt not
   * counted, unless the answer was already in), and waits for the last persist. Then
   * {@link state} is final. Safe to call twice.
   */
  close(): Promise<void> {
    this.#stopActing()
    return this.#closing as Promise<void>
  }

  /** No more waits or sends: close, or an owner that may no longer act. */
  #stopActing(): void {
    if (this.#closing === null) {
      for (const lane of this.#lanes.values()) {
        lane.timer.close()
        lane.abort?.abort()
      }
      const sends = [...this.#lanes.values()].map((lane) => lane.sending)
      this.#closing = Promise.all(sends).then(() => this.#persistTail)
    }
  }

  #restore(state: OutboxState): void {
    for (const settled of state.settled) this.#remember(settled)
    const now = this.#clock.now()
    for (const item of state.pending) {
      if (this.#knows(item.notifierId, item.event.key)) continue
      // A wait set by another owner is kept, but never longer than the longest backoff from now.
      const nextAttemptAt = Math.min(Math.max(now, item.nextAttemptAt), now + this.#backoff.maxMs)
      this.#lane(item.notifierId).items.push({ ...item, nextAttemptAt, budgetFrom: null })
    }
  }

  #lane(id: string): Lane {
    let lane = this.#lanes.get(id)
    if (lane === undefined) {
      lane = { id, items: [], timer: new DeadlineTimer(this.#clock, () => this.#kick(id)), sending: null, abort: null, missingSince: null, unusableSince: null }
      this.#lanes.set(id, lane)
    }
    return lane
  }

  #knows(notifierId: string, key: string): boolean {
    if (this.#settled.has(pairKey(notifierId, key))) return true
    return this.#lanes.get(notifierId)?.items.some((item) => item.event.key === key) ?? false
  }

  #remember(settled: SettledKey): void {
    const k = pairKey(settled.notifierId, settled.key)
    this.#settled.delete(k)
    this.#settled.set(k, settled)
    while (this.#settled.size > this.#rememberKeys) this.#settled.delete(this.#settled.keys().next().value as string)
  }

  #currentNotifiers(): Map<string, Notifier> {
    const map = new Map<string, Notifier>()
    for (const notifier of this.#options.notifiers()) if (!map.has(notifier.entry.id)) map.set(notifier.entry.id, notifier)
    return map
  }

  /** Sends the head of a lane now, or arms its timer; a no-op while a send is in flight. */
  #kick(id: string): void {
    const lane = this.#lanes.get(id)
    if (lane === undefined || this.#closing !== null || lane.sending !== null) return
    const head = lane.items[0]
    if (head === undefined) {
      lane.timer.disarm()
      return
    }
    const now = this.#clock.now()
    const waiting = this.#waitingUntil(lane, now)
    const present = this.#currentNotifiers().has(lane.id)
    if (waiting !== null) {
      // A vanished or unusable notifier: nothing is sent; the timer ends its grace period.
      lane.timer.arm(waiting)
      return
    }
    if (present && head.nextAttemptAt > now) {
      lane.timer.arm(head.nextAttemptAt)
      return
    }
    lane.timer.disarm()
    // Its grace period over, a notifier still missing has its items dropped now, not at their next attempt.
    const step = present ? this.#attempt(lane, head) : this.#saveThenReport(this.#review(lane))
    lane.sending = step.finally(() => {
      lane.sending = null
      this.#kick(id)
    })
  }

  /**
   * Where a lane's notifier stands now: sendable (null), or, for a vanished or unusable one, the
   * end of its grace period (the lane waits for it, or for the configuration to change).
   * Records the start of a grace period; an expired one is ended by {@link #review}.
   */
  #waitingUntil(lane: Lane, now: number): number | null {
    if (this.#currentNotifiers().has(lane.id)) {
      lane.missingSince = null
      lane.unusableSince = null
      return null
    }
    if (this.#options.unusable?.().has(lane.id) === true) {
      lane.missingSince = null
      lane.unusableSince ??= now
      return lane.unusableSince + this.#budgetMs > now ? lane.unusableSince + this.#budgetMs : null
    }
    lane.unusableSince = null
    lane.missingSince ??= now
    return lane.missingSince + this.#vanishGraceMs > now ? lane.missingSince + this.#vanishGraceMs : null
  }

  /** Drops what a lane can no longer send (disabled; vanished or unusable past the grace period). */
  #review(lane: Lane): DeliveryRecord[] {
    const notifier = this.#currentNotifiers().get(lane.id)
    if (notifier !== undefined) {
      lane.missingSince = null
      lane.unusableSince = null
      return notifier.entry.status === 'enabled' ? [] : this.#dropLane(lane, notifier, 'disabled', 'notifier disabled')
    }
    if (this.#waitingUntil(lane, this.#clock.now()) !== null || lane.items.length === 0) return []
    const records =
      lane.unusableSince !== null
        ? this.#dropLane(lane, undefined, 'unusable', `the notifier's entry stayed unusable for ${Math.round(this.#budgetMs / 1000)} s`)
        : this.#dropLane(lane, undefined, 'removed', `notifier removed from the configuration (missing for ${Math.round(this.#vanishGraceMs / 1000)} s)`)
    lane.missingSince = null
    lane.unusableSince = null
    return records
  }

  async #attempt(lane: Lane, item: QueuedItem): Promise<void> {
    const notifier = this.#currentNotifiers().get(lane.id)
    if (!isActive(notifier)) {
      await this.#saveThenReport(this.#review(lane))
      return
    }
    // The moment of acting: a fenced-off owner stops here, its items left for the adopter.
    if (!(this.#options.mayAct?.() ?? true)) {
      this.#stopActing()
      return
    }
    item.budgetFrom ??= this.#clock.now()
    const timedOutBefore = item.timedOut ?? 0
    const timeoutMs = this.#timeoutFor(timedOutBefore)
    const controller = new AbortController()
    lane.abort = controller
    const result = await sendOnce(notifier, item.event, { clock: this.#clock, timeoutMs, signal: controller.signal, attempt: item.attempts + 1 })
    lane.abort = null
    const { outcome } = result
    if (this.#closing !== null && outcome.kind !== 'delivered') return // interrupted, not failed: stays pending as it was
    item.attempts++
    const now = this.#clock.now()
    const base = { notifierId: lane.id, notifierType: notifier.entry.type, eventKey: item.event.key, eventKind: item.event.kind, hash: item.event.run.hash, attempts: item.attempts, at: now }
    let record: DeliveryRecord
    if (outcome.kind === 'delivered') {
      this.#settle(lane, item, 'delivered', now)
      record = { ...base, kind: 'notified' }
    } else {
      item.lastError = outcome.error
      if (result.timedOut) item.timedOut = timedOutBefore + 1
      else delete item.timedOut
      let wait = outcome.kind === 'transient' ? Math.max(backoffDelay(item.attempts, this.#backoff, this.#random), outcome.retryAfterMs ?? 0) : 0
      // It may have been delivered: wait at least as long as it was allowed before another copy.
      if (result.timedOut) wait = Math.max(wait, timeoutMs)
      if (outcome.kind === 'permanent' || now + wait - item.budgetFrom > this.#budgetMs) {
        this.#settle(lane, item, 'failed', now)
        record = { ...base, kind: 'failed', error: outcome.error, reason: outcome.kind === 'permanent' ? 'permanent' : 'budget' }
      } else {
        item.nextAttemptAt = now + wait
        record = { ...base, kind: 'retrying', error: outcome.error, nextAttemptAt: item.nextAttemptAt, nextTimeoutMs: this.#timeoutFor(item.timedOut ?? 0) }
      }
    }
    await this.#saveThenReport([record])
  }

  /** The time limit of an attempt after `timedOut` attempts in a row that ran out of time. */
  #timeoutFor(timedOut: number): number {
    return this.#timeoutsMs[Math.min(timedOut, this.#timeoutsMs.length - 1)] as number
  }

  #settle(lane: Lane, item: QueuedItem, result: SettledKey['result'], at: number): void {
    const index = lane.items.indexOf(item)
    if (index >= 0) lane.items.splice(index, 1)
    this.#remember({ notifierId: lane.id, key: item.event.key, at, result })
  }

  #dropLane(lane: Lane, notifier: Notifier | undefined, reason: DeliveryEndReason, error: string): DeliveryRecord[] {
    const now = this.#clock.now()
    const records: DeliveryRecord[] = []
    for (const item of [...lane.items]) {
      this.#settle(lane, item, 'dropped', now)
      records.push({
        kind: 'dropped',
        reason,
        error,
        notifierId: lane.id,
        notifierType: notifier?.entry.type ?? 'unknown',
        eventKey: item.event.key,
        eventKind: item.event.kind,
        hash: item.event.run.hash,
        attempts: item.attempts,
        at: now,
      })
    }
    lane.timer.disarm()
    return records
  }

  async #saveThenReport(records: DeliveryRecord[]): Promise<void> {
    if (records.length === 0) return
    try {
      await this.#save()
    } catch {
      // already told to onPersistError
    }
    for (const record of records) this.#options.onOutcome?.(record)
  }

  /**
   * Persists the state as it is when the write starts. Writes never overlap; changes made while
   * one is waiting to start share it.
   */
  #save(): Promise<void> {
    if (this.#persistQueued !== null) return this.#persistQueued
    const write = this.#persistTail.then(() => {
      this.#persistQueued = null
      return this.#options.commit()
    })
    this.#persistQueued = write
    this.#persistTail = write.catch((error: unknown) => this.#options.onPersistError?.(error))
    return write
  }
}

const isActive = (notifier: Notifier | undefined): notifier is Notifier => notifier !== undefined && notifier.entry.status === 'enabled'

function checkOptions(options: DeliveryOptions): DeliveryOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError(`Expected delivery options, got ${describeValue(options)}`)
  const { clock } = options
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function' || typeof clock.setTimer !== 'function') {
    throw new InvalidOptionError('Expected `clock` to be a Clock ({ now, setTimer, clearTimer })')
  }
  for (const name of ['notifiers', 'commit'] as const) {
    if (typeof options[name] !== 'function') throw new InvalidOptionError(`Expected \`${name}\` to be a function, got ${describeValue(options[name])}`)
  }
  const positive = (name: string, value: unknown, min = 1): void => {
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new OutOfRangeError(`Expected \`${name}\` to be a finite number of at least ${min}, got ${describeValue(value)}`)
  }
  positive('timeoutMs', options.timeoutMs)
  positive('vanishGraceMs', options.vanishGraceMs, 0)
  if (options.timeoutsMs !== undefined) {
    if (!Array.isArray(options.timeoutsMs) || options.timeoutsMs.length === 0) throw new OutOfRangeError(`Expected \`timeoutsMs\` to be a non-empty list of ms, got ${describeValue(options.timeoutsMs)}`)
    options.timeoutsMs.forEach((value, i) => positive(`timeoutsMs[${i}]`, value))
  }
  positive('budgetMs', options.budgetMs, 0)
  positive('rememberKeys', options.rememberKeys)
  const backoff = options.backoff ?? {}
  positive('backoff.initialMs', backoff.initialMs, 0)
  positive('backoff.factor', backoff.factor)
  positive('backoff.maxMs', backoff.maxMs, 0)
  if (backoff.jitter !== undefined && !(typeof backoff.jitter === 'number' && backoff.jitter >= 0 && backoff.jitter <= 1)) {
    throw new OutOfRangeError(`Expected \`backoff.jitter\` to be a number from 0 to 1, got ${describeValue(backoff.jitter)}`)
  }
  return options
}

const corrupt = (why: string): AimStatusError => new AimStatusError(ErrorCodes.CORRUPT_FILE, `Invalid outbox state: ${why}`)
const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)
const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

function checkEvent(event: unknown, where: string, fail: (why: string) => Error = (why) => new InvalidOptionError(why)): void {
  if (!isRecord(event)) throw fail(`${where} must be an event object`)
  if (typeof event['key'] !== 'string' || event['key'] === '') throw fail(`${where}.key must be a non-empty string`)
  if (!RUN_EVENT_KINDS.includes(event['kind'] as never)) throw fail(`${where}.kind must be one of ${RUN_EVENT_KINDS.join(', ')}`)
  if (!isRecord(event['run']) || typeof event['run']['hash'] !== 'string') throw fail(`${where}.run.hash must be a string`)
}

/** Checks a state read from a file; throws `AIM_STATUS_CORRUPT_FILE` naming the first problem. */
export function checkOutboxState(state: unknown): OutboxState {
  if (!isRecord(state) || state['version'] !== 1) throw corrupt('expected an object with version 1')
  const { pending, settled } = state
  if (!Array.isArray(pending) || !Array.isArray(settled)) throw corrupt('expected pending and settled lists')
  const checkId = (id: unknown, where: string): void => {
    if (typeof id !== 'string' || !NOTIFIER_ID_PATTERN.test(id)) throw corrupt(`${where} has an invalid notifier id ${describeValue(id)}`)
  }
  pending.forEach((item: unknown, i) => {
    const where = `pending[${i}]`
    if (!isRecord(item)) throw corrupt(`${where} is not an object`)
    checkId(item['notifierId'], where)
    checkEvent(item['event'], `${where}.event`, corrupt)
    if (!isTime(item['acceptedAt']) || !isTime(item['nextAttemptAt'])) throw corrupt(`${where} has invalid times`)
    if (!Number.isSafeInteger(item['attempts']) || (item['attempts'] as number) < 0) throw corrupt(`${where}.attempts is not a count`)
    if (item['lastError'] !== null && typeof item['lastError'] !== 'string') throw corrupt(`${where}.lastError is not a string`)
    if (item['timedOut'] !== undefined && (!Number.isSafeInteger(item['timedOut']) || (item['timedOut'] as number) < 0)) throw corrupt(`${where}.timedOut is not a count`)
  })
  settled.forEach((entry: unknown, i) => {
    const where = `settled[${i}]`
    if (!isRecord(entry)) throw corrupt(`${where} is not an object`)
    checkId(entry['notifierId'], where)
    if (typeof entry['key'] !== 'string' || !isTime(entry['at']) || !['delivered', 'failed', 'dropped'].includes(entry['result'] as string)) throw corrupt(`${where} is malformed`)
  })
  return state as unknown as OutboxState
}
