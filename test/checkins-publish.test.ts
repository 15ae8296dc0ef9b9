// Node runs write Aim check-ins that Python's aim-watcher can read. The names are checked with a
// parser written here from AIM-FORMAT.md, not with the library's own.
import t from 'tap'
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Watcher } from '../lib/watcher.js'
import { ManualClock } from '../lib/clock.js'
import { RepoActor } from '../lib/actor/actor.js'
import { CheckinPublisher } from '../lib/actor/checkin-publisher.js'
import { tempRepo } from './support/temp-repo.js'

// Not about daemons: the watchers opened here start none (the default would start one per repo).
process.env['AIM_STATUS_DAEMON'] = '0'

/** `{run_hash}-{idx:016d}-{flag}-{unix_time:011.2f}-{expect_next_in:05d}`, split on `-` into five fields. */
function parseAimName(name: string) {
  const fields = name.split('-')
  if (fields.length !== 5) return null
  const [hash, idx, flag, time, expect] = fields as [string, string, string, string, string]
  if (!/^\d{16}$/.test(idx) || !/^\d{8,}\.\d{2}$/.test(time) || !/^\d{5}$/.test(expect)) return null
  if (!['starting', 'check_in', 'finished', 'progress', 'new_logs'].includes(flag)) return null
  return { hash, idx: Number(idx), flag, time: Number(time), expect: Number(expect) }
}

const checkinNames = (repo: string) => readdirSync(join(repo, '.aim', 'check_ins')).sort()

t.test('a run writes starting, check_in and finished in Aim format, one file per flag', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  const run = await watcher.watch({ hash: 'aabbccddeeff001122334455', grace: 30 })
  let names = checkinNames(repo)
  t.equal(names.length, 1)
  t.match(parseAimName(names[0] as string), { hash: 'aabbccddeeff001122334455', idx: 1, flag: 'starting', expect: 0 })
  run.reportProgress(2.2)
  await watcher.flush() // the report has been handled and its check-in written
  names = checkinNames(repo)
  const parsed = names.map(parseAimName)
  t.ok(
    parsed.every((p) => p !== null),
    `every name parses: ${names.join(', ')}`,
  )
  t.match(
    parsed.find((p) => p?.flag === 'check_in'),
    { idx: 2, expect: 3 },
    'expect rounded up to whole seconds',
  )
  t.ok(Math.abs((parsed[0]?.time ?? 0) - Date.now() / 1000) < 600, 'the time in the name is wall-clock seconds')
  await run.reportSuccessfulFinish()
  names = checkinNames(repo)
  const byFlag = new Map(names.map((n) => [parseAimName(n)?.flag, parseAimName(n)]))
  t.same([...byFlag.keys()].sort(), ['check_in', 'finished', 'starting'], 'one file per flag used')
  t.match(byFlag.get('finished'), { idx: 3, expect: 0 })
  t.notOk(
    names.some((n) => n.includes('new_logs') || n.includes('-progress-')),
    'never new_logs or progress',
  )
})

t.test('a reopened hash continues from the highest idx; checkins: false writes nothing', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  mkdirSync(join(repo, '.aim', 'check_ins'), { recursive: true })
  // Left by an earlier (Python) life of the run.
  writeFileSync(join(repo, '.aim', 'check_ins', 'resumed_run-0000000000000041-finished-1795886242.59-00000'), '')
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  await watcher.watch({ hash: 'resumed_run' })
  t.ok(checkinNames(repo).some((n) => parseAimName(n)?.idx === 42 && parseAimName(n)?.flag === 'starting'))
  await watcher.watch({ hash: 'quiet_run', checkins: false })
  t.notOk(checkinNames(repo).some((n) => n.startsWith('quiet_run')))
})

t.test('renewals keep the promise visible to a once-a-second watcher, without a file per report', async (t) => {
  const folder = join(tempRepo(t).repo, 'check_ins')
  const clock = new ManualClock()
  // The actor and the publisher each need the other: the actor's hook finds the publisher when it runs.
  // eslint-disable-next-line prefer-const
  let publisher!: CheckinPublisher
  const actor = new RepoActor({ clock, repo: '/r', host: 'h', pid: 1, onEvent: () => undefined, onProgress: (info) => publisher.sync(info.hash, info.deadlineAt) })
  const errors: unknown[] = []
  // Writes are made at once here (no deferral), so the simulated watcher sees them in step.
  publisher = new CheckinPublisher({ folder, clock, runOf: (h) => actor.run(h), onError: (e) => errors.push(e), defer: (fn) => fn() })
  actor.open({ hash: 'steady', grace: 100, at: clock.now() })
  publisher.open('steady')
  // A simulated Aim watcher: polls each second, starts a check-in's clock when it first sees it.
  const firstSeen = new Map<number, number>()
  let expiredWhileAlive = 0
  for (let second = 0; second < 300; second++) {
    actor.progress('steady', clock.now(), 60)
    clock.advance(1000)
    const newest = readdirSync(folder)
      .map(parseAimName)
      .filter((p) => p !== null && p.flag !== 'progress')
      .sort((a, b) => b!.idx - a!.idx)[0]!
    if (!firstSeen.has(newest.idx)) firstSeen.set(newest.idx, clock.now())
    if (newest.expect > 0 && clock.now() > (firstSeen.get(newest.idx) as number) + newest.expect * 1000) expiredWhileAlive++
  }
  t.equal(expiredWhileAlive, 0, 'never expired (even without grace) while reports kept coming')
  t.ok(firstSeen.size <= 10, `a handful of files for 300 reports (${firstSeen.size})`)
  t.same(errors, [])
  publisher.close()
})
