/**
 * Python Aim's "one watcher per repo" lock, `.aim/ext/notifications/watcher.lock`, taken the way
 * Aim takes it (`aim.storage.locking.AutoFileLock`), so that Python's `aim-watcher` and ours never
 * both send for one repo: whichever starts second waits (ours) or exits (Python's, as it does
 * for a second Python watcher).
 *
 * Aim chooses by file system: an `flock(2)` lock on `watcher.lock` where the folder is on ext3,
 * ext4, xfs, zfs, apfs or nfs4; elsewhere a "soft" lock, the file `watcher.lock.softlock` created
 * exclusively and deleted on release. Node has no `flock` call; the `flock` program (util-linux)
 * holds it for us in a child process whose standard input is a pipe from this process, so the
 * lock is released when we release it and also when this process dies, whatever kills it.
 *
 * A daemon that is frozen (SIGSTOP, a paused VM) does not die, and its helper is not frozen with
 * it; so the lock is held *under the daemon's sender lease*: the helper lets go as soon as another
 * owner claims a newer generation of that lease (a standby taking over a stale daemon), and a
 * soft lock left by a replaced daemon of ours is taken over the same way. The daemon learns that
 * its helper let go and stops sending. Who holds the lock for which daemon is recorded beside
 * the daemon's state (`status/aim-lock.json`), so a waiting standby can say who really holds it.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, constants, fstatSync, openSync, readFileSync, lstatSync, readdirSync, statSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { repoRootOf } from '../repo.js'
import { writeFileAtomicSync } from '../state/files.js'
import { ensureStateFolder, openExclusive, readStateFile, readStateFileSync, stateError, stateWriteError } from '../state/safe-fs.js'
import { ErrorCodes } from '../errors.js'

/** The file systems on which Aim uses `flock` (aim.storage.locking.FileSystemInspector). */
const FLOCK_CAPABLE_FILESYSTEMS = new Set(['ext3', 'ext4', 'xfs', 'zfs', 'apfs', 'nfs4'])

/** How Aim locks in a folder. */
export type AimLockKind = 'flock' | 'soft'

/** A held Aim watcher lock. */
export interface AimWatcherLock {
  readonly kind: AimLockKind
  /** The file that is locked (`watcher.lock`) or created (`watcher.lock.softlock`). */
  readonly path: string
  /** The pid of the process that holds an `flock` for us. */
  readonly helperPid?: number
  release(): Promise<void>
}

/** The file-system type of a folder, from the mount table (as psutil reads it), or null. */
export function fileSystemType(folder: string): string | null {
  let device: number
  let mounts: string
  try {
    device = statSync(folder).dev
    mounts = readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return null
  }
  let type: string | null = null
  for (const line of mounts.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ')
    if (mountPoint === undefined || fsType === undefined) continue
    try {
      // The mount table escapes spaces as \040.
      if (lstatSync(mountPoint.replace(/\\040/g, ' ')).dev === device) type = fsType
    } catch {
      // A mount point we may not look at: not ours.
    }
  }
  return type
}

/** Which lock Aim takes for a lock file in this folder. */
export function aimLockKind(folder: string): AimLockKind {
  const type = fileSystemType(folder)
  return type !== null && FLOCK_CAPABLE_FILESYSTEMS.has(type) ? 'flock' : 'soft'
}

/** The sender lease the lock is held under: when another owner claims a newer generation of it, the lock is let go. */
export interface AimLockFencing {
  /** The file the sender lease is on (its fences are `<leasePath>.fence-<n>`). */
  leasePath: string
  /** The generation of the lease the daemon holds; its own later claims do not count as a takeover. */
  generation: number
  /** The daemon's owner id, as written in its fences. */
  ownerId: string
  /** The daemon's pid, for the record of who holds the lock. */
  pid: number
  /** Where the record of who holds the lock is kept (`status/aim-lock.json`). */
  recordPath: string
  /** The helper let go while the lock was held (the daemon was replaced): stop sending. Called once. */
  onLost(why: string): void
}

/**
 * Whether a newer generation of the sender lease than `generation` was claimed by someone other
 * than `ownerId`: the daemon holding the lock at `generation` has been replaced.
 */
export function senderReplaced(leasePath: string, generation: number, ownerId: string): boolean {
  const prefix = `${basename(leasePath)}.fence-`
  let names: string[]
  try {
    names = readdirSync(dirname(leasePath))
  } catch {
    return false
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const n = Number(name.slice(prefix.length))
    if (!Number.isSafeInteger(n) || n <= generation) continue
    try {
      if (!(readStateFileSync(join(dirname(leasePath), name)) ?? '').includes(`"id":"${ownerId}"`)) return true
    } catch {
      return true // claimed, not yet written: somebody else's
    }
  }
  return false
}

/**
 * Takes the lock, or resolves null when another watcher (Python's, or one of ours) holds it.
 * Resolves a lock of kind `flock` that holds nothing, with a warning through `warn`, where the
 * `flock` program is missing (not Linux): our own daemon lease still keeps our daemons apart.
 * With `fencing`, the lock is held under the daemon's sender lease (see the module comment).
 */
export async function acquireAimWatcherLock(notificationsFolder: string, warn: (message: string) => void, fencing?: AimLockFencing): Promise<AimWatcherLock | null> {
  ensureStateFolder(notificationsFolder, repoRootOf(join(notificationsFolder, 'x')) ?? notificationsFolder, 0o755)
  const path = join(notificationsFolder, 'watcher.lock')
  const lock = aimLockKind(notificationsFolder) === 'flock' ? await acquireFlock(path, warn, fencing) : await acquireSoft(`${path}.softlock`, fencing)
  if (lock === null || fencing === undefined) return lock
  const record: AimLockRecord = { kind: lock.kind, daemonPid: fencing.pid, daemonOwner: fencing.ownerId, helperPid: lock.helperPid ?? null, host: hostname() }
  try {
    writeFileAtomicSync(fencing.recordPath, JSON.stringify(record))
  } catch (error) {
    warn(`cannot record who holds Python Aim's watcher lock (${(error as Error).message})`)
  }
  return {
    ...lock,
    release: async () => {
      await rm(fencing.recordPath, { force: true }).catch(() => undefined)
      await lock.release()
    },
  }
}

/** Who holds the lock for which daemon, as recorded by the holder. */
interface AimLockRecord {
  kind: AimLockKind
  daemonPid: number
  daemonOwner: string
  helperPid: number | null
  host: string
}

const NOT_OURS = 'a process that is not an aim-status daemon (a Python aim-watcher?) holds watcher.lock'

/**
 * Says who holds Python Aim's watcher lock, for a standby's log: one of our daemons (with the
 * helper that holds it for it), or a process that is not ours (a Python aim-watcher).
 */
export function describeAimLockHolder(recordPath: string): string {
  let record: Partial<AimLockRecord>
  try {
    record = JSON.parse(readStateFileSync(recordPath) ?? '') as Partial<AimLockRecord>
  } catch {
    return NOT_OURS
  }
  // A record whose helper is gone on this host is left over: whoever holds the lock is not ours.
  if (record.host === hostname() && typeof record.helperPid === 'number' && !isAlive(record.helperPid)) return NOT_OURS
  const helper = typeof record.helperPid === 'number' ? `, through its lock helper pid ${record.helperPid}` : ''
  return `watcher.lock is held for the aim-status daemon pid ${String(record.daemonPid)}@${String(record.host)}${helper}, until that daemon stops or is replaced`
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The helper's shell program, run by `flock` once it holds the lock. It says `held`, then checks
 * once a second, until our pipe closes (our release, or our death), whether the sender lease was
 * taken over (a fence above the daemon's generation claimed by another owner, as
 * {@link senderReplaced} decides); then it exits, and the lock goes with it. bash's builtin
 * `read -t 1` waits for EOF on the pipe for at most a second (status above 128: the pipe is still
 * open), so the loop starts no process: only the `grep` of a fence above ours, which is rare.
 */
const HELPER_SCRIPT = [
  'flock --nonblock --conflict-exit-code 75 3 || exit $?',
  'echo held',
  'lease=$1 gen=$2 owner=$3',
  'while :; do',
  '  read -r -t 1 _; s=$?',
  // 0: a line (nothing writes one; keep holding); 1: end of file (our release or death).
  '  [ "$s" -gt 128 ] || [ "$s" -eq 0 ] || exit 0',
  '  for f in "$lease".fence-*; do',
  '    n=${f##*.fence-}',
  '    case $n in ""|*[!0-9]*) continue ;; esac',
  '    [ "$n" -gt "$gen" ] || continue',
  // Not a plain file (a link, a FIFO that grep would block on): never ours, so a takeover.
  '    [ -f "$f" ] && [ ! -L "$f" ] || exit 0',
  '    grep -q "\\"id\\":\\"$owner\\"" "$f" 2>/dev/null || exit 0',
  '  done',
  'done',
].join('\n')

/** Held until released, whatever happens to any lease (tools, tests). */
const UNFENCED_SCRIPT = 'flock --nonblock --conflict-exit-code 75 3 || exit $?; echo held; exec cat >/dev/null'

// flock(1) opens its file itself, following links and blocking on a FIFO; so the file is opened
// here (never through a link, never blocking, a plain file only) and handed to it as fd 3.
const LOCK_FILE_FLAGS = constants.O_RDONLY | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0)

function openLockFile(path: string): number {
  let fd: number
  try {
    fd = openSync(path, LOCK_FILE_FLAGS, 0o644)
  } catch (error) {
    throw stateWriteError(path, error)
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd)
    throw stateError(ErrorCodes.UNSAFE_FILE, path, `Refusing ${path}: it is not a plain file`)
  }
  return fd
}

function acquireFlock(path: string, warn: (message: string) => void, fencing: AimLockFencing | undefined): Promise<AimWatcherLock | null> {
  return new Promise((resolve) => {
    const unheld = (why: string): void => {
      warn(`cannot take Python Aim's watcher lock (${why}); a Python aim-watcher on this repo would not be kept out`)
      resolve({ kind: 'flock', path, release: async () => undefined })
    }
    let fd: number
    try {
      fd = openLockFile(path)
    } catch (error) {
      unheld((error as Error).message)
      return
    }
    let child: ChildProcess
    const program = fencing === undefined ? ['-c', UNFENCED_SCRIPT] : ['-c', HELPER_SCRIPT, 'bash', fencing.leasePath, String(fencing.generation), fencing.ownerId]
    try {
      // `flock` exits 75 at once when the lock is held; otherwise the helper says so and then
      // holds the lock as the module comment describes.
      // bash (always present on Linux distributions) for its `read -t`; see HELPER_SCRIPT.
      child = spawn('bash', program, { stdio: ['pipe', 'pipe', 'ignore', fd] })
    } catch (error) {
      closeSync(fd)
      unheld(String(error))
      return
    }
    // Only the helper keeps the file open: the lock goes when the helper goes.
    closeSync(fd)
    let settled = false
    let releasing = false
    const exited = new Promise<void>((done) => child.once('close', () => done()))
    child.once('error', (error) => {
      if (settled) return
      settled = true
      unheld(error.message)
    })
    child.once('exit', (code) => {
      if (settled) {
        // Let go while held: the daemon it held the lock for was replaced.
        if (!releasing) fencing?.onLost(`the holder of ${path} let go (exit code ${String(code)}): another daemon took over the sender lease`)
        return
      }
      settled = true
      // 127: no `flock` program (not Linux): our own daemon lease still keeps our daemons apart.
      if (code === 127) {
        unheld('the flock program is missing')
        return
      }
      if (code !== 75) warn(`flock exited with code ${String(code)} while taking ${path}`)
      resolve(null)
    })
    child.stdout?.setEncoding('utf8').once('data', () => {
      if (settled) return
      settled = true
      // Held for as long as this process lives, without keeping it alive by itself.
      child.unref()
      ;(child.stdout as unknown as { unref?: () => void }).unref?.()
      resolve({
        kind: 'flock',
        path,
        ...(child.pid !== undefined ? { helperPid: child.pid } : {}),
        release: async () => {
          releasing = true
          // Awaited: the process must stay up until the lock is really gone.
          child.ref()
          ;(child.stdout as unknown as { ref?: () => void }).ref?.()
          child.stdin?.end()
          await exited
        },
      })
    })
  })
}

interface SoftLockOwner {
  by: 'aim-status'
  pid: number
  host: string
  /** The sender lease it was taken under (absent in older soft locks, and when unfenced). */
  lease?: { path: string; generation: number; ownerId: string }
}

async function acquireSoft(path: string, fencing: AimLockFencing | undefined): Promise<AimWatcherLock | null> {
  const mine: SoftLockOwner = {
    by: 'aim-status',
    pid: process.pid,
    host: hostname(),
    ...(fencing !== undefined ? { lease: { path: fencing.leasePath, generation: fencing.generation, ownerId: fencing.ownerId } } : {}),
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await openExclusive(path, 0o600)
      await handle.writeFile(JSON.stringify(mine))
      await handle.close()
      return { kind: 'soft', path, release: () => rm(path, { force: true }) }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    // A soft lock never goes stale by itself. One left by a daemon of ours that died on this
    // host, or that was replaced under its sender lease, is removed; any other (Python's, or
    // unknown) is respected.
    if (!(await isOurStaleSoftLock(path))) return null
    await rm(path, { force: true })
  }
  return null
}

async function isOurStaleSoftLock(path: string): Promise<boolean> {
  try {
    // Not a plain file (a FIFO, a link): not ours, respected, and never waited on.
    const owner = JSON.parse((await readStateFile(path)) ?? '') as Partial<SoftLockOwner>
    if (owner.by !== 'aim-status') return false
    const lease = owner.lease
    if (lease !== undefined && typeof lease.path === 'string' && Number.isSafeInteger(lease.generation) && typeof lease.ownerId === 'string' && senderReplaced(lease.path, lease.generation, lease.ownerId)) return true
    if (owner.host !== hostname() || typeof owner.pid !== 'number') return false
    try {
      process.kill(owner.pid, 0)
      return false
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH'
    }
  } catch {
    return false
  }
}
