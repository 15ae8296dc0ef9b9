/**
 * Aim's record of what its watcher has already notified:
 * `<root>/.aim/ext/notifications/last_run_notifications`, JSON `{"<run_hash>": <last notified idx>}`.
 * Reading it before watching, and updating it after each notification, lets a repo switch
 * between Python's `aim-watcher` and ours without a notification sent twice or lost.
 *
 * Writes are atomic (a temp file beside it, then rename), so a reader (Python or Node) sees the
 * old file or the new one, never half of one. An idx never goes down: an update keeps the
 * larger of the stored and the new idx.
 * @module
 */
import { promises as fs } from 'node:fs'
import { AimStatusError, ErrorCodes, InvalidIdError, OutOfRangeError, describeValue } from '../errors.js'
import { RUN_HASH_PATTERN } from '../repo.js'
import { writeFileAtomic } from '../state/files.js'
import { readStateFile } from '../state/safe-fs.js'

/** Run hash -> the last idx a notification was sent for. */
export type LastRunNotifications = Map<string, number>

/** Parses the file's text. Throws `AIM_STATUS_CORRUPT_FILE` unless it is a JSON object of idx. */
export function parseLastRunNotifications(text: string, path = 'last_run_notifications'): LastRunNotifications {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${path} is not valid JSON`, { cause: error })
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${path}: expected a JSON object of run hash -> idx, got ${describeValue(data)}`)
  }
  const result: LastRunNotifications = new Map()
  for (const [hash, idx] of Object.entries(data)) {
    if (!RUN_HASH_PATTERN.test(hash) || !Number.isSafeInteger(idx) || (idx as number) < 0) {
      throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `${path}: bad entry ${describeValue(hash)}: ${describeValue(idx)}`)
    }
    result.set(hash, idx as number)
  }
  return result
}

/**
 * Reads the file. A missing file is an empty record; a corrupt one throws
 * `AIM_STATUS_CORRUPT_FILE` (the caller decides: log it and go on with what it knows, or
 * {@link recordLastRunNotifications}, which sets a corrupt file aside).
 */
export async function readLastRunNotifications(path: string): Promise<LastRunNotifications> {
  // A plain file only, never through a link, never blocking on a FIFO (AIM_STATUS_UNSAFE_FILE).
  const text = await readStateFile(path)
  return text === null ? new Map() : parseLastRunNotifications(text, path)
}

/** Replaces the file atomically with `record` (keys sorted, as Python's `json.dump` of a dict reads naturally). */
export async function writeLastRunNotifications(path: string, record: ReadonlyMap<string, number>): Promise<void> {
  const data: Record<string, number> = {}
  for (const hash of [...record.keys()].sort()) {
    if (!RUN_HASH_PATTERN.test(hash)) throw new InvalidIdError(`Refusing run hash ${describeValue(hash)}`)
    data[hash] = record.get(hash) as number
  }
  await writeFileAtomic(path, JSON.stringify(data))
}

/** What {@link recordLastRunNotifications} found and did. */
export interface RecordResult {
  /** The record as written. */
  record: LastRunNotifications
  /** Where a corrupt file was set aside before writing a fresh one, if it was. */
  corruptMovedTo?: string
}

/**
 * Records notifications sent: for each `hash -> idx`, the stored idx becomes the larger of the
 * two. Read, merge and atomic write; a corrupt file is renamed to
 * `last_run_notifications.corrupt-<ms>` (kept for a human) and replaced. Callers that share the
 * file with another writer hold the watcher's lock around this.
 */
export async function recordLastRunNotifications(path: string, sent: ReadonlyMap<string, number>): Promise<RecordResult> {
  // Bad input is refused before anything on disk is touched.
  for (const [hash, idx] of sent) {
    if (!RUN_HASH_PATTERN.test(hash)) throw new InvalidIdError(`Refusing run hash ${describeValue(hash)}`)
    if (!Number.isSafeInteger(idx) || idx < 0) throw new OutOfRangeError(`Expected an idx, 0 or more, for run '${hash}', got ${describeValue(idx)}`)
  }
  let record: LastRunNotifications
  let corruptMovedTo: string | undefined
  try {
    record = await readLastRunNotifications(path)
  } catch (error) {
    if ((error as { code?: unknown }).code !== ErrorCodes.CORRUPT_FILE) throw error
    corruptMovedTo = `${path}.corrupt-${Date.now()}`
    await fs.rename(path, corruptMovedTo)
    record = new Map()
  }
  for (const [hash, idx] of sent) {
    record.set(hash, Math.max(record.get(hash) ?? -1, idx))
  }
  await writeLastRunNotifications(path, record)
  return corruptMovedTo === undefined ? { record } : { record, corruptMovedTo }
}
