// The daemon's HTTP face against a real daemon process on 127.0.0.1, with real training runs in
// another real process: the API and metrics after a scripted sequence, mutes through the API,
// readiness of an active daemon and of a standby, the token, and cross-site mutations refused.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { call, eventually, sample, startFaceDaemon } from './support/http-face.js'
import { BIN, makeRepo, textsFor, useSlack } from './fixtures/daemon/helpers.js'

const RUNS = fileURLToPath(new URL('./fixtures/http/runs.mjs', import.meta.url))
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers, checked field by field by the assertions
const byHash = (runs: Array<{ hash: string }>) => Object.fromEntries(runs.map((r) => [r.hash, r])) as Record<string, any>

t.test('2 running, 1 stalled, 1 failed: the API and the metrics say exactly that; then a mute through the API keeps a death unsent', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const root = makeRepo(t.testdir())
  await useSlack(root, slack.base)
  const { daemon, url } = await startFaceDaemon(t, [root], ['--stale-ms', '5000'])
  await daemon.waitEvent((l) => l.event === 'active')
  const trainer = startChild(RUNS, [root, 'four'])
  t.teardown(() => void trainer.process.kill('SIGKILL'))
  await trainer.waitForLine('READY')

  const runs = await eventually(async () => {
    const { body } = await call(`${url}/api/v1/runs`)
    const found = byHash(body.runs)
    return found['run_s']?.status === 'stalled' && Object.keys(found).length === 4 ? found : undefined
  }, 'run_s stalled in the API')
  t.same(Object.fromEntries(Object.entries(runs).map(([h, r]) => [h, r.status])), { run_a: 'running', run_b: 'running', run_s: 'stalled', run_f: 'failed' })
  t.match(runs['run_a'], { repo: root, name: 'alpha', experiment: 'sweep', source: 'process', owner: { kind: 'process', pid: trainer.process.pid }, expectNextIn: 3600, muted: false, mute: null, reason: null })
  t.equal(runs['run_f'].reason, 'diverged')
  t.equal(runs['run_s'].episode, 1)
  t.equal(runs['run_s'].stallsAt, null, 'a stalled run has no countdown')
  t.equal(Date.parse(runs['run_a'].stallsAt) - Date.parse(runs['run_a'].deadlineAt), 100_000, 'stallsAt is the deadline plus the grace')

  const one = await call(`${url}/api/v1/runs/run_s`)
  t.equal(one.status, 200)
  t.same(
    one.body.run.timeline.map((m: { kind: string }) => m.kind).filter((k: string) => k !== 'report'),
    ['started', 'stalled'],
    'its timeline',
  )
  t.match(await call(`${url}/api/v1/runs/nothing_here`), { status: 404, body: { error: { code: 'AIM_STATUS_NOT_FOUND' } } })
  t.match(await call(`${url}/api/v1/runs/bad-hash!`), { status: 400, body: { error: { code: 'AIM_STATUS_INVALID_ID' } } })

  const metrics = (await call(`${url}/metrics`)).body as string
  for (const [status, count] of Object.entries({ running: 2, stalled: 1, finished: 0, failed: 1 })) t.equal(sample(metrics, 'aim_status_runs', { repo: root, status }), count, `aim_status_runs ${status}`)
  t.equal(sample(metrics, 'aim_status_transitions_total', { repo: root, kind: 'started', muted: 'false' }), 4)
  t.equal(sample(metrics, 'aim_status_transitions_total', { repo: root, kind: 'stalled', muted: 'false' }), 1)
  t.equal(sample(metrics, 'aim_status_transitions_total', { repo: root, kind: 'failed', muted: 'false' }), 1)
  t.equal(sample(metrics, 'aim_status_sender', { repo: root }), 1)
  t.equal(sample(metrics, 'aim_status_outbox_depth', { repo: root }), 0)
  t.equal(sample(metrics, 'aim_status_muted_runs', { repo: root }), 0)
  t.equal(sample(metrics, 'aim_status_notifications_total', { repo: root, notifier_type: 'slack', result: 'delivered' }), undefined, 'the training process sent its own notifications, not the daemon')

  const notifiers = await call(`${url}/api/v1/notifiers`)
  t.equal(notifiers.body.notifiers.length, 1)
  t.match(notifiers.body.notifiers[0], { repo: root, type: 'slack', status: 'enabled', usable: true })
  t.notMatch(JSON.stringify(notifiers.body), /secret-token-123/, 'the webhook URL is redacted')

  // A mute through the API (a plain client: no browser headers), until healthy.
  const muted = await call(`${url}/api/v1/runs/run_a/mute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ untilHealthy: true, reason: 'checkpointing' }) })
  t.match(muted, { status: 200, body: { repo: root, hash: 'run_a', mute: { untilHealthy: true, until: null, reason: 'checkpointing' } } })
  t.match((await call(`${url}/api/v1/runs/run_a`)).body.run, { muted: true, mute: { untilHealthy: true } })
  t.match((await call(`${url}/api/v1/mutes`)).body.mutes, [{ repo: root, hash: 'run_a', untilHealthy: true }])

  // The training process dies: the daemon reports its three unfinished runs failed; run_a is muted.
  const pid = trainer.process.pid
  trainer.process.kill('SIGKILL')
  await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'run_a')
  t.match(await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'run_a'), { muted: true })
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === 'run_b')
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === 'run_s')
  const after = await eventually(async () => {
    const text = (await call(`${url}/metrics`)).body as string
    // run_a, run_b and run_s, and run_f, which its process had failed before it died: the
    // daemon keeps an adopted snapshot's ended runs listed (for status), ended.
    return sample(text, 'aim_status_runs', { repo: root, status: 'failed' }) === 4 ? text : undefined
  }, 'four failed runs in the metrics')
  t.equal(sample(after, 'aim_status_runs', { repo: root, status: 'running' }), 0)
  t.equal(sample(after, 'aim_status_runs', { repo: root, status: 'stalled' }), 0)
  t.equal(sample(after, 'aim_status_transitions_total', { repo: root, kind: 'failed', muted: 'false' }), 3, 'run_f, then run_b and run_s')
  t.equal(sample(after, 'aim_status_transitions_total', { repo: root, kind: 'failed', muted: 'true' }), 1, 'run_a: counted, not sent')
  t.equal(sample(after, 'aim_status_notifications_total', { repo: root, notifier_type: 'slack', result: 'delivered' }), 2)
  t.equal(sample(after, 'aim_status_muted_runs', { repo: root }), 1)
  t.same(textsFor(slack.requests, 'run_a'), [], "the muted run's failure was not sent")
  t.same(textsFor(slack.requests, 'run_b'), [`failed run_b process gone: pid ${pid}`])
  const adopted = byHash((await call(`${url}/api/v1/runs`)).body.runs)
  t.match(adopted['run_a'], { status: 'failed', source: 'adopted', muted: true })
  t.match(adopted['run_f'], { status: 'failed' }, 'a run that had ended before the death stays listed as it ended, nothing to watch')

  const unmuted = await call(`${url}/api/v1/runs/run_a/mute`, { method: 'DELETE' })
  t.match(unmuted, { status: 200, body: { removed: true } })
  t.same((await call(`${url}/api/v1/mutes`)).body.mutes, [])
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})

t.test('healthz and readyz: 200 on the sender, 503 on a standby until it takes over', async (t) => {
  const root = makeRepo(t.testdir())
  const first = await startFaceDaemon(t, [root])
  await first.daemon.waitEvent((l) => l.event === 'active')
  const second = await startFaceDaemon(t, [root])
  await second.daemon.waitEvent((l) => l.event === 'standby')
  t.match(await call(`${first.url}/readyz`), { status: 200, body: { ready: true, repos: [{ repo: root, state: 'active' }] } })
  t.match(await call(`${second.url}/readyz`), { status: 503, body: { ready: false, repos: [{ repo: root, state: 'standby' }] } })
  t.match(await call(`${second.url}/healthz`), { status: 200, body: { ok: true } })
  t.equal(sample((await call(`${second.url}/metrics`)).body, 'aim_status_sender', { repo: root }), 0)
  t.match(await call(`${second.url}/readyz?repo=/elsewhere`), { status: 404, body: { error: { code: 'AIM_STATUS_NOT_FOUND' } } })
  first.daemon.process.kill('SIGTERM')
  await first.daemon.exited
  await second.daemon.waitEvent((l) => l.event === 'active')
  t.match(await call(`${second.url}/readyz`), { status: 200, body: { ready: true } })
  t.equal(sample((await call(`${second.url}/metrics`)).body, 'aim_status_sender', { repo: root }), 1)
  second.daemon.process.kill('SIGTERM')
  await second.daemon.exited
})

t.test('with a token file: reads and mutations need the bearer token; --http-public-read opens reads only', async (t) => {
  const dir = t.testdir()
  const root = makeRepo(join(dir, 'repo'))
  const tokenFile = join(dir, 'token')
  const token = 'k7Qp2vX9mZ4tR8wL1sN6bY3c'
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })
  const auth = { authorization: `Bearer ${token}` }
  const closed = await startFaceDaemon(t, [root], ['--token-file', tokenFile])
  const refused = await call(`${closed.url}/api/v1/runs`)
  t.match(refused, { status: 401, body: { error: { code: 'AIM_STATUS_UNAUTHORIZED' } } })
  t.equal(refused.headers.get('www-authenticate'), 'Bearer realm="aim-watcher"')
  t.match(await call(`${closed.url}/api/v1/runs`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } }), { status: 401 })
  t.match(await call(`${closed.url}/metrics`), { status: 401 })
  t.match(await call(`${closed.url}/api/v1/runs`, { headers: auth }), { status: 200, body: { runs: [] } })
  t.match(await call(`${closed.url}/healthz`), { status: 200 }, 'probes need no token')
  t.match(await call(`${closed.url}/`), { status: 200 }, 'the page shell holds no data')
  const mute = { method: 'POST', body: JSON.stringify({ for: '2h' }) }
  t.match(await call(`${closed.url}/api/v1/runs/later_run/mute`, { ...mute, headers: { 'content-type': 'application/json' } }), { status: 401 })
  t.match(await call(`${closed.url}/api/v1/runs/later_run/mute`, { ...mute, headers: { 'content-type': 'application/json', ...auth } }), { status: 200, body: { hash: 'later_run' } }, 'a run not started yet')
  closed.daemon.process.kill('SIGTERM')
  await closed.daemon.exited

  const open = await startFaceDaemon(t, [root], ['--token-file', tokenFile, '--http-public-read'])
  t.match(await call(`${open.url}/api/v1/mutes`), { status: 200, body: { mutes: [{ hash: 'later_run', untilHealthy: false }] } })
  t.match(await call(`${open.url}/api/v1/runs/later_run/mute`, { method: 'DELETE' }), { status: 401 })
  t.match(await call(`${open.url}/api/v1/runs/later_run/mute`, { method: 'DELETE', headers: auth }), { status: 200, body: { removed: true } })
  open.daemon.process.kill('SIGTERM')
  await open.daemon.exited
})

t.test('refused before listening: 0.0.0.0 without a token file, a token file others can read', async (t) => {
  const dir = t.testdir()
  const root = makeRepo(join(dir, 'repo'))
  const stderrOf = (args: string[]): { code: number; stderr: string } => {
    try {
      execFileSync(process.execPath, [BIN, '--repo', root, 'start', ...args], { stdio: 'pipe', timeout: 20_000 })
      return { code: 0, stderr: '' }
    } catch (error) {
      const e = error as { status: number; stderr: Buffer }
      return { code: e.status, stderr: e.stderr.toString() }
    }
  }
  t.match(stderrOf(['--http', '0.0.0.0:0']), { code: 2, stderr: /AIM_STATUS_TOKEN_REQUIRED: Listening on 0\.0\.0\.0 \(not loopback\) needs --token-file/ })
  const loose = join(dir, 'loose-token')
  writeFileSync(loose, 'k7Qp2vX9mZ4tR8wL1sN6bY3c\n')
  chmodSync(loose, 0o644)
  t.match(stderrOf(['--http', '127.0.0.1:0', '--token-file', loose]), { code: 2, stderr: /readable by group or others \(mode 644\)/ })
  t.match(stderrOf(['--http', 'nonsense']), { code: 2, stderr: /HOST:PORT/ })
  t.match(stderrOf(['--http-public-read']), { code: 2, stderr: /need --http/ })
})

t.test("mutations: cross-site refused, the page's CSRF token required from a browser, JSON only, bounded bodies, JSON errors", async (t) => {
  const root = makeRepo(t.testdir())
  const { daemon, url } = await startFaceDaemon(t, [root])
  const page = (await call(`${url}/`)).body as string
  const csrf = /<meta name="aim-csrf" content="([^"]+)">/.exec(page)?.[1] as string
  t.ok(csrf.length >= 20, 'the page carries a CSRF token')
  const host = new URL(url).host
  const post = (headers: Record<string, string>, body = JSON.stringify({ for: 60 })) => call(`${url}/api/v1/runs/r1/mute`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  t.match(await post({ origin: 'https://evil.example' }), { status: 403, body: { error: { code: 'AIM_STATUS_FORBIDDEN' } } }, 'another origin')
  t.match(await post({ 'sec-fetch-site': 'cross-site' }), { status: 403, body: { error: { code: 'AIM_STATUS_FORBIDDEN' } } }, 'the browser says cross-site')
  t.match(await post({ 'sec-fetch-site': 'same-site', origin: `http://${host}` }), { status: 403 }, 'same site is not same origin')
  t.match(await post({ origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }), { status: 403, body: { error: { message: /X-CSRF-Token/ } } }, 'a browser request without the CSRF token')
  t.match(await post({ origin: `http://${host}`, 'sec-fetch-site': 'same-origin', 'x-csrf-token': 'not-it' }), { status: 403 })
  t.match(await post({ origin: `http://${host}`, 'sec-fetch-site': 'same-origin', 'x-csrf-token': csrf }), { status: 200 }, "the page's own request")
  t.match(
    await call(`${url}/api/v1/runs/r1/mute`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"for":60}' }),
    { status: 415, body: { error: { code: 'AIM_STATUS_UNSUPPORTED_MEDIA_TYPE' } } },
    'what a cross-site form can send',
  )
  t.match(await post({}, '{"for": '), { status: 400, body: { error: { code: 'AIM_STATUS_BAD_REQUEST' } } })
  t.match(await post({}, JSON.stringify({ for: 60, untilHealthy: true })), { status: 400, body: { error: { code: 'AIM_STATUS_INVALID_OPTION' } } })
  t.match(await post({}, JSON.stringify({ for: '45 days' })), { status: 400 })
  t.match(await post({}, JSON.stringify({ for: 60, reason: 'x'.repeat(20_000) })), { status: 413, body: { error: { code: 'AIM_STATUS_PAYLOAD_TOO_LARGE' } } })
  t.match(await call(`${url}/api/v1/runs`, { method: 'PUT' }), { status: 405, body: { error: { code: 'AIM_STATUS_METHOD_NOT_ALLOWED' } } })
  const rebound = await new Promise<number>((resolve, reject) => {
    request(`${url}/api/v1/runs`, { headers: { host: 'attacker.example' } }, (response) => {
      response.resume()
      resolve(response.statusCode as number)
    })
      .on('error', reject)
      .end()
  })
  t.equal(rebound, 403, 'DNS rebinding: a foreign Host')
  const shell = await fetch(`${url}/`)
  t.match(shell.headers.get('content-security-policy'), /default-src 'none'/)
  t.equal(shell.headers.get('access-control-allow-origin'), null, 'no CORS, ever')
  daemon.process.kill('SIGTERM')
  await daemon.exited
})
