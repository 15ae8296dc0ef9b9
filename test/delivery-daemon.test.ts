// Nothing lost, nothing twice, with a daemon running beside a training process (both in this
// process, on the real clock, real files, leases and loopback servers): a Watcher closed while
// a notification waits for a retry hands it to the daemon; 25 Node runs announced `started`
// once each, although the daemon reads their check-ins too.
import t, { type Test } from 'tap'
import { Daemon } from '../lib/daemon/daemon.js'
import { Watcher } from '../lib/watcher.js'
import { tempRepo } from './support/temp-repo.js'
import { slackReply, startEndpoint } from './support/fake-endpoints.js'
import { makeRepo, useSlack, type LogLine } from './fixtures/daemon/helpers.js'
import { eventually } from './support/eventually.js'

/** A daemon in this process on the real clock, its JSON log parsed. */
async function startInProcessDaemon(t: Test, root: string) {
  const lines: LogLine[] = []
  const waiters: Array<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = []
  const daemon = new Daemon({
    repos: [root],
    staleMs: 2000,
    pollMs: 50,
    jsonLogs: true,
    // Every transition logged, sent or not: a Node run taken for a Python one must show.
    logLevel: 'debug',
    writeLine: (text) => {
      const line = JSON.parse(text) as LogLine
      lines.push(line)
      for (const w of [...waiters])
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
    },
  })
  await daemon.start()
  return {
    daemon,
    lines,
    waitEvent(match: (line: LogLine) => boolean): Promise<LogLine> {
      const found = lines.find(match)
      return found !== undefined ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ match, resolve }))
    },
    async settle() {
      for (const repo of daemon.repos) {
        await repo.scanNow()
        await repo.aimRuns?.idle()
      }
    },
  }
}

t.test('close() while a failure waits for a retry: the daemon delivers it (0 lost)', async (t) => {
  // 503 with a retry 2 s away: the watcher closes long before it.
  const slack = await startEndpoint((_request, index) => (index === 0 ? slackReply(503, 'busy', { 'Retry-After': '2' }) : slackReply()))
  t.teardown(() => slack.close())
  const { repo, closeFirst } = tempRepo(t)
  makeRepo(repo)
  await useSlack(repo, slack.base, ['failed'])
  const d = await startInProcessDaemon(t, repo)
  closeFirst(() => d.daemon.close())
  await d.waitEvent((l) => l.event === 'active')
  const watcher = await Watcher.open({ repo, keepAlive: true, daemon: false })
  closeFirst(() => watcher.close())
  const retrying = new Promise<{ eventKey: string }>((resolve) => watcher.once('retrying', resolve))
  const run = await watcher.watch({ hash: 'closed_mid_retry' })
  await run.reportFailure('OOM')
  const { eventKey } = await retrying
  await watcher.close()
  t.equal(slack.requests.length, 1, 'the watcher sent once and let go')
  const notified = await d.waitEvent((l) => l.event === 'notified' && l['key'] === eventKey)
  t.match(notified, { eventKind: 'failed', hash: 'closed_mid_retry', attempts: 2 }, 'the daemon carried the attempt count on')
  await d.settle()
  t.equal(slack.requests.length, 2, 'delivered once more, by the daemon: nothing lost, no third copy')
  t.ok(
    slack.requests.every((r) => JSON.parse(r.body).text.includes('OOM')),
    'the failure says why',
  )
})

t.test('a started listener, 25 Node runs and a daemon reading their check-ins: each run announced once', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const { repo, closeFirst } = tempRepo(t)
  makeRepo(repo)
  await useSlack(repo, slack.base, ['started'])
  const d = await startInProcessDaemon(t, repo)
  closeFirst(() => d.daemon.close())
  await d.waitEvent((l) => l.event === 'active')
  const watcher = await Watcher.open({ repo, keepAlive: true, daemon: false })
  closeFirst(() => watcher.close())
  const hashes = Array.from({ length: 25 }, (_, i) => `node_run_${String(i).padStart(2, '0')}`)
  // Opened while the daemon scans every 50 ms: each run's check-in lands between two scans.
  const runs = []
  for (const hash of hashes) {
    runs.push(await watcher.watch({ hash, checkins: true }))
    runs.at(-1)?.reportProgress(60)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const announced = () => slack.requests.map((r) => /Run '(\w+)' started/.exec(JSON.parse(r.body).text)?.[1])
  await eventually(() => announced().length >= hashes.length, 'every run announced once')
  // A few more scans: a duplicate would come from the daemon reading the check-ins.
  for (let i = 0; i < 5; i++) await d.settle()
  await new Promise((resolve) => setTimeout(resolve, 500))
  const counts = new Map<string, number>()
  for (const hash of announced()) counts.set(String(hash), (counts.get(String(hash)) ?? 0) + 1)
  t.same([...counts.keys()].sort(), hashes, 'every run announced')
  const duplicates = [...counts.values()].filter((n) => n > 1).length
  t.equal(duplicates, 0, '0 duplicates')
  t.same(
    d.lines.filter((l) => l.event === 'started' && l['source'] === 'aim-checkin'),
    [],
    'no Node run taken for a Python run',
  )
  t.comment(`started notifications: ${slack.requests.length} for ${hashes.length} runs`)
  for (const run of runs) await run.reportSuccessfulFinish()
})
