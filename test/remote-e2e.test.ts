// Runs over a session, end to end with real processes: the built daemon with its HTTP face and
// a token file, and trainer processes started in another folder with nothing but the server
// and token in their environment (no repo folder of theirs), killed with real signals; the
// daemon's notifications go to a fake Slack on 127.0.0.1. Every wait is for an event, with
// generous bounds; the only pauses are the room given to a second (wrong) alert to show.
import { addNotifier } from '../lib/notify/manage.js'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { makeRepo, startDaemon, type DaemonChild } from './fixtures/daemon/helpers.js'
import { startChild, type Child } from './support/child.js'
import { endDaemonsAtTeardown } from './support/daemons.js'
import { eventually } from './support/eventually.js'
import { startEndpoint, type FakeEndpoint } from './support/fake-endpoints.js'
import { tempRepo } from './support/temp-repo.js'

const TRAINER = fileURLToPath(new URL('./fixtures/remote/trainer.mjs', import.meta.url))
const TOKEN = 'e2e-token-0123456789abcdef'
/** Room for a second, wrong, alert to arrive before "exactly one" is asserted, ms. */
const ROOM_MS = 2500

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Setup {
  repo: string
  endpoint: FakeEndpoint
  tokenFile: string
  /** A folder for trainers: not the repo, and left empty by them. */
  elsewhere: string
}

async function setup(t: Test, message = '{event} {run.hash} <{run.reason}>'): Promise<Setup> {
  const events: Array<'stalled' | 'failed' | 'finished'> = ['stalled', 'failed', 'finished']
  const { repo } = tempRepo(t, 'aim-status-e2e-repo-')
  makeRepo(repo)
  const endpoint = await startEndpoint()
  t.teardown(() => endpoint.close())
  // One message for every kind (Aim's `message` argument covers stalls and failures only).
  await addNotifier(repo, { type: 'slack', arguments: { url: `${endpoint.base}/services/T0/B0/secret-token-123` }, events, messages: { stalled: message, failed: message, finished: message } })
  const tokenFile = join(repo, 'token')
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
  const elsewhere = mkdtempSync(join(tmpdir(), 'aim-status-e2e-trainer-'))
  t.teardown(() => rmSync(elsewhere, { recursive: true, force: true }))
  endDaemonsAtTeardown(t, repo)
  return { repo, endpoint, tokenFile, elsewhere }
}

async function daemonOn(t: Test, s: Setup, listen = '127.0.0.1:0'): Promise<{ daemon: DaemonChild; url: string }> {
  const daemon = startDaemon([s.repo], ['--http', listen, '--token-file', s.tokenFile])
  t.teardown(async () => {
    daemon.process.kill('SIGKILL')
    await daemon.exited
  })
  const listening = await daemon.waitEvent((l) => l.event === 'http-listening')
  return { daemon, url: String(listening['url']) }
}

function trainer(t: Test, s: Setup, mode: string, options: object, env: NodeJS.ProcessEnv): Child {
  const child = startChild(TRAINER, [mode, JSON.stringify(options)], { cwd: s.elsewhere, env: { AIM_STATUS_TOKEN: TOKEN, ...env } })
  t.teardown(async () => {
    child.process.kill('SIGKILL')
    await child.exited
  })
  return child
}

const texts = (endpoint: FakeEndpoint, hash: string): string[] => endpoint.requests.map((r) => (JSON.parse(r.body) as { text: string }).text).filter((text) => text.includes(` ${hash} `))
const alert = (endpoint: FakeEndpoint, kind: string, hash: string): Promise<string> => eventually(() => texts(endpoint, hash).find((text) => text.startsWith(`${kind} `)), `${kind} of ${hash} notified`)

t.test('a remote trainer that goes silent is stalled once; one SIGKILLed is failed; the trainer touches no folder', async (t) => {
  const s = await setup(t)
  const { url } = await daemonOn(t, s)
  const silent = trainer(t, s, 'silent', { hash: 'e2e_silent' }, { AIM_STATUS_SERVER: url })
  await silent.waitForLine(/^READY/)
  await alert(s.endpoint, 'stalled', 'e2e_silent')
  await silent.waitForLine('STALLED')
  const killed = trainer(t, s, 'train', { hash: 'e2e_killed' }, { AIM_STATUS_SERVER: url })
  await killed.waitForLine(/^READY/)
  killed.process.kill('SIGKILL')
  const failed = await alert(s.endpoint, 'failed', 'e2e_killed')
  t.ok(failed, 'the SIGKILLed trainer is failed')
  await sleep(ROOM_MS)
  t.equal(texts(s.endpoint, 'e2e_silent').filter((x) => x.startsWith('stalled ')).length, 1, 'one stall notification')
  t.equal(texts(s.endpoint, 'e2e_killed').length, 1, 'one failure, nothing else')
  t.same(readdirSync(s.elsewhere), [], "nothing written in the trainers' folder")
})

t.test('a wrong token: the trainer gets AIM_STATUS_UNAUTHORIZED', async (t) => {
  const s = await setup(t)
  const { url } = await daemonOn(t, s)
  const child = startChild(TRAINER, ['train', JSON.stringify({ hash: 'e2e_401' })], { cwd: s.elsewhere, env: { AIM_STATUS_SERVER: url, AIM_STATUS_TOKEN: 'wrong-token' } })
  t.teardown(() => void child.process.kill('SIGKILL'))
  t.ok(await child.waitForLine('ERROR AIM_STATUS_UNAUTHORIZED'))
})

t.test('the daemon SIGKILLed and restarted on the same port while a trainer reports: no false alert, the finish after it is not lost', async (t) => {
  const s = await setup(t)
  const first = await daemonOn(t, s)
  // Outside the trainers' folder, which must stay empty.
  const finishFile = join(tmpdir(), `aim-status-e2e-finish-${process.pid}-${Date.now()}`)
  t.teardown(() => rmSync(finishFile, { force: true }))
  const child = trainer(t, s, 'finish-file', { hash: 'e2e_restart' }, { AIM_STATUS_SERVER: first.url, FINISH_FILE: finishFile })
  await child.waitForLine(/^READY/)
  first.daemon.process.kill('SIGKILL')
  await first.daemon.exited
  const port = new URL(first.url).port
  await daemonOn(t, s, `127.0.0.1:${port}`)
  writeFileSync(finishFile, '')
  await child.waitForLine('FINISHED')
  await alert(s.endpoint, 'finished', 'e2e_restart')
  await sleep(ROOM_MS)
  t.same(
    texts(s.endpoint, 'e2e_restart').map((x) => x.split(' ')[0]),
    ['finished'],
    'finished, never stalled or failed',
  )
})

t.test('failover: two daemons on one repo, the first SIGKILLed; the trainer goes on with the standby that takes over', async (t) => {
  const s = await setup(t)
  const first = await daemonOn(t, s)
  const second = await daemonOn(t, s)
  const finishFile = join(tmpdir(), `aim-status-e2e-finish-${process.pid}-${Date.now()}`)
  t.teardown(() => rmSync(finishFile, { force: true }))
  const child = trainer(t, s, 'finish-file', { hash: 'e2e_failover' }, { AIM_STATUS_SERVER: `${first.url},${second.url}`, FINISH_FILE: finishFile })
  await child.waitForLine(/^READY/)
  first.daemon.process.kill('SIGKILL')
  await second.daemon.waitEvent((l) => typeof l.event === 'string' && /takeover|adopt|sender/.test(l.event))
  writeFileSync(finishFile, '')
  await child.waitForLine('FINISHED')
  await alert(s.endpoint, 'finished', 'e2e_failover')
  await sleep(ROOM_MS)
  t.same(
    texts(s.endpoint, 'e2e_failover').map((x) => x.split(' ')[0]),
    ['finished'],
    'finished, never stalled or failed',
  )
})

async function rankedRun(t: Test, s: Setup, hash: string, env: (rank: number) => NodeJS.ProcessEnv, silentRank: number | undefined, extra: object = {}): Promise<Child[]> {
  const ranks: Child[] = []
  for (let rank = 0; rank < 4; rank++) ranks.push(trainer(t, s, rank === silentRank ? 'silent' : 'train', { hash, ...extra }, { RANK: String(rank), WORLD_SIZE: '4', ...env(rank) }))
  for (const child of ranks) await child.waitForLine(/^READY/)
  return ranks
}

const RANKED_MESSAGE = '{event} {run.hash} <{run.reason}> silent: [{run.silent_ranks}]'

t.test('a run of 4 ranks over the network: rank 2 silent stalls the run; a rank SIGKILLed fails it once, naming the rank', async (t) => {
  const s = await setup(t, RANKED_MESSAGE)
  const { url } = await daemonOn(t, s)
  await rankedRun(t, s, 'e2e_ranks_silent', () => ({ AIM_STATUS_SERVER: url }), 2)
  const stalled = await alert(s.endpoint, 'stalled', 'e2e_ranks_silent')
  t.match(stalled, `silent: [2 (${hostname()})]`, 'the alert names rank 2 and its host, and no other rank')
  await sleep(ROOM_MS)
  t.equal(texts(s.endpoint, 'e2e_ranks_silent').filter((x) => x.startsWith('stalled ')).length, 1, 'one stall notification for the run, not one per rank or per tick')
  const killed = await rankedRun(t, s, 'e2e_ranks_killed', () => ({ AIM_STATUS_SERVER: url }), undefined)
  killed[1]?.process.kill('SIGKILL')
  const failed = await alert(s.endpoint, 'failed', 'e2e_ranks_killed')
  t.match(failed, /rank 1\b/, 'the reason names the rank')
  await sleep(ROOM_MS)
  t.equal(texts(s.endpoint, 'e2e_ranks_killed').filter((x) => x.startsWith('failed ')).length, 1, 'one failure')
})

t.test('the same 4-rank run on a shared repo without a server: the repo daemon over its Unix socket', async (t) => {
  const s = await setup(t, RANKED_MESSAGE)
  await rankedRun(t, s, 'e2e_ranks_local', () => ({ AIM_STATUS_DAEMON: '1' }), 2, { repo: s.repo })
  const stalled = await alert(s.endpoint, 'stalled', 'e2e_ranks_local')
  t.match(stalled, `silent: [2 (${hostname()})]`, 'the alert names rank 2')
  const killed = await rankedRun(t, s, 'e2e_ranks_local_killed', () => ({ AIM_STATUS_DAEMON: '1' }), undefined, { repo: s.repo })
  killed[3]?.process.kill('SIGKILL')
  const failed = await alert(s.endpoint, 'failed', 'e2e_ranks_local_killed')
  t.match(failed, /rank 3\b/, 'the reason names the rank')
  await sleep(ROOM_MS)
  t.equal(texts(s.endpoint, 'e2e_ranks_local').filter((x) => x.startsWith('stalled ')).length, 1, 'one stall notification')
  t.equal(texts(s.endpoint, 'e2e_ranks_local_killed').filter((x) => x.startsWith('failed ')).length, 1, 'one failure')
})
