/**
 * Reads a check-ins folder with Aim's watcher rules and turns it into run transitions for the
 * daemon: `started`, `stalled`, `recovered`, `finished`.
 *
 * Aim's rules (AIM-FORMAT.md): per run, the check-in with the highest idx among `starting`,
 * `check_in` and `finished` counts (`progress` and `new_logs` are ignored); its clock starts
 * when the reader *first sees that idx* (never the time in the name, never the mtime); it has
 * failed when `expect_next_in + grace` seconds have passed since then, unless expect is 0 or
 * the flag is `finished` (terminal, whatever its expect).
 *
 * Cheap enough for a scan a second of a folder of 10k files: names already seen are skipped
 * with one set lookup (only new names are parsed); when the folder's mtime has not changed and
 * is old enough to be trusted, the folder is not even listed (one `stat`); and only runs with
 * a live deadline are looked at when time passes.
 *
 * The reader's state is plain JSON ({@link CheckinReader.toJSON}); see
 * {@link CheckinReaderState} for what is kept and how a restart uses it.
 * @module
 */
import { promises as fs } from 'node:fs'
import { AimStatusError, ErrorCodes, OutOfRangeError, describeValue } from '../errors.js'
import { type Clock, systemClock } from '../clock.js'
import { RUN_HASH_PATTERN } from '../repo.js'
import { type Checkin, type WatchedCheckinFlag, isWatchedFlag, parseCheckinName } from './checkins.js'

/** Aim's grace, in seconds. */
export const DEFAULT_CHECKIN_GRACE = 100
/**
 * The least grace, in seconds. Aim's writer renews a 12–30 s promise up to ~20 s late, so a
 * shorter grace would report live Python runs as stalled.
 */
export const MIN_CHECKIN_GRACE = 30

/** What a run's check-ins say now. */
export type CheckinRunStatus = 'running' | 'stalled' | 'finished'

/** A transition of one run, for the daemon. Times are epoch ms of the reader's clock. */
export interface CheckinTransition {
  /**
   * `started`: a live run first seen, or a run reopened after it finished (a newer `starting`
   * or `check_in`). `stalled`: its promise plus grace has passed since its newest idx was first
   * seen (once per idx). `recovered`: a newer idx after a stall. `finished`: a `finished` check-in.
   */
  kind: 'started' | 'stalled' | 'recovered' | 'finished'
  hash: string
  /** The idx the transition is about (the run's newest). */
  idx: number
  flag: WatchedCheckinFlag
  expectNextIn: number
  /** When this reader first saw the idx. */
  firstSeenAt: number
  /** When the transition was found. */
  at: number
  /** For stalls: seconds past the promise (`expect_next_in`) when the stall was found. */
  overdueSeconds?: number
  /**
   * A notification for this idx was already sent, by Aim's watcher (its
   * `last_run_notifications`) or by an earlier life of this reader: do not send another.
   */
  alreadyNotified: boolean
}

/** One run, as kept by the reader (and in its JSON state). */
export interface CheckinRunState {
  /** The newest watched idx seen. */
  idx: number
  flag: WatchedCheckinFlag
  expectNextIn: number
  /** When this reader (or its previous life) first saw `idx`. Epoch ms. */
  firstSeenAt: number
  /** The highest idx notified as Aim would (a `starting`'s started, a stall, a finish); -1 for none. */
  notifiedIdx: number
  status: CheckinRunStatus
}

/**
 * The reader's durable state. Kept per run: the newest idx, its flag and promise, when it was
 * first seen, the highest idx already notified, and the status. Not kept: the set of names
 * (rebuilt by the first scan) and warnings.
 *
 * On restore, a run whose newest idx on disk is still the saved one keeps its saved first-seen
 * time (clamped to now if the clock went back): the promise keeps counting instead of
 * restarting, so a run that died while the daemon was down is reported by the first check
 * after the restart, and a stall already reported (`status: 'stalled'`, `notifiedIdx`) is not
 * reported again. A newer idx found on disk is first seen at the restart, as Aim's watcher would
 * (when it was written is unknown, and the time in the name is not trusted). Runs whose files
 * are gone are dropped.
 */
export interface CheckinReaderState {
  version: 1
  /** When the state was taken. Informational. */
  savedAt: number
  runs: Record<string, CheckinRunState>
}

/** A run as the reader keeps it: its saved state, and how many of its watched files the folder holds. */
interface KnownRun extends CheckinRunState {
  /** Its watched files in the last listing. */
  files: number
  /** How many listings in a row found none of its files (see {@link FORGET_AFTER_LISTINGS}). */
  absent: number
  /** Its state as {@link CheckinReader.toJSON} last gave it: given again while it still holds. */
  saved: Readonly<CheckinRunState> | null
}

/** Whether a saved record still says what the run holds. */
function stillSaved(run: KnownRun, saved: Readonly<CheckinRunState>): boolean {
  return saved.idx === run.idx && saved.flag === run.flag && saved.expectNextIn === run.expectNextIn && saved.firstSeenAt === run.firstSeenAt && saved.notifiedIdx === run.notifiedIdx && saved.status === run.status
}

/** Options of {@link CheckinReader}. */
export interface CheckinReaderOptions {
  /** The check-ins folder, `repoPaths(root).checkins`. A missing folder reads as empty. */
  folder: string
  /** The clock first-seen times and stalls are measured on. Default: {@link systemClock}. */
  clock?: Clock
  /** Seconds past a promise before a run counts as stalled. Default: 100 (Aim's). At least 30. */
  graceSeconds?: number
  /** Lists the folder. Default: `fs.promises.readdir`. */
  readdir?: (folder: string) => Promise<string[]> | string[]
  /**
   * Skip listing when the folder's mtime (and inode) have not changed since the last listing
   * and that mtime was at least 2 s old when it was read (so a change in the same timestamp
   * tick cannot hide). Default: true with the default `readdir`, false with a custom one.
   */
  trustFolderMtime?: boolean
  /**
   * Even with a trusted mtime, list the folder at least this often (ms): it bounds what a file
   * server's clock skew or attribute cache could hide. `Infinity`: only when the mtime changes.
   * Default: 10000.
   */
  fullRescanMs?: number
  /** Wall-clock epoch ms, compared with the folder's mtime. Default: `Date.now`. */
  wallNow?: () => number
  /** A previous life's {@link CheckinReader.toJSON}. */
  state?: CheckinReaderState
  /** Aim's `last_run_notifications` (`hash -> last notified idx`): those idx are not notified again. */
  alreadyNotified?: ReadonlyMap<string, number>
  /**
   * Where warnings go (an unparsable name: once per name). Default: `process.emitWarning`.
   */
  onWarning?: (message: string) => void
}

// A timestamp this old cannot share its tick with a later change on any common file system
// (FAT has 2 s; ext4, xfs, NFSv3+ finer).
const RACY_MTIME_MS = 2000
// Past this many distinct bad names, one last warning says the rest are not reported.
const MAX_WARNED_NAMES = 1000

/**
 * A run is forgotten only when this many listings in a row found none of its files. One is not
 * enough: a renewing run writes its new check-in and removes the old one, and a listing taken
 * while the folder changes can miss both; the run, forgotten, would be announced `started` again
 * at its next file.
 */
export const FORGET_AFTER_LISTINGS = 3

function checkGrace(value: unknown): number {
  if (value === undefined) return DEFAULT_CHECKIN_GRACE
  if (typeof value !== 'number' || !Number.isFinite(value) || value < MIN_CHECKIN_GRACE) {
    throw new OutOfRangeError(`Expected \`graceSeconds\` to be a number of seconds, ${MIN_CHECKIN_GRACE} or more, got ${describeValue(value)}`)
  }
  return value
}

const STATUSES: ReadonlySet<string> = new Set(['running', 'stalled', 'finished'])

function isRunState(value: unknown): value is CheckinRunState {
  const run = value as Partial<CheckinRunState> | null
  return (
    typeof run === 'object' &&
    run !== null &&
    Number.isSafeInteger(run.idx) &&
    (run.idx as number) >= 0 &&
    typeof run.flag === 'string' &&
    (run.flag === 'starting' || run.flag === 'check_in' || run.flag === 'finished') &&
    Number.isSafeInteger(run.expectNextIn) &&
    (run.expectNextIn as number) >= 0 &&
    typeof run.firstSeenAt === 'number' &&
    Number.isFinite(run.firstSeenAt) &&
    Number.isSafeInteger(run.notifiedIdx) &&
    (run.notifiedIdx as number) >= -1 &&
    typeof run.status === 'string' &&
    STATUSES.has(run.status)
  )
}

/** Checks a saved state; throws `AIM_STATUS_CORRUPT_FILE` naming what is wrong. */
export function checkReaderState(state: unknown): CheckinReaderState {
  const s = state as Partial<CheckinReaderState> | null
  if (typeof s !== 'object' || s === null || s.version !== 1 || typeof s.runs !== 'object' || s.runs === null) {
    throw new AimStatusError(ErrorCodes.CORRUPT_FILE, 'Check-in reader state: expected {version: 1, savedAt, runs}')
  }
  for (const [hash, run] of Object.entries(s.runs)) {
    if (!RUN_HASH_PATTERN.test(hash) || !isRunState(run)) {
      throw new AimStatusError(ErrorCodes.CORRUPT_FILE, `Check-in reader state: bad entry for run ${describeValue(hash)}`)
    }
  }
  return s as CheckinReaderState
}

interface FolderStamp {
  mtimeMs: number
  ino: number
  /** Wall clock just before the stat that read this stamp (and before the listing). */
  readAt: number
}

/** The incremental, clock-injected reader of one check-ins folder. */
export class CheckinReader {
  readonly folder: string
  readonly graceSeconds: number
  readonly #clock: Clock
  readonly #readdir: (folder: string) => Promise<string[]> | string[]
  readonly #trustMtime: boolean
  readonly #fullRescanMs: number
  readonly #wallNow: () => number
  readonly #warn: (message: string) => void
  readonly #alreadyNotified: ReadonlyMap<string, number>
  readonly #runs = new Map<string, KnownRun>()
  /** Runs with a live deadline: running, expect > 0. Only these are looked at as time passes. */
  readonly #armed = new Set<string>()
  /**
   * Every name in the last listing, handled and skipped from then on, with the run it counts
   * for (a watched flag) or null (ignored or unparsable).
   */
  readonly #known = new Map<string, string | null>()
  /** How many runs have `absent` above 0: while any has, every listing is checked as a set. */
  #absentRuns = 0
  /** Counts changes of the durable state (see {@link revision}). */
  #revision = 0
  /** Runs were restored and no listing has been taken in since: their files are still to count. */
  #restoredUnlisted = false
  #stamp: FolderStamp | null = null
  #lastFullListAt = -Infinity
  readonly #warned = new Set<string>()
  #queue: Promise<unknown> = Promise.resolve()
  #listings = 0

  constructor(options: CheckinReaderOptions) {
    if (typeof options?.folder !== 'string' || options.folder === '') {
      throw new AimStatusError(ErrorCodes.INVALID_PATH, `Expected \`folder\` to be a path, got ${describeValue(options?.folder)}`)
    }
    this.folder = options.folder
    this.graceSeconds = checkGrace(options.graceSeconds)
    this.#clock = options.clock ?? systemClock
    this.#readdir = options.readdir ?? ((folder) => fs.readdir(folder))
    this.#trustMtime = options.trustFolderMtime ?? options.readdir === undefined
    this.#fullRescanMs = options.fullRescanMs ?? 10_000
    if (typeof this.#fullRescanMs !== 'number' || Number.isNaN(this.#fullRescanMs) || this.#fullRescanMs < 0) {
      throw new OutOfRangeError(`Expected \`fullRescanMs\` to be ms, 0 or more, got ${describeValue(options.fullRescanMs)}`)
    }
    this.#wallNow = options.wallNow ?? Date.now
    this.#warn = options.onWarning ?? ((message) => process.emitWarning(message, { code: 'AIM_STATUS_CHECKIN_NAME' }))
    this.#alreadyNotified = options.alreadyNotified ?? new Map()
    if (options.state !== undefined) this.#restore(checkReaderState(options.state))
  }

  /** How many times the folder was actually listed (the rest were skipped on its mtime). */
  get listings(): number {
    return this.#listings
  }

  /** The runs known, by hash. */
  get runs(): ReadonlyMap<string, Readonly<CheckinRunState>> {
    return this.#runs
  }

  /**
   * Grows each time what {@link toJSON} would save changes (a run seen, moved to a newer idx,
   * stalled, notified or forgotten); a listing that found nothing new leaves it. The owner of
   * the state writes it again only then: at 10k runs each write is half a megabyte.
   */
  get revision(): number {
    return this.#revision
  }

  /**
   * Lists the folder (unless its mtime says nothing changed), takes in new names and the time
   * passed, and returns the transitions found. Calls are serialised: a scan asked for while
   * another runs starts after it.
   */
  scan(): Promise<CheckinTransition[]> {
    const next = this.#queue.then(() => this.#scanOnce())
    this.#queue = next.catch(() => undefined)
    return next
  }

  /**
   * Takes in a complete listing of the folder (new names are parsed, names gone are forgotten,
   * runs whose files are all gone are dropped) and the time passed. For a caller that lists
   * the folder itself.
   */
  ingest(names: readonly string[]): CheckinTransition[] {
    const now = this.#clock.now()
    const out: CheckinTransition[] = []
    const fresh: string[] = []
    let present = 0
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string
      if (this.#known.has(name)) present++
      else fresh.push(name)
    }

    // Only the newest idx per run among the new names matters; the others count as its files.
    const newest = new Map<string, { checkin: Checkin; files: number }>()
    let added = 0
    for (let i = 0; i < fresh.length; i++) {
      const name = fresh[i] as string
      // A listing can repeat a name when the folder changes while it is read.
      if (this.#known.has(name)) continue
      added++
      const checkin = parseCheckinName(name)
      const counts = checkin !== null && isWatchedFlag(checkin.flag)
      this.#known.set(name, counts ? (checkin as Checkin).hash : null)
      if (checkin === null) this.#warnOnce(name)
      if (!counts) continue
      const best = newest.get(checkin.hash)
      if (best === undefined) newest.set(checkin.hash, { checkin, files: 1 })
      else {
        best.files++
        if (checkin.idx > best.checkin.idx) best.checkin = checkin
      }
    }
    newest.forEach(({ checkin, files }) => void (this.#see(checkin, now, out).files += files))

    // Some known names are gone (or this is the first listing, after a restore): forget them,
    // and drop the runs left without a watched file. Only then is the whole listing a set.
    if (present !== this.#known.size - added || this.#restoredUnlisted || this.#absentRuns > 0) this.#forgetVanished(names)
    this.#restoredUnlisted = false
    this.#checkDeadlines(now, out)
    return out
  }

  /** Finds the stalls that time alone has caused (for a timer armed at {@link nextDeadlineAt}). */
  evaluate(): CheckinTransition[] {
    const out: CheckinTransition[] = []
    this.#checkDeadlines(this.#clock.now(), out)
    return out
  }

  /** When the next run will count as stalled if nothing new appears; `null` if none can. */
  nextDeadlineAt(): number | null {
    let next: number | null = null
    this.#armed.forEach((hash) => {
      const at = this.#stallAt(this.#runs.get(hash) as CheckinRunState)
      if (next === null || at < next) next = at
    })
    return next
  }

  /**
   * The reader's state as plain JSON; give it back as `state` to a new reader after a restart.
   * Kept by hash, so that a snapshot's journal records a changed run alone (`state/journal.ts`).
   */
  toJSON(): CheckinReaderState {
    const runs: Record<string, CheckinRunState> = {}
    // forEach rather than for…of here and in the reader's loops over every run or name: code run
    // once or a few times (a daemon's start) is not optimised yet, and there an iterator allocates
    // a result object per step (a megabyte per loop over 10k runs, promoted with what survives).
    this.#runs.forEach((run, hash) => {
      // A run that did not change gives the record it gave last time: a state written every
      // second while a few runs renew builds a few records, not one per run (and the snapshot
      // journal, comparing records, finds the unchanged ones at a glance).
      if (run.saved === null || !stillSaved(run, run.saved)) {
        run.saved = Object.freeze({ idx: run.idx, flag: run.flag, expectNextIn: run.expectNextIn, firstSeenAt: run.firstSeenAt, notifiedIdx: run.notifiedIdx, status: run.status })
      }
      runs[hash] = run.saved
    })
    return { version: 1, savedAt: this.#clock.now(), runs }
  }

  async #scanOnce(): Promise<CheckinTransition[]> {
    const names = await this.#list()
    return names === null ? this.evaluate() : this.ingest(names)
  }

  /** The folder's names, or `null` when its mtime proves nothing changed since the last listing. */
  async #list(): Promise<string[] | null> {
    let stamp: FolderStamp | null = null
    if (this.#trustMtime) {
      const readAt = this.#wallNow()
      try {
        const stat = await fs.stat(this.folder)
        stamp = { mtimeMs: stat.mtimeMs, ino: stat.ino, readAt }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      }
      const last = this.#stamp
      if (stamp !== null && last !== null && stamp.mtimeMs === last.mtimeMs && stamp.ino === last.ino && last.readAt - last.mtimeMs >= RACY_MTIME_MS && readAt - this.#lastFullListAt < this.#fullRescanMs) {
        return null
      }
    }
    let names: string[]
    try {
      names = await this.#readdir(this.folder)
    } catch (error) {
      // No folder yet (or any more): no check-ins.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      names = []
    }
    this.#listings++
    this.#stamp = stamp
    if (stamp !== null) this.#lastFullListAt = stamp.readAt
    return names
  }

  /** Takes in a run's newest new check-in; returns the run (made now if it is new). */
  #see(checkin: Checkin, now: number, out: CheckinTransition[]): KnownRun {
    const flag = checkin.flag as WatchedCheckinFlag
    const run = this.#runs.get(checkin.hash)
    if (run === undefined) {
      const fresh: KnownRun = {
        idx: checkin.idx,
        flag,
        expectNextIn: checkin.expectNextIn,
        firstSeenAt: now,
        notifiedIdx: this.#alreadyNotified.get(checkin.hash) ?? -1,
        status: flag === 'finished' ? 'finished' : 'running',
        files: 0,
        absent: 0,
        saved: null,
      }
      this.#runs.set(checkin.hash, fresh)
      this.#revision++
      this.#emit(fresh.status === 'finished' ? 'finished' : 'started', checkin.hash, fresh, now, out)
      this.#arm(checkin.hash, fresh)
      return fresh
    }
    // An older or the same idx (a leftover, or the same file listed again) changes nothing.
    if (checkin.idx <= run.idx) return run
    this.#revision++
    const before = run.status
    run.idx = checkin.idx
    run.flag = flag
    run.expectNextIn = checkin.expectNextIn
    run.firstSeenAt = now
    if (flag === 'finished') {
      run.status = 'finished'
      this.#emit('finished', checkin.hash, run, now, out)
    } else {
      run.status = 'running'
      if (before === 'stalled') this.#emit('recovered', checkin.hash, run, now, out)
      else if (before === 'finished' || flag === 'starting') this.#emit('started', checkin.hash, run, now, out)
    }
    this.#arm(checkin.hash, run)
    return run
  }

  #stallAt(run: CheckinRunState): number {
    return run.firstSeenAt + (run.expectNextIn + this.graceSeconds) * 1000
  }

  #arm(hash: string, run: CheckinRunState): void {
    if (run.status === 'running' && run.expectNextIn > 0 && run.flag !== 'finished') this.#armed.add(hash)
    else this.#armed.delete(hash)
  }

  #checkDeadlines(now: number, out: CheckinTransition[]): void {
    this.#armed.forEach((hash) => {
      const run = this.#runs.get(hash) as CheckinRunState
      if (now < this.#stallAt(run)) return
      run.status = 'stalled'
      this.#revision++
      this.#armed.delete(hash)
      this.#emit('stalled', hash, run, now, out)
    })
  }

  #emit(kind: CheckinTransition['kind'], hash: string, run: CheckinRunState, now: number, out: CheckinTransition[]): void {
    const transition: CheckinTransition = {
      kind,
      hash,
      idx: run.idx,
      flag: run.flag,
      expectNextIn: run.expectNextIn,
      firstSeenAt: run.firstSeenAt,
      at: now,
      alreadyNotified: run.idx <= run.notifiedIdx,
    }
    if (kind === 'stalled') transition.overdueSeconds = (now - run.firstSeenAt) / 1000 - run.expectNextIn
    // Aim sends one notification per idx: `starting` -> started, `finished` -> finished,
    // `check_in` -> failed. A recovery, or a first sight of a run at a `check_in`, is not one of
    // them: that idx may still stall.
    if (kind === 'stalled' || kind === 'finished' || (kind === 'started' && run.flag === 'starting')) {
      run.notifiedIdx = Math.max(run.notifiedIdx, run.idx)
    }
    out.push(transition)
  }

  #forgetVanished(names: readonly string[]): void {
    const listed = new Set(names)
    this.#known.forEach((hash, name) => {
      if (listed.has(name)) return
      this.#known.delete(name)
      const run = hash === null ? undefined : this.#runs.get(hash)
      if (run !== undefined && run.files > 0) run.files--
    })
    this.#absentRuns = 0
    this.#runs.forEach((run, hash) => {
      if (run.files > 0) {
        run.absent = 0
        return
      }
      run.absent++
      if (run.absent < FORGET_AFTER_LISTINGS) {
        // Kept as it is (its deadline too): most likely between two of its own files.
        this.#absentRuns++
        return
      }
      this.#runs.delete(hash)
      this.#armed.delete(hash)
      this.#revision++
    })
  }

  #warnOnce(name: string): void {
    if (this.#warned.has(name) || this.#warned.size > MAX_WARNED_NAMES) return
    this.#warned.add(name)
    if (this.#warned.size > MAX_WARNED_NAMES) {
      this.#warn(`More than ${MAX_WARNED_NAMES} names in ${this.folder} are not Aim check-ins; no more are reported`)
    } else {
      this.#warn(`Ignoring ${describeValue(name)} in ${this.folder}: not an Aim check-in name`)
    }
  }

  #restore(state: CheckinReaderState): void {
    const now = this.#clock.now()
    for (const [hash, saved] of Object.entries(state.runs)) {
      const run: KnownRun = { ...saved, firstSeenAt: Math.min(saved.firstSeenAt, now), files: 0, absent: 0, saved: null }
      const seeded = this.#alreadyNotified.get(hash)
      if (seeded !== undefined) run.notifiedIdx = Math.max(run.notifiedIdx, seeded)
      this.#runs.set(hash, run)
      this.#arm(hash, run)
    }
    this.#restoredUnlisted = this.#runs.size > 0
    this.#revision++
  }
}
