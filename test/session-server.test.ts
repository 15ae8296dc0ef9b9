// The daemon's session server against raw `ws` clients speaking lib/session/protocol.ts: an
// in-process daemon (its runtime inspected directly, its deadlines and reconnect window on a
// ManualClock) with its HTTP face on 127.0.0.1 port 0, real sockets, real client processes
// killed with SIGKILL, and a real daemon process for the standby answer and TLS.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, lstatSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ManualClock } from '../lib/clock.js'
import { Daemon } from '../lib/daemon/daemon.js'
import { withSessionsLost } from '../lib/daemon/planner.js'
import { HttpFace } from '../lib/daemon/http/server.js'
import type { RunEvent, RunInfo } from '../lib/model.js'
import { SESSION_PATH, SESSION_SOCKET_NAME } from '../lib/session/protocol.js'
import { startChild } from './support/child.js'
import { eventually } from './support/eventually.js'
import { hello, rawSession } from './support/session-client.js'
import { tempRepo } from './support/temp-repo.js'
import { BIN, makeRepo, startDaemon } from './fixtures/daemon/helpers.js'

const CLIENT = fileURLToPath(new URL('./fixtures/session/client.mjs', import.meta.url))
const TOKEN = 'session-test-token-0123456789abcdef'

interface Served {
  daemon: Daemon
  face: HttpFace
  clock: ManualClock
  root: string
  /** `ws://127.0.0.1:PORT/api/v1/session` */
  url: string
  auth: { headers: { authorization: string } }
  events: RunEvent[]
  run(hash: string): RunInfo | undefined
}

/** An in-process daemon on a ManualClock (at the real time now) with its face and a token; closed after the test. */
async function serve(t: Test, options: { heartbeatMs?: number; reconnectWindowMs?: number } = {}): Promise<Served> {
  const temp = tempRepo(t, 'aim-s-')
  const root = makeRepo(temp.repo)
  const tokenFile = join(root, 'token')
  writeFileSync(tokenFile, TOKEN)
  chmodSync(tokenFile, 0o600)
  const clock = new ManualClock(Date.now())
  const daemon = new Daemon({ repos: [root], staleMs: 10_000, pollMs: 50, clock, jsonLogs: true, writeLine: () => undefined, delivery: { timeoutMs: 24 * 3_600_000 }, ...options })
  const face = await HttpFace.start({ listen: { host: '127.0.0.1', port: 0 }, tokenFile, repos: daemon.repos, owner: daemon.owner, staleMs: daemon.staleMs, log: daemon.log, sessions: daemon.sessions })
  await daemon.start()
  temp.closeFirst(async () => {
    await daemon.sessions.close()
    await face.close()
    await daemon.close()
  })
  const watch = daemon.repos[0] as Daemon['repos'][number]
  t.equal(watch.state, 'active')
  const events: RunEvent[] = []
  watch.observe({ event: (event) => void events.push(event) })
  return { daemon, face, clock, root, url: `${face.url.replace(/^http/, 'ws')}${SESSION_PATH}`, auth: { headers: { authorization: `Bearer ${TOKEN}` } }, events, run: (hash) => watch.runtime?.actor.run(hash) }
}

/** The plain HTTP answer to an upgrade that is refused (status and body). */
function upgradeAnswer(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { ...headers, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
    req.on('upgrade', () => reject(new Error('upgraded')))
    req.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('a missing or wrong token is refused with 401 and its code before the upgrade; another path is 404', async (t) => {
  const s = await serve(t)
  const tries: Array<Record<string, string>> = [{}, { authorization: 'Bearer not-the-token-at-all-000000' }]
  for (const headers of tries) {
    const refused = await upgradeAnswer(s.url.replace(/^ws/, 'http'), headers)
    t.equal(refused.status, 401)
    t.match(JSON.parse(refused.body), { error: { code: 'AIM_STATUS_UNAUTHORIZED' } })
    t.notMatch(refused.body, TOKEN.slice(0, 12), 'the token is never quoted')
  }
  await t.rejects(rawSession(s.url), /401/)
  await t.rejects(rawSession(s.url.replace(SESSION_PATH, '/api/v1/nothing'), s.auth), /404/)
})

t.test('hello, open, progress: the run is in the daemon runtime with its origin; its stall fires once and the client gets the event; bye fails nothing', async (t) => {
  const s = await serve(t)
  const c = await rawSession(s.url, s.auth)
  c.send(hello('client-aaaaaaaa', 4242, 'gpu-7'))
  const welcome = await c.frame('welcome')
  t.match(welcome, { v: 1, daemon: { pid: process.pid, repo: s.root }, heartbeatMs: 5000 })
  const at = s.clock.now()
  c.send({ t: 'open', seq: 1, hash: 'run_one', name: 'alpha', grace: 1, at })
  c.send({ t: 'progress', seq: 2, hash: 'run_one', at, expectNextIn: 2 })
  await c.frame('ack', (m) => m.seq === 2)
  t.same(
    c.frames.filter((f) => f.t === 'ack').map((f) => (f as { seq: number }).seq),
    [1, 2],
    'acks in order',
  )
  t.equal((s.daemon.repos[0] as Daemon['repos'][number]).busy, true, 'a daemon serving a session is busy (no idle exit)')
  t.match(s.run('run_one'), { status: 'running', name: 'alpha', startedAt: at, deadlineAt: at + 2000, origin: { host: 'gpu-7', pid: 4242, via: 'tcp', session: 'open' } })
  s.clock.advance(3500)
  const stalled = await c.frame('event', (m) => m.event.kind === 'stalled')
  t.equal(stalled.event.run.hash, 'run_one')
  s.clock.advance(10_000)
  t.equal(s.events.filter((e) => e.kind === 'stalled').length, 1, 'one stall, one event')
  t.equal(c.frames.filter((f) => f.t === 'event' && f.event.kind === 'stalled').length, 1)
  c.send({ t: 'bye' })
  t.equal((await c.closed).code, 1000)
  await eventually(() => s.run('run_one')?.origin?.session === 'ended', 'session ended')
  s.clock.advance(60_000)
  t.equal(s.run('run_one')?.status, 'stalled', 'a goodbye fails nothing')
})

t.test('a client process killed with SIGKILL: its run fails after the reconnect window, the reason naming its pid', async (t) => {
  const s = await serve(t)
  const client = startChild(CLIENT, [s.url, TOKEN, 'run_killed'])
  t.teardown(() => void client.process.kill('SIGKILL'))

  await client.waitForLine('opened')
  const pid = client.process.pid as number
  t.match(s.run('run_killed'), { status: 'running', origin: { pid, via: 'tcp', session: 'open' } })
  client.process.kill('SIGKILL')
  await client.exited
  await eventually(() => s.run('run_killed')?.origin?.session === 'closed', 'the session closed', { timeoutMs: 10_000 })
  t.equal(s.run('run_killed')?.status, 'running', 'not failed before the window ends')
  s.clock.advance(1000)
  const failed = s.run('run_killed')
  t.equal(failed?.status, 'failed')
  t.match(failed?.reason, new RegExp(`^process ${pid} on \\S+ went away \\(its session closed without a goodbye\\)$`))
})

t.test('a session that stops answering pings is lost: terminated, nothing failed, the deadline carries on', async (t) => {
  const s = await serve(t, { heartbeatMs: 100 })
  const c = await rawSession(s.url, { ...s.auth, autoPong: false })
  c.send(hello('client-silent0'))
  await c.frame('welcome')
  const at = s.clock.now()
  c.send({ t: 'open', seq: 1, hash: 'run_quiet', grace: 1, at })
  c.send({ t: 'progress', seq: 2, hash: 'run_quiet', at, expectNextIn: 60 })
  await c.frame('ack', (m) => m.seq === 2)
  await c.closed
  await eventually(() => s.run('run_quiet')?.origin?.session === 'lost', 'the session lost')
  s.clock.advance(30_000)
  t.equal(s.run('run_quiet')?.status, 'running', 'a lost session fails nothing')
  s.clock.advance(31_000)
  t.equal(s.run('run_quiet')?.status, 'stalled', 'its deadline still holds: stalled at deadline + grace')
})

t.test('a process that reconnects within the window and resumes keeps its run; a newer connection of the same client replaces the older', async (t) => {
  const s = await serve(t)
  const first = await rawSession(s.url, s.auth)
  first.send(hello('client-resume0', 777, 'gpu-2'))
  await first.frame('welcome')
  const at = s.clock.now()
  first.send({ t: 'open', seq: 1, hash: 'run_back', grace: 1, at })
  await first.frame('ack', (m) => m.seq === 1)
  first.ws.terminate()
  await eventually(() => s.run('run_back')?.origin?.session === 'closed', 'the session closed')
  const second = await rawSession(s.url, s.auth)
  second.send(hello('client-resume0', 777, 'gpu-2'))
  await second.frame('welcome')
  second.send({ t: 'open', seq: 1, hash: 'run_back', grace: 1, at, resume: true })
  await second.frame('ack', (m) => m.seq === 1)
  t.equal(s.run('run_back')?.origin?.session, 'open')
  s.clock.advance(5000)
  t.equal(s.run('run_back')?.status, 'running', 'resumed within the window: not failed')
  t.equal(s.events.filter((e) => e.kind === 'started').length, 1, 'a resume starts nothing')

  const third = await rawSession(s.url, s.auth)
  third.send(hello('client-resume0', 777, 'gpu-2'))
  await third.frame('welcome')
  t.equal((await second.closed).code, 4001, 'the older connection is let go')
  s.clock.advance(5000)
  t.match(s.run('run_back'), { status: 'running', origin: { session: 'open' } }, 'a replaced connection fails nothing')
  third.send({ t: 'finish', seq: 2, hash: 'run_back', at: s.clock.now() })
  await third.frame('ack', (m) => m.seq === 2)
  t.equal(s.run('run_back')?.status, 'finished', 'the runs moved to the newer connection')
  await third.frame('event', (m) => m.event.kind === 'finished')

  // A resume of the run the daemon knows ended: the client learns how it ended.
  const late = await rawSession(s.url, s.auth)
  late.send(hello('client-late000', 777, 'gpu-2'))
  late.send({ t: 'open', seq: 1, hash: 'run_back', grace: 1, at, resume: true })
  const ended = await late.frame('event')
  t.match(ended.event, { kind: 'finished', key: `run_back@${at}/finished`, run: { hash: 'run_back', status: 'finished' } })
  await late.frame('ack', (m) => m.seq === 1)
})

t.test("bad frames are answered with error frames and the session carries on; hello first; a local run is not a session's", async (t) => {
  const s = await serve(t)
  const early = await rawSession(s.url, s.auth)
  early.send({ t: 'open', seq: 1, hash: 'x', grace: 1, at: 1 })
  t.match(await early.frame('error'), { code: 'AIM_STATUS_BAD_REQUEST', message: /first frame must be hello/ })
  t.equal((await early.closed).code, 1008)

  const c = await rawSession(s.url, s.auth)
  c.send(hello('client-badfram'))
  await c.frame('welcome')
  c.send('not json')
  c.send({ t: 'open', seq: 1, hash: 'bad hash!', grace: 1, at: 1 })
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true })
  c.send({ t: 'progress', seq: 2, hash: 'run_nobody', at: 1, expectNextIn: 1 })
  const watch = s.daemon.repos[0] as Daemon['repos'][number]
  watch.runtime?.actor.open({ hash: 'run_local', grace: 1, at: s.clock.now() })
  c.send({ t: 'open', seq: 3, hash: 'run_local', grace: 1, at: s.clock.now() })
  c.send({ t: 'open', seq: 4, hash: 'run_fine', grace: 1, at: s.clock.now() })
  await c.frame('ack', (m) => m.seq === 4)
  const errors = c.frames.filter((f) => f.t === 'error')
  t.equal(errors.length, 5)
  t.ok(errors.every((e) => e.code === 'AIM_STATUS_BAD_REQUEST'))
  t.match(errors[3], { seq: 2, message: /not open on this session/ })
  t.match(errors[4], { seq: 3, message: /already active here, not reported over a session/ })
  t.equal(s.run('run_local')?.origin, undefined, 'the local run is untouched')
  for (let i = 0; i <= 100; i++) c.send('{')
  t.equal((await c.closed).code, 1008, 'closed after too many bad frames')
})

t.test('ranks: one logical run; a rank whose session closes without a goodbye fails the run, naming the rank', async (t) => {
  const s = await serve(t)
  const at = s.clock.now()
  const ranks = []
  for (const rank of [0, 1]) {
    const c = await rawSession(s.url, s.auth)
    c.send(hello(`client-rank${rank}00`, 1000 + rank, `gpu-${rank}`))
    c.send({ t: 'open', seq: 1, hash: 'run_ranked', rank, worldSize: 2, grace: 1, at })
    await c.frame('ack', (m) => m.seq === 1)
    ranks.push(c)
  }
  t.match(s.run('run_ranked'), {
    status: 'running',
    worldSize: 2,
    ranks: [
      { rank: 0, host: 'gpu-0', pid: 1000, session: 'open' },
      { rank: 1, host: 'gpu-1', pid: 1001, session: 'open' },
    ],
  })
  t.equal(s.run('run_ranked')?.origin, undefined)
  ranks[1]?.ws.terminate()
  await eventually(() => s.run('run_ranked')?.ranks?.[1]?.session === 'closed', 'rank 1 closed')
  s.clock.advance(1000)
  t.match(s.run('run_ranked'), { status: 'failed', reason: /^rank 1 on gpu-1: process 1001 on gpu-1 went away/ })
  const failed = await ranks[0]?.frame('event', (m) => m.event.kind === 'failed')
  t.equal(failed?.event.run.hash, 'run_ranked', 'the other rank learns it')
})

t.test("the repo's Unix socket serves sessions while the daemon is active, and goes with it", async (t) => {
  const s = await serve(t)
  const root = s.root
  const path = join(root, '.aim', 'status', SESSION_SOCKET_NAME)
  await eventually(() => s.daemon.sessions.socketPath(root) === path, 'the socket listened on')
  t.ok(lstatSync(path).isSocket())
  const c = await rawSession(`ws+unix:${path}:${SESSION_PATH}`)
  c.send(hello('client-unix0000', 5151, 'local'))
  await c.frame('welcome')
  c.send({ t: 'open', seq: 1, hash: 'run_unix', grace: 1, at: s.clock.now() })
  await c.frame('ack', (m) => m.seq === 1)
  t.match(s.run('run_unix'), { origin: { pid: 5151, via: 'unix', session: 'open' } })
  await s.daemon.sessions.close()
  t.equal((await c.closed).code, 1012, 'let go with 1012 when the daemon stops')
  t.throws(() => lstatSync(path), { code: 'ENOENT' }, 'the socket file is gone')
  s.clock.advance(5000)
  t.equal(s.run('run_unix')?.status, 'running', 'nothing failed')
})

t.test('a real daemon: sessions over wss with the fixture certificate; a standby daemon answers AIM_STATUS_STANDBY', async (t) => {
  const temp = tempRepo(t, 'aim-s-')
  const root = makeRepo(temp.repo)
  const tokenFile = join(root, 'token')
  writeFileSync(tokenFile, TOKEN)
  chmodSync(tokenFile, 0o600)
  const tls = ['--tls-cert', fileURLToPath(new URL('./fixtures/tls/cert.pem', import.meta.url)), '--tls-key', fileURLToPath(new URL('./fixtures/tls/key.pem', import.meta.url))]
  const active = startDaemon([root], ['--http', '127.0.0.1:0', '--token-file', tokenFile, ...tls])
  temp.killFirst(active)
  const listening = await active.waitEvent((l) => l.event === 'http-listening')
  await active.waitEvent((l) => l.event === 'active')
  const url = String(listening['url'])
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const ca = readFileSync(fileURLToPath(new URL('./fixtures/tls/cert.pem', import.meta.url)))
  const c = await rawSession(`${url.replace(/^https/, 'wss')}${SESSION_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` }, ca })
  c.send(hello('client-tls00000'))
  await c.frame('welcome')
  c.send({ t: 'open', seq: 1, hash: 'run_tls', grace: 1, at: Date.now() })
  await c.frame('ack', (m) => m.seq === 1)
  await active.waitEvent((l) => l.event === 'session-opened')

  const standby = startDaemon([root], ['--http', '127.0.0.1:0', '--token-file', tokenFile])
  temp.killFirst(standby)
  const standbyUrl = String((await standby.waitEvent((l) => l.event === 'http-listening'))['url'])
  const refused = await rawSession(`${standbyUrl.replace(/^http/, 'ws')}${SESSION_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  refused.send(hello('client-standby0'))
  t.match(await refused.frame('error'), { code: 'AIM_STATUS_STANDBY' })
  t.equal((await refused.closed).code, 1013)
  c.send({ t: 'bye' })
  await c.closed
})

t.test('options: heartbeatMs and reconnectWindowMs are checked; a socket that never says hello is closed', async (t) => {
  t.throws(() => new Daemon({ heartbeatMs: 10 }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /heartbeatMs/ })
  t.throws(() => new Daemon({ reconnectWindowMs: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /reconnectWindowMs/ })
  t.throws(() => new Daemon({ heartbeatMs: 1.5 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  const cli = spawnSync(process.execPath, [BIN, '--repo', t.testdir(), 'start', '--heartbeat-ms', '10'], { encoding: 'utf8' })
  t.equal(cli.status, 2)
  t.match(cli.stderr, /AIM_STATUS_OUT_OF_RANGE: Expected --heartbeat-ms /)
  const lone = spawnSync(process.execPath, [BIN, '--repo', t.testdir(), 'start', '--tls-cert', 'cert.pem'], { encoding: 'utf8' })
  t.equal(lone.status, 2)
  t.match(lone.stderr, /--tls-cert and --tls-key go together/)
  const s = await serve(t, { heartbeatMs: 50 })
  const mute = await rawSession(s.url, s.auth)
  t.match(await mute.frame('error'), { code: 'AIM_STATUS_BAD_REQUEST', message: /no hello/ })
  t.equal((await mute.closed).code, 1008)
})

t.test("a run carried from a dead daemon's snapshot has its sessions lost until its process resumes it", async (t) => {
  const run: RunInfo = { hash: 'run_c', status: 'running', startedAt: 1, lastProgressAt: 1, expectNextIn: 0, deadlineAt: null, grace: 1, episode: 0 }
  t.same(withSessionsLost(run), run, 'a run without sessions is as it was')
  t.match(withSessionsLost({ ...run, origin: { host: 'h', pid: 2, via: 'tcp', session: 'open' } }).origin, { session: 'lost' })
  const rank = { host: 'h', pid: 3, status: 'running' as const, lastProgressAt: 1, expectNextIn: 0, deadlineAt: null }
  const ranked = withSessionsLost({
    ...run,
    worldSize: 2,
    ranks: [
      { ...rank, rank: 0, session: 'open' },
      { ...rank, rank: 1, session: 'ended' },
    ],
  })
  t.same(
    ranked.ranks?.map((r) => r.session),
    ['lost', 'ended'],
  )
})

t.test('a daemon killed with SIGKILL: the next daemon carries its session runs as lost, fails nothing, and the process resumes them', async (t) => {
  const temp = tempRepo(t, 'aim-s-')
  const root = makeRepo(temp.repo)
  const tokenFile = join(root, 'token')
  writeFileSync(tokenFile, TOKEN)
  chmodSync(tokenFile, 0o600)
  const first = startDaemon([root], ['--http', '127.0.0.1:0', '--token-file', tokenFile])
  temp.killFirst(first)
  const url = String((await first.waitEvent((l) => l.event === 'http-listening'))['url'])
  await first.waitEvent((l) => l.event === 'active')
  const c = await rawSession(`${url.replace(/^http/, 'ws')}${SESSION_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  c.send(hello('client-carried0', 3131, 'gpu-9'))
  const at = Date.now()
  c.send({ t: 'open', seq: 1, hash: 'run_carried', grace: 60, at })
  c.send({ t: 'progress', seq: 2, hash: 'run_carried', at, expectNextIn: 600 })
  await c.frame('ack', (m) => m.seq === 1)
  await c.frame('ack', (m) => m.seq === 2)
  first.process.kill('SIGKILL')
  await first.exited
  await c.closed

  const clock = new ManualClock(Date.now())
  const second = new Daemon({ repos: [root], staleMs: 2000, pollMs: 50, clock, jsonLogs: true, writeLine: () => undefined })
  temp.closeFirst(() => second.close())
  await second.start()
  const watch = second.repos[0] as Daemon['repos'][number]
  const carried = await eventually(() => watch.runtime?.actor.run('run_carried'), 'the run carried', { timeoutMs: 30_000 })
  t.match(carried, { status: 'running', startedAt: at, origin: { pid: 3131, host: 'gpu-9', session: 'lost' } })
  clock.advance(5000)
  t.equal(watch.runtime?.actor.run('run_carried')?.status, 'running', 'nothing failed')
  const path = await eventually(() => second.sessions.socketPath(root), 'the socket listened on')
  const back = await rawSession(`ws+unix:${path}:${SESSION_PATH}`)
  back.send(hello('client-carried0', 3131, 'gpu-9'))
  back.send({ t: 'open', seq: 1, hash: 'run_carried', grace: 60, at, resume: true })
  await back.frame('ack', (m) => m.seq === 1)
  t.match(watch.runtime?.actor.run('run_carried'), { status: 'running', origin: { session: 'open' } }, 'resumed by its process')
  back.send({ t: 'bye' })
  await back.closed
})
