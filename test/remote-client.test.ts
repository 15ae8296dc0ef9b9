// The session client against a protocol server of the test's own (the daemon is the outside
// world here): what it sends, in what order, after a dropped connection, to a standby, with a
// refused token, and what a dying process says. Real sockets on 127.0.0.1, real child
// processes; time is real but every wait is for an event, with generous bounds.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { watch } from '../lib/watch.js'
import { ErrorCodes } from '../lib/errors.js'
import { RemoteWatcher } from '../lib/remote/remote-watcher.js'
import { resolveSessionChoice, sharedHashFromEnv, rankFromEnv } from '../lib/remote/session-options.js'
import { sessionTarget } from '../lib/remote/session-client.js'
import type { ClientMessage } from '../lib/session/protocol.js'
import type { RunEvent } from '../lib/model.js'
import { eventually } from './support/eventually.js'
import { sessionServer, type SessionServer } from './support/session-server.js'
import { tempRepo } from './support/temp-repo.js'
import { startChild } from './support/child.js'
import { PassThrough } from 'node:stream'
import { runCommand } from '../lib/wrap/command-run.js'
import { BIN } from './fixtures/daemon/helpers.js'

const DIES = fileURLToPath(new URL('./fixtures/watch/dies.mjs', import.meta.url))
const TRAINER = fileURLToPath(new URL('./fixtures/remote/trainer.mjs', import.meta.url))

const messagesOf = (server: SessionServer, connection?: number): ClientMessage[] => server.received.filter((r) => connection === undefined || r.connection === connection).map((r) => r.message)
const kinds = (messages: ClientMessage[]): string[] => messages.map((m) => m.t + ('resume' in m && m.resume === true ? '(resume)' : ''))

async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

t.test('a run over a session: hello with the daemon-side repo, open, progress, an acknowledged finish; no folder touched', async (t) => {
  const server = await sessionServer(t)
  const { repo } = tempRepo(t)
  const run = await watch({ server: server.url, repo, hash: 'remote_one', grace: 5, name: 'n1' })
  t.teardown(() => run.close())
  run.reportProgress(30)
  await run.reportSuccessfulFinish()
  const messages = messagesOf(server)
  t.same(kinds(messages), ['hello', 'open', 'progress', 'finish'])
  const hello = messages[0] as Extract<ClientMessage, { t: 'hello' }>
  t.equal(hello.repo, repo, 'the repo is the daemon-side root, sent as given')
  t.equal(hello.client.pid, process.pid)
  const open = messages[1] as Extract<ClientMessage, { t: 'open' }>
  t.match(open, { hash: 'remote_one', grace: 5, name: 'n1' })
  t.notOk('rank' in open, 'a run of one process names no rank')
  t.ok(Number.isInteger(open.at), "the start in whole ms, as a daemon's snapshot keeps it (a resume must match it)")
  t.same(readdirSync(repo), [], 'nothing written into the folder')
})

t.test('reportSuccessfulFinish() resolves only once the daemon acknowledged the finish', async (t) => {
  const server = await sessionServer(t)
  const run = await watch({ server: server.url, hash: 'remote_gated', grace: 5 })
  t.teardown(() => run.close())
  server.holdAcks = true
  let resolved = false
  const finishing = run.reportSuccessfulFinish().then(() => (resolved = true))
  await eventually(() => messagesOf(server).some((m) => m.t === 'finish'), 'the finish reaches the server')
  // Some room for an (erroneous) early resolution to show.
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(resolved, false, 'not resolved before the ack')
  server.ackAll()
  await finishing
  t.equal(resolved, true)
})

t.test('a dropped connection loses nothing: reconnected, the run is re-opened with resume and its original start, its latest report, then what was not acknowledged', async (t) => {
  const server = await sessionServer(t)
  const run = await watch({ server: server.url, hash: 'remote_replay', grace: 5 })
  t.teardown(() => run.close())
  const open = messagesOf(server).find((m) => m.t === 'open') as Extract<ClientMessage, { t: 'open' }>
  server.holdAcks = true
  run.reportProgress(60)
  run.reportProgress(20) // an earlier deadline: sent at once
  await eventually(() => messagesOf(server).filter((m) => m.t === 'progress').length >= 2, 'both reports reach the server')
  server.drop()
  const finishing = run.reportSuccessfulFinish()
  server.holdAcks = false
  await eventually(() => server.connections.length >= 2, 'the client reconnects')
  await finishing
  const second = messagesOf(server, 1)
  t.same(kinds(second), ['hello', 'open(resume)', 'progress', 'finish'], 'resume first, then the finish that was not acknowledged')
  t.equal((second[1] as Extract<ClientMessage, { t: 'open' }>).at, open.at, 'the original start')
  t.equal((second[2] as Extract<ClientMessage, { t: 'progress' }>).expectNextIn, 20, 'the latest report')
  const seqs = second.filter((m) => 'seq' in m).map((m) => (m as { seq: number }).seq)
  t.same(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'numbered in sending order',
  )
})

t.test('a daemon that says nothing for three heartbeats is left for a new connection', async (t) => {
  const server = await sessionServer(t, { heartbeatMs: 100 })
  const run = await watch({ server: server.url, hash: 'remote_silent', grace: 5 })
  t.teardown(() => run.close())
  t.ok(await eventually(() => server.connections.length >= 2, 'a second connection after the silence'))
  t.ok(await eventually(() => kinds(messagesOf(server, 1)).includes('open(resume)'), 'the run re-opened on it'))
})

t.test("the daemon's events reach the handle; a frame that is not of the protocol is an error event, not a crash", async (t) => {
  const server = await sessionServer(t)
  const watcher = await RemoteWatcher.open({ servers: [server.url] })
  t.teardown(() => watcher.close())
  const run = await watcher.watch({ hash: 'remote_events', name: undefined, experiment: undefined, grace: 5 })
  const errors: Error[] = []
  watcher.on('error', (e) => errors.push(e))
  const stalled = new Promise<RunEvent>((resolve) => run.once('stalled', resolve))
  server.send({ t: 'nonsense' })
  const info = { hash: 'remote_events', status: 'stalled', startedAt: 1, lastProgressAt: 1, expectNextIn: 1, deadlineAt: 2, grace: 5, episode: 1 }
  server.send({ t: 'event', event: { kind: 'stalled', key: 'k', at: 3, run: info, repo: '/srv/repo' } })
  const event = await stalled
  t.equal(event.kind, 'stalled')
  t.equal(run.status, 'stalled')
  t.equal(errors.length, 1)
  t.equal((errors[0] as { code?: string }).code, ErrorCodes.BAD_REQUEST)
})

t.test('a refused token rejects watch() with AIM_STATUS_UNAUTHORIZED, the token never shown', async (t) => {
  const server = await sessionServer(t, { token: 'right-token-1234' })
  const error = await watch({ server: server.url, token: 'wrong-token-5678', hash: 'remote_401' }).catch((e: unknown) => e as Error & { code?: string })
  t.equal((error as { code?: string }).code, ErrorCodes.UNAUTHORIZED)
  t.notMatch((error as Error).message, /wrong-token|right-token/)
  const run = await watch({ server: server.url, token: 'right-token-1234', hash: 'remote_200', grace: 5 })
  t.teardown(() => run.close())
  t.ok(
    messagesOf(server).some((m) => m.t === 'open'),
    'the right token is let in',
  )
})

t.test('a standby (refusing hello, or the upgrade) passes the turn to the next URL at once', async (t) => {
  for (const standby of ['hello', 'upgrade'] as const) {
    const first = await sessionServer(t, { standby })
    const second = await sessionServer(t)
    const run = await watch({ server: [first.url, second.url], hash: `remote_standby_${standby}`, grace: 5 })
    t.teardown(() => run.close())
    t.ok(
      messagesOf(second).some((m) => m.t === 'open'),
      `the run is on the second server (${standby})`,
    )
    t.notOk(
      messagesOf(first).some((m) => m.t === 'open'),
      'nothing opened on the standby',
    )
  }
})

t.test('no server within the connect timeout: AIM_STATUS_SERVER_UNREACHABLE', async (t) => {
  const port = await closedPort()
  const error = await RemoteWatcher.open({ servers: [`http://127.0.0.1:${port}`], connectTimeoutMs: 500 }).catch((e: unknown) => e as { code?: string })
  t.equal((error as { code?: string }).code, ErrorCodes.SERVER_UNREACHABLE)
})

t.test('the messages of a rank carry its rank, world size and finishOn', async (t) => {
  const server = await sessionServer(t)
  const run = await watch({ server: server.url, hash: 'remote_ranked', rank: 2, worldSize: 4, finishOn: 'rank0', grace: 5 })
  t.teardown(() => run.close())
  run.reportProgress(10)
  await run.reportFailure('boom')
  const [, open, progress, fail] = messagesOf(server)
  t.match(open, { t: 'open', hash: 'remote_ranked', rank: 2, worldSize: 4, finishOn: 'rank0' })
  t.match(progress, { t: 'progress', rank: 2 })
  t.match(fail, { t: 'fail', rank: 2, reason: 'boom' })
})

t.test('a dying process fails its run with the reason a local run gets, written as it dies', async (t) => {
  for (const [mode, reason] of [
    ['throw', 'exited with code 1 (Error: loss is NaN)'],
    ['wait', 'killed by SIGTERM'],
  ] as const) {
    const server = await sessionServer(t)
    const { repo } = tempRepo(t)
    const child = startChild(DIES, [repo, `remote_dies_${mode}`, mode, JSON.stringify({ server: server.url, grace: 5 })])
    await child.waitForLine(/^READY/)
    if (mode === 'wait') child.process.kill('SIGTERM')
    await child.exited
    const fail = await eventually(() => messagesOf(server).find((m) => m.t === 'fail'), `the fail of ${mode}`)
    t.match(fail, { hash: `remote_dies_${mode}`, reason })
  }
})

t.test('options: server, token, rank, worldSize, finishOn checked and named; defaults from the environment', async (t) => {
  const code = async (options: object): Promise<string | undefined> =>
    watch(options).then(
      () => undefined,
      (e: { code?: string; message: string }) => {
        t.notMatch(e.message, /s3cret/, 'a token is never echoed')
        return e.code
      },
    )
  t.equal(await code({ server: 'ftp://x' }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: [] }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'http://user:s3cret@host:1' }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'unix:relative.sock' }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'http://127.0.0.1:1', token: 'has s3cret space' }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'http://127.0.0.1:1', token: 42 }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'http://127.0.0.1:1', rank: -1, worldSize: 2, hash: 'h' }), ErrorCodes.OUT_OF_RANGE)
  t.equal(await code({ server: 'http://127.0.0.1:1', rank: 1.5, worldSize: 2, hash: 'h' }), ErrorCodes.INVALID_OPTION)
  t.equal(await code({ server: 'http://127.0.0.1:1', rank: 2, worldSize: 2, hash: 'h' }), ErrorCodes.OUT_OF_RANGE)
  t.equal(await code({ server: 'http://127.0.0.1:1', worldSize: 0 }), ErrorCodes.OUT_OF_RANGE)
  t.equal(await code({ server: 'http://127.0.0.1:1', finishOn: 'any' }), ErrorCodes.INVALID_OPTION)

  t.same(resolveSessionChoice({}, { AIM_STATUS_SERVER: ' http://a:1 , http://b:2 ', AIM_STATUS_TOKEN: 'tok' }), { servers: ['http://a:1', 'http://b:2'], token: 'tok', ranked: undefined, derivedHash: undefined })
  t.same(resolveSessionChoice({ server: 'ws://c:3/x', token: 'mine' }, { AIM_STATUS_SERVER: 'http://a:1', AIM_STATUS_TOKEN: 'tok' }).servers, ['ws://c:3/x'], 'code wins over the environment')
  t.same(resolveSessionChoice({}, {}), { servers: undefined, token: undefined, ranked: undefined, derivedHash: undefined })
  t.same(resolveSessionChoice({}, { RANK: '0', WORLD_SIZE: '1' }).ranked, undefined, 'a world of one is a plain run')

  t.same(rankFromEnv({ RANK: '3', WORLD_SIZE: '8' }), { rank: 3, worldSize: 8, from: 'RANK/WORLD_SIZE' })
  t.same(rankFromEnv({ SLURM_PROCID: '1', SLURM_NTASKS: '2' }), { rank: 1, worldSize: 2, from: 'SLURM_PROCID/SLURM_NTASKS' })
  t.same(rankFromEnv({ OMPI_COMM_WORLD_RANK: '5', OMPI_COMM_WORLD_SIZE: '6' }), { rank: 5, worldSize: 6, from: 'OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE' })
  t.equal(rankFromEnv({ RANK: 'x', WORLD_SIZE: '2' }), undefined)

  // sha256('abc') = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
  t.equal(sharedHashFromEnv({ TORCHELASTIC_RUN_ID: 'abc' }), 'te_ba7816bf8f01cfea414140de')
  t.equal(sharedHashFromEnv({ SLURM_JOB_ID: '4242' }), 'slurm_4242')
  t.equal(sharedHashFromEnv({ SLURM_JOB_ID: '4242', SLURM_STEP_ID: '3' }), 'slurm_4242_3')
  t.equal(sharedHashFromEnv({}), undefined)

  const ranked = resolveSessionChoice({}, { RANK: '2', WORLD_SIZE: '4', TORCHELASTIC_RUN_ID: 'abc', AIM_STATUS_SERVER: 'http://h:1' })
  t.same(ranked.ranked, { rank: 2, worldSize: 4, finishOn: 'all' })
  t.equal(ranked.derivedHash, 'te_ba7816bf8f01cfea414140de')
  t.equal(resolveSessionChoice({ hash: 'given' }, { RANK: '2', WORLD_SIZE: '4', TORCHELASTIC_RUN_ID: 'abc' }).derivedHash, undefined, 'a given hash wins')
  t.throws(() => resolveSessionChoice({}, { RANK: '1', WORLD_SIZE: '2' }), { code: ErrorCodes.INVALID_OPTION, message: /`hash`/ }, 'ranks without a shared hash')
  t.throws(() => resolveSessionChoice({ rank: 1 }, {}), { code: ErrorCodes.INVALID_OPTION, message: /`worldSize`/ })

  t.equal(sessionTarget('http://h:43800'), 'ws://h:43800/api/v1/session')
  t.equal(sessionTarget('https://h'), 'wss://h/api/v1/session')
  t.equal(sessionTarget('ws://h:1/custom'), 'ws://h:1/custom')
  t.equal(sessionTarget('unix:/r/.aim/status/session.sock'), 'ws+unix:/r/.aim/status/session.sock:/api/v1/session')
})

t.test('a wrapped command reports over the session, its rank variables passed on unchanged', async (t) => {
  const server = await sessionServer(t)
  const { repo } = tempRepo(t)
  const out = new PassThrough()
  let printed = ''
  out.on('data', (chunk: Buffer) => (printed += chunk.toString()))
  const outcome = await runCommand({
    command: process.execPath,
    args: ['-e', 'console.log("step", process.env.RANK, process.env.WORLD_SIZE, process.env.AIM_STATUS_REPO)'],
    server: server.url,
    hash: 'remote_wrapped',
    grace: 5,
    env: { ...process.env, RANK: '1', WORLD_SIZE: '2', AIM_STATUS_DAEMON: '0' },
    cwd: repo,
    stdout: out,
    stderr: new PassThrough(),
  })
  t.equal(outcome.status, 'finished')
  t.match(printed, /^step 1 2 \/srv\/repo$/m, "the command sees the rank variables and the daemon's repo")
  const messages = messagesOf(server)
  t.match(messages[1], { t: 'open', hash: 'remote_wrapped', rank: 1, worldSize: 2 })
  t.match(messages[messages.length - 1], { t: 'finish', rank: 1 })
  t.same(readdirSync(repo), [], 'no check-ins or state in the folder')
})

t.test('the session never keeps a process alive: a trainer whose loop ends exits (its run failed as it exits), one that finished exits quietly', async (t) => {
  const server = await sessionServer(t)
  const idle = startChild(TRAINER, ['idle-exit', JSON.stringify({ hash: 'remote_idle' })], { env: { AIM_STATUS_SERVER: server.url } })
  t.same(await idle.exited, { code: 0, signal: null }, 'exits by itself with a run active')
  const fail = await eventually(() => messagesOf(server).find((m) => m.t === 'fail'), 'the fail of the idle trainer')
  t.match(fail, { hash: 'remote_idle', reason: 'exited with code 0' })
  const finisher = startChild(TRAINER, ['finish', JSON.stringify({ hash: 'remote_finisher' })], { env: { AIM_STATUS_SERVER: server.url } })
  await finisher.waitForLine('FINISHED')
  t.same(await finisher.exited, { code: 0, signal: null }, 'exits once finished')
  const last = messagesOf(server).filter((m) => 'hash' in m && m.hash === 'remote_finisher')
  t.equal(last[last.length - 1]?.t, 'finish', 'a finished run is not failed at exit')
})

t.test("ranks without a server report to the repo daemon's Unix socket, the repo root in hello", async (t) => {
  const { repo } = tempRepo(t)
  mkdirSync(join(repo, '.aim', 'status'), { recursive: true })
  const socketPath = join(repo, '.aim', 'status', 'session.sock')
  const server = await sessionServer(t, { socketPath })
  const run = await watch({ repo, hash: 'local_ranks', rank: 1, worldSize: 2, daemon: false, grace: 5 })
  t.teardown(() => run.close())
  await run.reportSuccessfulFinish()
  const [hello, open, finish] = messagesOf(server)
  t.match(hello, { t: 'hello', repo })
  t.match(open, { t: 'open', hash: 'local_ranks', rank: 1, worldSize: 2, finishOn: 'all' })
  t.match(finish, { t: 'finish', rank: 1 })
  t.equal(server.url, `unix:${socketPath}`)
})

t.test('a token refused after the first connect is an error event; the session keeps trying and comes back', async (t) => {
  const server = await sessionServer(t, { token: 'first-token-abc' })
  const watcher = await RemoteWatcher.open({ servers: [server.url], token: 'first-token-abc' })
  t.teardown(() => watcher.close())
  const errors: Array<{ code?: string; message: string }> = []
  watcher.on('error', (e) => errors.push(e))
  await watcher.watch({ hash: 'remote_rotated', name: undefined, experiment: undefined, grace: 5 })
  server.token = 'rotated-token-xyz'
  server.drop()
  const refused = await eventually(() => errors.find((e) => e.code === ErrorCodes.UNAUTHORIZED), 'the refused token said')
  t.notMatch(refused.message, /first-token|rotated-token/, 'no token in the message')
  server.token = 'first-token-abc'
  t.ok(await eventually(() => kinds(messagesOf(server, 1)).includes('open(resume)'), 'back, the run re-opened'))
})

t.test('aim-watcher run --server --token-file: the wrapper reports over the session', async (t) => {
  const server = await sessionServer(t, { token: 'file-token-123' })
  const { repo } = tempRepo(t)
  const tokenFile = join(repo, 'token')
  writeFileSync(tokenFile, 'file-token-123\n', { mode: 0o600 })
  const child = spawn(process.execPath, [BIN, 'run', '--server', server.url, '--token-file', tokenFile, '--hash', 'cli_remote', '--', process.execPath, '-e', 'console.log("hi")'], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AIM_STATUS_DAEMON: '0' },
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 0, out)
  t.match(out, /^hi$/m)
  t.same(
    kinds(messagesOf(server)).filter((k) => k !== 'progress'),
    ['hello', 'open', 'finish', 'bye'],
    'a goodbye after the finish',
  )
  t.same(readdirSync(repo), ['token'], 'no state in the folder')
})

t.test('a refused finish rejects with its code (never taken as recorded); a report to a run already ended is no news', async (t) => {
  const server = await sessionServer(t, {
    refuse: (m) =>
      m.t === 'finish' && m.hash === 'remote_refused'
        ? { code: 'AIM_STATUS_BAD_REQUEST', message: 'not open here' }
        : m.t === 'finish' && m.hash === 'remote_ended'
          ? { code: 'AIM_STATUS_RUN_ENDED', message: 'ended' }
          : undefined,
  })
  const watcher = await RemoteWatcher.open({ servers: [server.url] })
  t.teardown(() => watcher.close())
  const errors: Error[] = []
  watcher.on('error', (e) => errors.push(e))
  const refused = await watcher.watch({ hash: 'remote_refused', name: undefined, experiment: undefined, grace: 5 })
  await t.rejects(refused.reportSuccessfulFinish(), { code: ErrorCodes.BAD_REQUEST, message: /not open here/ })
  const ended = await watcher.watch({ hash: 'remote_ended', name: undefined, experiment: undefined, grace: 5 })
  await ended.reportSuccessfulFinish()
  t.equal(errors.length, 1, 'the refusal is said once; the ended run is no error')
})
