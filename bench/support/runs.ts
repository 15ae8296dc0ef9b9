/**
 * Actors filled with runs, as the benches need them.
 * @module
 */
import { hostname } from 'node:os'
import { RepoActor, type ActorOptions } from '../../lib/actor/actor.js'
import { monotonicNow, systemClock } from '../../lib/clock.js'
import { runHash } from './report.js'

/** A RepoActor on the real clock that ignores its events. */
export function benchActor(onChange?: ActorOptions['onChange']): RepoActor {
  return new RepoActor({ clock: systemClock, repo: '/bench', host: hostname(), pid: process.pid, onEvent() {}, ...(onChange !== undefined ? { onChange } : {}) })
}

/** The promise of run `i`, 1 to 60 s: deadlines spread like a fleet's. */
export const promiseOf = (i: number) => 1 + (i % 60)

/**
 * Opens `n` running runs with deadlines. `slots`: each with its 16-byte shared slot, as the
 * worker's runs have. `named`: with a name and an experiment, as a snapshot would hold them.
 */
export function openRuns(actor: RepoActor, n: number, options: { slots?: boolean; named?: boolean } = {}): string[] {
  const at = monotonicNow()
  const hashes: string[] = []
  for (let i = 0; i < n; i++) {
    const hash = runHash(i)
    hashes.push(hash)
    actor.open({
      hash,
      grace: 100,
      at,
      ...(options.slots === true ? { slot: new Float64Array(new SharedArrayBuffer(16)) } : {}),
      ...(options.named === true ? { name: `resnet50-lr3e-4-seed${i}`, experiment: `sweep-${i % 20}` } : {}),
    })
    actor.progress(hash, at, promiseOf(i))
  }
  return hashes
}
