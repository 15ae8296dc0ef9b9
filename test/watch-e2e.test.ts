// End to end with real worker threads and real child processes; short promises, and waits on
// events and lines rather than on clocks.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startChild } from './support/child.js'
import { readSnapshot } from '../lib/state/snapshot.js'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/watch/${name}`, import.meta.url))
const AIM_LINE = /^❗️ Something wrong with Run '(\w+)'\. Please check\. ❗️$/

t.test('a run that stops reporting is stalled once, recovers, finishes; the logger prints', async (t) => {
  const child = startChild(fixture('stall-then-recover.mjs'), [t.testdir()])
  const { code } = await child.exited
  t.equal(code, 0, 'the script ends by itself')
  const events = child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; overdue?: number; done?: boolean })
  t.same(
    events.map((e) => e.event ?? 'done'),
    ['stalled', 'recovered', 'finished', 'done'],
  )
  const overdue = events[0]?.overdue ?? -1
  t.ok(overdue >= 0.3, `stalled no sooner than the grace after the deadline (overdue ${overdue} s)`)
  const logged = child.lines.filter((l) => AIM_LINE.test(l))
  t.same(
    logged.map((l) => AIM_LINE.exec(l)?.[1]),
    ['stall_then_recover'],
    'one logger line, with the hash, for one stall',
  )
  t.ok(
    child.lines.some((l) => l === "✅ Run 'stall_then_recover' is reporting progress again."),
    'the recovery is logged',
  )
})

t.test('a blocked main thread does not prevent detection', async (t) => {
  const child = startChild(fixture('blocked-main-thread.mjs'), [t.testdir(), '8000'])
  await child.waitForLine('BLOCK START')
  const line = await child.waitForLine(AIM_LINE)
  t.equal(AIM_LINE.exec(line)?.[1], 'blocked_main')
  t.notOk(
    child.lines.some((l) => l.startsWith('BLOCK END')),
    'the stall was printed while the main thread was still blocked',
  )
  await child.exited
  t.ok(child.lines.indexOf('BLOCK END true') > child.lines.indexOf(line))
})

t.test('a script that ends exits, although its watcher thread is alive; it leaves a snapshot and an exit marker', async (t) => {
  const repo = t.testdir()
  const child = startChild(fixture('exits-with-active-run.mjs'), [repo])
  const { code, signal } = await child.exited
  t.same({ code, signal }, { code: 0, signal: null })
  t.ok(child.lines.includes('END OF SCRIPT'))
  const owners = readdirSync(join(repo, '.aim', 'status', 'owners')).filter((f) => f.endsWith('.json'))
  t.equal(owners.length, 1, 'one owner snapshot')
  const snapshot = await readSnapshot(join(repo, '.aim', 'status', 'owners', owners[0] as string))
  // The process reported its own end as it exited: the run is failed on disk, with the reason.
  t.match(snapshot, { format: 'aim-status/snapshot', owner: { kind: 'process', pid: child.process.pid }, runs: [{ hash: 'leaves_early', status: 'failed', reason: 'exited with code 0' }] })
  const marker = JSON.parse(readFileSync(join(repo, '.aim', 'status', 'exits', owners[0] as string), 'utf8'))
  t.match(marker, { exitCode: 0, unfinishedRuns: ['leaves_early'], reportedRuns: ['leaves_early'] }, 'the exit marker names the unfinished run, the exit code, and that it was reported')
  t.ok(
    child.lines.some((line) => /^❗️ Run 'leaves_early' failed on [^:]+: exited with code 0 ❗️$/.test(line)),
    'the default logger said so on its way out, with why and where',
  )
})
