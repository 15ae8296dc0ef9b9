/**
 * Takeover: carries out the planner's decisions on the daemon's runtime, for one session as the
 * repo's sender. It adopts orphans' runs and outboxes (failed or carried on), holds frozen
 * owners' emptied snapshots as tombstones until they can be retired, reports exit markers left
 * alone, hands runs back to owners that report again, and forgets ended runs after a while.
 * Every decision is the planner's (planner.ts); this module only acts on it.
 * @module
 */
import { rename, rm } from 'node:fs/promises'
import type { Clock } from '../clock.js'
import type { RepoRuntime } from '../actor/runtime.js'
import type { DurableOwner } from '../owner/durable-owner.js'
import type { RepoPaths } from '../repo.js'
import { readExitMarker, removeExitMarker, type ExitMarker } from '../state/exit-marker.js'
import { exitMarkerPath, type StatusLayout } from '../state/layout.js'
import { retireSnapshot, type Adoption, type Lease } from '../state/lease.js'
import { ownerLiveness, type OwnerInfo } from '../state/owner.js'
import { writeSnapshotAtomic, type Snapshot } from '../state/snapshot.js'
import { isTerminalPath } from '../terminal.js'
import type { AimRuns } from './aim-runs.js'
import type { DaemonLog } from './log.js'
import { drainConcurrently } from './pool.js'
import { planAdoption, planHandBack, type AdoptionPlan, planMarkerOnly, planPrune, planTombstones, withSessionsLost } from './planner.js'

/** What a {@link Takeover} needs from the repo watch. */
export interface TakeoverOptions {
  root: string
  paths: RepoPaths
  layout: StatusLayout
  /** The daemon's identity: claims of exit markers carry its id. */
  daemonOwner: OwnerInfo
  clock: Clock
  /** How long a frozen owner's emptied snapshot is held before it is retired anyway. */
  tombstoneMs: number
  /** How long ended runs stay in the daemon's snapshot. */
  keepEndedMs: number
  log: DaemonLog
  /** One owner's trouble, logged; it never stops the others. */
  ownerError(id: string, error: unknown): void
  /** Filled in: the terminal each adopted run's process was started from, when it recorded one. */
  terminals?: Map<string, string>
}

/** Orphans retired (or held as tombstones) at once after a batch's commit. */
const SETTLE_CONCURRENCY = 8

/** An orphan taken into the runtime, waiting for the batch's commit. */
interface Taken {
  id: string
  adoption: Adoption
  marker: ExitMarker | null
  plan: AdoptionPlan
  failed: number
  carried: number
  now: number
  /** The write holding its absorbed outbox (its trouble already reported). */
  absorbed: Promise<void>
}

/** A frozen owner's snapshot, emptied and held so that the owner finds its lease lost on waking. */
interface Tombstone {
  lease: Lease
  owner: OwnerInfo
  since: number
}

/** What the daemon does to other owners' runs during one session. */
export class Takeover {
  readonly #options: TakeoverOptions
  readonly #runtime: RepoRuntime
  readonly #owner: DurableOwner
  readonly #aim: AimRuns
  readonly #tombstones = new Map<string, Tombstone>()
  /** When each ended run was first seen ended (for pruning). */
  readonly #endedAt = new Map<string, number>()

  constructor(options: TakeoverOptions, session: { runtime: RepoRuntime; owner: DurableOwner; aim: AimRuns }) {
    this.#options = options
    this.#runtime = session.runtime
    this.#owner = session.owner
    this.#aim = session.aim
  }

  /** Whether we hold this owner's snapshot as a tombstone (discovery skips it). */
  isTombstone(id: string): boolean {
    return this.#tombstones.has(id)
  }

  /** Lets go of every tombstone (the session ends; the next sender adopts them again if needed). */
  async releaseTombstones(): Promise<void> {
    for (const tombstone of this.#tombstones.values()) await tombstone.lease.release().catch(() => undefined)
    this.#tombstones.clear()
  }

  /**
   * Carries out the plans for adopted orphans, as one batch: each one's runs and outbox taken
   * in, then one commit makes them all durable, then each snapshot is retired or held. One commit
   * per batch, not per orphan: the daemon's snapshot grows with what it carries, and writing it
   * whole once per orphan made a backlog cost O(n²) bytes. Durable before acting holds as before:
   * an event a failed run makes is queued in the outbox, which sends it only after a commit that
   * holds it (delivery.ts), and no orphan's snapshot is retired before the commit that holds its
   * runs. One orphan's trouble is its own (`ownerError`); the others go on.
   */
  async adopt(adoptions: ReadonlyArray<{ id: string; adoption: Adoption }>): Promise<void> {
    const taken: Taken[] = []
    for (const { id, adoption } of adoptions) {
      try {
        taken.push(await this.#take(id, adoption))
      } catch (error) {
        this.#options.ownerError(id, error)
      }
    }
    if (taken.length === 0) return
    // The outboxes taken in persist through the same writer: awaited together, with the batch.
    await Promise.all(taken.map((t) => t.absorbed))
    await this.#owner.commit()
    let next = 0
    await drainConcurrently(
      SETTLE_CONCURRENCY,
      () => taken[next++],
      async (t) => {
        try {
          await this.#settle(t)
        } catch (error) {
          this.#options.ownerError(t.id, error)
        }
      },
    )
  }

  /** An orphan's runs and outbox taken into the runtime (not yet durable). */
  async #take(id: string, adoption: Adoption): Promise<Taken> {
    const runtime = this.#runtime
    const { actor } = runtime
    const snapshot = adoption.snapshot
    const original = snapshot.owner
    let marker = null
    try {
      marker = await readExitMarker(this.#options.paths, id)
    } catch (error) {
      this.#options.ownerError(id, error)
    }
    const plan = planAdoption({ snapshot, marker, liveness: ownerLiveness(original), mine: (hash) => actor.run(hash) })
    // A daemon's Python-Aim runs: their first sights and notified idx carry on here, and are
    // made durable by the batch's commit, before its snapshot is retired.
    if (plan.absorbCheckins) {
      try {
        this.#aim.absorb(snapshot.extra['checkins'])
      } catch (error) {
        this.#options.ownerError(id, error)
      }
    }
    // Its outbox first, so that keys it already delivered are known before any event is made:
    // absorb() takes them in before its first await; its promise is the write that holds them.
    const absorbed = plan.absorbOutbox ? runtime.delivery.absorb(snapshot.outbox).catch((error: unknown) => this.#options.ownerError(id, error)) : Promise.resolve()
    // Before any run is failed: the failure's news may go to that terminal.
    const terminal = snapshot.extra['terminal']
    if (this.#options.terminals !== undefined && isTerminalPath(terminal)) for (const run of snapshot.runs) this.#options.terminals.set(run.hash, terminal)
    const now = this.#options.clock.now()
    for (const hash of plan.forget) {
      actor.forget(hash)
      this.#options.log.info('handed-back', { repo: this.#options.root, hash, owner: id, pid: original.pid, host: original.host })
    }
    let failed = 0
    let carried = 0
    for (const step of plan.runs) {
      if (step.action === 'skip') {
        // Ended by its own process (which reported it): kept, without an event, so that
        // `status` still shows it for keepEndedMs once the orphan's snapshot is retired.
        if (step.why === 'ended' && actor.run(step.run.hash) === undefined) actor.adopt(step.run)
        continue
      }
      // A run carried from a daemon's snapshot may have reported over a session of that daemon:
      // its process has not spoken to this one yet, so the session is lost until it resumes.
      actor.adopt(step.action === 'fail' ? step.run : withSessionsLost(step.run))
      if (step.action === 'fail') {
        actor.fail(step.run.hash, now, step.reason)
        failed++
      } else {
        carried++
      }
    }
    return { id, adoption, marker, plan, failed, carried, now, absorbed }
  }

  /** After the commit that holds an orphan's runs: said, its marker removed, its snapshot retired or held. */
  async #settle(taken: Taken): Promise<void> {
    const { id, adoption, marker, plan, failed, carried, now } = taken
    const original = adoption.snapshot.owner
    this.#options.log.info('adopted', {
      repo: this.#options.root,
      owner: id,
      kind: original.kind,
      pid: original.pid,
      host: original.host,
      cause: plan.cause,
      generation: adoption.generation,
      failed,
      carried,
      ...(plan.cause === 'exited' || plan.cause === 'gone' ? { reason: plan.reason } : {}),
    })
    // The marker goes before the snapshot: a marker must never outlive its snapshot.
    if (marker !== null) removeExitMarker(this.#options.paths, id)
    if (plan.afterwards === 'tombstone') await this.#tombstone(adoption, original, now)
    else await retireSnapshot(adoption.lease)
  }

  /**
   * A frozen (or unreachable) owner's snapshot is not removed but emptied and kept under our
   * lease: its fences stay, so the owner, if it wakes up, finds a newer generation and stops
   * acting instead of recreating the file and notifying a second time.
   */
  async #tombstone(adoption: Adoption, original: OwnerInfo, now: number): Promise<void> {
    const { lease, snapshot } = adoption
    await writeSnapshotAtomic(lease.path, { ...snapshot, runs: [], outbox: null, extra: { ...snapshot.extra, runsAdoptedAt: now }, writtenAt: now }, { beforeRename: () => lease.assertGeneration() })
    this.#tombstones.set(original.id, { lease, owner: original, since: now })
  }

  async retireTombstones(): Promise<void> {
    const states = [...this.#tombstones].map(([id, t]) => ({ id, since: t.since, liveness: ownerLiveness(t.owner), lost: t.lease.lost }))
    const { forget, retire } = planTombstones(states, this.#options.clock.now(), this.#options.tombstoneMs)
    for (const id of forget) this.#tombstones.delete(id)
    for (const id of retire) {
      const tombstone = this.#tombstones.get(id)
      this.#tombstones.delete(id)
      if (tombstone !== undefined) await retireSnapshot(tombstone.lease).catch((error: unknown) => this.#options.ownerError(id, error))
    }
  }

  /**
   * An exit marker whose snapshot is gone (the process never got a lease, or it was retired):
   * claimed by an atomic rename, so one daemon only reports it.
   */
  async markerOnly(id: string): Promise<void> {
    const marker = await readExitMarker(this.#options.paths, id)
    if (marker === null) return
    const { actor } = this.#runtime
    const plan = planMarkerOnly(marker, ownerLiveness(marker.owner), (hash) => actor.run(hash))
    if (plan === null) return
    const path = exitMarkerPath(this.#options.layout, id)
    const claimed = `${path}.taken-${this.#options.daemonOwner.id}`
    try {
      await rename(path, claimed)
    } catch {
      return // another daemon claimed it
    }
    const now = this.#options.clock.now()
    for (const run of plan.fail) {
      actor.adopt(run)
      actor.fail(run.hash, now, plan.reason)
    }
    await this.#owner.commit()
    this.#options.log.info('adopted', {
      repo: this.#options.root,
      owner: id,
      kind: marker.owner.kind,
      pid: marker.owner.pid,
      host: marker.owner.host,
      cause: 'exited',
      failed: plan.fail.length,
      carried: 0,
      reason: plan.reason,
    })
    await rm(claimed, { force: true })
  }

  /** Gives back the runs their live owners report again (see {@link planHandBack}). */
  async handBack(live: readonly Snapshot[]): Promise<void> {
    const { actor } = this.#runtime
    const plans = planHandBack(live, (hash) => actor.run(hash))
    for (const plan of plans) {
      if (plan.progress !== null) actor.progress(plan.hash, plan.progress.at, plan.progress.expectNextIn)
      actor.forget(plan.hash)
      this.#options.log.info('handed-back', { repo: this.#options.root, hash: plan.hash, owner: plan.owner.id, pid: plan.owner.pid, host: plan.owner.host })
    }
    if (plans.length > 0) await this.#owner.commit()
  }

  /** Forgets runs ended more than `keepEndedMs` ago, so the daemon's snapshot does not grow forever. */
  prune(): void {
    const { actor } = this.#runtime
    const { seen, forget } = planPrune(actor.runs(), this.#endedAt, this.#options.clock.now(), this.#options.keepEndedMs)
    const now = this.#options.clock.now()
    for (const hash of seen) this.#endedAt.set(hash, now)
    let changed = false
    for (const hash of forget) {
      this.#endedAt.delete(hash)
      this.#options.terminals?.delete(hash)
      changed = actor.forget(hash) || changed
    }
    if (changed) this.#owner.changed()
  }
}
