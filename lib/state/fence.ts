/**
 * Fencing generations. Generation n of a snapshot's lease is claimed by creating
 * `<snapshot>.fence-<n>` exclusively (`O_EXCL`, atomic on local file systems and NFSv3+), with
 * the claimer's {@link OwnerInfo} inside. Exactly one claimer of a number succeeds, so two
 * adopters racing for one orphan cannot both win, whatever proper-lockfile's stale-lock removal
 * does (it is not atomic: two processes can both remove a stale lock and both `mkdir` it).
 *
 * Fences are only ever added while the snapshot lives, so "has generation g been superseded?"
 * is one `lstat` of `fence-<g+1>`. They are removed with the snapshot.
 *
 * Links are never followed: a claim is created with `O_EXCL|O_NOFOLLOW`, a name is "taken" when
 * any entry has it (a dangling link too: `lstat`), and a fence that is not a plain file (a link,
 * a FIFO, a folder planted by someone else) is a used number with no holder and no age, so it
 * never keeps a lease from being taken: the next claim goes to the number after it.
 * @module
 */
import { rmSync } from 'node:fs'
import { STATE_FILE_MODE } from './files.js'
import { createExclusiveSync, entryExists, lstatOrNull, readStateFileSync } from './safe-fs.js'
import { parseOwnerInfo } from './owner.js'
import type { OwnerInfo } from './owner.js'

/** The path of generation `n`'s fence. */
export function fencePath(snapshotPath: string, generation: number): string {
  return `${snapshotPath}.fence-${generation}`
}

/**
 * The highest claimed generation, 0 when none. Fences are claimed in order, so a caller that
 * knows generation `from` was claimed (a cache of an earlier look) probes only the ones after it.
 */
export function highestGeneration(snapshotPath: string, from = 0): number {
  let generation = from
  while (entryExists(fencePath(snapshotPath, generation + 1))) generation += 1
  return generation
}

/** Claims generation `n` for `holder`; false when somebody else claimed it first. */
export function claimGeneration(snapshotPath: string, generation: number, holder: OwnerInfo): boolean {
  return createExclusiveSync(fencePath(snapshotPath, generation), JSON.stringify(holder), STATE_FILE_MODE)
}

/** A fence's holder and when it was claimed; holder null while it is being written or if unreadable. */
export interface FenceRecord {
  holder: OwnerInfo | null
  claimedAt: number
}

/** Reads generation `n`'s fence; null when it does not exist. */
export function readFence(snapshotPath: string, generation: number): FenceRecord | null {
  const path = fencePath(snapshotPath, generation)
  const entry = lstatOrNull(path)
  if (entry === null) return null
  // Not a claim of ours (we only ever create plain files): a used number, held by nobody, idle forever.
  if (!entry.isFile()) return { holder: null, claimedAt: -Infinity }
  const claimedAt = entry.mtimeMs
  try {
    return { holder: parseOwnerInfo(JSON.parse(readStateFileSync(path) ?? ''), 'fence'), claimedAt }
  } catch {
    // Created but not yet written (or damaged): the claim counts, its holder is unknown.
    return { holder: null, claimedAt }
  }
}

/**
 * Whether `ownerId` holds the newest generation of a snapshot's lease (or none was ever
 * claimed): the synchronous form of "may I act?", for the moment a process exits.
 */
export function holdsNewestGeneration(snapshotPath: string, ownerId: string): boolean {
  const generation = highestGeneration(snapshotPath)
  if (generation === 0) return true
  return readFence(snapshotPath, generation)?.holder?.id === ownerId
}

/**
 * Removes every fence of a snapshot (when the snapshot itself is removed). Fences are claimed one
 * after another from 1, so they are probed by number: a listing of `owners/` would cost every
 * retire as much as there are owners.
 */
export function removeFences(snapshotPath: string): void {
  const highest = highestGeneration(snapshotPath)
  for (let generation = 1; generation <= highest; generation++) rmSync(fencePath(snapshotPath, generation), { force: true })
}
