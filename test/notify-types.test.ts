import t from 'tap'
import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AIM_DEFAULT_MESSAGE, type DeliveryOutcome, type NotifierEntry } from '../lib/notify/contract.js'
import type { RunEvent } from '../lib/model.js'
import { createNotifier, findNotifierType, redactEntry, validateEntry } from '../lib/notify/registry.js'
import { parseRetryAfter, postJson } from '../lib/notify/http.js'
import { scrubSecrets } from '../lib/notify/redact.js'
import { redactHeaders, SIGNATURE_HEADER } from '../lib/notify/types/webhook.js'
import { graphError, graphOk, slackReply, startEndpoint, type FakeEndpoint, type Reply } from './support/fake-endpoints.js'

const event: RunEvent = {
  kind: 'stalled',
  key: 'abcdef0123456789abcdef01/stalled/2',
  at: Date.UTC(2026, 10, 28, 12, 0, 0),
  run: {
    hash: 'abcdef0123456789abcdef01',
    name: 'bert',
    experiment: 'exp',
    status: 'stalled',
    startedAt: Date.UTC(2026, 10, 28, 11, 0, 0),
    lastProgressAt: Date.UTC(2026, 10, 28, 11, 58, 0),
    expectNextIn: 60,
    deadlineAt: Date.UTC(2026, 10, 28, 11, 59, 0),
    grace: 30,
    episode: 2,
  },
  repo: '/data/repo',
  host: 'gpu-1',
  pid: 4242,
  overdueSeconds: 31.5,
}

const context = { writeLine: () => {} }
const SLACK_PATH = '/services/T000/B000/XXXXXXXXXXXXXXXXSECRET'
const TOKEN = 'EAAGm0PX4ZCpsBAsecrettoken1234567890'

function notifier(type: string, args: Record<string, unknown>, extra: Partial<NotifierEntry> = {}) {
  const entry = validateEntry({ id: `${type}-1`, type, status: 'enabled', arguments: args, ...extra })
  return createNotifier(entry, context)
}

async function sendOnce(endpoint: FakeEndpoint, type: string, args: Record<string, unknown>, reply: Reply): Promise<DeliveryOutcome> {
  endpoint.respond(() => reply)
  const n = notifier(type, args)
  return n.send(event, n.render(event), new AbortController().signal)
}

t.test('argument validation names the argument and never shows the secret', async (t) => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['slack', {}, /argument "url" must be a non-empty string/],
    ['slack', { url: 'not a url with SECRETPART' }, /argument "url" must be an absolute/],
    ['slack', { url: 'ftp://hooks.slack.com/SECRETPART' }, /argument "url" must be an http/],
    ['slack', { url: 'https://hooks.slack.com/x', message: 7 }, /argument "message" must be a string/],
    ['workplace', { group_id: 12, access_token: '' }, /argument "access_token"/],
    ['workplace', { group_id: -3, access_token: 'tok' }, /argument "group_id" must be a positive integer/],
    ['workplace', { group_id: 1.5, access_token: 'tok' }, /argument "group_id"/],
    ['workplace', { group_id: '12a', access_token: 'tok' }, /argument "group_id"/],
    ['workplace', { group_id: '000', access_token: 'tok' }, /argument "group_id"/],
    ['workplace', { group_id: 12, access_token: 'tok', base_url: 'file:///etc' }, /argument "base_url"/],
    ['webhook', { url: 'https://x.test/h', headers: ['a'] }, /argument "headers" must be an object/],
    ['webhook', { url: 'https://x.test/h', headers: { 'bad name': 'v' } }, /invalid header name/],
    ['webhook', { url: 'https://x.test/h', headers: { 'Content-Type': 'text/plain' } }, /may not set Content-Type/],
    ['webhook', { url: 'https://x.test/h', headers: { 'X-Aim-Signature': 'forged' } }, /may not set/],
    ['webhook', { url: 'https://x.test/h', headers: { Authorization: 'Bearer SECRETPART\r\nX: y' } }, /value of Authorization must be a string without line breaks/],
    ['webhook', { url: 'https://x.test/h', secret: '' }, /argument "secret" must be a non-empty string/],
  ]
  for (const [type, args, message] of bad) {
    const error = t.throws(() => validateEntry({ id: 'n1', type, status: 'enabled', arguments: args }), { code: 'AIM_STATUS_INVALID_NOTIFIER', message }) as unknown as Error
    t.notMatch(error.message, /SECRETPART/, 'the error does not echo the value')
  }
  t.throws(() => validateEntry({ id: 'n1', type: 'slack', status: 'enabled', arguments: { url: 'https://hooks.slack.com/x', message: '{run.nope}' } }), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
})

t.test('arguments are normalised as Aim stores them', async (t) => {
  const workplace = findNotifierType('workplace')!
  t.same(workplace.validate({ group_id: '123456789012', access_token: 'tok' }), { group_id: 123456789012, access_token: 'tok' })
  // Past 2^53 a number would lose digits: the exact digits are kept.
  t.same(workplace.validate({ group_id: '98765432109876543210', access_token: 'tok' })['group_id'], '98765432109876543210')
  t.equal(workplace.validate({ group_id: 5, access_token: 'tok', base_url: 'http://127.0.0.1:9/' })['base_url'], 'http://127.0.0.1:9')
  t.same(findNotifierType('slack')!.validate({ url: 'https://hooks.slack.com/a', message: 'hi {run.hash}', extra: 1 }), { url: 'https://hooks.slack.com/a', message: 'hi {run.hash}', extra: 1 })
})

t.test('secrets are redacted when an entry is shown', async (t) => {
  const shown = JSON.stringify(
    redactEntry({
      id: 'w',
      type: 'webhook',
      status: 'enabled',
      arguments: { url: `https://hooks.example.com${SLACK_PATH}`, secret: 'signing-secret-0123456789', headers: { Authorization: 'Bearer abcdefghijklmnopqrstuvwxyz' } },
    }),
  )
  t.notMatch(shown, /SECRET|signing-secret-0123456789|abcdefghijklmnopqrstuvwxyz/)
  t.match(shown, /hooks\.example\.com/)
  t.same(redactHeaders({ Authorization: 'Bearer abcdefghijklmnopqrstuvwxyz', 'X-Short': 'v' }), { Authorization: '…wxyz', 'X-Short': '…' })
  t.notMatch(JSON.stringify(redactEntry({ id: 'p', type: 'workplace', status: 'enabled', arguments: { group_id: 1, access_token: TOKEN } })), new RegExp(TOKEN))
})

t.test('slack: the exact request, and what each answer means', async (t) => {
  const server = await startEndpoint()
  t.teardown(() => server.close())
  const url = `${server.base}${SLACK_PATH}`
  const delivered = await sendOnce(server, 'slack', { url, message: 'Run {run.hash} is late by {run.overdue}s' }, slackReply())
  t.same(delivered, { kind: 'delivered', detail: 'HTTP 200' })
  const request = server.requests[0]!
  t.equal(request.method, 'POST')
  t.equal(request.url, SLACK_PATH)
  t.equal(request.headers['content-type'], 'application/json')
  t.equal(request.body, JSON.stringify({ text: 'Run abcdef0123456789abcdef01 is late by 31.5s' }))

  // Without a message, Aim's default text.
  await sendOnce(server, 'slack', { url }, slackReply())
  t.same(JSON.parse(server.requests[1]!.body), { text: "❗️ Something wrong with Run 'abcdef0123456789abcdef01'. Please check. ❗️" })

  const cases: [Reply, DeliveryOutcome['kind'], RegExp][] = [
    [slackReply(404, 'no_service'), 'permanent', /HTTP 404: no_service/],
    [slackReply(404, 'channel_not_found'), 'permanent', /channel_not_found/],
    [slackReply(403, 'invalid_token'), 'permanent', /HTTP 403: invalid_token/],
    [slackReply(400, 'invalid_payload'), 'permanent', /invalid_payload/],
    [slackReply(410, 'channel_is_archived'), 'permanent', /HTTP 410: channel_is_archived/],
    [slackReply(200, '<html>login</html>'), 'permanent', /without Slack's "ok"/],
    [slackReply(500, 'rollup_error'), 'transient', /HTTP 500: rollup_error/],
    [slackReply(302, '', { Location: 'http://127.0.0.1:1/elsewhere' }), 'permanent', /HTTP 302/],
  ]
  for (const [reply, kind, error] of cases) {
    const outcome = await sendOnce(server, 'slack', { url }, reply)
    t.equal(outcome.kind, kind, `${JSON.stringify(reply)} is ${kind}`)
    t.match((outcome as { error: string }).error, error)
    t.notMatch((outcome as { error: string }).error, /SECRET/, 'the webhook path is never shown')
  }
  t.equal(server.requests.length, 2 + cases.length, 'one request per send: a redirect is not followed')

  const limited = await sendOnce(server, 'slack', { url }, slackReply(429, 'rate_limited', { 'Retry-After': '7' }))
  t.same(limited, { kind: 'transient', error: `HTTP 429: rate_limited (${server.base}/…CRET)`, retryAfterMs: 7000 })
})

t.test('workplace: the exact Graph API request, and its error codes', async (t) => {
  const server = await startEndpoint(() => graphOk())
  t.teardown(() => server.close())
  const args = { group_id: '1234567890', access_token: TOKEN, base_url: server.base, message: 'stalled: {run.hash}' }
  t.same(await sendOnce(server, 'workplace', args, graphOk()), { kind: 'delivered', detail: 'HTTP 200' })
  const request = server.requests[0]!
  t.equal(request.method, 'POST')
  t.equal(request.path, '/v14.0/1234567890/feed')
  t.same([...request.query.entries()], [['access_token', TOKEN]])
  t.equal(request.headers['content-type'], 'application/json')
  t.equal(request.body, JSON.stringify({ message: 'stalled: abcdef0123456789abcdef01' }))

  const cases: [Reply, DeliveryOutcome['kind'], RegExp][] = [
    [graphError(400, 190, 'OAuthException', 'Error validating access token'), 'permanent', /HTTP 400: Graph error 190 \(OAuthException\): Error validating access token/],
    [graphError(403, 200, 'OAuthException', 'Permissions error'), 'permanent', /Graph error 200/],
    [graphError(400, 10, 'OAuthException'), 'permanent', /Graph error 10/],
    [graphError(400, 100, 'GraphMethodException', 'Unsupported post request'), 'permanent', /Graph error 100/],
    [graphError(400, 4, 'OAuthException', 'Application request limit reached'), 'transient', /Graph error 4/],
    [graphError(403, 17, 'OAuthException', 'User request limit reached'), 'transient', /Graph error 17/],
    [graphError(400, 32), 'transient', /Graph error 32/],
    [graphError(400, 613), 'transient', /Graph error 613/],
    [{ status: 400, body: { error: { code: 9999, message: 'odd', is_transient: true } } }, 'transient', /Graph error 9999/],
    [graphError(500, 2, 'OAuthException', 'Service temporarily unavailable'), 'transient', /Graph error 2/],
    [{ status: 502, body: '<html>bad gateway</html>' }, 'transient', /HTTP 502/],
    [{ status: 401, body: 'not json' }, 'permanent', /HTTP 401: not json/],
  ]
  for (const [reply, kind, error] of cases) {
    const outcome = await sendOnce(server, 'workplace', args, reply)
    t.equal(outcome.kind, kind, `${JSON.stringify(reply)} is ${kind}`)
    t.match((outcome as { error: string }).error, error)
    t.notMatch((outcome as { error: string }).error, new RegExp(TOKEN), 'the token is never shown')
  }
  const limited = await sendOnce(server, 'workplace', args, { status: 400, body: { error: { code: 613, message: 'Calls to this api have exceeded the rate limit.' } }, headers: { 'Retry-After': '2' } })
  t.equal((limited as { retryAfterMs?: number }).retryAfterMs, 2000)

  // A group id too long for a number keeps its digits in the path.
  await sendOnce(server, 'workplace', { ...args, group_id: '98765432109876543210' }, graphOk())
  t.equal(server.requests.at(-1)!.path, '/v14.0/98765432109876543210/feed')
})

t.test('webhook: the document, headers and a signature the receiver can verify', async (t) => {
  const server = await startEndpoint(() => ({ status: 204 }))
  t.teardown(() => server.close())
  const secret = 'whsec_0123456789abcdef'
  const args = { url: `${server.base}/hooks/aim?team=ml`, secret, headers: { Authorization: 'Bearer tok-123', 'X-Team': 'ml' }, message: '{run.name} stalled' }
  t.same(await sendOnce(server, 'webhook', args, { status: 204 }), { kind: 'delivered', detail: 'HTTP 204' })
  const request = server.requests[0]!
  t.equal(request.method, 'POST')
  t.equal(request.url, '/hooks/aim?team=ml')
  t.equal(request.headers['authorization'], 'Bearer tok-123')
  t.equal(request.headers['x-team'], 'ml')
  t.equal(request.headers['content-type'], 'application/json')
  // The receiver's side: HMAC of the raw body, compared in constant time.
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(request.body).digest('hex')}`)
  const received = Buffer.from(String(request.headers[SIGNATURE_HEADER.toLowerCase()]))
  t.ok(received.length === expected.length && timingSafeEqual(received, expected), 'signature verifies')
  t.same(JSON.parse(request.body), {
    version: 1,
    event: 'stalled',
    key: 'abcdef0123456789abcdef01/stalled/2',
    at: '2026-11-28T12:00:00.000Z',
    message: 'bert stalled',
    run: {
      hash: 'abcdef0123456789abcdef01',
      name: 'bert',
      experiment: 'exp',
      status: 'stalled',
      startedAt: '2026-11-28T11:00:00.000Z',
      lastProgressAt: '2026-11-28T11:58:00.000Z',
      expectNextIn: 60,
      deadlineAt: '2026-11-28T11:59:00.000Z',
      grace: 30,
      episode: 2,
    },
    repo: '/data/repo',
    host: 'gpu-1',
    pid: 4242,
    overdueSeconds: 31.5,
  })

  // Unsigned without a secret; a finished event has no deadline and no overdue time.
  const finished: RunEvent = { ...event, kind: 'finished', key: 'h/finished', run: { ...event.run, status: 'finished', deadlineAt: null }, overdueSeconds: undefined }
  const plain = notifier('webhook', { url: `${server.base}/plain` }, { events: ['finished'] })
  t.equal((await plain.send(finished, plain.render(finished), new AbortController().signal)).kind, 'delivered')
  const second = server.requests[1]!
  t.equal(second.headers[SIGNATURE_HEADER.toLowerCase()], undefined)
  t.match(JSON.parse(second.body), { event: 'finished', run: { deadlineAt: null }, overdueSeconds: null, message: "Run 'abcdef0123456789abcdef01' finished without error." })

  const rejected = await sendOnce(server, 'webhook', args, { status: 401, body: 'bad signature' })
  t.same(rejected, { kind: 'permanent', error: `HTTP 401: bad signature (${server.base}/…m=ml)` })
})

const T = Date.UTC(2026, 10, 28, 12, 0, 0)
const rankedEvent: RunEvent = {
  ...event,
  run: {
    ...event.run,
    worldSize: 4,
    finishOn: 'all',
    ranks: [
      { rank: 0, host: 'gpu-1', pid: 10, status: 'stalled', lastProgressAt: T - 120_000, expectNextIn: 30, deadlineAt: T - 60_000, session: 'lost' },
      { rank: 1, host: 'gpu-2', pid: 11, status: 'running', lastProgressAt: T - 1000, expectNextIn: 30, deadlineAt: T + 29_000, session: 'open' },
      { rank: 2, host: 'gpu-3', pid: 12, status: 'stalled', lastProgressAt: T - 200_000, expectNextIn: 30, deadlineAt: T - 170_000, session: 'open' },
      { rank: 3, host: 'gpu-4', pid: 13, status: 'finished', lastProgressAt: T - 5000, expectNextIn: 0, deadlineAt: null, session: 'ended' },
    ],
  },
}

t.test('webhook: a run of many ranks carries its ranks and silent ranks; a remote run its origin', async (t) => {
  const server = await startEndpoint(() => ({ status: 204 }))
  t.teardown(() => server.close())
  const n = notifier('webhook', { url: `${server.base}/hook` })
  t.equal((await n.send(rankedEvent, n.render(rankedEvent), new AbortController().signal)).kind, 'delivered')
  const body = JSON.parse(server.requests[0]!.body) as { message: string; run: Record<string, unknown> }
  t.equal(body.message, "❗️ Something wrong with Run 'abcdef0123456789abcdef01'. Please check. ❗️ (silent ranks: 2 (gpu-3), 0 (gpu-1))", 'the default stall text names the silent ranks')
  t.match(body.run, { worldSize: 4, finishOn: 'all', silentRanks: [2, 0] })
  t.same((body.run['ranks'] as unknown[])[2], { rank: 2, host: 'gpu-3', pid: 12, status: 'stalled', lastProgressAt: '2026-11-28T11:56:40.000Z', expectNextIn: 30, deadlineAt: '2026-11-28T11:57:10.000Z', session: 'open' })
  t.same((body.run['ranks'] as { deadlineAt: unknown }[])[3]?.deadlineAt, null)
  t.notOk('origin' in body.run)

  const remote: RunEvent = { ...event, run: { ...event.run, origin: { host: 'laptop', pid: 77, via: 'tcp', session: 'open' } } }
  t.equal((await n.send(remote, n.render(remote), new AbortController().signal)).kind, 'delivered')
  const second = JSON.parse(server.requests[1]!.body) as { message: string; run: Record<string, unknown> }
  t.same(second.run['origin'], { host: 'laptop', pid: 77, via: 'tcp', session: 'open' })
  t.notOk('ranks' in second.run || 'silentRanks' in second.run || 'worldSize' in second.run, 'no rank fields for a run of one process')
  t.equal(second.message, "❗️ Something wrong with Run 'abcdef0123456789abcdef01'. Please check. ❗️", "a plain run keeps Aim's stall message")

  const own = notifier('webhook', { url: `${server.base}/hook`, message: '{run.hash} is stuck' })
  t.equal(own.render(rankedEvent), 'abcdef0123456789abcdef01 is stuck', "a message of the entry's own is not extended")
  const slack = notifier('slack', { url: `https://hooks.slack.com${SLACK_PATH}`, message: AIM_DEFAULT_MESSAGE })
  t.match(slack.render(rankedEvent), /Please check\. ❗️ \(silent ranks: 2 \(gpu-3\), 0 \(gpu-1\)\)$/, "an Aim type with Aim's stored default gains the ranks too")
  t.equal(slack.render(event), "❗️ Something wrong with Run 'abcdef0123456789abcdef01'. Please check. ❗️")
})

t.test('http: timeouts, refused connections, aborts and Retry-After', async (t) => {
  const server = await startEndpoint(() => 'hang')
  t.teardown(() => server.close())
  const url = `${server.base}/token/SECRETPART`
  const timedOut = await postJson({ url, body: '{}', timeoutMs: 150 })
  t.same(timedOut, { kind: 'transient', error: `no answer within 150 ms (${server.base}/…PART)` })

  const controller = new AbortController()
  const pending = postJson({ url, body: '{}', signal: controller.signal })
  await server.waitForRequests(2)
  controller.abort()
  t.same(await pending, { kind: 'transient', error: `aborted (${server.base}/…PART)` })

  // A port nobody listens on: refused, transient, the URL not shown.
  const closed = http.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const refused = await postJson({ url: `http://127.0.0.1:${port}/SECRETPART`, body: '{}' })
  t.equal(refused.kind, 'transient')
  t.match((refused as { error: string }).error, /^network error ECONNREFUSED \(http:\/\/127\.0\.0\.1:\d+\/…PART\)$/)

  // A body far over the read limit: the status line still decides.
  server.respond(() => ({ status: 503, body: 'x'.repeat(200_000) }))
  const big = await postJson({ url, body: '{}' })
  t.equal(big.kind, 'transient')
  t.match((big as { error: string }).error, /^HTTP 503 \(/)

  t.equal(parseRetryAfter('12'), 12_000)
  t.equal(parseRetryAfter(' 0 '), 0)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.UTC(2015, 9, 21, 7, 28, 0)), 10_000)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.UTC(2015, 9, 21, 7, 29, 0)), 0, 'a past date means now')
  t.equal(parseRetryAfter('soon'), undefined)
  t.equal(parseRetryAfter(null), undefined)
  t.equal(
    scrubSecrets(`post to ${url} with token abcdefghijklmnopq`, url, ['abcdefghijklmnopq', 'ml']),
    `post to ${server.base}/…PART with token …nopq`,
    'short values are not searched for; the last 4 characters at most',
  )
})
