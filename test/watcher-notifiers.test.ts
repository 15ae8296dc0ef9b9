// Notifiers through a running watcher: configuration followed without restart, real loopback
// endpoints answering like Slack, the registry on the Watcher.
import t from 'tap'
import { eventually } from './support/eventually.js'
import { once } from 'node:events'
import { Watcher } from '../lib/watcher.js'
import { tempRepo } from './support/temp-repo.js'
import type { DeliveryRecord as DeliveryReport } from '../lib/notify/delivery-record.js'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'

// Not about daemons: the watchers opened here start none (the default would start one per repo).
process.env['AIM_STATUS_DAEMON'] = '0'

t.test('a Slack notifier added while the watcher runs receives the next stall, once', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  const run = await watcher.watch({ hash: 'hot_reload', grace: 0.05 })

  const entry = await watcher.addNotifier({ type: 'slack', arguments: { url: `${slack.base}/services/T0/B0/secret-token-123`, message: 'stuck: {run.hash} ({run.overdue}s late)' } })
  const listed = await watcher.listNotifiers()
  t.same(
    listed.map((n) => [n.id, n.type, n.status]),
    [[entry.id, 'slack', 'enabled']],
  )
  t.notMatch(JSON.stringify(listed), /secret-token-123/, 'the webhook URL is never listed in full')

  const notified = new Promise<DeliveryReport>((resolve) => {
    watcher.on('notified', (r: DeliveryReport) => {
      if (r.notifierId === entry.id) resolve(r)
    })
  })
  // The running watcher follows config.json without a restart: wait until it uses the new entry.
  await eventually(async () => (await watcher.activeNotifiers()).some((n) => n.id === entry.id), 'the watcher uses the new notifier')
  t.same(
    (await watcher.activeNotifiers()).map((n) => n.id),
    [entry.id],
    'exactly the configured notifier: the default logger steps aside',
  )
  run.reportProgress(0.05)
  const report = await notified
  t.equal(report.eventKind, 'stalled')
  const request = await slack.waitForRequests(1)
  t.equal(request.method, 'POST')
  t.equal(request.path, '/services/T0/B0/secret-token-123')
  t.equal(request.headers['content-type'], 'application/json')
  t.match(JSON.parse(request.body), { text: /^stuck: hot_reload \(\d+\.\d+s late\)$/ })
  // Once per episode: recovering and waiting shows no second request for the same stall.
  const recovered = once(run as never, 'recovered')
  run.reportProgress(0)
  await recovered
  await slack.waitForRequests(2)
  t.equal(slack.requests.filter((r) => JSON.parse(r.body).text.startsWith('stuck')).length, 1, 'one message for one stall')

  await watcher.disableNotifier(entry.id)
  t.equal((await watcher.listNotifiers())[0]?.status, 'disabled')
  await t.rejects(watcher.removeNotifier('no-such-id'), { code: 'AIM_STATUS_UNKNOWN_NOTIFIER' })
  await watcher.removeNotifier(entry.id)
  t.same(await watcher.listNotifiers(), [])
})

t.test('testNotifiers sends through each enabled notifier and reports each outcome', async (t) => {
  const good = await startEndpoint(() => slackReply())
  const gone = await startEndpoint(() => slackReply(404, 'no_service'))
  t.teardown(async () => {
    await good.close()
    await gone.close()
  })
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  const a = await watcher.addNotifier({ type: 'slack', arguments: { url: `${good.base}/a` } })
  const b = await watcher.addNotifier({ type: 'slack', arguments: { url: `${gone.base}/b` } })
  const results = await watcher.testNotifiers()
  const byId = new Map(results.map((r) => [r.id, r.outcome.kind]))
  t.equal(byId.get(a.id), 'delivered')
  t.equal(byId.get(b.id), 'permanent')
})
