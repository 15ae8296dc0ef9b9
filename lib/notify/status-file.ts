/**
 * Per-notifier delivery status, `<root>/.aim/status/notifier-status.json`:
 *
 *     { "<notifierId>": { "delivered": 3, "failed": 1, "lastDeliveryAt": 1700000000000,
 *                         "lastError": "HTTP 500", "lastErrorAt": 1700000000000 } }
 *
 * Written by whichever process delivers (the in-process actor or the daemon), read by
 * `notifiers list`. Every write is a merge under the file's lock, so two processes recording at
 * once lose nothing. Times are epoch milliseconds.
 * @module
 */
import { join } from 'node:path'
import { AimStatusError, ErrorCodes, InvalidIdError, describeValue } from '../errors.js'
import type { RepoPaths } from '../repo.js'
import type { DeliveryOutcome } from './contract.js'
import { writeFileAtomic } from '../state/files.js'
import { readJsonFile, withFileLock } from './config.js'
import { NOTIFIER_ID_PATTERN } from './registry.js'

/** How deliveries to one notifier have gone. */
export interface NotifierDeliveryStatus {
  /** Deliveries that succeeded. */
  delivered: number
  /** Deliveries given up on (permanent failure, or retries exhausted). */
  failed: number
  /** When the last successful delivery happened, or null. */
  lastDeliveryAt: number | null
  /** The last failure's message (never a secret: notifiers redact their URLs), or null. */
  lastError: string | null
  /** When the last failure happened, or null. */
  lastErrorAt: number | null
}

/** Notifier id -> status. A null-prototype object, so that any id is plain data. */
export type NotifierStatusMap = Record<string, NotifierDeliveryStatus>

/**
 * A change to the status file: either partial statuses merged into each named notifier's
 * current one (`null` removes the notifier), or a function from the current map to the next.
 */
export type NotifierStatusUpdate = Record<string, Partial<NotifierDeliveryStatus> | null> | ((current: NotifierStatusMap) => NotifierStatusMap)

/** The status file's path. */
export function notifierStatusPath(paths: RepoPaths): string {
  return join(paths.status, 'notifier-status.json')
}

/** A status with nothing recorded. */
export function emptyDeliveryStatus(): NotifierDeliveryStatus {
  return { delivered: 0, failed: 0, lastDeliveryAt: null, lastError: null, lastErrorAt: null }
}

const count = (value: unknown): number => (Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : 0)
const time = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null)

/** Reads one stored status leniently: a field of the wrong type reads as "nothing recorded". */
function normalise(value: Record<string, unknown>): NotifierDeliveryStatus {
  return {
    delivered: count(value['delivered']),
    failed: count(value['failed']),
    lastDeliveryAt: time(value['lastDeliveryAt']),
    lastError: typeof value['lastError'] === 'string' ? value['lastError'] : null,
    lastErrorAt: time(value['lastErrorAt']),
  }
}

function parseStatus(file: string, raw: unknown): NotifierStatusMap {
  const map: NotifierStatusMap = Object.create(null) as NotifierStatusMap
  if (raw === undefined) return map
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${file}: expected a JSON object, got ${describeValue(raw)}`)
  }
  for (const [id, value] of Object.entries(raw)) {
    if (NOTIFIER_ID_PATTERN.test(id) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      map[id] = normalise(value as Record<string, unknown>)
    }
  }
  return map
}

/** Reads every notifier's delivery status (an empty map when nothing was recorded yet). */
export async function readNotifierStatus(paths: RepoPaths): Promise<NotifierStatusMap> {
  const file = notifierStatusPath(paths)
  return parseStatus(file, await readJsonFile(file))
}

function checkId(id: string): void {
  if (typeof id !== 'string' || !NOTIFIER_ID_PATTERN.test(id)) {
    throw new InvalidIdError(`Expected a notifier id of 1 to 64 characters of [A-Za-z0-9_-], got ${describeValue(id)}`)
  }
}

/**
 * Applies an update under the file's lock and writes the result atomically.
 * @returns the map as written.
 */
export async function writeNotifierStatus(paths: RepoPaths, update: NotifierStatusUpdate): Promise<NotifierStatusMap> {
  const file = notifierStatusPath(paths)
  if (typeof update !== 'function') {
    if (update === null || typeof update !== 'object') throw new InvalidIdError(`Expected a status update, got ${describeValue(update)}`)
    for (const id of Object.keys(update)) checkId(id)
  }
  return withFileLock(file, async (assertHeld) => {
    let current: NotifierStatusMap
    try {
      current = parseStatus(file, await readJsonFile(file))
    } catch (error) {
      // Delivery bookkeeping must never stop deliveries: a corrupt status file starts afresh.
      if ((error as AimStatusError).code !== ErrorCodes.CORRUPT_FILE) throw error
      current = Object.create(null) as NotifierStatusMap
    }
    let next: NotifierStatusMap
    if (typeof update === 'function') {
      next = update(current)
      for (const id of Object.keys(next)) checkId(id)
    } else {
      next = current
      for (const [id, change] of Object.entries(update)) {
        if (change === null) delete next[id]
        else next[id] = normalise({ ...(next[id] ?? emptyDeliveryStatus()), ...change })
      }
    }
    assertHeld()
    await writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`)
    return next
  })
}

/**
 * Records how one delivery ended. `delivered` and `permanent` (including "retries exhausted",
 * which the delivery engine reports as permanent) are counted; a `transient` outcome records
 * its error and time but is not counted as failed, because it will be tried again.
 */
export async function recordDeliveryOutcome(paths: RepoPaths, id: string, outcome: DeliveryOutcome, at: number): Promise<NotifierStatusMap> {
  checkId(id)
  return writeNotifierStatus(paths, (current) => {
    const status = current[id] ?? emptyDeliveryStatus()
    // Two processes may record out of order: the "last" fields keep the newest, by time.
    if (outcome.kind === 'delivered') {
      current[id] = { ...status, delivered: status.delivered + 1, lastDeliveryAt: Math.max(at, status.lastDeliveryAt ?? at) }
      return current
    }
    const newer = status.lastErrorAt === null || at >= status.lastErrorAt
    current[id] = {
      ...status,
      failed: status.failed + (outcome.kind === 'permanent' ? 1 : 0),
      ...(newer ? { lastError: outcome.error, lastErrorAt: at } : {}),
    }
    return current
  })
}
