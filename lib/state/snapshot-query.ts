/**
 * Questions asked of every snapshot in a repo, for the rare moments that need the repo's whole
 * view of a run: a run re-established by a new owner (its old owner was frozen and adopted)
 * continues the episode count its adopter reached, so that its next stall is a new episode with
 * a new key, never a repeat of one already notified.
 * @module
 */
import { listOwnerIds, snapshotPath, type StatusLayout } from './layout.js'
import { readSnapshot, type Snapshot } from './snapshot.js'

/** A snapshot as it is (its journal replayed), or null: a query never sets a file aside (that is its owner's or adopter's call). */
async function peek(path: string): Promise<Snapshot | null> {
  try {
    return await readSnapshot(path, { setAside: false, onJournalProblem: () => undefined })
  } catch {
    return null
  }
}

/**
 * The highest episode any other owner's snapshot records for this instance of a run (same hash
 * and start time), 0 when none does. Unreadable snapshots are passed over: this only refines a
 * count, it decides nothing about them.
 */
export async function highestEpisode(layout: StatusLayout, hash: string, startedAt: number, exceptOwnerId: string): Promise<number> {
  let highest = 0
  for (const id of await listOwnerIds(layout.owners)) {
    if (id === exceptOwnerId) continue
    const snapshot = await peek(snapshotPath(layout, id))
    for (const run of snapshot?.runs ?? []) {
      // Snapshots keep times to the millisecond.
      if (run.hash === hash && Math.abs(run.startedAt - startedAt) < 1 && run.episode > highest) highest = run.episode
    }
  }
  return highest
}
