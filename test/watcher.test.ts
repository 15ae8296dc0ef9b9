// The Watcher and run handles in this process: real worker threads, short promises.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Watcher } from '../lib/watcher.js'
import { testHooks } from '../lib/internal.js'
import { tempRepo } from './support/temp-repo.js'
import { watch } from '../lib/watch.js'
import { registerNotifierType } from '../lib/notify/registry.js'
import type { RunEvent } from '../lib/model.js'

// Not about daemons: the watchers opened here start none (the default would start one per repo).
process.env['AIM_STATUS_DAEMON'] = '0'

t.test('validation at the edge: each mistake is a coded error naming the option', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  closeFirst(async () => (await Watcher.open({ repo })).close())
  await t.rejects(watch({ repo, hash: '../etc' }), { code: 'AIM_STATUS_INVALID_ID', name: 'InvalidIdError', message: /`hash`.*"\.\.\/etc"/ })
  await t.rejects(watch({ repo, hash: 'a'.repeat(65) }), { code: 'AIM_STATUS_INVALID_ID' })
  await t.rejects(watch({ repo, hash: '' }), { code: 'AIM_STATUS_INVALID_ID' })
  await t.rejects(watch({ repo, grace: -1 }), { code: 'AIM_STATUS_OUT_OF_RANGE', name: 'OutOfRangeError', message: /`grace`.*-1/ })
  await t.rejects(watch({ repo, grace: Number.NaN }), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /NaN/ })
  await t.rejects(watch({ repo, grace: '5' as unknown as number }), { code: 'AIM_STATUS_INVALID_OPTION', name: 'InvalidOptionError' })
  await t.rejects(watch({ repo, gracePeriod: 5 } as never), { code: 'AIM_STATUS_INVALID_OPTION', message: /Unknown option `gracePeriod`/ })
  await t.rejects(watch({ repo, name: 'two\nlines' }), { code: 'AIM_STATUS_INVALID_OPTION', message: /control characters/ })
  await t.rejects(watch({ repo: 42 } as never), { code: 'AIM_STATUS_INVALID_OPTION', message: /`repo`/ })
  await t.rejects(watch({ repo, notifiers: [{ type: 'carrier-pigeon' }] }), { code: 'AIM_STATUS_INVALID_NOTIFIER', message: /carrier-pigeon/ })
  await t.rejects(watch({ repo, notifiers: [{ type: 'logger', arguments: { message: '{run.nope}' } }] }), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
  await t.rejects(watch({ repo, notifiers: [{ type: 'logger', events: ['exploded' as never] }] }), { code: 'AIM_STATUS_INVALID_NOTIFIER' })

  const run = await watch({ repo, grace: 1 })
  t.match(run.hash, /^[0-9a-f]{24}$/, 'default hash as Aim makes them')
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 1e12]) {
    t.throws(() => run.reportProgress(bad), { code: 'AIM_STATUS_OUT_OF_RANGE', message: /`expectNextIn`/ }, `expectNextIn ${bad}`)
  }
  t.throws(() => run.reportProgress('3' as unknown as number), { code: 'AIM_STATUS_INVALID_OPTION' })
  await t.rejects(watch({ repo, hash: run.hash }), { code: 'AIM_STATUS_RUN_ALREADY_OPEN' })
  await run.reportSuccessfulFinish()
  t.throws(() => run.reportProgress(1), { code: 'AIM_STATUS_RUN_ENDED', message: /already finished/ })
  await t.rejects(run.reportSuccessfulFinish(), { code: 'AIM_STATUS_RUN_ENDED' })
  await t.rejects(run.reportFailure('late'), { code: 'AIM_STATUS_RUN_ENDED' })
  await run.close()
  await run.close()
  t.throws(() => run.reportProgress(1), { code: 'AIM_STATUS_CLOSED' })
  const watcher = await Watcher.open({ repo })
  await watcher.close()
  await watcher.close()
  await t.rejects(watcher.runs(), { code: 'AIM_STATUS_CLOSED' })
})

t.test('one watcher per repo; events and run states; finish and failure', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  t.equal(await Watcher.open({ repo }), watcher, 'shared per repo in a process')
  const seen: string[] = []
  for (const kind of ['started', 'stalled', 'recovered', 'finished', 'failed'] as const) watcher.on(kind, (e: RunEvent) => seen.push(`${e.run.hash}:${kind}`))
  const started = once(watcher as never, 'started')
  const a = await watcher.watch({ hash: 'run_a', grace: 0.05, name: 'resnet', experiment: 'baseline' })
  await started
  const b = await watcher.watch({ hash: 'run_b', grace: 60 })
  t.equal(a.status, 'running')
  const stalled = once(a as never, 'stalled')
  a.reportProgress(0.05)
  b.reportProgress(120)
  const [event] = (await stalled) as [RunEvent]
  t.equal(event.run.hash, 'run_a')
  t.equal(event.run.name, 'resnet')
  t.equal(event.run.experiment, 'baseline')
  t.ok((event.overdueSeconds ?? 0) >= 0.05, 'not before deadline + grace')
  t.equal(a.status, 'stalled')
  const runs = await watcher.runs()
  t.same(runs.map((r) => [r.hash, r.status]).sort(), [
    ['run_a', 'stalled'],
    ['run_b', 'running'],
  ])
  const infoB = await watcher.run('run_b')
  t.ok(infoB?.deadlineAt !== null && (infoB?.deadlineAt ?? 0) > Date.now() + 100_000, 'b has its deadline two minutes out')
  const recovered = once(a as never, 'recovered')
  a.reportProgress(0)
  await recovered
  await a.reportSuccessfulFinish()
  await b.reportFailure('loss is NaN')
  t.equal((await watcher.run('run_b'))?.reason, 'loss is NaN')
  t.equal((await watcher.run('run_a'))?.status, 'finished')
  t.same(seen, ['run_a:started', 'run_b:started', 'run_a:stalled', 'run_a:recovered', 'run_a:finished', 'run_b:failed'])
})

t.test('notifiers given in code replace the default logger and receive their events', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true, notifiers: [{ type: 'logger', events: ['failed'], messages: { failed: 'FAILED {run.hash}: {run.reason}' } }] })
  closeFirst(() => watcher.close())
  const notified = once(watcher as never, 'notified')
  const run = await watcher.watch({ hash: 'with_logger' })
  await run.reportFailure('boom')
  const [report] = (await notified) as [{ notifierType: string; eventKind: string; hash: string }]
  t.same({ type: report.notifierType, kind: report.eventKind, hash: report.hash }, { type: 'logger', kind: 'failed', hash: 'with_logger' })
})

t.test('a notifier type registered from code is sent by the registering thread', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const sent: Array<{ kind: string; hash: string; text: string; args: unknown }> = []
  registerNotifierType({
    type: 'test-pager',
    secretArguments: ['key'],
    validate(args) {
      if (typeof args['key'] !== 'string') throw new Error('key is required')
      return args
    },
    create: (entry) => ({
      entry,
      render: (event) => `page: ${event.run.hash} ${event.kind}`,
      async send(event, text) {
        sent.push({ kind: event.kind, hash: event.run.hash, text, args: entry.arguments })
        return { kind: 'delivered' }
      },
    }),
  })
  await t.rejects(Watcher.open({ repo, notifiers: [{ type: 'test-pager' }] }), { code: 'AIM_STATUS_INVALID_NOTIFIER' }, 'its own validation applies')
  const watcher = await Watcher.open({ repo, keepAlive: true, notifiers: [{ type: 'test-pager', arguments: { key: 'k-123' } }] })
  closeFirst(() => watcher.close())
  const notified = once(watcher as never, 'notified')
  const run = await watcher.watch({ hash: 'custom_type' })
  await run.reportFailure('disk full')
  const [report] = (await notified) as [{ notifierType: string }]
  t.equal(report.notifierType, 'test-pager')
  t.same(sent, [{ kind: 'failed', hash: 'custom_type', text: 'page: custom_type failed', args: { key: 'k-123' } }])
})

t.test('a watcher thread that dies is restarted, says so, and its runs are still watched', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo, keepAlive: true })
  closeFirst(() => watcher.close())
  const run = await watcher.watch({ hash: 'survives_crash', grace: 0.05 })
  run.reportProgress(60)
  const restarted = once(watcher as never, 'error')
  await watcher[testHooks].terminateThread()
  const [error] = (await restarted) as [{ code: string }]
  t.equal(error.code, 'AIM_STATUS_WORKER_EXITED')
  t.match(await watcher.run('survives_crash'), { status: 'running', expectNextIn: 60 }, 're-opened with its last promise')
  const stalled = once(run as never, 'stalled')
  run.reportProgress(0.05)
  await stalled
  t.equal(run.status, 'stalled', 'and its stall is still detected')
})

/** The leases held in a repo's status folder (proper-lockfile directories). */
const leases = async (repo: string): Promise<string[]> => (await readdir(join(repo, '.aim', 'status', 'owners')).catch(() => [])).filter((name) => name.endsWith('.lock'))

/** Every public method of a closed watcher rejects with AIM_STATUS_CLOSED. */
async function assertClosed(t: Test, watcher: Watcher, when: string): Promise<void> {
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['watch', () => watcher.watch({ hash: 'too_late' })],
    ['runs', () => watcher.runs()],
    ['run', () => watcher.run('x')],
    ['flush', () => watcher.flush()],
    ['activeNotifiers', () => watcher.activeNotifiers()],
    ['addNotifier', () => watcher.addNotifier({ type: 'logger' })],
    ['listNotifiers', () => watcher.listNotifiers()],
    ['enableNotifier', () => watcher.enableNotifier('x')],
    ['disableNotifier', () => watcher.disableNotifier('x')],
    ['removeNotifier', () => watcher.removeNotifier('x')],
    ['testNotifiers', () => watcher.testNotifiers()],
  ]
  for (const [name, call] of calls) await t.rejects(call(), { code: 'AIM_STATUS_CLOSED' }, `${name}() ${when}`)
}

t.test('close() twice: the second call is the first one, and resolves only once the thread has let go', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo })
  closeFirst(() => watcher.close())
  await watcher.watch({ hash: 'closing_twice' })
  t.equal((await leases(repo)).length, 1, 'the thread holds its lease')
  const first = watcher.close()
  const second = watcher.close()
  t.equal(second, first, 'the same promise')
  await assertClosed(t, watcher, 'while closing')
  await second
  t.same(await leases(repo), [], 'the lease is released when the second call resolves')
  await assertClosed(t, watcher, 'after close')
  await watcher.close()
  await watcher.destroy()
  const next = await Watcher.open({ repo })
  closeFirst(() => next.close())
  t.not(next, watcher, 'a later open starts a new watcher')
  t.same(await next.runs(), [])
})

t.test('destroy() ends the thread at once, leaving its state as a crash would', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo })
  closeFirst(() => watcher.close())
  const run = await watcher.watch({ hash: 'destroyed_under_it', grace: 1 })
  run.reportProgress(60)
  await watcher.destroy()
  t.equal((await leases(repo)).length, 1, 'the lease is left to go stale, for a daemon to take over')
  await assertClosed(t, watcher, 'after destroy')
  t.throws(() => run.reportProgress(1), { code: 'AIM_STATUS_CLOSED' }, 'its run handles are closed')
  await watcher.destroy()
  await watcher.close()

  const other = await Watcher.open({ repo })
  t.not(other, watcher)
  const closing = other.close()
  await other.destroy()
  await closing
  t.pass('a close() under way ends with destroy()')
})

t.test('a message of unknown kind from the thread is an error event, and the watcher carries on', async (t) => {
  const { repo, closeFirst } = tempRepo(t)
  const watcher = await Watcher.open({ repo })
  closeFirst(() => watcher.close())
  const errors: Array<{ code?: string; message: string }> = []
  watcher.on('error', (error) => errors.push(error as never))
  t.doesNotThrow(() => watcher[testHooks].receiveFromThread({ kind: 'from-a-newer-build', payload: 1 }))
  t.match(errors, [{ code: 'AIM_STATUS_UNKNOWN_MESSAGE', message: /"from-a-newer-build"/ }])
  await watcher.watch({ hash: 'still_fine' })
  t.match(await watcher.runs(), [{ hash: 'still_fine', status: 'running' }])
})
