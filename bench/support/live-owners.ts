/**
 * Live owners for the `daemon-cost` scenario: one process holding COUNT leased snapshots of its
 * own pid, as COUNT training processes would (each its own owner id), built on the package's
 * durable owner from `dist/`. Each lease is refreshed by proper-lockfile as a training
 * process's is, and every second about COUNT / 30 snapshots are written again (a run's
 * deadline moved), so each owner rewrites its snapshot about every 30 s. Prints `ready COUNT`
 * once every lease is held; SIGTERM releases them all and exits.
 *
 *     node --import tsx bench/support/live-owners.ts REPO COUNT
 * @module
 */
import { systemClock, monotonicNow } from '../../dist/clock.js'
import { DurableOwner } from '../../dist/owner/durable-owner.js'
import { repoPaths } from '../../dist/repo.js'
import { prepareStatusFolders, snapshotPath, statusLayout } from '../../dist/state/layout.js'
import { currentOwner } from '../../dist/state/owner.js'
import type { RunInfo } from '../../dist/model.js'

const [repo, countText] = process.argv.slice(2)
const count = Number(countText)
if (repo === undefined || !Number.isInteger(count) || count < 1) throw new TypeError('usage: live-owners.ts REPO COUNT')
const layout = statusLayout(repoPaths(repo))
prepareStatusFolders(layout)

interface Held {
  owner: DurableOwner
  run: RunInfo
}

const PROMISE_S = 3600
const runOf = (i: number): RunInfo => {
  const at = monotonicNow()
  return { hash: `live_owner_run_${i}`, status: 'running', startedAt: at, lastProgressAt: at, expectNextIn: PROMISE_S, deadlineAt: at + PROMISE_S * 1000, grace: 100, episode: 0 }
}

const held: Held[] = []
for (let i = 0; i < count; i++) {
  const info = currentOwner('process')
  const owner = await DurableOwner.acquire({
    path: snapshotPath(layout, info.id),
    owner: info,
    clock: systemClock,
    onLost: (error) => console.error(`lease lost: ${error.message}`),
    onError: (error) => console.error(`snapshot error: ${String(error)}`),
  })
  const entry: Held = { owner, run: runOf(i) }
  owner.serve(() => ({ owner: info, runs: [entry.run], outbox: null, extra: {} }))
  await owner.commit()
  held.push(entry)
}
console.log(`ready ${count}`)

// About count / 30 rewrites a second, round robin: each owner's deadline moves every ~30 s.
let next = 0
const perSecond = Math.max(1, Math.round(count / 30))
const rewrite = setInterval(() => {
  for (let k = 0; k < perSecond; k++) {
    const entry = held[next++ % held.length] as Held
    const at = monotonicNow()
    entry.run = { ...entry.run, lastProgressAt: at, deadlineAt: at + PROMISE_S * 1000 }
    entry.owner.changed()
  }
}, 1000)

process.once('SIGTERM', () => {
  clearInterval(rewrite)
  void Promise.all(held.map(({ owner }) => owner.end(() => ({ outstanding: false })))).then(() => process.exit(0))
})
