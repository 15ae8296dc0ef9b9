/**
 * Durable, atomic file writes and the setting aside of unreadable files, shared by snapshots
 * (asynchronous: they can be large) and exit markers (synchronous: written from an `exit`
 * handler, where nothing asynchronous runs).
 *
 * A write goes to a temp file in the same folder, is fsynced, renamed over the target and the
 * folder is fsynced: a reader sees the old file or the new one, never a mix, and after a crash
 * of the machine the new name points at complete data.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { AimStatusError, CorruptFileError, ErrorCodes } from '../errors.js'
import { openExclusive, openExclusiveSync, stateWriteError } from './safe-fs.js'

/** State files hold run names and delivery state: owner-only, like Aim's config. */
export const STATE_FILE_MODE = 0o600
/** State folders are owner-only too. */
export const STATE_FOLDER_MODE = 0o700

function tempPathFor(path: string): string {
  return `${path}.tmp-${randomBytes(6).toString('hex')}`
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Called after the data is durable in the temp file and just before the rename; throwing
   * cancels the write (the temp file is removed and the target is untouched). The lease's
   * generation check goes here, so a write by an owner that has lost its lease never lands.
   */
  beforeRename?: () => void
}

/**
 * Writes `data` to `path` atomically and durably (see the module notes); mode 0600. The temp
 * file is created exclusively and never through a link, and the rename replaces whatever entry
 * is at `path` (a link planted there is replaced, never followed). Failures of the file system
 * are coded (`AIM_STATUS_STATE_FULL`, `AIM_STATUS_STATE_UNWRITABLE`, …), naming the path.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  try {
    await writeAtomic(path, data, options)
  } catch (error) {
    throw stateWriteError(path, error)
  }
}

async function writeAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const folder = dirname(path)
  await mkdir(folder, { recursive: true, mode: STATE_FOLDER_MODE })
  const temp = tempPathFor(path)
  try {
    const handle = await openExclusive(temp, STATE_FILE_MODE)
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    options.beforeRename?.()
    await rename(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw error
  }
  await syncFolder(folder)
}

/** The synchronous twin of {@link writeFileAtomic}, for `exit` handlers. */
export function writeFileAtomicSync(path: string, data: string): void {
  try {
    writeAtomicSync(path, data)
  } catch (error) {
    throw stateWriteError(path, error)
  }
}

function writeAtomicSync(path: string, data: string): void {
  const folder = dirname(path)
  mkdirSync(folder, { recursive: true, mode: STATE_FOLDER_MODE })
  const temp = tempPathFor(path)
  try {
    const fd = openExclusiveSync(temp, STATE_FILE_MODE)
    try {
      writeSync(fd, data)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, { force: true })
    throw error
  }
  try {
    const fd = openSync(folder, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch {
    // Some file systems refuse to fsync a folder; the rename is still atomic.
  }
}

async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // Some file systems refuse to fsync a folder (EINVAL); the rename is still atomic.
  }
}

/**
 * Renames an unreadable file to `<name>.corrupt-<epoch ms>` beside it, so that it stays for a
 * person to inspect but is never read again, and returns the error to report.
 */
export async function setAside(path: string, problem: string): Promise<CorruptFileError> {
  const aside = `${path}.corrupt-${Date.now()}`
  let setAsidePath: string | null = aside
  try {
    await rename(path, aside)
  } catch {
    setAsidePath = null
  }
  const where = setAsidePath === null ? 'it could not be set aside' : `set aside as ${basename(setAsidePath)}`
  return new CorruptFileError(`${basename(path)} is not a valid state file (${problem}); ${where}`, { path, setAsidePath })
}

/** Turns a read failure of a state file into a clear coded error (permission, not a folder...). */
export function unreadableError(path: string, error: unknown): AimStatusError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown error'
  const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOTDIR' ? 'a parent is not a folder' : 'cannot be read'
  return new AimStatusError(ErrorCodes.INVALID_PATH, `Cannot read ${path}: ${why} (${code})`, { cause: error })
}
