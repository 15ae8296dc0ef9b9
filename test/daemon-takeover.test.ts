// The daemon against orphaned snapshots written with the state layer: dead pids, exit markers,
// corrupt files, a daemon killed mid-delivery, racing daemons, standby, status and ensureDaemon.
import t from 'tap'
import { eventually } from './support/eventually.js'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { repoPaths } from '../lib/repo.js'
import { statusLayout } from '../lib/state/layout.js'
// From the build: it starts the compiled entry beside it.
import { ensureDaemon } from '../dist/daemon-launch.js'
import { ensureDaemon as ensureFromSources } from '../lib/daemon-launch.js'
import { Daemon } from '../lib/daemon/daemon.js'
import { exitReason } from '../lib/daemon/planner.js'
import { BIN, deadOwner, makeRepo, passedAScan, runningRun, startDaemon, textsFor, useSlack, writeExitMarker, writeOwnerSnapshot } from './fixtures/daemon/helpers.js'

t.test('a dead pid: unfinished runs failed at once with the reason, a finished run never; status lists them', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  await useSlack(root, slack.base)
  const owner = deadOwner()
  const path = await writeOwnerSnapshot(root, owner, [runningRun('run_a'), { ...runningRun('run_done', 0), status: 'finished', deadlineAt: null }])
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  const failed = await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'run_a')
  t.equal(failed['reason'], `process gone: pid ${owner.pid}`)
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === 'run_a')
  await daemon.waitEvent((l) => l.event === 'adopted')
  // Retired once adopted: not adopted again at the next scans.
  const probe = await passedAScan(root, [daemon], 'probe_a')
  t.notOk(existsSync(path), 'the orphan snapshot is retired')
  t.equal(daemon.events().filter((l) => l.event === 'adopted' && l['owner'] === owner.id).length, 1)
  t.equal(daemon.events().filter((l) => l.event === 'adopted').length, 2, 'nothing else adopted but the probe')
  t.equal(daemon.events().filter((l) => l.event === 'adopted' && l['owner'] === probe).length, 1)
  t.same(textsFor(slack.requests, 'run_a'), [`failed run_a process gone: pid ${owner.pid}`], 'one notification')
  t.same(textsFor(slack.requests, 'run_done'), [], 'a run that finished is never reported')
  const status = spawnSync(process.execPath, [BIN, '--repo', root, 'status', '--json'], { encoding: 'utf8' })
  t.equal(status.status, 0)
  const parsed = JSON.parse(status.stdout) as { daemon: { pid: number }; runs: Array<{ hash: string; status: string; owner: { kind: string; state: string } }> }
  t.equal(parsed.daemon.pid, daemon.process.pid)
  t.match(
    parsed.runs.filter((r) => r.hash !== 'probe_a'),
    [{ hash: 'run_a', status: 'failed', owner: { kind: 'daemon', state: 'alive' } }],
  )
  const table = spawnSync(process.execPath, [BIN, '--repo', root, 'status'], { encoding: 'utf8' })
  t.match(table.stdout, /run_a\s+failed\s+daemon/)
  t.notMatch(status.stdout + table.stdout, /secret-token-123/, 'no secret in the status')
  daemon.process.kill('SIGTERM')
  t.same(await daemon.exited, { code: 0, signal: null }, 'SIGTERM: a clean exit 0')
})

t.test('exit markers: the code or signal is the reason; a run the marker does not list is not reported', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  await useSlack(root, slack.base)
  const three = deadOwner()
  await writeOwnerSnapshot(root, three, [runningRun('exit_three'), runningRun('ended_in_flight')])
  writeExitMarker(root, three, { exitCode: 3, signal: null }, ['exit_three'])
  const termed = deadOwner()
  await writeOwnerSnapshot(root, termed, [runningRun('termed')])
  writeExitMarker(root, termed, { exitCode: null, signal: 'SIGTERM' }, ['termed'])
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  t.equal((await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'exit_three'))['reason'], 'exited with code 3')
  t.equal((await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'termed'))['reason'], 'killed by SIGTERM')
  await slack.waitForRequests(2)
  await passedAScan(root, [daemon], 'probe_exits')
  t.equal(textsFor(slack.requests, 'probe_exits').length, 1)
  t.equal(slack.requests.length, 3, 'one notification each, nothing for the run that ended (and one for the probe)')
  t.same(readdirSync(statusLayout(repoPaths(root)).exits), [], 'markers removed')
  t.equal(exitReason({ exitCode: 1, signal: null, error: 'Error: boom' }), 'exited with code 1 (Error: boom)')
  daemon.process.kill('SIGTERM')
  await daemon.exited
})

t.test('a corrupt snapshot: a clear logged error, other runs still watched', async (t) => {
  const root = makeRepo(t.testdir())
  const owners = statusLayout(repoPaths(root)).owners
  await writeOwnerSnapshot(root, deadOwner(), [runningRun('survivor')])
  writeFileSync(join(owners, 'aaaaaaaaaaaaaaaaaaaaaaaa.json'), '{"format": "aim-status/snap')
  const daemon = startDaemon([root])
  t.teardown(() => void daemon.process.kill('SIGKILL'))
  const error = await daemon.waitEvent((l) => l.event === 'corrupt-state-file')
  t.equal(error['level'], 'error')
  t.match(error['error'], /aaaaaaaaaaaaaaaaaaaaaaaa\.json is not a valid state file .*set aside as/)
  await daemon.waitEvent((l) => l.event === 'failed' && l['hash'] === 'survivor')
  await daemon.waitEvent((l) => l.event === 'notified' && l['hash'] === 'survivor')
  t.ok(
    readdirSync(owners).some((n) => n.includes('.corrupt-')),
    'the bad file is set aside',
  )
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})

t.test('a daemon killed between accepting and delivering: the restarted daemon delivers', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint(() => 'hang')
  t.teardown(() => slack.close())
  await useSlack(root, slack.base)
  await writeOwnerSnapshot(root, deadOwner(), [runningRun('mid_send')])
  const first = startDaemon([root])
  await first.waitEvent((l) => l.event === 'adopted')
  await slack.waitForRequests(1) // accepted (durable) and being sent: the endpoint hangs
  first.process.kill('SIGKILL')
  await first.exited
  slack.respond(() => slackReply())
  const second = startDaemon([root])
  t.teardown(() => void second.process.kill('SIGKILL'))
  const adopted = await second.waitEvent((l) => l.event === 'adopted')
  t.equal(adopted['kind'], 'daemon', "the dead daemon's snapshot is adopted")
  await second.waitEvent((l) => l.event === 'notified' && l['hash'] === 'mid_send')
  await passedAScan(root, [second], 'probe_mid_send')
  t.equal(textsFor(slack.requests, 'mid_send').length, 2, 'the send cut off mid-request, then the delivery: nothing more')
  t.same(
    second
      .events()
      .filter((l) => l.event === 'failed')
      .map((l) => l['hash']),
    ['probe_mid_send'],
    'the failure is not made again, only delivered (the probe fails once)',
  )
  second.process.kill('SIGTERM')
  await second.exited
})

t.test('two daemons racing for the orphans of 20 repos: one adoption and one notification each', async (t) => {
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const roots: string[] = []
  const orphans: string[] = []
  const dir = t.testdir() // once: each call makes the folder afresh
  for (let i = 0; i < 20; i++) {
    const root = makeRepo(join(dir, `repo${i}`))
    await useSlack(root, slack.base)
    const owner = deadOwner()
    await writeOwnerSnapshot(root, owner, [runningRun(`race_${i}`)])
    roots.push(root)
    orphans.push(owner.id)
  }
  // In opposite orders, so that each wins some repos' daemon lease and they race throughout.
  const a = startDaemon(roots)
  const b = startDaemon([...roots].reverse())
  t.teardown(() => {
    a.process.kill('SIGKILL')
    b.process.kill('SIGKILL')
  })
  await slack.waitForRequests(20)
  const probes = await Promise.all(roots.map((root, i) => passedAScan(root, [a, b], `probe_${i}`)))
  const adoptions = [...a.events(), ...b.events()].filter((l) => l.event === 'adopted')
  for (let i = 0; i < 20; i++) {
    t.equal(adoptions.filter((l) => l['repo'] === roots[i] && l['owner'] === orphans[i]).length, 1, `repo ${i}: one adoption`)
    t.equal(adoptions.filter((l) => l['repo'] === roots[i]).length, 2, `repo ${i}: nothing else adopted but the probe`)
    t.equal(adoptions.filter((l) => l['owner'] === probes[i]).length, 1, `repo ${i}: the probe adopted once`)
    t.equal(textsFor(slack.requests, `race_${i}`).length, 1, `repo ${i}: one notification`)
  }
  a.process.kill('SIGTERM')
  b.process.kill('SIGTERM')
  t.equal((await a.exited).code, 0)
  t.equal((await b.exited).code, 0)
})

t.test('a hot standby takes over when the active daemon stops or dies', async (t) => {
  const root = makeRepo(t.testdir())
  const first = startDaemon([root])
  await first.waitEvent((l) => l.event === 'active')
  const second = startDaemon([root])
  t.teardown(() => void second.process.kill('SIGKILL'))
  const standby = await second.waitEvent((l) => l.event === 'standby')
  t.equal(standby['holder'], `${first.process.pid}@${String((await first.waitEvent((l) => l.event === 'daemon-started'))['host'])}`)
  first.process.kill('SIGKILL')
  await first.exited
  await second.waitEvent((l) => l.event === 'active')
  t.pass('the standby is active after the first daemon was killed')
  // And a third waits behind the second, taking over at once on a clean stop.
  const third = startDaemon([root])
  t.teardown(() => void third.process.kill('SIGKILL'))
  await third.waitEvent((l) => l.event === 'standby')
  second.process.kill('SIGINT')
  t.equal((await second.exited).code, 0)
  await third.waitEvent((l) => l.event === 'active')
  third.process.kill('SIGTERM')
  await third.exited
})

t.test('ensureDaemon starts one daemon, then finds it', async (t) => {
  const root = makeRepo(t.testdir())
  const started = await ensureDaemon(root, { staleMs: 2000, pollMs: 200 })
  t.equal(started.started, true)
  t.teardown(() => {
    try {
      process.kill(started.pid as number, 'SIGKILL')
    } catch {
      // already gone
    }
  })
  const logFile = join(statusLayout(repoPaths(root)).status, 'daemon.log')
  // Wait for it to hold the repo: its log says so.
  await eventually(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes(' active '), 'the started daemon logs that it is active')
  t.same(await ensureDaemon(root, { staleMs: 2000 }), { started: false, pid: started.pid }, 'the running daemon holds the repo')
  process.kill(started.pid as number, 'SIGTERM')
  await eventually(() => readFileSync(logFile, 'utf8').includes(' stopped '), 'the daemon logs that it stopped after SIGTERM')
  t.pass('stopped by SIGTERM')
})

t.test('bad options are coded errors', async (t) => {
  t.throws(() => new Daemon({ staleMs: 500 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => new Daemon({ pollMs: 1.5 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => new Daemon({ grace: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE' })
  t.throws(() => new Daemon({ nope: 1 } as never), { code: 'AIM_STATUS_INVALID_OPTION' })
  const cli = spawnSync(process.execPath, [BIN, '--repo', t.testdir(), 'start', '--stale-ms', '100'], { encoding: 'utf8' })
  t.equal(cli.status, 2)
  t.match(cli.stderr, /AIM_STATUS_OUT_OF_RANGE: Expected --stale-ms /)
  const bad = spawnSync(process.execPath, [BIN, '--repo', t.testdir(), 'start', '--poll-ms', 'soon'], { encoding: 'utf8' })
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--poll-ms expects an integer/)
  await t.rejects(ensureDaemon(''), { code: 'AIM_STATUS_INVALID_OPTION' })
  // Run from sources, it starts the compiled entry (as the actor's worker does).
  const fromSources = await ensureFromSources(makeRepo(t.testdir()))
  t.ok(fromSources.started && typeof fromSources.pid === 'number', 'a daemon started from the built entry')
  process.kill(fromSources.pid as number, 'SIGTERM')
})
