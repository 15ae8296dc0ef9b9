/**
 * The one model of a delivery: what happened to one notification for one notifier
 * ({@link DeliveryRecord}) and what the records of a notifier add up to
 * ({@link NotifierStats}). The outbox produces records; the `Watcher`'s events
 * ({@link watcherEventOf}), the daemon's log, the status file (`notifier-status.json`, the one
 * store of statistics) and `notifiers list` are all derived from them, through the functions
 * here, so they cannot disagree.
 *
 * One place decides what counts as a failure ({@link countsAsFailure}): an item given up
 * (a permanent error, or its retry budget spent). An item dropped because its notifier was
 * disabled or removed is not a failure (somebody chose it); it is counted as `dropped`.
 * @module
 */
import type { RunEventKind } from '../model.js'

/** How one item's story went, so far or for good. */
export type DeliveryRecordKind = 'notified' | 'retrying' | 'failed' | 'dropped'

/**
 * Why an item ended without being delivered: `permanent` (the endpoint refused it), `budget`
 * (it kept failing for the whole retry budget), `disabled` / `removed` (its notifier was
 * disabled, or gone from a valid configuration for the grace period), `unusable` (its
 * notifier's entry stayed invalid, or its type unknown, for the whole retry budget).
 */
export type DeliveryEndReason = 'permanent' | 'budget' | 'disabled' | 'removed' | 'unusable'

/** What happened to one notification for one notifier. Plain data: it crosses threads and is logged. */
export interface DeliveryRecord {
  /** `notified`: delivered; `retrying`: an attempt failed, another is scheduled; `failed`: given up; `dropped`: not sent, by choice. */
  kind: DeliveryRecordKind
  notifierId: string
  /** The notifier's type, or `unknown` when it is no longer configured. */
  notifierType: string
  /** The event's key (see RunEvent.key): the same for every attempt and every owner. */
  eventKey: string
  eventKind: RunEventKind
  hash: string
  /** Attempts made so far, across owners. */
  attempts: number
  /** When this was known (epoch ms). */
  at: number
  /** The last attempt's error (`retrying`, `failed`), or why it was dropped. Never holds a secret. */
  error?: string
  /** For `failed` and `dropped`. */
  reason?: DeliveryEndReason
  /** For `retrying`: when the next attempt is due (epoch ms). */
  nextAttemptAt?: number
  /** For `retrying`: how long the next attempt may take, in ms (longer after a timeout). */
  nextTimeoutMs?: number
}

/** The `Watcher` event a record is emitted as. */
export type DeliveryEventName = 'notified' | 'retrying' | 'delivery-failed' | 'dropped'

/** The event name for a record: `failed` is emitted as `delivery-failed`, the rest by their kind. */
export function watcherEventOf(record: DeliveryRecord): DeliveryEventName {
  return record.kind === 'failed' ? 'delivery-failed' : record.kind
}

/** The one rule: only an item given up is a failure. */
export function countsAsFailure(record: DeliveryRecord): boolean {
  return record.kind === 'failed'
}

/** How deliveries to one notifier have gone. */
export interface NotifierStats {
  /** Items delivered. */
  delivered: number
  /** Items given up ({@link countsAsFailure}). */
  failed: number
  /** Items dropped because the notifier was disabled or removed. */
  dropped: number
  /** When the last delivery happened, or null. */
  lastDeliveryAt: number | null
  /** The last error of any attempt (retried, given up or dropped), or null. Never a secret. */
  lastError: string | null
  lastErrorAt: number | null
}

/** Statistics with nothing recorded. */
export function emptyStats(): NotifierStats {
  return { delivered: 0, failed: 0, dropped: 0, lastDeliveryAt: null, lastError: null, lastErrorAt: null }
}

const count = (value: unknown): number => (Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : 0)
const time = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null)

/** Reads stored statistics leniently: a field of the wrong type reads as "nothing recorded". */
export function normaliseStats(value: Record<string, unknown>): NotifierStats {
  return {
    delivered: count(value['delivered']),
    failed: count(value['failed']),
    dropped: count(value['dropped']),
    lastDeliveryAt: time(value['lastDeliveryAt']),
    lastError: typeof value['lastError'] === 'string' ? value['lastError'] : null,
    lastErrorAt: time(value['lastErrorAt']),
  }
}

/**
 * The statistics after one more record. Two processes may record out of order: the "last"
 * fields keep the newest by time.
 */
export function applyRecord(stats: NotifierStats, record: DeliveryRecord): NotifierStats {
  const next = { ...stats }
  if (record.kind === 'notified') {
    next.delivered++
    next.lastDeliveryAt = Math.max(record.at, stats.lastDeliveryAt ?? record.at)
    return next
  }
  if (countsAsFailure(record)) next.failed++
  else if (record.kind === 'dropped') next.dropped++
  if (record.error !== undefined && (stats.lastErrorAt === null || record.at >= stats.lastErrorAt)) {
    next.lastError = record.error
    next.lastErrorAt = record.at
  }
  return next
}
