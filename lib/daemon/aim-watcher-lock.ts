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
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, lstatSync, statSync } from 'node:fs'
import { open, readFile, rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'

/** The file systems on which Aim uses `flock` (aim.storage.locking.FileSystemInspector). */
const FLOCK_CAPABLE_FILESYSTEMS = new Set(['ext3', 'ext4', 'xfs', 'zfs', 'apfs', 'nfs4'])

/** How Aim locks in a folder. */
export type AimLockKind = 'flock' | 'soft'

/** A held Aim watcher lock. */
export interface AimWatcherLock {
  readonly kind: AimLockKind
  /** The file that is locked (`watcher.lock`) or created (`watcher.lock.softlock`). */
  readonly path: string
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

/**
 * Takes the lock, or resolves null when another watcher (Python's, or one of ours) holds it.
 * Resolves a lock of kind `flock` that holds nothing, with a warning through `warn`, where the
 * `flock` program is missing (not Linux): our own daemon lease still keeps our daemons apart.
 */
export async function acquireAimWatcherLock(notificationsFolder: string, warn: (message: string) => void): Promise<AimWatcherLock | null> {
  mkdirSync(notificationsFolder, { recursive: true })
  const path = join(notificationsFolder, 'watcher.lock')
  return aimLockKind(notificationsFolder) === 'flock' ? acquireFlock(path, warn) : acquireSoft(`${path}.softlock`)
}

function acquireFlock(path: string, warn: (message: string) => void): Promise<AimWatcherLock | null> {
  return new Promise((resolve) => {
    let child: ChildProcess
    try {
      // `flock` exits 75 at once when the lock is held; otherwise it runs the shell, which says
      // so and then waits on our pipe: EOF (our release, or our death) ends it and the lock.
      child = spawn('flock', ['--nonblock', '--conflict-exit-code', '75', path, 'sh', '-c', 'echo held; exec cat >/dev/null'], {
        stdio: ['pipe', 'pipe', 'ignore'],
      })
    } catch (error) {
      warn(`cannot take Python Aim's watcher lock (${String(error)}); a Python aim-watcher on this repo would not be kept out`)
      resolve({ kind: 'flock', path, release: async () => undefined })
      return
    }
    let settled = false
    const exited = new Promise<void>((done) => child.once('close', () => done()))
    child.once('error', (error) => {
      if (settled) return
      settled = true
      warn(`cannot take Python Aim's watcher lock (${error.message}); a Python aim-watcher on this repo would not be kept out`)
      resolve({ kind: 'flock', path, release: async () => undefined })
    })
    child.once('exit', (code) => {
      if (settled) return
      settled = true
      if (code !== 75) warn(`flock exited with code ${code} while taking ${path}`)
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
        release: async () => {
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
}

async function acquireSoft(path: string): Promise<AimWatcherLock | null> {
  const mine: SoftLockOwner = { by: 'aim-status', pid: process.pid, host: hostname() }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600)
      await handle.writeFile(JSON.stringify(mine))
      await handle.close()
      return { kind: 'soft', path, release: () => rm(path, { force: true }) }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    // A soft lock never goes stale by itself. One left by a daemon of ours that died on this
    // host is removed; any other (Python's, or unknown) is respected.
    if (!(await isOurDeadSoftLock(path))) return null
    await rm(path, { force: true })
  }
  return null
}

async function isOurDeadSoftLock(path: string): Promise<boolean> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as Partial<SoftLockOwner>
    if (owner.by !== 'aim-status' || owner.host !== hostname() || typeof owner.pid !== 'number') return false
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

