/**
 * Writes a Node run's check-ins so that Python Aim's `aim-watcher` can watch it. Driven by the
 * repo actor (never by the training loop's hot path): the actor calls
 * {@link CheckinWriter.sync} with the run's current deadline whenever it changes, and again at
 * the returned `nextWriteAt`.
 *
 * ## When a file is written (the rule, and why)
 * Aim's watcher starts a check-in's clock when it first sees the file (it polls about once a
 * second), never earlier than the moment the file was written. So a file written at `w` that
 * promises `e` seconds makes the watcher wait until at least `w + e` (plus its grace). Call
 * `w + e` the *promise on disk*. Since `e = ceil((deadline - w) / 1 s)`, the promise on disk is
 * never earlier than the deadline it was written for. The writer keeps two things true:
 *
 * 1. **Never too early.** When the run's deadline moves later than the promise on disk, a
 *    renewal is written `renewLeadMs` (3 s) before the promise on disk runs out. A watcher may
 *    have seen the old file the moment it was written and see the new one a poll (1 s) plus
 *    the file system's delay (a timer firing late, a shared folder showing it late) after it
 *    was written; the lead covers that, so a live run never looks expired, even without the
 *    grace. Aim renews up to ~20 s late and leans on its 100 s grace; we do not. In between, reports only move the deadline in
 *    memory: a run reporting every second with a 60 s promise writes about once a minute.
 * 2. **Never too late.** When the deadline moves earlier than the promise on disk by more than
 *    the format's one-second rounding, the file is written at once, so the watcher's clock is
 *    not left running on an old, longer promise.
 *
 * Renewals are at most one per `minRenewIntervalMs` (1 s: the watcher sees nothing faster); so
 * a promise shorter than the lead (a few seconds) is renewed every second while reports keep
 * coming, as Aim does for short promises. A promise longer than 99999 s is written as 99999
 * and renewed before it runs out. `expectNextIn = 0` (no deadline) is written as `00000`, lazily
 * like any later deadline. The deciding is the pure {@link planCheckinWrite}; the class is the
 * thin file-system part.
 * @module
 */
import { readdirSync, unlinkSync } from 'node:fs'
import { dirname } from 'node:path'
import { AimStatusError, ErrorCodes, OutOfRangeError, describeValue } from '../errors.js'
import { type Clock, systemClock } from '../clock.js'
import { checkRunHash, safeChild } from '../repo.js'
import { createExclusiveSync, ensureStateFolder } from '../state/safe-fs.js'
import { type CheckinFlag, MAX_CHECKIN_IDX, MAX_EXPECT_NEXT_IN, formatCheckinName, parseCheckinName } from './checkins.js'

/** What the newest file on disk promises a watcher. Times are epoch ms of the writer's clock. */
export interface DiskPromise {
  /** When the file was written. */
  writtenAt: number
  /** `writtenAt + expect_next_in` seconds; `Infinity` for `00000` (no expiry). */
  promisedUntil: number
}

/** The timing policy of renewals. */
export interface CheckinWritePolicy {
  /** How long before the promise on disk runs out a renewal is written. */
  renewLeadMs: number
  /** The least time between two renewals. */
  minRenewIntervalMs: number
}

/** What {@link planCheckinWrite} decides. */
export interface CheckinWritePlan {
  /** Whether a file must be written now. */
  write: boolean
  /** The `expect_next_in` to write now (whole seconds, 0 = none). */
  expectNextIn: number
  /** When to ask again if the deadline does not change before; `null`: only when it changes. */
  nextWriteAt: number | null
}

/** The default {@link CheckinWritePolicy}. */
export const DEFAULT_CHECKIN_WRITE_POLICY: Readonly<CheckinWritePolicy> = { renewLeadMs: 3000, minRenewIntervalMs: 1000 }

// How many taken names in a row a write passes over before it gives up (and is tried again later).
const MAX_TAKEN_NAMES = 64

// The format counts whole seconds: a promise on disk may overshoot its deadline by up to this.
const ROUNDING_MS = 1000

/** Aim's `max(1, ceil(deadline - now))` in seconds, capped to five digits; 0 without a deadline. */
export function expectNextInFor(deadlineAt: number | null, now: number): number {
  if (deadlineAt === null || deadlineAt === Infinity) return 0
  return Math.min(MAX_EXPECT_NEXT_IN, Math.max(1, Math.ceil((deadlineAt - now) / 1000)))
}

/**
 * Decides whether the check-in on disk must be replaced now, given the run's deadline
 * (`null` = no deadline), and when to look again. Pure; see the module comment for the rule.
 */
export function planCheckinWrite(disk: DiskPromise, deadlineAt: number | null, now: number, policy: CheckinWritePolicy = DEFAULT_CHECKIN_WRITE_POLICY): CheckinWritePlan {
  const target = deadlineAt ?? Infinity
  const expectNextIn = expectNextInFor(deadlineAt, now)
  // Earlier than the disk says (beyond rounding): the watcher would wait too long. Write now.
  if (target < disk.promisedUntil - ROUNDING_MS) return { write: true, expectNextIn, nextWriteAt: null }
  // The disk already covers the deadline: nothing to do until the deadline changes.
  if (target <= disk.promisedUntil) return { write: false, expectNextIn, nextWriteAt: null }
  // Later than the disk says: renew shortly before the promise on disk runs out.
  const renewAt = Math.max(disk.promisedUntil - policy.renewLeadMs, disk.writtenAt + policy.minRenewIntervalMs)
  if (now >= renewAt) return { write: true, expectNextIn, nextWriteAt: null }
  return { write: false, expectNextIn, nextWriteAt: renewAt }
}

/** Options of {@link CheckinWriter.open}. */
export interface CheckinWriterOptions {
  /** The check-ins folder, `repoPaths(root).checkins`. Created when missing. */
  folder: string
  /**
   * The repo root the folder must stay inside (a `check_ins` that is a link leading elsewhere is
   * refused with `AIM_STATUS_STATE_OUTSIDE_REPO`). Default: two levels up from `folder`
   * (`<root>/.aim/check_ins`).
   */
  root?: string
  /** The run's hash (checked: 1 to 64 characters of `[A-Za-z0-9_]`). */
  hash: string
  /** The clock deadlines are measured on. Default: {@link systemClock}. */
  clock?: Clock
  /** Wall-clock epoch ms for the (informational) time in the name. Default: `Date.now`. */
  wallNow?: () => number
  /** See {@link CheckinWritePolicy.renewLeadMs}. Default: 3000. */
  renewLeadMs?: number
  /** See {@link CheckinWritePolicy.minRenewIntervalMs}. Default: 1000. */
  minRenewIntervalMs?: number
}

/** What {@link CheckinWriter.sync} did. */
export interface CheckinSyncResult {
  /** The name of the file written now, or `null`. */
  wrote: string | null
  /** When to call `sync` again if the deadline does not change before; `null`: not needed. */
  nextWriteAt: number | null
}

function checkDuration(value: unknown, label: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new OutOfRangeError(`Expected \`${label}\` to be a finite number of ms, 0 or more, got ${describeValue(value)}`)
  }
  return value
}

/**
 * One run's check-in files. {@link CheckinWriter.open} resumes from the highest idx found for
 * the hash (any flag) and writes `starting`; {@link sync} writes `check_in` when the rule says
 * so; {@link finish} writes `finished`. It never writes `progress` or `new_logs`. After each
 * file it deletes the older files of the same run and flag, as Aim does. Synchronous: the
 * files are empty and this runs on the actor's thread, never the training thread. A failed
 * write throws the file system's error and changes nothing, so the next call tries again.
 */
export class CheckinWriter {
  readonly hash: string
  readonly folder: string
  readonly #clock: Clock
  readonly #wallNow: () => number
  readonly #policy: CheckinWritePolicy
  #lastIdx: number
  #disk: DiskPromise = { writtenAt: 0, promisedUntil: Infinity }
  #finished = false
  /** Names of this run's files on disk, per flag (known from the listing at open and our writes). */
  readonly #names = new Map<CheckinFlag, string[]>()

  private constructor(options: CheckinWriterOptions, policy: CheckinWritePolicy, lastIdx: number) {
    this.hash = options.hash
    this.folder = options.folder
    this.#clock = options.clock ?? systemClock
    this.#wallNow = options.wallNow ?? Date.now
    this.#policy = policy
    this.#lastIdx = lastIdx
  }

  /** Opens (or resumes) a run's check-ins and writes its `starting` file (expect 0). */
  static open(options: CheckinWriterOptions): CheckinWriter {
    // Everything is checked before the folder is touched.
    checkRunHash(options.hash)
    const policy: CheckinWritePolicy = {
      renewLeadMs: checkDuration(options.renewLeadMs, 'renewLeadMs', DEFAULT_CHECKIN_WRITE_POLICY.renewLeadMs),
      minRenewIntervalMs: checkDuration(options.minRenewIntervalMs, 'minRenewIntervalMs', DEFAULT_CHECKIN_WRITE_POLICY.minRenewIntervalMs),
    }
    ensureStateFolder(options.folder, options.root ?? dirname(dirname(options.folder)))
    let lastIdx = 0
    const found: string[] = []
    for (const name of readdirSync(options.folder)) {
      const checkin = parseCheckinName(name)
      if (checkin === null || checkin.hash !== options.hash) continue
      lastIdx = Math.max(lastIdx, checkin.idx)
      found.push(name)
    }
    const writer = new CheckinWriter(options, policy, lastIdx)
    for (const name of found) writer.#remember(name)
    writer.#write('starting', 0)
    return writer
  }

  /** The idx of the newest file written. */
  get idx(): number {
    return this.#lastIdx
  }

  /** What the newest file on disk promises. */
  get disk(): Readonly<DiskPromise> {
    return this.#disk
  }

  /**
   * Brings the files in line with the run's current deadline (epoch ms on the writer's clock,
   * `null` = no deadline): writes a `check_in` if the rule says so now, and says when to call
   * again.
   */
  sync(deadlineAt: number | null): CheckinSyncResult {
    if (this.#finished) throw new AimStatusError(ErrorCodes.RUN_ENDED, `Run '${this.hash}' has already written its finished check-in`)
    if (deadlineAt !== null && (typeof deadlineAt !== 'number' || Number.isNaN(deadlineAt))) {
      throw new OutOfRangeError(`Expected \`deadlineAt\` to be epoch ms or null, got ${describeValue(deadlineAt)}`)
    }
    const plan = planCheckinWrite(this.#disk, deadlineAt, this.#clock.now(), this.#policy)
    if (!plan.write) return { wrote: null, nextWriteAt: plan.nextWriteAt }
    const wrote = this.#write('check_in', plan.expectNextIn)
    // Ask the rule again about the new file: a capped promise still needs a later renewal.
    return { wrote, nextWriteAt: planCheckinWrite(this.#disk, deadlineAt, this.#clock.now(), this.#policy).nextWriteAt }
  }

  /** Writes the `finished` check-in (expect 0). Later calls to `sync` or `finish` throw `RUN_ENDED`. */
  finish(): string {
    if (this.#finished) throw new AimStatusError(ErrorCodes.RUN_ENDED, `Run '${this.hash}' has already written its finished check-in`)
    const name = this.#write('finished', 0)
    this.#finished = true
    return name
  }

  #remember(name: string): void {
    const checkin = parseCheckinName(name)
    if (checkin === null) return
    const names = this.#names.get(checkin.flag)
    if (names === undefined) this.#names.set(checkin.flag, [name])
    else names.push(name)
  }

  #write(flag: CheckinFlag, expectNextIn: number): string {
    const now = this.#clock.now()
    // The names are predictable, and the folder is shared: anyone may have planted a file or a
    // link at the next name. Each name is created exclusively and never through a link; a name
    // already taken is passed over (watchers take the highest idx) for the next idx.
    let idx = this.#lastIdx
    let name: string
    for (let tries = 0; ; tries++) {
      idx += 1
      if (idx > MAX_CHECKIN_IDX) throw new OutOfRangeError(`Run '${this.hash}' has used every check-in idx`)
      name = formatCheckinName({ hash: this.hash, idx, flag, time: this.#wallNow() / 1000, expectNextIn })
      if (createExclusiveSync(safeChild(this.folder, name), '', 0o666)) break
      if (tries >= MAX_TAKEN_NAMES) throw new AimStatusError(ErrorCodes.UNSAFE_FILE, `${MAX_TAKEN_NAMES + 1} check-in names of run '${this.hash}' in a row were already taken in ${this.folder}; not written`)
    }
    this.#lastIdx = idx
    this.#disk = { writtenAt: now, promisedUntil: expectNextIn === 0 ? Infinity : now + expectNextIn * 1000 }
    // Delete the older files of this flag. Failing to is harmless (watchers take the highest
    // idx), so it never fails the write; a file that could not be deleted is tried again next time.
    const kept = [name]
    for (const older of this.#names.get(flag) ?? []) {
      try {
        unlinkSync(safeChild(this.folder, older))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') kept.push(older)
      }
    }
    this.#names.set(flag, kept)
    return name
  }
}
