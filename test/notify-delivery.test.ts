import t, { type Test } from 'tap'
import { eventually } from './support/eventually.js'
import { ManualClock, systemClock } from '../lib/clock.js'
import type { Notifier, NotifierEntry } from '../lib/notify/contract.js'
import type { RunEvent, RunEventKind } from '../lib/model.js'
import { createNotifier, validateEntry } from '../lib/notify/registry.js'
import { backoffDelay, DeliveryEngine, DELIVERY_DEFAULTS, type DeliveryOptions, type OutboxState } from '../lib/notify/delivery.js'
import { applyRecord, emptyStats, type DeliveryRecord as DeliveryReport, type NotifierStats } from '../lib/notify/delivery-record.js'
import { slackReply, startEndpoint, type FakeEndpoint, type Reply } from './support/fake-endpoints.js'

const context = { writeLine: () => {} }

function makeEvent(hash: string, kind: RunEventKind = 'stalled', episode = 1): RunEvent {
  return {
    kind,
    key: `${hash}/${kind}/${episode}`,
    at: 1_700_000_000_000,
    run: { hash, status: kind === 'stalled' ? 'stalled' : 'failed', startedAt: 0, lastProgressAt: 0, expectNextIn: 5, deadlineAt: 5000, grace: 1, episode },
    repo: '/repo',
    host: 'h',
    pid: 1,
  }
}

function slackNotifier(id: string, endpoint: FakeEndpoint, extra: Partial<NotifierEntry> = {}): Notifier {
  const entry = validateEntry({ id, type: 'slack', status: 'enabled', arguments: { url: `${endpoint.base}/services/${id}`, message: '{run.hash} {event}' }, ...extra })
  return createNotifier(entry, context)
}

/** What the records of one notifier add up to (the status file applies the same function). */
const statsOf = (reports: readonly DeliveryReport[], id: string): NotifierStats => reports.filter((r) => r.notifierId === id).reduce(applyRecord, emptyStats())

/** Replies from a script, one per request; the last one repeats. */
const script =
  (...replies: Reply[]) =>
  (_request: unknown, index: number): Reply =>
    replies[Math.min(index, replies.length - 1)]!

interface Harness {
  engine: DeliveryEngine
  clock: ManualClock
  notifiers: Notifier[]
  persisted: OutboxState[]
  log: string[]
  reports: DeliveryReport[]
  /** The next report not yet taken. */
  nextReport(): Promise<DeliveryReport>
}

/** The engine's options, with `persist(state)`: what a commit would write (the state at that moment). */
type HarnessOptions = Partial<DeliveryOptions> & { persist?: (state: OutboxState) => Promise<void> }

function harness(t: Test, notifiers: Notifier[], { persist, ...options }: HarnessOptions = {}, restored?: OutboxState): Harness {
  const clock = options.clock instanceof ManualClock ? options.clock : new ManualClock()
  const reports: DeliveryReport[] = []
  const persisted: OutboxState[] = []
  const log: string[] = []
  let taken = 0
  let wake: (() => void) | null = null
  const engine: DeliveryEngine = new DeliveryEngine(
    {
      clock,
      notifiers: () => h.notifiers,
      commit: async (): Promise<void> => {
        const state: OutboxState = engine.state()
        if (persist !== undefined) return persist(state)
        persisted.push(JSON.parse(JSON.stringify(state)) as OutboxState)
        log.push(`persist ${state.pending.length}`)
      },
      random: () => 0.5, // no jitter: waits are exactly initialMs * factor^(n-1)
      onOutcome: (report) => {
        reports.push(report)
        log.push(`${report.kind} ${report.notifierId}`)
        wake?.()
      },
      ...options,
    },
    restored,
  )
  const h: Harness = {
    engine,
    clock,
    notifiers,
    persisted,
    log,
    reports,
    async nextReport() {
      while (reports.length <= taken) await new Promise<void>((resolve) => (wake = resolve))
      return reports[taken++]!
    },
  }
  t.teardown(() => engine.close())
  return h
}

t.test('500 three times then 200: delivered once after 4 attempts, on the backoff schedule', async (t) => {
  const server = await startEndpoint(script(slackReply(500, 'rollup_error'), slackReply(500, 'x'), slackReply(503, 'y'), slackReply()))
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)])
  const start = h.clock.now()
  t.same(await h.engine.accept(makeEvent('run1')), ['s1'])
  const attemptsAt: number[] = []
  for (const wait of [500, 750, 1125]) {
    const report = await h.nextReport()
    attemptsAt.push(report.at - start)
    t.equal(report.kind, 'retrying')
    if (report.kind !== 'retrying') return
    t.equal(report.nextAttemptAt! - report.at, wait, `waits ${wait} ms`)
    h.clock.advance(wait - 1)
    t.equal(server.requests.length, attemptsAt.length, 'no attempt before the wait is over')
    h.clock.advance(1)
  }
  const done = await h.nextReport()
  attemptsAt.push(done.at - start)
  t.match(done, { kind: 'notified', notifierId: 's1', eventKey: 'run1/stalled/1', attempts: 4 })
  t.same(attemptsAt, [0, 500, 1250, 2375], 'attempt times on the engine clock')
  t.equal(server.requests.length, 4)
  t.ok(
    server.requests.every((r) => r.body === JSON.stringify({ text: 'run1 stalled' })),
    'the same request every time',
  )
  t.match(statsOf(h.reports, 's1'), { delivered: 1, failed: 0, lastDeliveryAt: start + 2375, lastError: /HTTP 503: y/ })
  t.same(h.engine.state().pending, [])
  t.equal(h.clock.pendingTimers, 0, 'nothing left armed')
  t.comment(`attempt times (ms after accept): ${attemptsAt.join(', ')}`)
})

t.test('an owner that may no longer act sends nothing more: its items stay for the adopter', async (t) => {
  const server = await startEndpoint(script(slackReply(503, 'down'), slackReply()))
  t.teardown(() => server.close())
  let mayAct = true
  const h = harness(t, [slackNotifier('s1', server)], { mayAct: () => mayAct })
  await h.engine.accept(makeEvent('run1'))
  t.match(await h.nextReport(), { kind: 'retrying' })
  // Frozen during the wait, and adopted meanwhile: the retry falls due after waking.
  mayAct = false
  h.clock.advance(10_000)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(server.requests.length, 1, 'no second attempt')
  t.equal(h.engine.state().pending.length, 1, 'the item is still pending, as the adopter has it')
  t.equal(h.clock.pendingTimers, 0, 'nothing left armed')
  await t.rejects(h.engine.accept(makeEvent('run2')), { code: 'AIM_STATUS_CLOSED' }, 'nothing new is accepted')
})

t.test('404 no_service is permanent: one attempt, no retry', async (t) => {
  const server = await startEndpoint(() => slackReply(404, 'no_service'))
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)])
  await h.engine.accept(makeEvent('run1'))
  t.match(await h.nextReport(), { kind: 'failed', reason: 'permanent', attempts: 1, error: /HTTP 404: no_service/ })
  t.equal(h.clock.pendingTimers, 0)
  h.clock.advance(DELIVERY_DEFAULTS.budgetMs)
  t.equal(server.requests.length, 1)
  t.match(statsOf(h.reports, 's1'), { delivered: 0, failed: 1 })
  t.same(
    h.engine.state().settled.map((s) => s.result),
    ['failed'],
  )
  t.same(await h.engine.accept(makeEvent('run1')), [], 'a failed key is not queued again')
})

t.test('429 with Retry-After: waits as told, then delivers', async (t) => {
  const server = await startEndpoint(script(slackReply(429, 'rate_limited', { 'Retry-After': '3' }), slackReply()))
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)])
  await h.engine.accept(makeEvent('run1'))
  const retry = await h.nextReport()
  t.match(retry, { kind: 'retrying', error: /HTTP 429: rate_limited/ })
  if (retry.kind !== 'retrying') return
  t.equal(retry.nextAttemptAt! - retry.at, 3000, "the server's 3 s, not the 500 ms backoff")
  h.clock.advance(2999)
  t.equal(server.requests.length, 1)
  h.clock.advance(1)
  t.match(await h.nextReport(), { kind: 'notified', attempts: 2 })
})

t.test('a server that never answers times out and is retried; another notifier is not delayed', async (t) => {
  const stuck = await startEndpoint(() => 'hang')
  const healthy = await startEndpoint()
  t.teardown(() => Promise.all([stuck.close(), healthy.close()]))
  const h = harness(t, [slackNotifier('stuck', stuck), slackNotifier('healthy', healthy)], { timeoutMs: 2000 })
  t.same(await h.engine.accept(makeEvent('run1')), ['stuck', 'healthy'])
  await h.engine.accept(makeEvent('run2'))
  await stuck.waitForRequests(1)
  // Both events reach the healthy endpoint while the stuck one holds its first request.
  t.match(await h.nextReport(), { kind: 'notified', notifierId: 'healthy', eventKey: 'run1/stalled/1' })
  t.match(await h.nextReport(), { kind: 'notified', notifierId: 'healthy', eventKey: 'run2/stalled/1' })
  t.equal(stuck.requests.length, 1, 'one request in flight per notifier')
  h.clock.advance(2000)
  // It may have been delivered: the next attempt waits as long as this one was allowed, and may take three times as long.
  t.match(await h.nextReport(), { kind: 'retrying', notifierId: 'stuck', eventKey: 'run1/stalled/1', error: 'no answer within 2000 ms', attempts: 1, nextTimeoutMs: 6000 })
  stuck.respond(() => slackReply())
  h.clock.advance(1999)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(stuck.requests.length, 1, "no second copy before the timed-out attempt's own time has passed again")
  h.clock.advance(1)
  t.match(await h.nextReport(), { kind: 'notified', notifierId: 'stuck', eventKey: 'run1/stalled/1', attempts: 2 })
  t.match(await h.nextReport(), { kind: 'notified', notifierId: 'stuck', eventKey: 'run2/stalled/1', attempts: 1 })
  t.same(
    stuck.requests.map((r) => JSON.parse(r.body).text),
    ['run1 stalled', 'run1 stalled', 'run2 stalled'],
    'order kept within the notifier',
  )
  t.equal(healthy.requests.length, 2)
})

t.test('a server down for a while is delivered to when it comes back', async (t) => {
  const server = await startEndpoint()
  t.teardown(() => server.close())
  await server.stop()
  const h = harness(t, [slackNotifier('s1', server)])
  await h.engine.accept(makeEvent('run1'))
  for (let i = 0; i < 3; i++) {
    const report = await h.nextReport()
    t.match(report, { kind: 'retrying', error: /network error ECONNREFUSED/, attempts: i + 1 })
    t.notMatch((report as { error: string }).error, /services\/s1/, 'the webhook path is not shown')
    if (report.kind === 'retrying') h.clock.advanceTo(report.nextAttemptAt!)
  }
  const fourth = await h.nextReport()
  await server.start()
  // Exactly to the attempt: moving the manual clock further would also fire the attempt's timeout.
  if (fourth.kind === 'retrying') h.clock.advanceTo(fourth.nextAttemptAt!)
  t.match(await h.nextReport(), { kind: 'notified', attempts: 5 })
  t.equal(server.requests.length, 1)
})

t.test('persist happens before the send, and each outcome is persisted before it is reported', async (t) => {
  const server = await startEndpoint(script(slackReply(500, 'x'), slackReply()))
  t.teardown(() => server.close())
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const log: string[] = []
  const h = harness(t, [slackNotifier('s1', server)], {
    persist: async (state) => {
      log.push(`persist start (${server.requests.length} requests, ${state.pending.length} pending)`)
      await gate
      log.push('persist end')
    },
    onOutcome: (report) => log.push(`${report.kind} (${server.requests.length} requests)`),
  })
  let acknowledged = false
  const accepted = h.engine.accept(makeEvent('run1')).then(() => (acknowledged = true))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(server.requests.length, 0, 'no request while the accepted item is not durable')
  t.equal(acknowledged, false, 'accept() waits for persist')
  release()
  await accepted
  await server.waitForRequests(1)
  await eventually(() => log.some((line) => line.startsWith('retrying')), 'a retrying outcome')
  h.clock.advance(500)
  await server.waitForRequests(2)
  await eventually(() => log.some((line) => line.startsWith('notified')), 'a notified outcome')
  t.same(log, [
    'persist start (0 requests, 1 pending)',
    'persist end',
    'persist start (1 requests, 1 pending)',
    'persist end',
    'retrying (1 requests)',
    'persist start (2 requests, 0 pending)',
    'persist end',
    'notified (2 requests)',
  ])
})

t.test('a restored state resumes delivery and still refuses duplicates; the records of both owners add up', async (t) => {
  const server = await startEndpoint(() => slackReply(503, 'down'))
  t.teardown(() => server.close())
  const first = harness(t, [slackNotifier('s1', server)])
  await first.engine.accept(makeEvent('run1'))
  await first.engine.accept(makeEvent('run2'))
  t.match(await first.nextReport(), { kind: 'retrying', eventKey: 'run1/stalled/1' })
  await first.engine.close()
  await first.engine.close() // twice is fine
  await t.rejects(first.engine.accept(makeEvent('run3')), { code: 'AIM_STATUS_CLOSED' })
  const saved = first.persisted.at(-1)!
  t.same(saved, first.engine.state(), 'the last persisted state is the final state')
  t.same(
    saved.pending.map((p) => [p.event.key, p.attempts]),
    [
      ['run1/stalled/1', 1],
      ['run2/stalled/1', 0],
    ],
  )

  server.respond(() => slackReply())
  // An hour later: the saved wait is long over, so sending resumes at once.
  const second = harness(t, [slackNotifier('s1', server)], { clock: new ManualClock(first.clock.now() + 3_600_000) }, saved)
  t.match(await second.nextReport(), { kind: 'notified', eventKey: 'run1/stalled/1', attempts: 2 })
  t.match(await second.nextReport(), { kind: 'notified', eventKey: 'run2/stalled/1', attempts: 1 })
  t.match(statsOf([...first.reports, ...second.reports], 's1'), { delivered: 2, lastError: /HTTP 503: down/ })
  t.same(await second.engine.accept(makeEvent('run1')), [], 'delivered before: not queued again')
  t.same(await second.engine.accept(makeEvent('run1', 'stalled', 2)), ['s1'], 'a new episode is a new key')
  t.match(await second.nextReport(), { kind: 'notified', eventKey: 'run1/stalled/2' })
  t.equal(server.requests.length, 4)
})

t.test('dedupe: one item per (key, notifier), whatever the timing', async (t) => {
  const a = await startEndpoint()
  const b = await startEndpoint()
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const h = harness(t, [slackNotifier('a', a), slackNotifier('b', b, { events: ['failed'] })])
  const event = makeEvent('run1')
  const results = await Promise.all([h.engine.accept(event), h.engine.accept(event)])
  t.same(results, [['a'], []], 'b does not want stalls; the second accept finds the key pending')
  await h.nextReport()
  t.same(await h.engine.accept(event), [])
  t.same(await h.engine.accept(makeEvent('run1', 'failed')), ['a', 'b'])
  await h.nextReport()
  await h.nextReport()
  t.equal(a.requests.length, 2)
  t.equal(b.requests.length, 1)
})

t.test('only the most recent settled keys are remembered', async (t) => {
  const server = await startEndpoint()
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)], { rememberKeys: 2 })
  for (const hash of ['r1', 'r2', 'r3']) {
    await h.engine.accept(makeEvent(hash))
    await h.nextReport()
  }
  t.same(
    h.engine.state().settled.map((s) => s.key),
    ['r2/stalled/1', 'r3/stalled/1'],
  )
})

t.test('a notifier removed: its items wait out the grace period, then are dropped; disabled: dropped at its next attempt', async (t) => {
  const server = await startEndpoint(() => slackReply(500, 'x'))
  t.teardown(() => server.close())
  // Retries an hour apart: only the configuration moves these items.
  const h = harness(t, [slackNotifier('s1', server), slackNotifier('s2', server)], { backoff: { initialMs: 3_600_000, maxMs: 3_600_000 }, budgetMs: 36_000_000 })
  await h.engine.accept(makeEvent('run1'))
  await h.nextReport()
  await h.nextReport()
  await h.engine.accept(makeEvent('run2')) // queued behind run1 in each lane
  t.same(h.engine.pendingCounts(), { s1: 2, s2: 2 })

  h.notifiers.splice(0, 1) // s1 removed from the configuration
  await h.engine.notifiersChanged()
  h.clock.advance(DELIVERY_DEFAULTS.vanishGraceMs - 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(h.reports.length, 2, 'nothing dropped within the grace period')
  t.same(h.engine.pendingCounts(), { s1: 2, s2: 2 })
  h.clock.advance(1)
  t.same(
    [await h.nextReport(), await h.nextReport()].map((r) => [r.kind, r.reason, r.notifierId, r.eventKey]),
    [
      ['dropped', 'removed', 's1', 'run1/stalled/1'],
      ['dropped', 'removed', 's1', 'run2/stalled/1'],
    ],
  )
  t.match(h.reports.at(-1), { error: /removed from the configuration \(missing for 60 s\)/ })
  t.same(
    h.persisted.at(-1)!.pending.map((p) => p.notifierId),
    ['s2', 's2'],
    'persisted without them',
  )
  t.same(h.engine.pendingCounts(), { s2: 2 })
  t.match(statsOf(h.reports, 's1'), { failed: 0, dropped: 2 }, 'a drop is not a failure')

  // Disabled while waiting: found at its next attempt.
  h.notifiers[0] = slackNotifier('s2', server, { status: 'disabled' })
  const requests = server.requests.length
  h.clock.advance(3_600_000)
  t.same(
    [await h.nextReport(), await h.nextReport()].map((r) => [r.kind, r.reason, r.notifierId, r.error]),
    [
      ['dropped', 'disabled', 's2', 'notifier disabled'],
      ['dropped', 'disabled', 's2', 'notifier disabled'],
    ],
  )
  t.equal(server.requests.length, requests, 'nothing sent to a disabled notifier')
  t.same(h.engine.state().pending, [])
})

t.test('a notifier gone for a moment (config.json emptied, an entry invalid) keeps its items and delivers them when it is back', async (t) => {
  const server = await startEndpoint(script(slackReply(503, 'busy'), slackReply()))
  t.teardown(() => server.close())
  const s1 = slackNotifier('s1', server)
  let unusable = new Set<string>()
  const h = harness(t, [s1], { unusable: () => unusable })
  await h.engine.accept(makeEvent('run1'))
  t.match(await h.nextReport(), { kind: 'retrying' })
  // The file is emptied while the retry waits (an editor saving): no notifier at all.
  h.notifiers.splice(0, 1)
  await h.engine.notifiersChanged()
  h.clock.advance(30_000)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(server.requests.length, 1, 'nothing sent while it is missing')
  // Back with a typo: configured but invalid, which holds the item without a clock.
  unusable = new Set(['s1'])
  await h.engine.notifiersChanged()
  h.clock.advance(DELIVERY_DEFAULTS.vanishGraceMs * 2)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(h.engine.pendingCounts(), { s1: 1 }, 'an invalid entry keeps its items past the vanish grace')
  // Fixed.
  unusable = new Set()
  h.notifiers.push(s1)
  await h.engine.notifiersChanged()
  t.match(await h.nextReport(), { kind: 'notified', notifierId: 's1', attempts: 2 })
  t.equal(h.reports.filter((r) => r.kind === 'dropped').length, 0, 'nothing lost')
})

t.test('the retry budget: given up when the next attempt would start past it', async (t) => {
  const server = await startEndpoint(() => slackReply(500, 'x'))
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)], { budgetMs: 2000 })
  await h.engine.accept(makeEvent('run1'))
  const kinds: string[] = []
  for (;;) {
    const report = await h.nextReport()
    kinds.push(report.kind)
    if (report.kind !== 'retrying') {
      t.match(report, { kind: 'failed', reason: 'budget', attempts: 3, error: /HTTP 500: x/ })
      break
    }
    h.clock.advanceTo(report.nextAttemptAt!)
  }
  // Attempts at 0, 500, 1250; the next would be at 2375 > 2000.
  t.same(kinds, ['retrying', 'retrying', 'failed'])
  t.match(statsOf(h.reports, 's1'), { failed: 1 })
  t.equal(h.clock.pendingTimers, 0)
})

t.test('close aborts a send in flight; the item stays pending, the attempt not counted', async (t) => {
  const server = await startEndpoint(() => 'hang')
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)])
  await h.engine.accept(makeEvent('run1'))
  await server.waitForRequests(1)
  await h.engine.close()
  t.same(
    h.engine.state().pending.map((p) => [p.event.key, p.attempts]),
    [['run1/stalled/1', 0]],
  )
  t.equal(h.reports.length, 0)
  t.equal(h.clock.pendingTimers, 0)
})

t.test('a misbehaving notifier cannot break the outbox', async (t) => {
  const odd = (id: string, send: Notifier['send'], render: Notifier['render'] = () => 'text'): Notifier => ({
    entry: { id, type: 'custom', status: 'enabled', arguments: {} },
    render,
    send,
  })
  const h = harness(
    t,
    [
      odd('throws', async () => {
        throw new Error('boom')
      }),
      odd('junk', async () => 'yes' as never),
      odd('deaf', () => new Promise(() => {})), // ignores its signal
      odd(
        'badtemplate',
        async () => ({ kind: 'delivered' }),
        () => {
          throw new Error('render failed')
        },
      ),
    ],
    { timeoutMs: 1000, backoff: { initialMs: 5000 } },
  )
  await h.engine.accept(makeEvent('run1'))
  const first = [await h.nextReport(), await h.nextReport(), await h.nextReport()]
  t.same(first.map((r) => [r.notifierId, r.kind, (r as { error?: string }).error]).sort(), [
    ['badtemplate', 'failed', 'cannot render the message: render failed'],
    ['junk', 'retrying', 'the notifier returned no outcome'],
    ['throws', 'retrying', 'notifier threw: boom'],
  ])
  h.clock.advance(1000)
  t.match(await h.nextReport(), { notifierId: 'deaf', kind: 'retrying', error: 'no answer within 1000 ms' })
})

t.test('a failing persist is reported and delivery carries on', async (t) => {
  const server = await startEndpoint()
  t.teardown(() => server.close())
  const errors: unknown[] = []
  const h = harness(t, [slackNotifier('s1', server)], {
    persist: async () => {
      throw new Error('disk full')
    },
    onPersistError: (error) => errors.push(error),
  })
  await t.rejects(h.engine.accept(makeEvent('run1')), { message: 'disk full' })
  t.match(await h.nextReport(), { kind: 'notified' })
  t.equal(errors.length, 2)
})

t.test('bad options and corrupt states are refused with codes', async (t) => {
  const base = { clock: new ManualClock(), notifiers: () => [], commit: async () => {} }
  t.throws(() => new DeliveryEngine({ ...base, timeoutMs: 0 }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /`timeoutMs`.*got 0/ })
  t.throws(() => new DeliveryEngine({ ...base, backoff: { jitter: 2 } }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /backoff\.jitter/ })
  t.throws(() => new DeliveryEngine({ ...base, backoff: { factor: Number.NaN } }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /backoff\.factor/ })
  t.throws(() => new DeliveryEngine({ ...base, commit: undefined as never }), { code: 'AIM_STATUS_INVALID_OPTION', message: /`commit`/ })
  t.throws(() => new DeliveryEngine({ ...base, clock: {} as never }), { code: 'AIM_STATUS_INVALID_OPTION', message: /clock/ })
  const engine = new DeliveryEngine(base)
  await t.rejects(engine.accept({ kind: 'stalled' } as never), { code: 'AIM_STATUS_INVALID_OPTION', message: /event\.key/ })
  const item = { notifierId: 'n1', event: makeEvent('r'), acceptedAt: 0, attempts: 0, nextAttemptAt: 0, lastError: null }
  const corrupt: [unknown, RegExp][] = [
    [null, /version 1/],
    [{ version: 2 }, /version 1/],
    [{ version: 1, pending: {}, settled: [], stats: {} }, /pending and settled/],
    [{ version: 1, pending: [{ ...item, timedOut: -1 }], settled: [] }, /timedOut/],
    [{ version: 1, pending: [{ ...item, notifierId: '../../etc' }], settled: [], stats: {} }, /pending\[0\] has an invalid notifier id/],
    [{ version: 1, pending: [{ ...item, event: { key: 'k', kind: 'exploded', run: { hash: 'r' } } }], settled: [], stats: {} }, /pending\[0\]\.event\.kind/],
    [{ version: 1, pending: [{ ...item, attempts: -1 }], settled: [], stats: {} }, /attempts/],
    [{ version: 1, pending: [], settled: [{ notifierId: 'n1', key: 'k', at: 0, result: 'maybe' }], stats: {} }, /settled\[0\]/],
  ]
  for (const [state, message] of corrupt) t.throws(() => new DeliveryEngine(base, state as OutboxState), { code: 'AIM_STATUS_CORRUPT_FILE', message })
})

t.test('backoff: growth, cap and jitter bounds', async (t) => {
  const backoff = { ...DELIVERY_DEFAULTS.backoff }
  t.same(
    [1, 2, 3, 4].map((n) => backoffDelay(n, backoff, () => 0.5)),
    [500, 750, 1125, 1688],
  )
  t.equal(
    backoffDelay(40, backoff, () => 0.5),
    60_000,
    'capped',
  )
  t.equal(
    backoffDelay(1, backoff, () => 0),
    400,
    '-20 %',
  )
  t.equal(
    backoffDelay(1, backoff, () => 0.999999),
    600,
    '+20 %',
  )
})

t.test('measured on the real clock: attempt times against a failing server', async (t) => {
  const server = await startEndpoint(script(slackReply(500, 'a'), slackReply(500, 'b'), slackReply(500, 'c'), slackReply()))
  t.teardown(() => server.close())
  const h = harness(t, [slackNotifier('s1', server)], { clock: systemClock, backoff: { initialMs: 100, factor: 2, jitter: 0 } })
  await h.engine.accept(makeEvent('run1'))
  let report: DeliveryReport
  do report = await h.nextReport()
  while (report.kind === 'retrying')
  t.match(report, { kind: 'notified', attempts: 4 })
  const times = server.requests.map((r) => r.receivedAt - server.requests[0]!.receivedAt)
  const gaps = times.slice(1).map((at, i) => at - times[i]!)
  // Lower bounds only (timers never fire early; allow 2 ms for clock granularity); a generous ceiling.
  gaps.forEach((gap, i) => t.ok(gap >= 100 * 2 ** i - 2, `gap ${i + 1} is ${gap} ms, at least ${100 * 2 ** i}`))
  t.ok(times.at(-1)! < 10_000, 'all within 10 s')
  t.comment(`real attempt times (ms after the first): ${times.join(', ')}`)
})
