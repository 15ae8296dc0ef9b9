/**
 * Per-notifier delivery status, `<root>/.aim/status/notifier-status.json`:
 *
 *     { "<notifierId>": { "delivered": 3, "failed": 1, "dropped": 0, "lastDeliveryAt": 1700000000000,
 *                         "lastError": "HTTP 500", "lastErrorAt": 1700000000000 } }
 *
 * The one store of delivery statistics: {@link NotifierStats} per notifier, each change one
 * {@link DeliveryRecord} applied by `applyRecord` (delivery-record.ts). Written by whichever
 * process delivers (the in-process actor or the daemon), read by `notifiers list`. Every write is a merge under the file's lock, so two processes recording at
 * once lose nothing. Times are epoch milliseconds.
 * @module
 */
import { join } from 'node:path'
import { AimStatusError, ErrorCodes, InvalidIdError, describeValue } from '../errors.js'
import type { RepoPaths } from '../repo.js'
import { applyRecord, emptyStats, normaliseStats, type DeliveryRecord, type NotifierStats } from './delivery-record.js'
import { scrub } from './redact.js'
import { writeFileAtomic } from '../state/files.js'
import { readJsonFile, withFileLock } from './config.js'
import { NOTIFIER_ID_PATTERN } from './registry.js'

/** Notifier id -> status. A null-prototype object, so that any id is plain data. */
export type NotifierStatusMap = Record<string, NotifierStats>

/**
 * A change to the status file: either partial statuses merged into each named notifier's
 * current one (`null` removes the notifier), or a function from the current map to the next.
 */
export type NotifierStatusUpdate = Record<string, Partial<NotifierStats> | null> | ((current: NotifierStatusMap) => NotifierStatusMap)

/** The status file's path. */
export function notifierStatusPath(paths: RepoPaths): string {
  return join(paths.status, 'notifier-status.json')
}

function parseStatus(file: string, raw: unknown): NotifierStatusMap {
  const map: NotifierStatusMap = Object.create(null) as NotifierStatusMap
  if (raw === undefined) return map
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${file}: expected a JSON object, got ${describeValue(raw)}`)
  }
  for (const [id, value] of Object.entries(raw)) {
    if (NOTIFIER_ID_PATTERN.test(id) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      map[id] = normaliseStats(value as Record<string, unknown>)
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
        else next[id] = normaliseStats({ ...(next[id] ?? emptyStats()), ...change })
      }
    }
    assertHeld()
    await writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`)
    return next
  })
}

/**
 * Records one delivery record (delivery-record.ts decides what it adds up to). The error is
 * scrubbed once more on its way to the file: whatever produced it, no secret is stored.
 */
export async function recordDelivery(paths: RepoPaths, record: DeliveryRecord): Promise<NotifierStatusMap> {
  checkId(record.notifierId)
  const safe = record.error === undefined ? record : { ...record, error: scrub(record.error) }
  return writeNotifierStatus(paths, (current) => {
    current[record.notifierId] = applyRecord(current[record.notifierId] ?? emptyStats(), safe)
    return current
  })
}
