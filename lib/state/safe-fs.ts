/**
 * The safe file layer: every file and folder under `.aim/` is input from outside. Repos live on
 * shared file systems that other users and half-finished tools write, so a name we are about to
 * use may already be a symbolic link to somebody's shell profile, a FIFO that blocks whoever
 * opens it, a link to `/dev/zero`, or a folder. Every module that touches `.aim/` goes through
 * these functions, which hold four rules:
 * - **Creating** is exclusive and never follows a link (`O_CREAT|O_EXCL|O_NOFOLLOW`): whatever
 *   sits at the name already, nothing is written through it.
 * - **Appending** never follows a link (`O_NOFOLLOW`) and writes only to a plain file with no
 *   other hard link.
 * - **Reading** opens without following a link and without blocking (`O_NONBLOCK`: a FIFO opens
 *   at once instead of waiting for a writer), checks the open file (`fstat`) is a plain file, and
 *   reads at most a size cap: a FIFO, a device, a folder or a huge file is refused with
 *   `AIM_STATUS_UNSAFE_FILE`, never waited on or held in memory.
 * - **Folders** are used only when they are folders whose real path stays inside the repo: a
 *   link that leads elsewhere is refused with `AIM_STATUS_STATE_OUTSIDE_REPO`.
 * Errors of the file system that a person must act on become coded errors naming the path:
 * `AIM_STATUS_STATE_UNWRITABLE` (permission, read-only), `AIM_STATUS_STATE_FULL` (no space,
 * quota), `AIM_STATUS_STATE_NOT_A_FOLDER`.
 *
 * What this cannot do: Node has no `openat`, so a folder swapped for a link between the check
 * and a later open of a file inside it is not caught at that open. Files are still created
 * exclusively, so such a swap can add a new file elsewhere but never change an existing one.
 * @module
 */
import fs, { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, realpathSync, renameSync, writeSync, type Stats } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { isAbsolute, join, relative, sep } from 'node:path'
import { AimStatusError, ErrorCodes, type ErrorCode } from '../errors.js'

// O_NOFOLLOW and O_NONBLOCK do not exist on Windows, where neither symlink planting nor FIFOs
// work the same way; 0 leaves the flag out.
const NOFOLLOW = constants.O_NOFOLLOW ?? 0
const NONBLOCK = constants.O_NONBLOCK ?? 0
const NOCTTY = constants.O_NOCTTY ?? 0
const READ_FLAGS = constants.O_RDONLY | NOFOLLOW | NONBLOCK | NOCTTY
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW | NOCTTY
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | NOFOLLOW | NONBLOCK | NOCTTY

/**
 * The file-system functions for proper-lockfile locks under `.aim/`: a link planted at a lock's
 * name is looked at (`lstat`) and touched (`lutimes`) itself, never what it points to.
 */
export const NO_FOLLOW_LOCK_FS: Record<string, unknown> = { ...fs, stat: fs.lstat, utimes: fs.lutimes }

/** Default cap of {@link readStateFile}: 1 MiB, for small records (fences, markers, config, locks). */
export const DEFAULT_MAX_READ_BYTES = 1 << 20
/** The cap for snapshots: 256 MiB (a snapshot of 100k runs is about 10 MB). */
export const MAX_SNAPSHOT_BYTES = 256 << 20

/** A coded error about a path under `.aim/`; `path` names it (and crosses threads with it). */
export function stateError(code: ErrorCode, path: string, message: string, cause?: unknown): AimStatusError {
  const error = new AimStatusError(code, message, cause === undefined ? undefined : { cause })
  return Object.assign(error, { path })
}

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | null)?.code

/**
 * Turns a failed write, create or mkdir under `.aim/` into the coded error a person can act on.
 * Our own coded errors (a lease lost before a rename, say) pass through unchanged.
 */
export function stateWriteError(path: string, error: unknown): unknown {
  if (error instanceof AimStatusError) return error
  const errno = errnoOf(error)
  switch (errno) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return stateError(ErrorCodes.STATE_UNWRITABLE, path, `Cannot write ${path}: ${errno === 'EROFS' ? 'read-only file system' : 'permission denied'} (${errno})`, error)
    case 'ENOSPC':
    case 'EDQUOT':
      return stateError(ErrorCodes.STATE_FULL, path, `Cannot write ${path}: the file system is full (${errno})`, error)
    case 'ENOTDIR':
      return stateError(ErrorCodes.STATE_NOT_A_FOLDER, path, `Cannot write ${path}: a parent is not a folder (${errno})`, error)
    case 'ELOOP':
      return stateError(ErrorCodes.UNSAFE_FILE, path, `Refusing ${path}: it is a symbolic link (${errno})`, error)
    case 'ENXIO':
      return stateError(ErrorCodes.UNSAFE_FILE, path, `Refusing ${path}: it is a FIFO or a device (${errno})`, error)
    default:
      return error
  }
}

function describeKind(info: Stats): string {
  if (info.isSymbolicLink()) return 'a symbolic link'
  if (info.isDirectory()) return 'a folder'
  if (info.isFIFO()) return 'a FIFO'
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device'
  if (info.isSocket()) return 'a socket'
  return 'not a plain file'
}

function unsafe(path: string, why: string, cause?: unknown): AimStatusError {
  return stateError(ErrorCodes.UNSAFE_FILE, path, `Refusing ${path}: ${why}; it is never read, written or followed`, cause)
}

function checkReadable(path: string, info: Stats, maxBytes: number): void {
  if (!info.isFile()) throw unsafe(path, `it is ${describeKind(info)}`)
  if (info.size > maxBytes) throw unsafe(path, `it holds ${info.size} bytes, more than the ${maxBytes} allowed`)
}

/** A read error: ENOENT passes (callers decide), the rest is coded. */
function readError(path: string, error: unknown): unknown {
  const errno = errnoOf(error)
  if (errno === 'ELOOP') return unsafe(path, 'it is a symbolic link', error)
  if (errno === 'ENXIO' || errno === 'EISDIR') return unsafe(path, errno === 'EISDIR' ? 'it is a folder' : 'it is a device', error)
  return error
}

/** Options of {@link readStateFile}. */
export interface ReadStateOptions {
  /** The most bytes accepted. Default {@link DEFAULT_MAX_READ_BYTES}. */
  maxBytes?: number
}

/**
 * The chunks of one capped read, for the asynchronous and synchronous readers alike: each
 * `next()` buffer is filled by a read, `take()` keeps what it got and says whether to go on
 * (false at the end); more than `maxBytes` throws `AIM_STATUS_UNSAFE_FILE`.
 */
class CappedText {
  readonly #path: string
  readonly #maxBytes: number
  readonly #chunks: Buffer[] = []
  #total = 0
  #chunk: Buffer = Buffer.alloc(0)

  constructor(path: string, maxBytes: number) {
    this.#path = path
    this.#maxBytes = maxBytes
  }

  /** The buffer the next read fills: at most 1 MiB, and one byte past the cap to see a file that grew. */
  next(): Buffer {
    this.#chunk = Buffer.allocUnsafe(Math.min(1 << 20, this.#maxBytes + 1 - this.#total))
    return this.#chunk
  }

  /** The size of the buffer {@link next} gave. */
  get size(): number {
    return this.#chunk.length
  }

  take(bytesRead: number): boolean {
    if (bytesRead === 0) return false
    this.#chunks.push(bytesRead === this.#chunk.length ? this.#chunk : this.#chunk.subarray(0, bytesRead))
    this.#total += bytesRead
    if (this.#total > this.#maxBytes) throw unsafe(this.#path, `it grew past the ${this.#maxBytes} bytes allowed`)
    return true
  }

  toString(): string {
    return Buffer.concat(this.#chunks, this.#total).toString('utf8')
  }
}

/**
 * Reads a plain file under `.aim/` as UTF-8: null when there is none. A link, FIFO, device,
 * folder or a file over `maxBytes` rejects with `AIM_STATUS_UNSAFE_FILE`; other errors (EACCES,
 * ENOTDIR) are the file system's, for the caller to word.
 */
export async function readStateFile(path: string, options: ReadStateOptions = {}): Promise<string | null> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_READ_BYTES
  let handle: FileHandle
  try {
    handle = await open(path, READ_FLAGS)
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null
    throw readError(path, error)
  }
  try {
    checkReadable(path, await handle.stat(), maxBytes)
    // Read to the end, not to the stat's size: the file may grow meanwhile; never past the cap.
    const text = new CappedText(path, maxBytes)
    while (text.take(await handle.read(text.next(), 0, text.size, null).then((r) => r.bytesRead)));
    return text.toString()
  } catch (error) {
    throw readError(path, error)
  } finally {
    await handle.close()
  }
}

/** The synchronous twin of {@link readStateFile}, for `exit` handlers and lock checks. */
export function readStateFileSync(path: string, options: ReadStateOptions = {}): string | null {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_READ_BYTES
  let fd: number
  try {
    fd = openSync(path, READ_FLAGS)
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null
    throw readError(path, error)
  }
  try {
    checkReadable(path, fstatSync(fd), maxBytes)
    const text = new CappedText(path, maxBytes)
    while (text.take(readSync(fd, text.next(), 0, text.size, null)));
    return text.toString()
  } catch (error) {
    throw readError(path, error)
  } finally {
    closeSync(fd)
  }
}

/**
 * Creates `path` exclusively with `data` and never through a link (`O_CREAT|O_EXCL|O_NOFOLLOW`):
 * true when created, false when anything (a file, a link, even a dangling one) is already there.
 * Other failures are coded ({@link stateWriteError}).
 */
export function createExclusiveSync(path: string, data: string | Uint8Array, mode: number): boolean {
  let fd: number
  try {
    fd = openSync(path, CREATE_FLAGS, mode)
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false
    throw stateWriteError(path, error)
  }
  try {
    if (data.length > 0) writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
  } catch (error) {
    closeSync(fd)
    // Ours (created exclusively): a half-written claim is not left behind.
    fs.rmSync(path, { force: true })
    throw stateWriteError(path, error)
  }
  closeSync(fd)
  return true
}

/** Opens a new file exclusively, never through a link, for a writer that streams into it (a temp file). */
export async function openExclusive(path: string, mode: number): Promise<FileHandle> {
  try {
    return await open(path, CREATE_FLAGS, mode)
  } catch (error) {
    throw stateWriteError(path, error)
  }
}

/** The synchronous twin of {@link openExclusive}; returns a file descriptor. */
export function openExclusiveSync(path: string, mode: number): number {
  try {
    return openSync(path, CREATE_FLAGS, mode)
  } catch (error) {
    throw stateWriteError(path, error)
  }
}

/**
 * Opens a file under `.aim/` for appending (created when missing, with `mode`), never through a
 * link, and only a plain file with no other hard link (a hard link planted at the name would
 * make us append to somebody else's file). Returns the file descriptor; refusals are
 * `AIM_STATUS_UNSAFE_FILE`.
 */
export function openAppendSync(path: string, mode: number): number {
  let fd: number
  try {
    fd = openSync(path, APPEND_FLAGS, mode)
  } catch (error) {
    throw stateWriteError(path, error)
  }
  let info: Stats
  try {
    info = fstatSync(fd)
  } catch (error) {
    closeSync(fd)
    throw stateWriteError(path, error)
  }
  if (!info.isFile() || info.nlink !== 1) {
    closeSync(fd)
    throw unsafe(path, info.isFile() ? `it has ${info.nlink} hard links` : `it is ${describeKind(info)}`)
  }
  return fd
}

/**
 * {@link openAppendSync}, except that an entry that may not be appended to (a link, a FIFO, a
 * folder, a file with other hard links) is first renamed aside (`<name>.corrupt-<epoch ms>`: the
 * entry itself moves, nothing is followed) and a fresh file is made. For logs, which must keep
 * working whatever was planted at their name. `setAsidePath` says where the bad entry went.
 */
export function openAppendReplacingSync(path: string, mode: number): { fd: number; setAsidePath: string | null } {
  try {
    return { fd: openAppendSync(path, mode), setAsidePath: null }
  } catch (error) {
    if ((error as { code?: unknown }).code !== ErrorCodes.UNSAFE_FILE) throw error
    const aside = `${path}.corrupt-${Date.now()}`
    try {
      renameSync(path, aside)
    } catch (renameError) {
      throw stateWriteError(path, renameError)
    }
    return { fd: openAppendSync(path, mode), setAsidePath: aside }
  }
}

/** Whether anything at all (a dangling link too) has this name: `lstat`, never following. */
export function entryExists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch (error) {
    const errno = errnoOf(error)
    // Unknown trouble counts as "there": a name that cannot be looked at cannot be claimed either.
    return errno !== 'ENOENT' && errno !== 'ENOTDIR'
  }
}

/** The entry itself (a link is not followed), or null when there is none. */
export function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path)
  } catch {
    return null
  }
}

function inside(child: string, root: string): boolean {
  return child === root || child.startsWith(root.endsWith(sep) ? root : `${root}${sep}`)
}

/**
 * Makes sure `folder` is a folder inside `root` (both absolute), creating what is missing with
 * `mode`, one level at a time from the root down, so that nothing is created through a link
 * that leads elsewhere. A level that is a link is accepted only when its real path stays inside
 * the repo's real path. Throws `AIM_STATUS_STATE_OUTSIDE_REPO`, `AIM_STATUS_STATE_NOT_A_FOLDER`,
 * `AIM_STATUS_STATE_UNWRITABLE` or `AIM_STATUS_STATE_FULL`, naming the folder.
 */
export function ensureStateFolder(folder: string, root: string, mode = 0o700): void {
  const rel = relative(root, folder)
  if (rel.startsWith('..') || isAbsolute(rel)) throw stateError(ErrorCodes.STATE_OUTSIDE_REPO, folder, `Refusing ${folder}: it is not inside the repo ${root}`)
  // The repo's own folder is the user's path (`watch({ repo: './runs' })` on a first run): made
  // as given, like any folder the user names. What lies under it is made one level at a time.
  if (lstatOrNull(root) === null) {
    try {
      mkdirSync(root, { recursive: true })
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw stateWriteError(root, error)
    }
  }
  let current = root
  for (const part of rel === '' ? [] : rel.split(sep)) {
    current = join(current, part)
    const info = lstatOrNull(current)
    if (info === null) {
      try {
        mkdirSync(current, { mode })
      } catch (error) {
        // Made meanwhile by another process: looked at below like any existing folder.
        if (errnoOf(error) !== 'EEXIST') throw stateWriteError(current, error)
      }
    }
    checkStateFolder(current, root)
  }
}

/** The check of {@link ensureStateFolder} alone, for a folder that must already exist. */
export function checkStateFolder(folder: string, root: string): void {
  let real: string
  let realRoot: string
  try {
    realRoot = realpathSync(root)
    real = realpathSync(folder)
  } catch (error) {
    const errno = errnoOf(error)
    if (errno === 'ENOTDIR') throw stateError(ErrorCodes.STATE_NOT_A_FOLDER, folder, `${folder}: a parent is not a folder`, error)
    if (errno === 'ELOOP') throw stateError(ErrorCodes.STATE_OUTSIDE_REPO, folder, `${folder} is a loop of links`, error)
    throw stateWriteError(folder, error)
  }
  if (!inside(real, realRoot)) throw stateError(ErrorCodes.STATE_OUTSIDE_REPO, folder, `Refusing ${folder}: it is a link that leads outside the repo (to ${real})`)
  let info: Stats
  try {
    info = lstatSync(real)
  } catch (error) {
    throw stateWriteError(folder, error)
  }
  if (!info.isDirectory()) throw stateError(ErrorCodes.STATE_NOT_A_FOLDER, folder, `${folder} is ${describeKind(info)}, not a folder`)
}
