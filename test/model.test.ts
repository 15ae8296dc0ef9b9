import t from 'tap'
import { ManualClock } from '../lib/clock.js'
import { RepoActor } from '../lib/actor/actor.js'
import { checkinEvent } from '../lib/daemon/aim-runs.js'
import { RUN_EVENT_KINDS, SLOT_DEADLINE, SLOT_LAST_PROGRESS, SLOT_LENGTH, createProgressSlot, eventKey, parseEventKey, type EventKeyParts, type RunEvent } from '../lib/model.js'
import { webhookDocument } from '../lib/notify/types/webhook.js'
import { addNotifier, testNotifiers } from '../lib/notify/manage.js'
import { startEndpoint } from './support/fake-endpoints.js'
import { tempRepo } from './support/temp-repo.js'

t.test('eventKey builds the documented formats', async (t) => {
  t.equal(eventKey({ source: 'node', hash: 'a1b2c3', startedAt: 1718000000000, kind: 'started' }), 'a1b2c3@1718000000000/started')
  t.equal(eventKey({ source: 'node', hash: 'a1b2c3', startedAt: 1718000000000, kind: 'failed' }), 'a1b2c3@1718000000000/failed')
  t.equal(eventKey({ source: 'node', hash: 'a1b2c3', startedAt: 1718000000000, kind: 'stalled', episode: 2 }), 'a1b2c3@1718000000000/stalled/2')
  t.equal(eventKey({ source: 'node', hash: 'r', startedAt: 1718000000000.6, kind: 'recovered', episode: 1 }), 'r@1718000000001/recovered/1', 'start time in whole ms')
  t.equal(eventKey({ source: 'aim', hash: 'a1b2c3', kind: 'stalled', idx: 7 }), 'a1b2c3@aim/stalled/7')
})

t.test('parseEventKey reads back every kind of both sources', async (t) => {
  const all: EventKeyParts[] = []
  for (const kind of RUN_EVENT_KINDS) {
    all.push(kind === 'stalled' || kind === 'recovered' ? { source: 'node', hash: 'h_1', startedAt: 1718000000123, kind, episode: 3 } : { source: 'node', hash: 'h_1', startedAt: 1718000000123, kind })
    all.push({ source: 'aim', hash: 'H9', kind, idx: 0 })
    all.push({ source: 'aim', hash: 'H9', kind, idx: 9007199254740991 })
  }
  for (const parts of all) t.same(parseEventKey(eventKey(parts)), parts, eventKey(parts))
})

t.test('parseEventKey refuses what eventKey never builds', async (t) => {
  for (const key of [
    '',
    'run1/stalled/1',
    'a@1/stalled',
    'a@1/finished/2',
    'a@aim/stalled',
    'a@x/started',
    'a@1/paused',
    'a-b@1/started',
    'a@1/started/',
    'a@99999999999999999999/started',
    `${'h'.repeat(65)}@1/started`,
  ]) {
    t.equal(parseEventKey(key), null, JSON.stringify(key))
  }
})

t.test("the keys events carry are the builder's, and the webhook document carries them unchanged", async (t) => {
  const clock = new ManualClock(1_718_000_000_000)
  const events: RunEvent[] = []
  const actor = new RepoActor({ clock, repo: '/r', host: 'h', pid: 1, onEvent: (e) => events.push(e) })
  actor.open({ hash: 'run1', grace: 1, at: clock.now() })
  actor.progress('run1', clock.now(), 2)
  clock.advance(3500)
  actor.progress('run1', clock.now(), 0)
  actor.finish('run1', clock.now())
  actor.close()
  t.same(
    events.map((e) => e.key),
    ['run1@1718000000000/started', 'run1@1718000000000/stalled/1', 'run1@1718000000000/recovered/1', 'run1@1718000000000/finished'],
  )
  for (const event of events) t.match(parseEventKey(event.key), { source: 'node', hash: 'run1', startedAt: 1_718_000_000_000, kind: event.kind })
  t.equal(webhookDocument(events[1] as RunEvent, 'm').key, 'run1@1718000000000/stalled/1')

  const aim = checkinEvent(
    { kind: 'stalled', hash: 'py1', idx: 4, flag: 'check_in', expectNextIn: 5, firstSeenAt: 1000, at: 40_000, overdueSeconds: 4, alreadyNotified: false },
    { repo: '/r', host: 'h', pid: 1, graceSeconds: 30 },
  )
  t.equal(aim.key, 'py1@aim/stalled/4')
  t.same(parseEventKey(aim.key), { source: 'aim', hash: 'py1', kind: 'stalled', idx: 4 })
})

t.test("a notifier test's webhook document carries a key of the documented format", async (t) => {
  const endpoint = await startEndpoint(() => ({ status: 204 }))
  t.teardown(() => endpoint.close())
  const { repo } = tempRepo(t)
  await addNotifier(repo, { type: 'webhook', arguments: { url: `${endpoint.base}/hook` } })
  t.match(await testNotifiers(repo), [{ outcome: { kind: 'delivered' } }])
  const document = JSON.parse((await endpoint.waitForRequests(1)).body) as { key: string }
  t.match(parseEventKey(document.key), { source: 'node', hash: 'notifier_test', kind: 'stalled', episode: 1 })
})

t.test('a progress slot starts with its time and no deadline', async (t) => {
  const slot = createProgressSlot(1234.5)
  t.equal(slot.length, SLOT_LENGTH)
  t.ok(slot.buffer instanceof SharedArrayBuffer)
  t.equal(slot[SLOT_LAST_PROGRESS], 1234.5)
  t.equal(slot[SLOT_DEADLINE], Number.POSITIVE_INFINITY)
})
