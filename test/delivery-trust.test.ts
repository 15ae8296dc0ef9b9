// Delivery under ordinary faults, on real loopback servers: late endpoints (copies counted),
// a forward proxy, error bodies that echo secrets, userinfo, prototype-named template
// variables, and a configuration emptied while a retry waits.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { eventually } from './support/eventually.js'
import { ManualClock } from '../lib/clock.js'
import type { Notifier, NotifierEntry } from '../lib/notify/contract.js'
import type { RunEvent } from '../lib/model.js'
import { createNotifier, redactEntry, validateEntry } from '../lib/notify/registry.js'
import { DeliveryEngine } from '../lib/notify/delivery.js'
import type { DeliveryRecord } from '../lib/notify/delivery-record.js'
import { sendOnce } from '../lib/notify/send-once.js'
import { scrub } from '../lib/notify/redact.js'
import { loadHttpClient } from '../lib/notify/http.js'
import { entryFromSpec } from '../lib/notify/manage.js'
import { IDEMPOTENCY_HEADER } from '../lib/notify/types/webhook.js'
import { Watcher } from '../lib/watcher.js'
import { repoPaths } from '../lib/repo.js'
import { main } from '../lib/cli/main.js'
import { setNotifierCliIO } from '../lib/cli/notifiers.js'
import { tempRepo } from './support/temp-repo.js'
import { slackReply, startEndpoint, type FakeEndpoint } from './support/fake-endpoints.js'

const context = { writeLine: () => {} }

function makeEvent(hash: string, kind: RunEvent['kind'] = 'stalled'): RunEvent {
  return {
    kind,
    key: `${hash}@1700000000000/${kind}/1`,
    at: 1_700_000_000_000,
    run: { hash, status: kind === 'failed' ? 'failed' : 'stalled', startedAt: 0, lastProgressAt: 0, expectNextIn: 5, deadlineAt: 5000, grace: 1, episode: 1, reason: 'exit code 137' },
    repo: '/repo',
    host: 'trainer-7',
    pid: 1,
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

/**
 * A Slack-like endpoint that answers each request `answerAfterMs` after it arrived, in time on
 * the engine's manual clock: the test moves the clock, and each request gets its `ok` when its
 * time has come (a request whose client gave up is answered into the void, as a real server does).
 */
async function lateEndpoint(t: Test, clock: ManualClock, answerAfterMs: number) {
  const open: Array<{ at: number; res: http.ServerResponse }> = []
  let copies = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      copies++
      open.push({ at: clock.now(), res })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const { res } of open) res.destroy()
        server.close(() => resolve())
      }),
  )
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    copies: () => copies,
    /** Moves time in `stepMs` steps until `done()` or `limitMs`, answering each request when due. */
    async run(limitMs: number, stepMs: number, done: () => boolean) {
      const start = clock.now()
      while (clock.now() - start < limitMs && !done()) {
        // Let requests in flight arrive before time moves on (real I/O on loopback).
        for (let i = 0; i < 20; i++) await tick()
        await new Promise((resolve) => setTimeout(resolve, 2))
        for (const pending of [...open]) {
          if (clock.now() - pending.at < answerAfterMs) continue
          open.splice(open.indexOf(pending), 1)
          if (!pending.res.destroyed) pending.res.end('ok')
        }
        for (let i = 0; i < 20; i++) await tick()
        if (!done()) clock.advance(stepMs)
      }
    },
  }
}

function slackNotifier(id: string, base: string): Notifier {
  return createNotifier(validateEntry({ id, type: 'slack', status: 'enabled', arguments: { url: `${base}/services/T0/B0/late-${id}`, message: '{run.hash}' } }), context)
}

t.test('a late endpoint: 5 s -> 1 copy, 12 s -> 2 copies, 30 s -> 3 copies (the next attempt waits longer and allows longer)', async (t) => {
  // The HTTP client loads at the first request, tens of real ms; the manual clock below moves
  // while real requests travel, so the load would count as seconds of endpoint time.
  await loadHttpClient()
  const copies: Record<number, number> = {}
  for (const answerAfterMs of [5_000, 12_000, 30_000]) {
    const clock = new ManualClock()
    const endpoint = await lateEndpoint(t, clock, answerAfterMs)
    const records: DeliveryRecord[] = []
    const engine = new DeliveryEngine({ clock, notifiers: () => [notifier], commit: async () => {}, random: () => 0.5, onOutcome: (r) => records.push(r) })
    const notifier = slackNotifier(`n${answerAfterMs}`, endpoint.base)
    t.teardown(() => engine.close())
    await engine.accept(makeEvent('late'))
    await endpoint.run(10 * 60_000, 250, () => records.some((r) => r.kind === 'notified'))
    t.ok(
      records.some((r) => r.kind === 'notified'),
      `delivered (answer after ${answerAfterMs / 1000} s)`,
    )
    copies[answerAfterMs / 1000] = endpoint.copies()
    const timeouts = records.filter((r) => r.kind === 'retrying').map((r) => r.nextTimeoutMs)
    t.same(timeouts, [30_000, 60_000].slice(0, timeouts.length), 'each timed-out attempt is followed by a longer one')
  }
  t.same(copies, { 5: 1, 12: 2, 30: 3 })
  t.comment(`copies per event: ${JSON.stringify(copies)}`)
})

/** A forward proxy on 127.0.0.1: absolute-URI requests are forwarded to `target`; CONNECTs are recorded and refused. */
async function forwardProxy(t: Test, target: FakeEndpoint) {
  const seen: string[] = []
  const proxy = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    const upstream = http.request(`${target.base}${new URL(req.url as string).pathname}`, { method: req.method, headers: { ...req.headers, host: new URL(target.base).host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    req.pipe(upstream)
  })
  proxy.on('connect', (req, socket: net.Socket) => {
    seen.push(`CONNECT ${req.url}`)
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => proxy.close(() => resolve())))
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, seen }
}

t.test('proxies: HTTP_PROXY carries a webhook to a host that does not resolve; HTTPS_PROXY tunnels; NO_PROXY goes direct', async (t) => {
  const target = await startEndpoint(() => ({ status: 204 }))
  t.teardown(() => target.close())
  const proxy = await forwardProxy(t, target)
  const saved = { ...process.env }
  t.teardown(() => {
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) {
      if (saved[name] === undefined) delete process.env[name]
      else process.env[name] = saved[name]
    }
  })
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) delete process.env[name]
  process.env['http_proxy'] = proxy.url // lower case, as many clusters set it
  const webhook = createNotifier(validateEntry({ id: 'w', type: 'webhook', status: 'enabled', arguments: { url: 'http://no-such-host.invalid/hooks/run-status' } }), context)
  const event = makeEvent('proxied')
  const result = await sendOnce(webhook, event, { timeoutMs: 30_000 })
  t.same(result.outcome, { kind: 'delivered', detail: 'HTTP 204' }, 'delivered through the proxy')
  t.same(proxy.seen, ['POST http://no-such-host.invalid/hooks/run-status'], 'the proxy got the absolute URI')
  const request = await target.waitForRequests(1)
  t.equal(request.headers[IDEMPOTENCY_HEADER.toLowerCase()], event.key, 'Idempotency-Key is the event key')

  process.env['HTTPS_PROXY'] = proxy.url
  const secure = createNotifier(validateEntry({ id: 's', type: 'slack', status: 'enabled', arguments: { url: 'https://no-such-host.invalid/services/T1/B1/abcdef123456' } }), context)
  const tunnelled = await sendOnce(secure, event, { timeoutMs: 30_000 })
  t.equal(tunnelled.outcome.kind, 'transient', 'the proxy refused the tunnel: transient')
  t.ok(proxy.seen.includes('CONNECT no-such-host.invalid:443'), 'https goes through CONNECT')
  t.notMatch(JSON.stringify(tunnelled), /abcdef123456/, 'the error shows no secret')

  process.env['NO_PROXY'] = '127.0.0.1'
  const direct = createNotifier(validateEntry({ id: 'd', type: 'webhook', status: 'enabled', arguments: { url: `${target.base}/direct` } }), context)
  const before = proxy.seen.length
  t.equal((await sendOnce(direct, event, { timeoutMs: 30_000 })).outcome.kind, 'delivered')
  t.equal(proxy.seen.length, before, 'NO_PROXY: not through the proxy')
})

t.test('secrets: an error body echoing the path, a token across the cut, userinfo, arguments as a string', async (t) => {
  const secretPath = '/services/T0SECRET1/B0SECRET2/XyZsecretToken123456'
  const echo = await startEndpoint((request) => ({ status: 404, body: `Cannot POST ${request.url}` }))
  t.teardown(() => echo.close())
  const slack = createNotifier(validateEntry({ id: 'e', type: 'slack', status: 'enabled', arguments: { url: `${echo.base}${secretPath}` } }), context)
  const echoed = await sendOnce(slack, makeEvent('echo'), { timeoutMs: 30_000 })
  t.equal(echoed.outcome.kind, 'permanent')
  t.notMatch(JSON.stringify(echoed), /T0SECRET1|B0SECRET2|XyZsecretToken/, 'no part of the path is shown')
  t.match((echoed.outcome as { error: string }).error, /^HTTP 404: Cannot POST …3456 \(http:\/\/127\.0\.0\.1:\d+\/…3456\)$/)

  const token = 'EAAG' + 'q'.repeat(40) + 'TAIL'
  const graph = await startEndpoint(() => ({ status: 400, body: { error: { code: 100, type: 'GraphMethodException', message: `${'x'.repeat(180)} access_token=${token}` } } }))
  t.teardown(() => graph.close())
  const workplace = createNotifier(validateEntry({ id: 'g', type: 'workplace', status: 'enabled', arguments: { group_id: 42, access_token: token, base_url: graph.base } }), context)
  const cut = await sendOnce(workplace, makeEvent('graph'), { timeoutMs: 30_000 })
  t.notMatch(JSON.stringify(cut), /EAAGq|qqqq/, 'redacted before it was cut: no prefix of the token')

  const withUser = `${echo.base.replace('http://', 'http://deploy:Passw0rdSecret@')}/hook`
  const hooked = createNotifier(validateEntry({ id: 'u', type: 'webhook', status: 'enabled', arguments: { url: withUser } }), context)
  const userinfo = await sendOnce(hooked, makeEvent('userinfo'), { timeoutMs: 30_000 })
  t.notMatch(JSON.stringify(userinfo), /Passw0rdSecret|deploy:/, 'userinfo never shown')
  t.notMatch(JSON.stringify(redactEntry(hooked.entry)), /Passw0rdSecret|deploy/, 'nor in a listing')
  t.notMatch(scrub(`see https://someone:hunter2hunter2@example.com/x`), /hunter2/, "any URL's userinfo is scrubbed, configured or not")

  let thrown: unknown
  try {
    validateEntry({ id: 's', type: 'slack', status: 'enabled', arguments: 'https://hooks.slack.com/services/T9/B9/stringArgSecret99' as never })
  } catch (error) {
    thrown = error
  }
  t.match(thrown, { code: 'AIM_STATUS_INVALID_NOTIFIER', message: /arguments to be an object, got a string/ })
  t.notMatch(String((thrown as Error).message), /stringArgSecret99/)
})

t.test("commander's unknown-option echo is scrubbed", async (t) => {
  const { repo } = tempRepo(t)
  let err = ''
  const restore = setNotifierCliIO({ out: () => {}, err: (text) => void (err += text), interactive: false })
  t.teardown(restore)
  const code = await main(['--repo', repo, 'notifiers', 'add', 'slack', '--webhook-urll=https://hooks.slack.com/services/T7/B7/typoSecret777'])
  t.equal(code, 2)
  t.match(err, /unknown option/)
  t.notMatch(err, /typoSecret777|T7\/B7/, "the mistyped flag's value is redacted")
})

t.test('templates: only own fields are variables; the default failure says why and where', async (t) => {
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    t.throws(
      () => entryFromSpec({ type: 'logger', messages: { stalled: `stuck {${name}}` } }),
      { code: 'AIM_STATUS_INVALID_TEMPLATE', message: new RegExp(`unknown variable \\{${name.replace(/_/g, '_')}\\}`) },
      `{${name}} refused when configured`,
    )
    t.throws(() => entryFromSpec({ type: 'slack', arguments: { url: 'https://hooks.example.com/x', message: `{${name}}` } }), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
  }
  const logger = createNotifier(entryFromSpec({ type: 'logger' }), context)
  t.equal(logger.render(makeEvent('abc', 'failed')), "❗️ Run 'abc' failed on trainer-7: exit code 137 ❗️")
  t.equal(logger.render(makeEvent('abc', 'stalled')), "❗️ Something wrong with Run 'abc'. Please check. ❗️", "a stall keeps Aim's message")
})

t.test('config.json emptied and restored while a retry waits: delivered, nothing dropped', async (t) => {
  // The first answer asks for a retry in 3 s: the file is emptied well before, restored well after.
  const slack = await startEndpoint((_request, index) => (index === 0 ? slackReply(503, 'busy', { 'Retry-After': '3' }) : slackReply()))
  t.teardown(() => slack.close())
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true, daemon: false })
  closeFirst(() => watcher.close())
  const entry: NotifierEntry = await watcher.addNotifier({ type: 'slack', arguments: { url: `${slack.base}/services/T0/B0/emptied` }, events: ['failed'] })
  const records: DeliveryRecord[] = []
  for (const kind of ['notified', 'retrying', 'dropped', 'delivery-failed'] as const) watcher.on(kind, (r) => records.push(r))
  const config = repoPaths(repo).config
  const saved = readFileSync(config, 'utf8')
  const uses = async (id: string): Promise<boolean> => (await watcher.activeNotifiers()).some((n) => n.id === id)
  await eventually(() => uses(entry.id), 'the watcher uses the configured notifier')
  const retrying = new Promise((resolve) => watcher.once('retrying', resolve))
  const run = await watcher.watch({ hash: 'emptied_config' })
  await run.reportFailure('CUDA error')
  await retrying
  // An editor saving: the file is empty across the retry's due time.
  writeFileSync(config, '')
  await eventually(async () => !(await uses(entry.id)), 'the watcher sees the emptied configuration')
  t.notOk(await uses(entry.id), 'the watcher saw the file empty')
  await new Promise((resolve) => setTimeout(resolve, 4000))
  t.equal(slack.requests.length, 1, 'nothing sent while the notifier is missing')
  const notified = new Promise<DeliveryRecord>((resolve) => watcher.on('notified', (r) => r.notifierId === entry.id && resolve(r)))
  writeFileSync(config, saved)
  t.match(await notified, { eventKind: 'failed', attempts: 2 })
  t.same(
    records.filter((r) => r.kind === 'dropped' || r.kind === 'failed'),
    [],
    'nothing dropped, nothing failed: 0 lost',
  )
  t.equal(slack.requests.length, 2)
})

t.test('an invalid entry in config.json: an error event from the Watcher, its problem in the listing, no secret in either', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const paths = repoPaths(repo)
  const secretUrl = 'https://hooks.slack.com/services/T0INV/B0INV/invalidEntrySecret42'
  const { mkdirSync } = await import('node:fs')
  mkdirSync(paths.notifications, { recursive: true })
  writeFileSync(paths.config, JSON.stringify({ notifications: { version: '1', notifiers: { bad1: { id: 'bad1', type: 'slack', status: 'enabled', arguments: { url: secretUrl, message: 'late: {constructor}' } } } } }))
  const errors: Error[] = []
  const watcher = await Watcher.open({ repo, keepAlive: true, daemon: false })
  closeFirst(() => watcher.close())
  watcher.on('error', (error) => errors.push(error))
  // The thread may have read the file before the listener was attached: a change makes it say so again.
  // Replaced whole (written aside, then renamed), as an editor or the CLI saves it: a reader never sees half a file.
  writeFileSync(
    `${paths.config}.new`,
    JSON.stringify({ notifications: { version: '1', notifiers: { bad1: { id: 'bad1', type: 'slack', status: 'enabled', arguments: { url: secretUrl, message: 'late again: {constructor}' } } } } }),
  )
  renameSync(`${paths.config}.new`, paths.config)
  await eventually(() => errors.length > 0, 'an error event from the Watcher')
  t.match(errors[0], { code: 'AIM_STATUS_INVALID_NOTIFIER', message: /notifier bad1 .* invalid .*unknown variable \{constructor\}/ })
  t.notMatch(errors.map((e) => `${e.message} ${e.stack}`).join(' '), /invalidEntrySecret42|T0INV/)
  const listed = await watcher.listNotifiers()
  t.match(listed, [{ id: 'bad1', usable: false, problem: /unknown variable \{constructor\}/ }])
  t.notMatch(JSON.stringify(listed), /invalidEntrySecret42/)
})
