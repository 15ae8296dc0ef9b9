import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ManualClock } from '../lib/clock.js'
import { repoPaths } from '../lib/repo.js'
import type { NotifierType } from '../lib/notify/contract.js'
import { readNotificationsConfig } from '../lib/notify/config.js'
import { watchNotificationsConfig } from '../lib/notify/config-watch.js'
import { addNotifier, disableNotifier, enableNotifier, getLogLevel, listNotifiers, parseLogLevel, removeNotifier, setLogLevel, testNotifiers } from '../lib/notify/manage.js'
import { registerNotifierType } from '../lib/notify/registry.js'
import { readNotifierStatus, recordDelivery, writeNotifierStatus } from '../lib/notify/status-file.js'
import type { DeliveryRecord } from '../lib/notify/delivery-record.js'
import { eventually } from './support/eventually.js'

// Copied from the files Python Aim's own code wrote (see fixtures/aim-python/README.md).
const FIXTURES = fileURLToPath(new URL('./fixtures/aim-python/config', import.meta.url))
const SLACK_URL = 'https://hooks.slack.com/services/T000/B000/SECRETSECRETSECRET'

// A custom type whose outcome the test decides, as a program would register its own.
const sent: string[] = []
const customType: NotifierType = {
  type: 'pager-test',
  secretArguments: ['token'],
  validate(args) {
    if (typeof args['token'] !== 'string') throw new Error('token required')
    return args
  },
  create(entry) {
    return {
      entry,
      render: (event) => `page ${event.run.hash}`,
      async send(_event, rendered) {
        sent.push(rendered)
        return entry.arguments['fail'] === true ? { kind: 'permanent', error: 'HTTP 403' } : { kind: 'delivered' }
      },
    }
  },
}
registerNotifierType(customType)

function repoWith(root: string, fixture?: string): string {
  if (fixture !== undefined) {
    const paths = repoPaths(root)
    mkdirSync(paths.notifications, { recursive: true })
    copyFileSync(join(FIXTURES, fixture), paths.config)
  }
  return root
}

t.test('Aim fixtures load unchanged', async (t) => {
  const cli = await readNotificationsConfig(repoPaths(repoWith(t.testdir({}), 'written-by-aim-cli.json')))
  t.equal(cli.version, '1.0')
  t.equal(cli.logLevel, 40)
  t.same(
    cli.notifiers.map((e) => e.type),
    ['slack', 'workplace', 'logger'],
  )
  t.same(cli.invalid, [])
  const dflt = await readNotificationsConfig(repoPaths(repoWith(t.testdir({}), 'aim-default.json')))
  t.same(
    dflt.notifiers.map((e) => [e.id, e.type, e.status]),
    [['b6487000-b521-4a2a-a42b-8fee1b7fa43d', 'logger', 'enabled']],
  )
  t.equal(dflt.logLevel, undefined)
  t.same((await readNotificationsConfig(repoPaths(t.testdir({})))).notifiers, [], 'a missing file is no notifiers')
})

t.test('an entry we write keeps Aim shape, unknown fields and unknown types; mode 0600', async (t) => {
  const root = repoWith(t.testdir({}), 'written-by-aim-cli.json')
  const paths = repoPaths(root)
  const raw = JSON.parse(readFileSync(paths.config, 'utf8'))
  raw.extra = { keep: true }
  raw.notifications.notifiers['0b0b0b0b-0000-4000-8000-000000000000'] = { id: '0b0b0b0b-0000-4000-8000-000000000000', type: 'teams', arguments: { x: 1 }, status: 'enabled', future: 'field' }
  writeFileSync(paths.config, JSON.stringify(raw))
  const added = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL }, events: ['stalled', 'failed'] })
  const after = JSON.parse(readFileSync(paths.config, 'utf8'))
  const aimEntry = after.notifications.notifiers['14474dba-565c-4802-938e-cb3569c9db4f']
  const ours = after.notifications.notifiers[added.id]
  t.same(Object.keys(ours).slice(0, 4), ['id', 'type', 'arguments', 'status'], "Aim's key order")
  t.same(Object.keys(ours.arguments).sort(), Object.keys(aimEntry.arguments).sort(), 'same argument keys as Aim writes (url, message)')
  t.same(after.extra, { keep: true })
  t.same(after.notifications.notifiers['0b0b0b0b-0000-4000-8000-000000000000'].future, 'field', 'unknown type kept whole')
  t.equal(after.notifications.log_level, 40)
  t.same(after.notifications.notifiers['571ed3b6-265a-453d-b285-fc32c0a3ee9d'], raw.notifications.notifiers['571ed3b6-265a-453d-b285-fc32c0a3ee9d'])
  t.equal(statSync(paths.config).mode & 0o777, 0o600)
  // Disabling an entry of a type unknown here works, as in Aim.
  await disableNotifier(root, '0b0b0b0b-0000-4000-8000-000000000000')
  const listed = await listNotifiers(root)
  const teams = listed.find((l) => l.type === 'teams')
  t.equal(teams?.status, 'disabled')
  t.equal(teams?.usable, false)
})

t.test('corrupt file: coded error naming the file, never overwritten', async (t) => {
  const root = t.testdir({})
  const paths = repoPaths(root)
  mkdirSync(paths.notifications, { recursive: true })
  writeFileSync(paths.config, '{"notifications": {')
  await t.rejects(readNotificationsConfig(paths), { code: 'AIM_STATUS_CORRUPT_FILE', message: /config\.json/ })
  await t.rejects(addNotifier(root, { type: 'logger' }), { code: 'AIM_STATUS_CORRUPT_FILE' })
  t.equal(readFileSync(paths.config, 'utf8'), '{"notifications": {')
  writeFileSync(paths.config, '[1]')
  await t.rejects(readNotificationsConfig(paths), { code: 'AIM_STATUS_CORRUPT_FILE' })
})

t.test('registry functions: validation, unknown and hostile ids, nothing half-applied', async (t) => {
  const root = t.testdir({})
  const paths = repoPaths(root)
  const a = await addNotifier(root, { type: 'logger' })
  t.match(a.id, /^[0-9a-f-]{36}$/)
  t.equal(a.arguments['message'], "❗️ Something wrong with Run '{run.hash}'. Please check. ❗️", 'Aim types always get a message')
  const before = readFileSync(paths.config, 'utf8')
  await t.rejects(addNotifier(root, { type: 'slack', arguments: { url: 'ftp://x' } }), { code: 'AIM_STATUS_INVALID_NOTIFIER' })
  await t.rejects(addNotifier(root, { type: 'nope' }), { code: 'AIM_STATUS_INVALID_NOTIFIER' })
  await t.rejects(addNotifier(root, { type: 'logger', messages: { stalled: '{run.nope}' } }), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
  await t.rejects(addNotifier(root, { type: 'logger', id: a.id }), { code: 'AIM_STATUS_INVALID_NOTIFIER' })
  for (const hostile of ['../x', '..', 'a/b', '', '__proto__x/']) {
    await t.rejects(enableNotifier(root, hostile), { code: 'AIM_STATUS_INVALID_ID' }, hostile)
    await t.rejects(removeNotifier(root, hostile), { code: 'AIM_STATUS_INVALID_ID' }, hostile)
  }
  await t.rejects(disableNotifier(root, '__proto__'), { code: 'AIM_STATUS_UNKNOWN_NOTIFIER' })
  await t.rejects(removeNotifier(root, 'constructor'), { code: 'AIM_STATUS_UNKNOWN_NOTIFIER' })
  t.equal(readFileSync(paths.config, 'utf8'), before, 'failed changes wrote nothing')
  await disableNotifier(root, a.id)
  t.equal((await listNotifiers(root))[0]?.status, 'disabled')
  await enableNotifier(root, a.id)
  await removeNotifier(root, a.id)
  t.same(await listNotifiers(root), [])
})

t.test('test sends through enabled notifiers, reports outcomes, redacts in listings', async (t) => {
  const root = t.testdir({})
  const ok = await addNotifier(root, { type: 'pager-test', arguments: { token: 'tok_0123456789abcdefXYZ' } })
  const bad = await addNotifier(root, { type: 'pager-test', arguments: { token: 'tok_0123456789abcdefXYZ', fail: true } })
  const off = await addNotifier(root, { type: 'pager-test', arguments: { token: 'tok_0123456789abcdefXYZ' }, status: 'disabled' })
  const lines: string[] = []
  const results = await testNotifiers(root, undefined, { writeLine: (l) => lines.push(l) })
  t.same(
    results.map((r) => [r.id, r.outcome.kind]).sort(),
    [
      [ok.id, 'delivered'],
      [bad.id, 'permanent'],
    ].sort(),
  )
  t.same(
    (await testNotifiers(root, off.id)).map((r) => r.outcome.kind),
    ['delivered'],
    'an explicit id is tested even when disabled',
  )
  await t.rejects(testNotifiers(root, 'missing'), { code: 'AIM_STATUS_UNKNOWN_NOTIFIER' })
  const text = JSON.stringify(await listNotifiers(root))
  t.notMatch(text, /tok_0123456789abcdefXYZ/)
  t.match(text, /"…fXYZ"/, 'the last 4 characters at most')
  t.notMatch(text, /tok_…/, 'not even the first ones')
})

t.test('log level: names and ints, as Aim stores it', async (t) => {
  const root = repoWith(t.testdir({}), 'aim-default.json')
  t.equal(await getLogLevel(root), 30)
  t.equal(await setLogLevel(root, 'debug'), 10)
  t.equal(await setLogLevel(root, '50'), 50)
  t.equal(await setLogLevel(root, 20), 20)
  t.equal(JSON.parse(readFileSync(repoPaths(root).config, 'utf8')).notifications.log_level, 20)
  t.throws(() => parseLogLevel('LOUD'), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => parseLogLevel('__proto__'), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => parseLogLevel(99), { code: 'AIM_STATUS_OUT_OF_RANGE' })
})

t.test('status file: merged, atomic, counted; listing shows it', async (t) => {
  const root = t.testdir({})
  const paths = repoPaths(root)
  const a = await addNotifier(root, { type: 'logger' })
  const record = (kind: DeliveryRecord['kind'], at: number, extra: Partial<DeliveryRecord> = {}): DeliveryRecord => ({
    kind,
    at,
    notifierId: a.id,
    notifierType: 'logger',
    eventKey: `k${at}`,
    eventKind: 'stalled',
    hash: 'h',
    attempts: 1,
    ...extra,
  })
  await Promise.all([
    recordDelivery(paths, record('notified', 1000)),
    recordDelivery(paths, record('failed', 3000, { error: 'HTTP 403', reason: 'permanent' })),
    recordDelivery(paths, record('retrying', 2000, { error: 'timeout' })),
    recordDelivery(paths, record('notified', 4000)),
    recordDelivery(paths, record('dropped', 1500, { error: 'notifier disabled', reason: 'disabled' })),
  ])
  const status = (await readNotifierStatus(paths))[a.id]
  t.same(status, { delivered: 2, failed: 1, dropped: 1, lastDeliveryAt: 4000, lastError: 'HTTP 403', lastErrorAt: 3000 }, 'a drop is counted apart, not as a failure')
  t.same((await listNotifiers(root))[0]?.delivery, status)
  await writeNotifierStatus(paths, { other: { delivered: 5 } })
  t.equal((await readNotifierStatus(paths))['other']?.delivered, 5)
  await t.rejects(writeNotifierStatus(paths, { '../x': { delivered: 1 } }), { code: 'AIM_STATUS_INVALID_ID' })
  await removeNotifier(root, a.id)
  t.equal((await readNotifierStatus(paths))[a.id], undefined, 'removal drops its status')
})

t.test('two processes adding 20 notifiers each at once lose nothing', async (t) => {
  const root = t.testdir({})
  const manage = fileURLToPath(new URL('../lib/notify/manage.ts', import.meta.url))
  const child = join(root, 'adder.mts')
  writeFileSync(child, `import { addNotifier } from ${JSON.stringify(manage)}\nfor (let i = 0; i < 20; i++) await addNotifier(process.argv[2], { type: 'logger', arguments: { message: process.argv[3] + ' ' + i } })\n`)
  const run = (tag: string) =>
    new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, root, tag], { stdio: ['ignore', 'inherit', 'inherit'] })
      p.on('exit', resolve)
    })
  t.same(await Promise.all([run('a'), run('b')]), [0, 0])
  const config = await readNotificationsConfig(repoPaths(root))
  t.equal(config.notifiers.length, 40)
  t.equal(new Set(config.notifiers.map((e) => e.arguments['message'])).size, 40)
})

t.test('hot reload: poll path with a manual clock; corrupt state reported, last good kept', async (t) => {
  const root = t.testdir({})
  const paths = repoPaths(root)
  const clock = new ManualClock()
  const seen: number[] = []
  const errors: string[] = []
  let wake: () => void = () => undefined
  const next = () => new Promise<void>((resolve) => (wake = resolve))
  let changed = next()
  const watch = watchNotificationsConfig(
    paths,
    (c) => {
      seen.push(c.notifiers.length)
      wake()
    },
    {
      clock,
      pollMs: 1000,
      useFsWatch: false,
      onError: (e) => {
        errors.push((e as { code?: string }).code ?? '')
        wake()
      },
    },
  )
  t.teardown(() => watch.close())
  await changed
  t.same(seen, [0], 'the current configuration first')
  changed = next()
  await addNotifier(root, { type: 'logger' })
  // Let the stat poll see it: advance until the callback arrives.
  await eventually(
    async () => {
      clock.advance(1000)
      await Promise.race([changed, new Promise((r) => setTimeout(r, 20))])
      return seen.length >= 2
    },
    'the stat poll sees the new entry',
    { intervalMs: 0 },
  )
  t.same(seen, [0, 1])
  changed = next()
  writeFileSync(paths.config, '{ half')
  await eventually(
    async () => {
      clock.advance(1000)
      await Promise.race([changed, new Promise((r) => setTimeout(r, 20))])
      return errors.length >= 1
    },
    'the stat poll reports the broken file',
    { intervalMs: 0 },
  )
  t.same(errors, ['AIM_STATUS_CORRUPT_FILE'])
  t.same(seen, [0, 1], 'the last good configuration stays')
})

t.test('hot reload: fs.watch sees an add without any poll', async (t) => {
  const root = t.testdir({})
  mkdirSync(repoPaths(root).notifications, { recursive: true })
  const seen: number[] = []
  const watch = watchNotificationsConfig(repoPaths(root), (c) => void seen.push(c.notifiers.length), { pollMs: 600_000 })
  t.teardown(() => watch.close())
  await eventually(() => seen.length >= 1, 'the current configuration first')
  await addNotifier(root, { type: 'logger' })
  // Generous bound: the event normally arrives within ~60 ms, and no poll runs in this test.
  await eventually(() => seen.includes(1), 'a file event brings the new entry', { timeoutMs: 10_000 })
  t.ok(seen.includes(1), `saw ${JSON.stringify(seen)}`)
})
