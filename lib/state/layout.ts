/**
 * The layout of `<root>/.aim/status/`, in one place:
 * ```
 * status/
 *   owners/<ownerId>.json             an owner's snapshot (mode 0600)
 *   owners/<ownerId>.json.lock/       its lease: a proper-lockfile directory whose mtime is refreshed
 *   owners/<ownerId>.json.fence-<n>   generation n's claim: who took the lease at generation n
 *   owners/<ownerId>.json.tmp-<rand>  a snapshot being written (renamed over the snapshot when durable)
 *   owners/<ownerId>.json.journal-<n> changes appended since its last full write, under generation n (journal.ts)
 *   owners/<ownerId>.json.corrupt-<t> an unreadable snapshot, set aside at time t
 *   exits/<ownerId>.json              exit marker: the owner's process exited with unfinished runs
 *   daemon.lock/                      the daemon's lease: one aim-watcher per repo (see {@link daemonLeasePath})
 *   daemon.fence-<n>                  generation n of the daemon's lease
 *   aim-lock.json                     which daemon holds Python Aim's watcher.lock, through which helper
 * ```
 * Every name built from an id goes through {@link safeChild}.
 * @module
 */
import { readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { RepoPaths } from '../repo.js'
import { safeChild } from '../repo.js'
import { STATE_FOLDER_MODE, unreadableError } from './files.js'
import { ensureStateFolder } from './safe-fs.js'
import { checkOwnerId } from './owner.js'

/** Absolute paths inside a repo's status folder. */
export interface StatusLayout {
  /** The repo root: every folder of the layout must stay inside it. */
  root: string
  /** `<root>/.aim/status` */
  status: string
  /** `status/owners`: snapshots, their leases and fences. */
  owners: string
  /** `status/exits`: exit markers. */
  exits: string
  /** `status/daemon.lock`: held by the one running daemon of the repo. */
  daemonLock: string
}

/** The status layout of a repo. */
export function statusLayout(paths: Pick<RepoPaths, 'status'>): StatusLayout {
  return {
    // status is always <root>/<aim folder>/status (repo.ts).
    root: dirname(dirname(paths.status)),
    status: paths.status,
    owners: join(paths.status, 'owners'),
    exits: join(paths.status, 'exits'),
    daemonLock: join(paths.status, 'daemon.lock'),
  }
}

/**
 * Where the daemon lease lives: proper-lockfile locks `<status>/daemon` as `<status>/daemon.lock/`
 * (the {@link StatusLayout.daemonLock} folder).
 */
export function daemonLeasePath(layout: StatusLayout): string {
  return join(layout.status, 'daemon')
}

/** Who holds Python Aim's watcher lock for which of our daemons (`status/aim-lock.json`). */
export function aimLockRecordPath(layout: StatusLayout): string {
  return join(layout.status, 'aim-lock.json')
}

/**
 * Makes `status/`, `owners/` and `exits/` (when missing) and checks that each is a real folder
 * inside the repo: a `status` that is a link leading outside the repo throws
 * `AIM_STATUS_STATE_OUTSIDE_REPO`; a file in its place `AIM_STATUS_STATE_NOT_A_FOLDER`; no
 * permission `AIM_STATUS_STATE_UNWRITABLE`; a full disk `AIM_STATUS_STATE_FULL`.
 */
export function prepareStatusFolders(layout: StatusLayout): void {
  for (const folder of [layout.owners, layout.exits]) ensureStateFolder(folder, layout.root, STATE_FOLDER_MODE)
}

/** `owners/<ownerId>.json`; throws `AIM_STATUS_INVALID_ID` for an unsafe id. */
export function snapshotPath(layout: StatusLayout, ownerId: string): string {
  return safeChild(layout.owners, `${checkOwnerId(ownerId)}.json`)
}

/** `exits/<ownerId>.json`; throws `AIM_STATUS_INVALID_ID` for an unsafe id. */
export function exitMarkerPath(layout: StatusLayout, ownerId: string): string {
  return safeChild(layout.exits, `${checkOwnerId(ownerId)}.json`)
}

/** Whether a file name in `owners/` or `exits/` is a snapshot or marker (not a lock, fence, journal or temp). */
export function ownerIdOfFileName(name: string): string | null {
  const file = ownerFileOf(name)
  return file?.part === 'snapshot' ? file.id : null
}

/** What a file of `owners/` is to its owner (see the layout above); `other` for names this version does not make. */
export type OwnerFilePart = 'snapshot' | 'lock' | 'fence' | 'journal' | 'temp' | 'set-aside' | 'other'

/** The owner a file name in `owners/` belongs to, and which of its files it is; null for names of no owner. */
export function ownerFileOf(name: string): { id: string; part: OwnerFilePart } | null {
  const match = /^([A-Za-z0-9_-]{1,64})\.json(?:\.(.+))?$/.exec(name)
  if (match?.[1] === undefined) return null
  const rest = match[2]
  const part: OwnerFilePart =
    rest === undefined
      ? 'snapshot'
      : rest === 'lock'
        ? 'lock'
        : /^fence-\d+$/.test(rest)
          ? 'fence'
          : /^journal-\d+$/.test(rest)
            ? 'journal'
            : rest.startsWith('tmp-')
              ? 'temp'
              : rest.startsWith('corrupt-')
                ? 'set-aside'
                : 'other'
  return { id: match[1], part }
}

/**
 * The owner ids that have a snapshot in `owners/` (or a marker in `exits/`), sorted. A missing
 * folder is an empty list; an unreadable one rejects with `AIM_STATUS_INVALID_PATH`.
 */
export async function listOwnerIds(folder: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(folder)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw unreadableError(folder, error)
  }
  return names
    .map(ownerIdOfFileName)
    .filter((id): id is string => id !== null)
    .sort()
}
