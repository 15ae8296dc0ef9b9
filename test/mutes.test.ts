// Mutes: durations and requests checked at the edge; a muted run's transitions recorded but not
// queued where an event enters the outbox (the real runtime on a manual clock, the default
// logger notifier); "until healthy" ends at the recovery; the CLI and the Watcher; the access
// rules and the detection-lag histogram of the HTTP face.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { ManualClock } from '../lib/clock.js'
import { RepoRuntime } from '../lib/actor/runtime.js'
import type { RunEvent } from '../lib/model.js'
import { repoPaths } from '../lib/repo.js'
import { MuteView, muteFromRequest, mutesPath, parseDuration, readMutes, removeMute, setMute, type Mute } from '../lib/state/mutes.js'
import { Access, isLoopbackHost, parseListenAddress } from '../lib/daemon/http/access.js'
import { DaemonMetrics } from '../lib/daemon/http/metrics.js'
import { Watcher } from '../lib/watcher.js'
import { BIN, makeRepo } from './fixtures/daemon/helpers.js'
import { sample } from './support/http-face.js'
import { eventually } from './support/eventually.js'

t.test('durations and mute requests', async (t) => {
  t.equal(parseDuration(90), 90)
  t.equal(parseDuration('90'), 90)
  t.equal(parseDuration('90s'), 90)
  t.equal(parseDuration('15m'), 900)
  t.equal(parseDuration('1h30m'), 5400)
  t.equal(parseDuration('2d'), 172_800)
  t.equal(parseDuration('1w'), 604_800)
  for (const bad of ['', 'soon', '5x', '-5', 'h']) t.throws(() => parseDuration(bad), { code: 'AIM_STATUS_INVALID_OPTION' }, JSON.stringify(bad))
  for (const bad of [0, -1, Infinity, '31d']) t.throws(() => parseDuration(bad), { code: 'AIM_STATUS_OUT_OF_RANGE' }, String(bad))
  t.same(muteFromRequest('r1', { for: '2h', reason: 'checkpoint' }, 1000), { hash: 'r1', until: 1000 + 7_200_000, untilHealthy: false, createdAt: 1000, reason: 'checkpoint' })
  t.same(muteFromRequest('r1', { untilHealthy: true }, 5), { hash: 'r1', until: null, untilHealthy: true, createdAt: 5 })
  t.throws(() => muteFromRequest('r1', {}, 0), { code: 'AIM_STATUS_INVALID_OPTION', message: /exactly one/ })
  t.throws(() => muteFromRequest('r1', { for: 60, untilHealthy: true }, 0), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => muteFromRequest('r1', { untilHealthy: 'yes' }, 0), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => muteFromRequest('r1', { for: 60, colour: 'red' }, 0), { code: 'AIM_STATUS_INVALID_OPTION', message: /colour/ })
  t.throws(() => muteFromRequest('../x', { for: 60 }, 0), { code: 'AIM_STATUS_INVALID_ID' })
})

t.test('the file: written under its lock, expired mutes pruned, a corrupt file read as none and replaced', async (t) => {
  const root = makeRepo(t.testdir())
  const path = mutesPath(repoPaths(root))
  const view = new MuteView(path)
  t.same([...view.current().keys()], [], 'no file: no mutes')
  await Promise.all(['a', 'b', 'c', 'd'].map((hash, i) => setMute(path, { hash, until: 10_000 + i, untilHealthy: false, createdAt: 1 })))
  t.same([...(await readMutes(path, 0)).keys()].sort(), ['a', 'b', 'c', 'd'], 'concurrent writers lose nothing')
  t.same([...(await readMutes(path, 10_002)).keys()].sort(), ['d'], 'expired ones are left out (a mute ends at its until)')
  t.equal(view.covering('c', 10_001)?.hash, 'c')
  t.equal(view.covering('c', 10_002), null, 'not past its end')
  t.equal(await removeMute(path, 'd', 0), true)
  t.equal(await removeMute(path, 'd', 0), false)
  const { writeFileSync } = await import('node:fs')
  writeFileSync(path, '{ not json')
  const errors: Error[] = []
  const strict = new MuteView(path, (e) => errors.push(e))
  t.same([...strict.current().keys()], [], 'unreadable: nothing muted (a transition is then sent)')
  t.match(errors, [{ code: 'AIM_STATUS_CORRUPT_FILE' }])
  await setMute(path, { hash: 'e', until: null, untilHealthy: true, createdAt: 2 })
  t.same([...(await readMutes(path, 0)).keys()], ['e'], 'the next write replaces it')
})

t.test('the runtime: a muted run\'s stall is recorded, not queued; "until healthy" ends at the recovery; the next stall is sent', async (t) => {
  const root = makeRepo(t.testdir())
  const clock = new ManualClock(Date.now())
  const lines: string[] = []
  const events: Array<{ kind: string; muted: Mute | null }> = []
  const runtime = new RepoRuntime({ root, host: 'h', pid: 1, clock, writeLine: (line) => lines.push(line), onEvent: (event: RunEvent, muted) => events.push({ kind: event.kind, muted }) })
  t.teardown(() => runtime.close())
  await runtime.start()
  const path = mutesPath(repoPaths(root))
  await setMute(path, { hash: 'quiet', until: null, untilHealthy: true, createdAt: clock.now() })
  runtime.actor.open({ hash: 'quiet', grace: 1, at: clock.now() })
  runtime.actor.open({ hash: 'loud', grace: 1, at: clock.now() })
  runtime.actor.progress('quiet', clock.now(), 1)
  runtime.actor.progress('loud', clock.now(), 1)
  clock.advance(2500)
  await runtime.delivery.drain()
  t.same(
    events.filter((e) => e.kind === 'stalled').map((e) => e.muted !== null),
    [true, false],
    'both stalls are seen, one muted',
  )
  t.equal(lines.filter((l) => l.includes("'quiet'")).length, 0, 'the muted stall is not sent')
  t.equal(lines.filter((l) => l.includes("'loud'")).length, 1, 'the other one is')
  runtime.actor.progress('quiet', clock.now(), 1)
  t.match(events.at(-1), { kind: 'recovered', muted: { untilHealthy: true } }, 'the recovery is the last muted transition')
  await eventually(async () => !(await readMutes(path, clock.now())).has('quiet'), 'the recovery ended the mute')
  t.same([...(await readMutes(path, clock.now())).keys()], [], 'and it ended the mute')
  clock.advance(2500)
  await runtime.delivery.drain()
  t.equal(events.filter((e) => e.kind === 'stalled' && e.muted === null).length, 2, 'the next stall is not muted')
  t.equal(lines.filter((l) => l.includes("'quiet'")).length, 1, 'and is sent')
  // A timed mute ends by itself; one set for a run that has not started yet applies when it does.
  await setMute(path, { hash: 'later', until: clock.now() + 60_000, untilHealthy: false, createdAt: clock.now() })
  runtime.actor.open({ hash: 'later', grace: 1, at: clock.now() })
  runtime.actor.progress('later', clock.now(), 1)
  clock.advance(2500)
  // The next stall falls due 73.5 s after the mute was set: past its minute.
  runtime.actor.progress('later', clock.now(), 70)
  clock.advance(75_000)
  await runtime.delivery.drain()
  t.same(
    events
      .filter((e) => e.kind === 'stalled')
      .slice(-2)
      .map((e) => e.muted !== null),
    [true, false],
    'muted within its time, sent after it',
  )
})

t.test('the CLI: mute, mutes, unmute; usage errors name the flag', async (t) => {
  const root = makeRepo(t.testdir())
  const cli = (...args: string[]): { code: number | null; stdout: string; stderr: string } => {
    const done = spawnSync(process.execPath, [BIN, '--repo', root, ...args], { encoding: 'utf8', timeout: 20_000 })
    return { code: done.status, stdout: done.stdout, stderr: done.stderr }
  }
  t.match(cli('mute', 'not_started_yet', '--for', '90m', '--reason', 'checkpoint'), { code: 0, stdout: /^not_started_yet muted until \d{4}-.*Z \(checkpoint\)\n$/ })
  t.match(cli('mute', 'other', '--until-healthy'), { code: 0, stdout: 'other muted until its next recovery or finish\n' })
  const listed = JSON.parse(cli('mutes', '--json').stdout) as Mute[]
  t.same(listed.map((m) => m.hash).sort(), ['not_started_yet', 'other'])
  t.match(cli('mute', 'x', '--for', '1h', '--until-healthy'), { code: 2, stderr: /exactly one of --for/ })
  t.match(cli('mute', 'x'), { code: 2 })
  t.match(cli('mute', 'x', '--for', 'forever'), { code: 2, stderr: /--for/ })
  t.match(cli('unmute', 'other'), { code: 0, stdout: 'other unmuted\n' })
  t.match(cli('unmute', 'other'), { code: 0, stderr: /was not muted/ })
  t.match(cli('mutes'), { code: 0, stdout: /^not_started_yet muted until/ })
})

t.test('the Watcher: muteRun, mutes, unmuteRun', async (t) => {
  const root = makeRepo(t.testdir())
  const watcher = await Watcher.open({ repo: root })
  t.teardown(() => watcher.close())
  const mute = await watcher.muteRun('w1', { for: 120 })
  t.equal(mute.until !== null && mute.until - mute.createdAt, 120_000)
  await t.rejects(watcher.muteRun('w1', {}), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.same(
    (await watcher.mutes()).map((m) => m.hash),
    ['w1'],
  )
  t.equal(await watcher.unmuteRun('w1'), true)
  t.same(await watcher.mutes(), [])
})

t.test('access: what counts as loopback, HOST:PORT, a token required elsewhere', async (t) => {
  for (const host of ['localhost', '127.0.0.1', '127.0.0.2', '127.255.0.9', '::1', '[::1]', '::ffff:127.0.0.1']) t.ok(isLoopbackHost(host), host)
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', '128.0.0.1', 'example.com', 'localhost.example.com', '']) t.notOk(isLoopbackHost(host), host)
  t.same(parseListenAddress('127.0.0.1:9465'), { host: '127.0.0.1', port: 9465 })
  t.same(parseListenAddress('[::1]:0'), { host: '::1', port: 0 })
  t.same(parseListenAddress('localhost:80'), { host: 'localhost', port: 80 })
  for (const bad of ['9465', '127.0.0.1', ':9465', '127.0.0.1:x', 'a b:1']) t.throws(() => parseListenAddress(bad), { code: 'AIM_STATUS_INVALID_OPTION' }, bad)
  t.throws(() => parseListenAddress('127.0.0.1:70000'), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.com']) t.throws(() => new Access({ listen: { host, port: 0 } }), { code: 'AIM_STATUS_TOKEN_REQUIRED' }, host)
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1']) t.doesNotThrow(() => new Access({ listen: { host, port: 0 } }), host)
  t.throws(() => new Access({ listen: { host: '127.0.0.1', port: 0 }, publicRead: true }), { code: 'AIM_STATUS_INVALID_OPTION' })
})

t.test('metrics: detection lag is from deadline plus grace to the stall, per source', async (t) => {
  const metrics = new DaemonMetrics()
  const stall = (key: string, overdueSeconds: number, grace: number): RunEvent => ({
    kind: 'stalled',
    key,
    at: 0,
    repo: '/r',
    host: 'h',
    pid: 1,
    overdueSeconds,
    run: { hash: 'x', status: 'stalled', startedAt: 0, lastProgressAt: 0, expectNextIn: 1, deadlineAt: 0, grace, episode: 1 },
  })
  metrics.event('/r', stall('x@1/stalled/1', 1.25, 1), null)
  metrics.event('/r', stall('x@1/stalled/2', 3, 1), null)
  metrics.event('/r', stall('x@aim/stalled/7', 100.5, 100), null)
  metrics.event('/r', { ...stall('x@1/recovered/1', 0, 1), kind: 'recovered' }, null)
  const text = (await metrics.render()).text
  t.equal(sample(text, 'aim_status_detection_lag_seconds_count', { repo: '/r', source: 'node' }), 2)
  t.equal(sample(text, 'aim_status_detection_lag_seconds_sum', { repo: '/r', source: 'node' }), 2.25)
  t.equal(sample(text, 'aim_status_detection_lag_seconds_bucket', { repo: '/r', source: 'node', le: '0.25' }), 1)
  t.equal(sample(text, 'aim_status_detection_lag_seconds_bucket', { repo: '/r', source: 'node', le: '1' }), 1)
  t.equal(sample(text, 'aim_status_detection_lag_seconds_bucket', { repo: '/r', source: 'node', le: '2.5' }), 2)
  t.equal(sample(text, 'aim_status_detection_lag_seconds_count', { repo: '/r', source: 'aim' }), 1)
})
