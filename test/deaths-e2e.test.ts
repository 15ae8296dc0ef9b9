// Every death of a training process that uses only the three lines (`watch({ repo, hash })`, the
// default daemon included) is reported once, at a loopback Slack, and the process dies exactly
// as it would have. Real child processes, real daemons (each one ended by its test).
import t from 'tap'
import type { Test } from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild } from './support/child.js'
import { startEndpoint, slackReply, type FakeEndpoint } from './support/fake-endpoints.js'
import { makeRepo, useSlack, textsFor, BIN } from './fixtures/daemon/helpers.js'
import { ensureDaemon } from '../lib/daemon-launch.js'
import { daemonLog, daemonPids, endDaemonsAtTeardown, isDaemonOf, senderPid, sleep, until } from './support/daemons.js'

const DIES = fileURLToPath(new URL('./fixtures/watch/dies.mjs', import.meta.url))
const DEFAULT = { AIM_STATUS_DAEMON: '1' }
/** Time from each death to its notification's arrival, printed at the end for the README. */
const latencies: Record<string, number> = {}

async function slackRepo(t: Test): Promise<{ repo: string; slack: FakeEndpoint }> {
  const repo = makeRepo(t.testdir())
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  await useSlack(repo, slack.base, ['failed'])
  endDaemonsAtTeardown(t, repo)
  return { repo, slack }
}

async function textFor(slack: FakeEndpoint, hash: string): Promise<{ text: string; at: number }> {
  await until(() => textsFor(slack.requests, hash).length > 0, `a Slack message for ${hash}`)
  const request = slack.requests.find((r) => textsFor([r], hash).length > 0)!
  return { text: textsFor([request], hash)[0] as string, at: request.receivedAt }
}

/** The daemon has taken the dead owner's snapshot in hand (and found nothing left to report). */
async function adoptedBy(repo: string, pid: number): Promise<string> {
  let line = ''
  await until(() => {
    line =
      daemonLog(repo)
        .split('\n')
        .find((l) => / adopted /.test(l) && l.includes(` pid=${pid} `)) ?? ''
    return line !== ''
  }, `the daemon adopting pid ${pid}`)
  return line
}

type Death = { mode: string; hash: string; exit: { code: number | null; signal: NodeJS.Signals | null }; reason: string; kill?: NodeJS.Signals }
const seenDeaths: Death[] = [
  { mode: 'throw', hash: 'dies_throwing', exit: { code: 1, signal: null }, reason: 'exited with code 1 (Error: loss is NaN)' },
  { mode: 'reject', hash: 'dies_rejecting', exit: { code: 1, signal: null }, reason: 'exited with code 1 (Error: loss is NaN)' },
  { mode: 'exit1', hash: 'dies_exiting', exit: { code: 1, signal: null }, reason: 'exited with code 1' },
  { mode: 'wait', hash: 'dies_terminated', exit: { code: null, signal: 'SIGTERM' }, reason: 'killed by SIGTERM', kill: 'SIGTERM' },
]

for (const death of seenDeaths) {
  t.test(`${death.kill ?? death.mode}: the process reports itself, once, and dies as it would have`, async (t) => {
    const { repo, slack } = await slackRepo(t)
    const child = startChild(DIES, [repo, death.hash, death.mode], { env: DEFAULT })
    await child.waitForLine('READY')
    let diedAt = 0
    if (death.kill !== undefined) {
      diedAt = Date.now()
      child.process.kill(death.kill)
    }
    const exit = await child.exited
    t.same(exit, death.exit, 'same exit code and signal as without the watcher')
    diedAt ||= Number(child.lines.find((l) => l.startsWith('DYING '))?.slice(6))
    const { text, at } = await textFor(slack, death.hash)
    t.equal(text, `failed ${death.hash} ${death.reason}`)
    t.ok(at <= Date.now(), 'delivered before the process was gone, or by the daemon')
    latencies[death.kill ?? death.mode] = at - diedAt
    // The daemon that watch() started finds the dead owner: its run failed, its outbox settled.
    const pid = child.process.pid as number
    t.match(await adoptedBy(repo, pid), /failed=0 carried=0/, 'the daemon has nothing left to report')
    t.same(textsFor(slack.requests, death.hash), [`failed ${death.hash} ${death.reason}`], 'one notification in all')
    const exits = join(repo, '.aim', 'status', 'exits')
    t.same(existsSync(exits) ? readdirSync(exits) : [], [], 'the exit marker was acted on and removed')
    const status = JSON.parse(spawnSync(process.execPath, [BIN, '--repo', repo, 'status', '--json'], { encoding: 'utf8' }).stdout)
    t.match(status.runs, [{ hash: death.hash, status: 'failed', reason: death.reason, watchedBy: null }], 'status shows it failed, with its reason')
  })
}

t.test('a process with its own SIGTERM handler keeps it; its SIGKILL is reported by the running daemon within 2 s', async (t) => {
  const { repo, slack } = await slackRepo(t)
  const child = startChild(DIES, [repo, 'handles_sigterm', 'own-term'], { env: DEFAULT })
  await child.waitForLine('READY')
  await senderPid(repo)
  // The daemon has looked at the repo since it became the sender: it knows the live owner (the
  // run is in the snapshot before watch() starts the daemon).
  await until(() => / first-scan .* ownersLive=1 /.test(daemonLog(repo)), "the daemon's first scan, which found the live owner")
  child.process.kill('SIGTERM')
  await child.waitForLine('STILL TRAINING')
  t.equal(child.process.exitCode, null, 'its handler decided: it trains on')
  t.same(textsFor(slack.requests, 'handles_sigterm'), [], 'nothing reported')
  const killedAt = Date.now()
  child.process.kill('SIGKILL')
  t.same(await child.exited, { code: null, signal: 'SIGKILL' })
  const { text, at } = await textFor(slack, 'handles_sigterm')
  t.equal(text, `failed handles_sigterm process gone: pid ${child.process.pid}`)
  latencies['SIGKILL, daemon running'] = at - killedAt
  t.ok(at - killedAt <= 2000, `reported ${at - killedAt} ms after the kill (at most 2 s with a daemon running)`)
  await sleep(500)
  t.equal(textsFor(slack.requests, 'handles_sigterm').length, 1, 'once')
})

t.test('a SIGKILL right after watch() is reported by the daemon watch() had to start', async (t) => {
  const { repo, slack } = await slackRepo(t)
  const child = startChild(DIES, [repo, 'killed_early', 'wait'], { env: DEFAULT })
  await child.waitForLine('READY')
  const killedAt = Date.now()
  child.process.kill('SIGKILL')
  await child.exited
  const { text, at } = await textFor(slack, 'killed_early')
  t.equal(text, `failed killed_early process gone: pid ${child.process.pid}`)
  latencies['SIGKILL, daemon started by watch()'] = at - killedAt
  t.ok(at - killedAt <= 10_000, `reported ${at - killedAt} ms after the kill`)
  await sleep(500)
  t.equal(textsFor(slack.requests, 'killed_early').length, 1, 'once')
})

t.test('the daemon watch() started exits by itself once it has had nothing to watch', async (t) => {
  const { repo } = await slackRepo(t)
  const child = startChild(DIES, [repo, 'finishes', 'finish', JSON.stringify({ daemon: { exitWhenIdle: 2 } })], { env: DEFAULT })
  await child.waitForLine('READY')
  const daemon = await senderPid(repo)
  t.ok(isDaemonOf(daemon, repo), 'a detached daemon watches the repo')
  child.process.kill('SIGTERM')
  t.same(await child.exited, { code: null, signal: 'SIGTERM' }, 'nothing unfinished: it dies at once')
  await until(() => !isDaemonOf(daemon, repo), 'the idle daemon to exit', 60_000)
  t.match(daemonLog(repo), /exit-when-idle cause=idle seconds=2/, 'it said why')
  t.notMatch(daemonLog(repo), /handed-over/, 'nobody was left to hand over to')
})

t.test('two processes starting at once leave one daemon', async (t) => {
  const { repo } = await slackRepo(t)
  const children = ['twin_a', 'twin_b'].map((hash) => startChild(DIES, [repo, hash, 'wait'], { env: DEFAULT }))
  await Promise.all(children.map((c) => c.waitForLine('READY')))
  const sender = await senderPid(repo)
  // Every daemon that was started but is not the sender goes at once.
  await until(() => daemonPids(repo).every((pid) => pid === sender || !isDaemonOf(pid, repo)), 'the spare daemons to exit')
  t.same(
    daemonPids(repo).filter((pid) => isDaemonOf(pid, repo)),
    [sender],
    'one daemon left, the sender',
  )
  const spares = daemonPids(repo).length - 1
  t.equal((daemonLog(repo).match(/exit-when-idle cause=already-watched/g) ?? []).length, spares, `each spare (${spares}) said why it left`)
  for (const child of children) child.process.kill('SIGTERM')
  await Promise.all(children.map((c) => c.exited))
})

t.test('two daemons started on demand at the same moment: one sends, the other exits at once', async (t) => {
  const repo = makeRepo(t.testdir())
  endDaemonsAtTeardown(t, repo)
  // What two watch() calls do when they start together: neither sees a daemon, both start one.
  const both = await Promise.all([ensureDaemon(repo, { exitWhenIdle: 60 }), ensureDaemon(repo, { exitWhenIdle: 60 })])
  t.same(
    both.map((b) => b.started),
    [true, true],
    'both started one',
  )
  const sender = await senderPid(repo)
  const spare = both.map((b) => b.pid).find((pid) => pid !== sender) as number
  await until(() => !isDaemonOf(spare, repo), 'the spare daemon to exit')
  t.match(daemonLog(repo), new RegExp(`exit-when-idle cause=already-watched pid=${spare}`), 'the spare said why it left')
  t.ok(isDaemonOf(sender, repo), 'the sender stays')
  t.same((await ensureDaemon(repo, { exitWhenIdle: 60 })).started, false, 'a third process starts none')
})

t.test('daemon: false, or AIM_STATUS_DAEMON=0, starts nothing', async (t) => {
  for (const [how, args, env] of [
    ['daemon: false', [JSON.stringify({ daemon: false })], DEFAULT],
    ['AIM_STATUS_DAEMON=0', [], { AIM_STATUS_DAEMON: '0' }],
  ] as const) {
    const repo = makeRepo(t.testdir())
    endDaemonsAtTeardown(t, repo)
    const child = startChild(DIES, [repo, 'no_daemon', 'finish', ...args], { env })
    await child.waitForLine('READY')
    child.process.kill('SIGKILL')
    await child.exited
    t.notOk(existsSync(join(repo, '.aim', 'status', 'daemon.log')), `${how}: no daemon was started`)
    t.notOk(existsSync(join(repo, '.aim', 'status', 'daemon.lock')), `${how}: none holds the repo`)
  }
})

t.test('with no notifier configured, a SIGKILL is told to the terminal the process was started from', async (t) => {
  const repo = makeRepo(t.testdir())
  endDaemonsAtTeardown(t, repo)
  // script(1) gives the training process a terminal of our own user; what is written to that
  // terminal comes out of script's standard output. The shell stays after the training process
  // (as the user's would), so the terminal does too.
  const term = spawn('script', ['-qfec', `${process.execPath} ${DIES} ${repo} told_terminal wait; sleep 60`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, AIM_STATUS_DAEMON: '1' } })
  t.teardown(() => void term.kill('SIGKILL'))
  let out = ''
  term.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  await until(() => /READY \d+/.test(out), 'READY on the terminal')
  const pid = Number(/READY (\d+)/.exec(out)?.[1])
  await senderPid(repo)
  process.kill(pid, 'SIGKILL')
  await until(() => out.includes("run 'told_terminal' failed: process gone"), 'the line on the terminal')
  t.match(out, new RegExp(`aim-watcher \\(pid \\d+\\): run 'told_terminal' failed: process gone: pid ${pid}\\. No notifier is configured`))
  t.match(daemonLog(repo), /told-terminal .*hash=told_terminal terminal=\/dev\/pts\/\d+/, 'the daemon log says where it told')
  await until(() => /Run 'told_terminal' failed on [^:]+: process gone/.test(daemonLog(repo)), "the default logger's line in the daemon log")
  t.pass("the daemon log holds the default logger's line too")
})

t.teardown(() => {
  // The figures the README quotes: from each death to the notification's arrival at Slack.
  t.comment(`death -> Slack delivery: ${JSON.stringify(latencies)}`)
})
