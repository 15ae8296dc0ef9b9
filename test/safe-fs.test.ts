// The safe file layer on real files: links, FIFOs, folders, devices and hard links planted at
// the names it uses; the log file's rotation; the text helpers that keep outside text on one line.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createExclusiveSync, ensureStateFolder, openAppendSync, readStateFile, readStateFileSync, openAppendReplacingSync } from '../lib/state/safe-fs.js'
import { claimGeneration, highestGeneration, readFence } from '../lib/state/fence.js'
import { inspectLease } from '../lib/state/lease.js'
import { currentOwner } from '../lib/state/owner.js'
import { LogFile } from '../lib/daemon/log-file.js'
import { Quarantine } from '../lib/daemon/quarantine.js'
import { createLog } from '../lib/daemon/log.js'
import { forTerminal, oneLine } from '../lib/text.js'
import { closeSync } from 'node:fs'

const mkfifo = (path: string): void => void execFileSync('mkfifo', [path])

t.test('reads: plain files only, never blocking, never following, capped', async (t) => {
  const dir = t.testdir({ 'ok.json': '{"a":1}', 'big.json': 'x'.repeat(2000), folder: {} })
  const outside = join(dir, 'outside-secret')
  writeFileSync(outside, 'secret')
  symlinkSync(outside, join(dir, 'link.json'))
  symlinkSync('/dev/zero', join(dir, 'zero.json'))
  mkfifo(join(dir, 'fifo.json'))
  t.equal(await readStateFile(join(dir, 'ok.json')), '{"a":1}')
  t.equal(readStateFileSync(join(dir, 'ok.json')), '{"a":1}')
  t.equal(await readStateFile(join(dir, 'missing.json')), null)
  for (const name of ['link.json', 'zero.json', 'fifo.json', 'folder']) {
    await t.rejects(readStateFile(join(dir, name)), { code: 'AIM_STATUS_UNSAFE_FILE', path: join(dir, name) }, `${name} (async)`)
    t.throws(() => readStateFileSync(join(dir, name)), { code: 'AIM_STATUS_UNSAFE_FILE' }, `${name} (sync)`)
  }
  await t.rejects(readStateFile(join(dir, 'big.json'), { maxBytes: 1000 }), { code: 'AIM_STATUS_UNSAFE_FILE', message: /2000 bytes/ })
})

t.test('creates: exclusive, never through a link (a dangling one too)', async (t) => {
  const dir = t.testdir()
  const outside = join(dir, 'outside')
  writeFileSync(outside, 'keep me')
  symlinkSync(outside, join(dir, 'planted'))
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'))
  t.equal(createExclusiveSync(join(dir, 'planted'), 'x', 0o600), false)
  t.equal(createExclusiveSync(join(dir, 'dangling'), 'x', 0o600), false)
  t.equal(readFileSync(outside, 'utf8'), 'keep me')
  t.throws(() => readdirSync(join(dir, 'nowhere')), { code: 'ENOENT' }, 'nothing made at the dangling target')
  t.equal(createExclusiveSync(join(dir, 'fresh'), 'x', 0o600), true)
  t.equal(lstatSync(join(dir, 'fresh')).mode & 0o777, 0o600)
})

t.test('appends: a link, a FIFO or a hard-linked file is refused; a log sets it aside and starts afresh', async (t) => {
  const dir = t.testdir()
  const outside = join(dir, 'profile.sh')
  writeFileSync(outside, 'echo original\n')
  symlinkSync(outside, join(dir, 'link.log'))
  mkfifo(join(dir, 'fifo.log'))
  linkSync(outside, join(dir, 'hard.log'))
  for (const name of ['link.log', 'fifo.log', 'hard.log']) t.throws(() => openAppendSync(join(dir, name), 0o600), { code: 'AIM_STATUS_UNSAFE_FILE' }, name)
  const { fd, setAsidePath } = openAppendReplacingSync(join(dir, 'link.log'), 0o600)
  closeSync(fd)
  t.match(setAsidePath, /link\.log\.corrupt-\d+$/)
  t.ok(lstatSync(setAsidePath as string).isSymbolicLink(), 'the link itself was moved')
  t.ok(lstatSync(join(dir, 'link.log')).isFile())
  t.equal(readFileSync(outside, 'utf8'), 'echo original\n', 'the outside file is untouched')
})

t.test('folders: made level by level, refused when a link leads out of the repo or a file is in the way', async (t) => {
  const base = t.testdir({ repo: { '.aim': { 'file-status': 'x' } }, outside: {} })
  const root = join(base, 'repo')
  const outside = join(base, 'outside')
  ensureStateFolder(join(root, '.aim', 'status', 'owners'), root)
  t.ok(lstatSync(join(root, '.aim', 'status', 'owners')).isDirectory())
  const other = join(root, 'elsewhere')
  symlinkSync(outside, other)
  t.throws(() => ensureStateFolder(join(other, 'owners'), root), { code: 'AIM_STATUS_STATE_OUTSIDE_REPO', path: other })
  t.same(readdirSync(outside), [], 'nothing was made through the link')
  mkdirSync(join(root, 'inside-target'))
  symlinkSync(join(root, 'inside-target'), join(root, 'inside-link'))
  ensureStateFolder(join(root, 'inside-link', 'owners'), root)
  t.ok(lstatSync(join(root, 'inside-target', 'owners')).isDirectory(), 'a link that stays inside the repo is followed')
  t.throws(() => ensureStateFolder(join(root, '.aim', 'file-status', 'owners'), root), { code: 'AIM_STATUS_STATE_NOT_A_FOLDER' })
})

t.test('fences: a dangling link at a fence is a used number held by nobody, never a block', async (t) => {
  const dir = t.testdir()
  const lease = join(dir, 'daemon')
  symlinkSync(join(dir, 'nowhere'), `${lease}.fence-1`)
  t.equal(highestGeneration(lease), 1)
  t.same(readFence(lease, 1), { holder: null, claimedAt: -Infinity })
  t.equal((await inspectLease(lease, { staleMs: 2000 })).orphaned, true)
  t.equal(claimGeneration(lease, 1, currentOwner('daemon')), false)
  t.equal(claimGeneration(lease, 2, currentOwner('daemon')), true)
})

t.test('the log file rotates by size and keeps a few generations', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'daemon.log')
  const file = new LogFile(path, { maxBytes: 100, keep: 2 })
  for (let i = 0; i < 20; i++) file.writeLine(`line ${String(i).padStart(2, '0')} ${'x'.repeat(20)}`)
  file.close()
  t.same(readdirSync(dir).sort(), ['daemon.log', 'daemon.log.1', 'daemon.log.2'])
  for (const name of readdirSync(dir)) t.ok(lstatSync(join(dir, name)).size <= 100, `${name} within the cap`)
  t.match(readFileSync(path, 'utf8'), /line 19/)
  t.equal(file.dropped, 0)
})

t.test('quarantine: said once, retried with a doubling backoff, forgotten when gone', async (t) => {
  let now = 0
  const q = new Quarantine(100, 1000, () => now)
  t.equal(q.failed('a', 'EISDIR'), true)
  t.equal(q.blocked('a'), true)
  now = 100
  t.equal(q.blocked('a'), false)
  t.equal(q.failed('a', 'EISDIR'), false, 'the same trouble is not said again')
  now = 250
  t.equal(q.blocked('a'), true, 'the backoff doubled')
  now = 300
  t.equal(q.failed('a', 'ENOENT'), true, 'a new trouble is said')
  q.keepOnly(new Set())
  t.equal(q.size, 0)
})

t.test('text from outside stays on one line and never drives a terminal', async (t) => {
  t.equal(oneLine('a\nb\r\u001b[31mc\u2028'), 'a\\nb\\r\\x1b[31mc\\u2028')
  t.equal(forTerminal('\u001b]0;title\u0007\u001b[31mred\u001b[0m id\n'), 'red id\\n')
  t.equal(forTerminal('\u009b31mx'), 'x')
  const lines: string[] = []
  const log = createLog({ write: (line) => lines.push(line), now: () => 0 })
  log.error('corrupt-state-file', { error: 'bad\n1970-01-01T00:00:00.000Z INFO  forged $(touch /tmp/x)' })
  const json: string[] = []
  createLog({ json: true, write: (line) => json.push(line), now: () => 0 }).info('message', { text: 'one\ntwo\u001b[2J' })
  t.equal(lines.length, 1)
  t.notMatch(lines[0], /\n/)
  t.match(lines[0], /bad\\\\n1970/)
  t.equal(JSON.parse(json[0] as string).text, 'one\\ntwo\\x1b[2J')
})
