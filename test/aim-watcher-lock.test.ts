// Python Aim's watcher lock, taken as Aim takes it, against real processes holding real locks.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { acquireAimWatcherLock, aimLockKind, fileSystemType } from '../lib/daemon/aim-watcher-lock.js'
import { startChild } from './support/child.js'
import { eventually } from './support/eventually.js'

const HOLDER = fileURLToPath(new URL('./fixtures/daemon/hold-aim-lock.mjs', import.meta.url))
const warnings: string[] = []
const warn = (m: string) => warnings.push(m)
/** What Python's watcher does with fcntl.flock: one non-blocking attempt. */
const pythonWouldGetIt = (path: string) => spawnSync('flock', ['--nonblock', path, 'true']).status === 0

t.test('the lock kind follows the file system, as Aim chooses it', async (t) => {
  const dir = t.testdir()
  const type = fileSystemType(dir)
  t.type(type, 'string', `the mount table names the file system (${type})`)
  t.equal(aimLockKind(dir), ['ext3', 'ext4', 'xfs', 'zfs', 'apfs', 'nfs4'].includes(type as string) ? 'flock' : 'soft')
})

t.test('flock: held against another process, released on release and on death', async (t) => {
  const dir = t.testdir()
  t.equal(aimLockKind(dir), 'flock', 'this test needs a folder on an flock-capable file system')
  const path = join(dir, 'watcher.lock')
  const lock = await acquireAimWatcherLock(dir, warn)
  t.equal(lock?.kind, 'flock')
  t.notOk(pythonWouldGetIt(path), 'a Python watcher would be refused while we hold it')
  t.equal(await acquireAimWatcherLock(dir, warn), null, 'a second taker is refused')
  await lock?.release()
  t.ok(pythonWouldGetIt(path), 'free again after release')

  // Held by another process (as Python's watcher holds it): we are refused until it goes.
  const other = spawn('flock', ['--no-fork', path, 'sleep', '60'])
  await eventually(() => !pythonWouldGetIt(path), 'the other process holds the lock')
  t.equal(await acquireAimWatcherLock(dir, warn), null, 'refused while another process holds it')
  other.kill('SIGKILL')
  await new Promise((r) => other.once('close', r))
  const again = await acquireAimWatcherLock(dir, warn)
  t.ok(again !== null, 'taken once the other holder died')
  await again?.release()

  // A holder of ours that is SIGKILLed lets go: the lock lives in a child tied to its pipe.
  const holder = startChild(HOLDER, [dir])
  t.equal(await holder.waitForLine(/^HELD|^BUSY/), 'HELD flock')
  t.notOk(pythonWouldGetIt(path))
  holder.process.kill('SIGKILL')
  await holder.exited
  await eventually(() => pythonWouldGetIt(path), 'the lock released after its holder died')
  t.ok(pythonWouldGetIt(path), 'released when its holder died')
  t.same(warnings, [])
})

t.test('soft lock (file systems without flock): exclusive file; ours left by a dead daemon is taken over, a foreign one respected', async (t) => {
  t.ok(existsSync('/dev/shm'), 'a tmpfs folder for a soft-lock file system')
  const dir = mkdtempSync('/dev/shm/aim-status-softlock-')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  t.equal(aimLockKind(dir), 'soft')
  const path = join(dir, 'watcher.lock.softlock')
  const lock = await acquireAimWatcherLock(dir, warn)
  t.equal(lock?.kind, 'soft')
  t.ok(existsSync(path))
  t.equal(await acquireAimWatcherLock(dir, warn), null)
  await lock?.release()
  t.notOk(existsSync(path))
  // Left by a daemon of ours whose process is gone.
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
  writeFileSync(path, JSON.stringify({ by: 'aim-status', pid: Number(gone), host: (await import('node:os')).hostname() }))
  const retaken = await acquireAimWatcherLock(dir, warn)
  t.equal(retaken?.kind, 'soft', 'a soft lock of ours left by a dead process is taken over')
  await retaken?.release()
  // Python's soft lock (any content not ours) is respected.
  writeFileSync(path, '')
  t.equal(await acquireAimWatcherLock(dir, warn), null)
})
