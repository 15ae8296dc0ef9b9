import t from 'tap'
import type { Test } from 'tap'
import { chmodSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { readExitMarker, removeExitMarker, installExitMarker } from '../lib/state/exit-marker.js'
import { currentOwner } from '../lib/state/owner.js'
import { startFixture } from './support/child.js'

async function endChild(t: Test, mode: string, signal?: NodeJS.Signals) {
  const status = join(t.testdir(), 'status')
  const child = startFixture(new URL('./fixtures/state/exit-child.ts', import.meta.url), [status, mode])
  const ready = await child.waitFor((line) => line['event'] === 'ready')
  if (signal !== undefined) child.child.kill(signal)
  const exit = await child.exited
  const owner = ready['owner'] as { id: string }
  return { status, exit, marker: await readExitMarker({ status }, owner.id), ownerId: owner.id, stderr: child.stderr() }
}

t.test('process.exit(3) leaves a marker with the code and the unfinished runs', async (t) => {
  const { exit, marker, ownerId, status } = await endChild(t, 'exit3')
  t.same(exit, { code: 3, signal: null })
  t.match(marker, { format: 'aim-status/exit', exitCode: 3, signal: null, unfinishedRuns: ['run_a', 'run_b'], owner: { id: ownerId, kind: 'process' } })
  t.notOk(marker && 'error' in marker, 'no uncaught error recorded')
  const file = join(status, 'exits', `${ownerId}.json`)
  t.equal(statSync(file).mode & 0o777, 0o600, 'marker is owner-only')
  t.same(readdirSync(join(status, 'exits')), [`${ownerId}.json`], 'no temp file left behind')
  removeExitMarker({ status }, ownerId)
  t.equal(await readExitMarker({ status }, ownerId), null, 'removed')
})

t.test('an uncaught exception records exit code 1 and the error', async (t) => {
  const { exit, marker, stderr } = await endChild(t, 'throw')
  t.same(exit, { code: 1, signal: null })
  t.match(stderr, /boom in training/)
  t.match(marker, { exitCode: 1, signal: null, error: 'TypeError: boom in training', unfinishedRuns: ['run_a', 'run_b'] })
})

t.test('SIGTERM with no handler: marker records the signal and the process still dies by it', async (t) => {
  const { exit, marker } = await endChild(t, 'sigterm', 'SIGTERM')
  t.same(exit, { code: null, signal: 'SIGTERM' })
  t.match(marker, { exitCode: null, signal: 'SIGTERM', unfinishedRuns: ['run_a', 'run_b'] })
})

t.test('SIGHUP and SIGINT are recorded the same way', async (t) => {
  for (const signal of ['SIGHUP', 'SIGINT'] as const) {
    const { exit, marker } = await endChild(t, 'sigterm', signal)
    t.same(exit, { code: null, signal }, signal)
    t.match(marker, { signal, exitCode: null }, signal)
  }
})

t.test('SIGTERM beside a held lease (signal-exit listening too): recorded, lock released, dies by the signal', async (t) => {
  const { exit, marker, status, ownerId } = await endChild(t, 'lease-sigterm', 'SIGTERM')
  t.same(exit, { code: null, signal: 'SIGTERM' })
  t.match(marker, { signal: 'SIGTERM', unfinishedRuns: ['run_a', 'run_b'] })
  const owners = readdirSync(join(status, 'owners'))
  t.notOk(owners.includes(`${ownerId}.json.lock`), 'proper-lockfile still released its lock on the signal')
})

t.test('a program with its own SIGINT handler decides; the marker follows its exit', async (t) => {
  const { exit, marker } = await endChild(t, 'handled-sigint', 'SIGINT')
  t.same(exit, { code: 5, signal: null })
  t.match(marker, { exitCode: 5, signal: null, unfinishedRuns: ['run_a'] })
})

t.test('a natural end with unfinished runs is recorded with code 0', async (t) => {
  const { exit, marker } = await endChild(t, 'natural-end')
  t.same(exit, { code: 0, signal: null })
  t.match(marker, { exitCode: 0, unfinishedRuns: ['run_a', 'run_b'] })
})

t.test('a process that finished all its runs leaves no marker', async (t) => {
  const { exit, marker, status } = await endChild(t, 'finished')
  t.same(exit, { code: 0, signal: null })
  t.equal(marker, null)
  t.throws(() => readdirSync(join(status, 'exits')), { code: 'ENOENT' }, 'not even the folder')
})

t.test('uninstall removes every hook', async (t) => {
  const before = ['exit', 'uncaughtExceptionMonitor', 'SIGTERM', 'SIGINT', 'SIGHUP'].map((e) => process.listenerCount(e))
  const uninstall = installExitMarker({ status: t.testdir() }, currentOwner('process'), () => ['x'])
  t.equal(process.listenerCount('exit'), before[0]! + 1)
  uninstall()
  t.same(
    ['exit', 'uncaughtExceptionMonitor', 'SIGTERM', 'SIGINT', 'SIGHUP'].map((e) => process.listenerCount(e)),
    before,
  )
})

t.test('reading: hostile ids are refused, bad markers are set aside', async (t) => {
  const status = t.testdir()
  await t.rejects(readExitMarker({ status }, '../../etc/passwd'), { code: 'AIM_STATUS_INVALID_ID' })
  mkdirSync(join(status, 'exits'))
  const owner = currentOwner('process')
  const write = (name: string, body: unknown) => writeFileSync(join(status, 'exits', `${name}.json`), JSON.stringify(body))
  const good = { format: 'aim-status/exit', version: 1, owner, exitedAt: 1, exitCode: 2, signal: null, unfinishedRuns: ['r1'] }
  write(owner.id, good)
  t.match(await readExitMarker({ status }, owner.id), { exitCode: 2, unfinishedRuns: ['r1'] })
  const cases: Record<string, unknown> = {
    badhash: { ...good, unfinishedRuns: ['../x'] },
    badsignal: { ...good, exitCode: null, signal: 'rm -rf' },
    badcode: { ...good, exitCode: 1.5 },
    badtime: { ...good, exitedAt: 'now' },
    baderror: { ...good, error: 42 },
    badruns: { ...good, unfinishedRuns: 'r1' },
    badformat: { ...good, version: 2 },
    notobject: [1],
    otherowner: good,
  }
  for (const [name, body] of Object.entries(cases)) {
    write(name, body)
    await t.rejects(readExitMarker({ status }, name), { code: 'AIM_STATUS_CORRUPT_FILE' }, name)
  }
  const left = readdirSync(join(status, 'exits'))
  t.equal(left.filter((n) => n.includes('.corrupt-')).length, Object.keys(cases).length, 'each bad marker set aside')
  t.ok(left.includes(`${owner.id}.json`), 'the good marker stays')
  if (process.getuid?.() !== 0) {
    chmodSync(join(status, 'exits'), 0o000)
    t.teardown(() => chmodSync(join(status, 'exits'), 0o700))
    await t.rejects(readExitMarker({ status }, owner.id), { code: 'AIM_STATUS_INVALID_PATH', message: /permission denied/ })
  }
})
