import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { once } from 'node:events'
import { currentOwner, currentHostId, ownerLiveness, checkOwnerId } from '../lib/state/owner.js'
import type { OwnerInfo } from '../lib/state/owner.js'
import { acquireLease, adoptOrphan, inspectLease, retireSnapshot, DEFAULT_STALE_MS } from '../lib/state/lease.js'
import { claimGeneration, fencePath, highestGeneration, readFence } from '../lib/state/fence.js'
import { readSnapshot, writeSnapshotAtomic, SNAPSHOT_FORMAT } from '../lib/state/snapshot.js'
import { snapshotPath, statusLayout } from '../lib/state/layout.js'
import { startFixture } from './support/child.js'
import { eventually } from './support/eventually.js'

const procTicks = (pid: number): number => {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[19])
}

function ownersOf(t: Test) {
  const layout = statusLayout({ status: join(t.testdir(), 'status') })
  mkdirSync(layout.owners, { recursive: true })
  return layout
}

async function writeOrphan(path: string, owner: OwnerInfo): Promise<void> {
  await writeSnapshotAtomic(path, {
    format: SNAPSHOT_FORMAT,
    version: 1,
    owner,
    generation: 1,
    writtenAt: 1,
    runs: [{ hash: 'run_a', status: 'running', startedAt: 1, lastProgressAt: 1, expectNextIn: 60, deadlineAt: 60_001, grace: 5, episode: 0 }],
    outbox: { pending: 1 },
    extra: {},
  })
  claimGeneration(path, 1, owner)
}

/** An owner whose process really ran and is now dead (killed and reaped). */
async function deadOwner(t: Test): Promise<OwnerInfo> {
  const child = startFixture(new URL('./fixtures/state/exit-child.ts', import.meta.url), [join(t.testdir(), 'dead'), 'sigterm'])
  const ready = await child.waitFor((l) => l['event'] === 'ready')
  child.child.kill('SIGKILL')
  await child.exited
  return ready['owner'] as OwnerInfo
}

t.test('owner identity and liveness', async (t) => {
  const me = currentOwner('process')
  t.match(me, { kind: 'process', pid: process.pid, hostId: currentHostId() })
  t.equal(checkOwnerId(me.id), me.id)
  t.not(currentOwner('daemon').id, me.id, 'a fresh id each time')
  t.throws(() => currentOwner('robot' as 'process'), { code: 'AIM_STATUS_INVALID_OPTION' })
  t.throws(() => checkOwnerId('a/b'), { code: 'AIM_STATUS_INVALID_ID' })
  t.ok(Math.abs(me.startTime - (Date.now() - process.uptime() * 1000)) < 5000, 'start time agrees with the uptime')
  t.equal(ownerLiveness(me), 'alive')
  t.equal(ownerLiveness({ ...me, startTicks: (me.startTicks ?? 0) + 1 }), 'dead', 'same pid, another start: a reused pid')
  t.equal(ownerLiveness({ ...me, hostId: 'linux:another-machine' }), 'unknown', 'another host: leave it to the lease')
  t.equal(ownerLiveness({ ...me, startTicks: null }), 'alive', 'without a start time, an existing pid counts as alive')
  t.equal(ownerLiveness(await deadOwner(t)), 'dead', 'a killed process')
  // A zombie (exited, never reaped by its parent) still has a pid and answers signal 0.
  const shell = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => void shell.kill('SIGKILL'))
  const [line] = (await once(createInterface({ input: shell.stdout! }), 'line')) as [string]
  const zombiePid = Number(line)
  await eventually(() => readFileSync(`/proc/${zombiePid}/stat`, 'latin1').includes(') Z '), 'the child is a zombie', { intervalMs: 10 })
  const ticks = procTicks(zombiePid)
  t.equal(ownerLiveness({ ...me, pid: zombiePid, startTicks: ticks }), 'dead', 'a zombie is dead')
})

t.test('acquire, refuse a second holder, release, retire', async (t) => {
  const layout = ownersOf(t)
  const owner = currentOwner('process')
  const path = snapshotPath(layout, owner.id)
  const lease = await acquireLease(path, owner, { staleMs: 2000 })
  t.equal(lease.generation, 1)
  t.same(readFence(path, 1)?.holder, owner)
  t.ok(statSync(`${path}.lock`).isDirectory())
  t.match(await inspectLease(path), { generation: 1, liveness: 'alive', orphaned: false })
  await t.rejects(acquireLease(path, currentOwner('daemon')), { code: 'AIM_STATUS_LOCKED' })
  t.equal(await adoptOrphan(path, currentOwner('daemon')), null, 'a live, fresh owner is not adopted')
  t.equal(highestGeneration(path), 1, 'a refused attempt claims nothing')
  lease.assertGeneration()
  await lease.release()
  await lease.release()
  t.notOk(existsSync(`${path}.lock`))
  t.match(await inspectLease(path), { generation: 1, orphaned: true }, 'a released snapshot is an orphan at once')
  const again = await acquireLease(path, owner, { staleMs: 2000 })
  t.equal(again.generation, 2, 'taking it again raises the generation')
  await writeOrphan(path, owner)
  await retireSnapshot(again)
  t.same(readdirSync(layout.owners), [], 'snapshot, fences and lock all gone')
  for (const bad of [{ staleMs: 1000 }, { staleMs: 2500.5 }, { staleMs: 4000, updateMs: 2500 }, { updateMs: 500 }]) {
    await t.rejects(acquireLease(path, owner, bad), { code: 'AIM_STATUS_OUT_OF_RANGE' }, JSON.stringify(bad))
  }
  t.equal(DEFAULT_STALE_MS, 10_000)
})

t.test('a SIGKILLed holder is adopted at once on this host (dead pid), without waiting for staleness', async (t) => {
  const layout = ownersOf(t)
  const path = join(layout.owners, 'holder.json')
  const holder = startFixture(new URL('./fixtures/state/lease-holder.ts', import.meta.url), [path, String(DEFAULT_STALE_MS), '2000'])
  await holder.waitFor((l) => l['event'] === 'held')
  const daemon = currentOwner('daemon')
  t.equal(await adoptOrphan(path, daemon), null, 'alive: not adopted')
  const killedAt = performance.now()
  holder.child.kill('SIGKILL')
  await holder.exited
  const adoption = await adoptOrphan(path, daemon)
  const elapsed = performance.now() - killedAt
  t.ok(adoption, 'adopted')
  t.ok(elapsed < DEFAULT_STALE_MS, `adopted before the lock went stale (${elapsed.toFixed(0)} ms after SIGKILL)`)
  t.comment(`SIGKILL -> adopted, dead-pid shortcut, stale ${DEFAULT_STALE_MS} ms: ${elapsed.toFixed(0)} ms`)
  t.match(adoption, { generation: 2, snapshot: { generation: 2, adoptedBy: daemon, runs: [{ hash: 'run_a' }] } })
  t.match(await readSnapshot(path), { generation: 2, adoptedBy: { id: daemon.id } }, 'written back')
  t.equal(adoption!.lease.lost, false)
  await adoption!.release()
})

t.test('a SIGKILLed holder on another host is adopted once its lock is stale', async (t) => {
  const layout = ownersOf(t)
  const path = join(layout.owners, 'remote.json')
  const holder = startFixture(new URL('./fixtures/state/lease-holder.ts', import.meta.url), [path, '2000', '1000'])
  const held = await holder.waitFor((l) => l['event'] === 'held')
  // What another machine would have written: the same files, a host id that is not ours.
  writeFileSync(fencePath(path, 1), JSON.stringify({ ...(held['owner'] as OwnerInfo), hostId: 'linux:other-machine' }))
  const killedAt = performance.now()
  holder.child.kill('SIGKILL')
  await holder.exited
  let attempts = 0
  const adoption = await eventually(
    () => {
      attempts += 1
      return adoptOrphan(path, currentOwner('daemon'), { staleMs: 2000 })
    },
    'the orphan adopted once its lock is stale',
    { timeoutMs: 30_000, intervalMs: 100 },
  )
  const elapsed = performance.now() - killedAt
  t.ok(adoption, 'adopted')
  t.ok(attempts > 1, 'not before the lock went stale')
  t.comment(`SIGKILL -> adopted, other host, stale 2000 ms: ${elapsed.toFixed(0)} ms (${attempts} attempts)`)
  t.equal(adoption?.generation, 2)
  await adoption?.release()
})

t.test('a frozen holder is adopted after staleness; resumed, it finds its lease lost and its writes refused', async (t) => {
  const layout = ownersOf(t)
  const path = join(layout.owners, 'frozen.json')
  const holder = startFixture(new URL('./fixtures/state/lease-holder.ts', import.meta.url), [path, '2000', '1000'])
  t.teardown(() => void holder.child.kill('SIGKILL'))
  await holder.waitFor((l) => l['event'] === 'held')
  holder.child.kill('SIGSTOP')
  const stoppedAt = performance.now()
  const daemon = currentOwner('daemon')
  const adoption = await eventually(() => adoptOrphan(path, daemon, { staleMs: 2000 }), 'the frozen holder adopted once stale', { timeoutMs: 30_000, intervalMs: 100 })
  t.ok(adoption, 'adopted while the holder is alive but frozen')
  t.comment(`SIGSTOP -> adopted, stale 2000 ms: ${(performance.now() - stoppedAt).toFixed(0)} ms`)
  const adoptedText = readFileSync(path, 'utf8')
  holder.child.kill('SIGCONT')
  const lost = await holder.waitFor((l) => l['event'] === 'lost')
  t.match(lost, { code: 'AIM_STATUS_LEASE_LOST', message: /generation 2|compromised/ })
  t.match(await holder.waitFor((l) => l['event'] === 'write-refused'), { code: 'AIM_STATUS_LEASE_LOST' })
  // Give the resumed holder time for a few refresh and write attempts, then look.
  await new Promise((r) => setTimeout(r, 2500))
  t.equal(readFileSync(path, 'utf8'), adoptedText, 'the resumed holder wrote nothing over the adopted snapshot')
  t.equal(adoption!.lease.lost, false, 'the adopter keeps its lease')
  t.match(await inspectLease(path, { staleMs: 2000 }), { generation: 2, holder: { id: daemon.id }, orphaned: false })
  await adoption!.release()
})

t.test('20 races of two adopter processes for one orphan: exactly one wins each time', async (t) => {
  const layout = ownersOf(t)
  const adopters = [startFixture(new URL('./fixtures/state/adopter.ts', import.meta.url), []), startFixture(new URL('./fixtures/state/adopter.ts', import.meta.url), [])]
  t.teardown(() => adopters.forEach((a) => a.child.kill('SIGKILL')))
  await Promise.all(adopters.map((a) => a.waitFor((l) => l['event'] === 'ready')))
  const dead = await deadOwner(t)
  const wins = [0, 0]
  for (let round = 0; round < 20; round++) {
    const path = join(layout.owners, `orphan${round}.json`)
    if (round % 2 === 0) {
      // A dead process of this host, its lock still fresh.
      await writeOrphan(path, { ...dead, id: `orphan${round}` })
      mkdirSync(`${path}.lock`)
    } else {
      // A quiet owner of another host: lock and fence untouched for a minute.
      await writeOrphan(path, { ...dead, id: `orphan${round}`, hostId: 'linux:other-machine' })
      mkdirSync(`${path}.lock`)
      const old = new Date(Date.now() - 60_000)
      utimesSync(`${path}.lock`, old, old)
      utimesSync(fencePath(path, 1), old, old)
    }
    const before = adopters.map((a) => a.lines.length)
    for (const a of adopters) a.send(`adopt ${path} 2000`)
    const answers = await Promise.all(adopters.map((a, i) => a.waitFor((l) => a.lines.indexOf(l) >= before[i]! && l['event'] !== 'released')))
    const winners = answers.flatMap((answer, i) => (answer['event'] === 'adopted' ? [i] : []))
    t.equal(winners.length, 1, `round ${round}: exactly one adoption (${JSON.stringify(answers)})`)
    const winner = winners[0]!
    wins[winner]! += 1
    t.equal(answers[1 - winner]!['event'], 'declined')
    t.match(await readSnapshot(path), { generation: 2, adoptedBy: { id: answers[winner]!['id'] } })
    t.equal(highestGeneration(path), 2, 'one generation claimed')
    const released = adopters[winner]!.lines.length
    adopters[winner]!.send('release')
    await adopters[winner]!.waitFor((l) => adopters[winner]!.lines.indexOf(l) >= released && l['event'] === 'released')
  }
  t.comment(`wins per adopter: ${wins.join(' / ')}`)
})

/** Blocks this thread for `ms` of real time, as a frozen process would be (no timer runs, no refresh). */
const freeze = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

t.test('confirm(): a holder silent for half its stale period claims the next generation before it acts', async (t) => {
  const layout = ownersOf(t)
  const path = snapshotPath(layout, 'confirming')
  const me = currentOwner('process')
  const lease = await acquireLease(path, me, { staleMs: 2000 })
  t.teardown(() => lease.release())
  t.equal(lease.confirm(), true, 'fresh: may act')
  t.equal(lease.generation, 1, 'nothing claimed while fresh')
  freeze(1200)
  t.equal(lease.confirm(), true, 'won the next generation: may act')
  t.equal(lease.generation, 2)
  t.equal(readFence(path, 2)?.holder?.id, me.id, 'the claim is ours')
  const state = await inspectLease(path, { staleMs: 2000 })
  t.equal(state.orphaned, false, 'an adopter now sees a fresh claim')
  t.equal(await adoptOrphan(path, currentOwner('daemon'), { staleMs: 2000 }), null, 'and cannot adopt')
  t.equal(lease.confirm(), true, 'confirmed just now: no further claim')
  t.equal(lease.generation, 2)
})

t.test('confirm(): an adopter that claimed first wins; the woken holder may not act', async (t) => {
  const layout = ownersOf(t)
  const path = snapshotPath(layout, 'raced')
  const lost: string[] = []
  const lease = await acquireLease(path, currentOwner('process'), { staleMs: 2000, onLost: (error) => lost.push(error.code) })
  freeze(1200)
  // What an adopter does while we are frozen: its claim of the next generation is its atomic step.
  t.equal(claimGeneration(path, 2, currentOwner('daemon')), true)
  t.equal(lease.confirm(), false, 'fenced off')
  t.equal(lease.lost, true)
  t.same(lost, ['AIM_STATUS_LEASE_LOST'], 'told once')
  t.throws(() => lease.assertGeneration(), { code: 'AIM_STATUS_LEASE_LOST' })
  t.equal(claimGeneration(path, 3, currentOwner('process')), true, 'generation 3 is not taken by the loser')
})
