// The daemon with a backlog of 1,000 orphans of a dead pid to adopt, while a real training
// process is SIGKILLed: the fresh death is reported within about a poll, every orphan's run is
// adopted exactly once, and nothing is sent twice.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { eventually } from './support/eventually.js'
import { tempRepo } from './support/temp-repo.js'
import { slackReply, startEndpoint } from './support/fake-endpoints.js'
import { newOwnerId } from '../lib/state/owner.js'
import { deadOwner, makeRepo, passedAScan, runningRun, startDaemon, textsFor, useSlack, writeOwnerSnapshot } from './fixtures/daemon/helpers.js'

process.env['AIM_STATUS_DAEMON'] = '0'

const TRAIN = fileURLToPath(new URL('./fixtures/daemon/train.mjs', import.meta.url))
const ORPHANS = 1_000

t.test('1,000 orphans adopted in batches; a SIGKILL during the backlog is reported within about a poll', async (t) => {
  const repo = tempRepo(t, 'aim-status-backlog-')
  const root = makeRepo(repo.repo)
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  await useSlack(root, slack.base)
  const dead = deadOwner()
  const orphanIds: string[] = []
  for (let i = 0; i < ORPHANS; i++) {
    const owner = { ...dead, id: newOwnerId() }
    await writeOwnerSnapshot(root, owner, [runningRun(`orphan_${i}`, 3600)])
    orphanIds.push(owner.id)
  }
  const train = startChild(TRAIN, [root, 'killed_in_backlog', 'loop'])
  // Ended (not only signalled) before the folder is removed.
  repo.killFirst(train)
  await train.waitForLine('READY')
  const daemon = startDaemon([root], ['--stale-ms', '10000', '--poll-ms', '1000'])
  repo.killFirst(daemon)
  const active = await daemon.waitEvent((l) => l.event === 'active')
  await daemon.waitEvent((l) => l.event === 'adopted')
  const killedAt = Date.now()
  train.process.kill('SIGKILL')
  await train.exited
  const failed = await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'killed_in_backlog')
  const latencyMs = Date.parse(failed['time'] as string) - killedAt
  const isOrphan = new Set(orphanIds)
  const adoptedOrphans = () => daemon.events().filter((l) => l.event === 'adopted' && isOrphan.has(l['owner'] as string))
  await eventually(() => adoptedOrphans().length >= ORPHANS, `${ORPHANS} orphans adopted`, { timeoutMs: 100_000, intervalMs: 200 })
  const last = adoptedOrphans().at(-1)
  const adoptMs = Date.parse(last?.['time'] as string) - Date.parse(active['time'] as string)
  t.comment(`${ORPHANS} orphans adopted in ${adoptMs} ms after the daemon became active; SIGKILL -> failed line during the backlog: ${latencyMs} ms`)
  t.ok(latencyMs < 5_000, `SIGKILL to failed line in ${latencyMs} ms while the backlog was adopted (bound 5 s; the poll is 1 s)`)
  // Every failure delivered, then one more scan (the probe) proves nothing more comes.
  await slack.waitForRequests(ORPHANS + 1)
  await passedAScan(root, [daemon], 'probe_backlog')
  const perOwner = new Map<string, number>()
  for (const line of adoptedOrphans()) perOwner.set(line['owner'] as string, (perOwner.get(line['owner'] as string) ?? 0) + 1)
  t.equal(perOwner.size, ORPHANS, 'every orphan adopted')
  t.same(
    [...perOwner.values()].filter((n) => n !== 1),
    [],
    'each exactly once',
  )
  const failedLines = daemon.events().filter((l) => l.event === 'failed')
  t.equal(failedLines.length, ORPHANS + 2, 'one failure per orphan, the killed process and the probe')
  t.equal(new Set(failedLines.map((l) => l['hash'])).size, ORPHANS + 2, 'no run failed twice')
  const twice: string[] = []
  for (const hash of [...Array.from({ length: ORPHANS }, (_, i) => `orphan_${i}`), 'killed_in_backlog']) if (textsFor(slack.requests, hash).length !== 1) twice.push(hash)
  t.same(twice, [], 'one notification per run')
  t.equal(slack.requests.length, ORPHANS + 2, 'nothing sent twice')
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})
