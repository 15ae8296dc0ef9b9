/**
 * The options of `watch()` and `Watcher.open()`, with their defaults, and their validation at
 * the public edge: a wrong type is a `TypeError`, a number out of range a `RangeError`, a bad
 * identifier an `InvalidIdError`; each names the option and the value received, and carries a
 * stable `code`.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { InvalidOptionError, OutOfRangeError, describeValue } from './errors.js'
import type { NotifierEntry } from './notify/contract.js'
import { entryFromSpec, type NotifierSpec } from './notify/manage.js'
import { checkRunHash } from './repo.js'
import { checkFinishOn, checkRank, checkServers, checkToken, checkWorldSize } from './remote/session-options.js'

export type { NotifierSpec }

/** Options of a repo's {@link Watcher}. */
export interface WatcherOptions {
  /**
   * The repo root. Default: the nearest folder upward from the working folder that holds
   * `.aim`, else the working folder (Aim's rule).
   */
  repo?: string
  /**
   * Notifiers for this process, used besides the ones in the repo's `config.json`. When neither
   * names any notifier, a logger on standard output is used. Default: none.
   */
  notifiers?: NotifierSpec[]
  /**
   * Keep the process alive while the watcher is open, for programs whose only work is to
   * watch (a dashboard, a test). Training scripts leave it off, so that a script that ends,
   * exits; runs it left unfinished are then reported by the daemon, or stall. Default: false.
   */
  keepAlive?: boolean
  /**
   * Make sure an `aim-watcher` daemon watches the repo, so that a run whose process is
   * SIGKILLed, runs out of memory or freezes is still reported: when the first run is watched
   * and no daemon holds the repo, one is started, detached, logging to
   * `<repo>/.aim/status/daemon.log`. A daemon started so exits by itself once it has had nothing
   * to watch for `exitWhenIdle` seconds (default {@link DEFAULT_DAEMON_IDLE_SECONDS}: 300);
   * one started by hand or by a service manager runs until stopped, and is then simply used.
   * `false` starts nothing (where systemd runs the daemon, say).
   *
   * Default: true, unless the environment variable `AIM_STATUS_DAEMON` is `0`, `false`, `no`
   * or `off` (a whole cluster's setting); an explicit value here wins over the variable.
   */
  daemon?: boolean | { exitWhenIdle?: number }
  /**
   * Seconds a dying process waits for its unfinished runs' failure to reach the notifiers
   * before it goes on dying (an uncaught exception, an unhandled rejection, `process.exit(n)`,
   * SIGTERM/SIGINT/SIGHUP without a handler of the program's): the exit code or signal is
   * unchanged. What is not delivered by then stays in the outbox on disk for a daemon. 0 does
   * not wait (a daemon reports the runs). Default {@link DEFAULT_EXIT_TIMEOUT_SECONDS}: 5.
   */
  exitTimeout?: number
}

/** Options of `watch()`. */
export interface WatchOptions extends WatcherOptions {
  /** The run's hash (Aim's run id): 1 to 64 characters of `[A-Za-z0-9_]`. Default: 24 random lower-case hex digits, as Aim makes them. */
  hash?: string
  /** A human name for the run, shown in messages as `{run.name}`. Default: none. */
  name?: string
  /** The experiment the run belongs to, shown as `{run.experiment}`. Default: none. */
  experiment?: string
  /**
   * Seconds a run may be late past the deadline it promised before it counts as stalled.
   * Default: 100, as Aim's watcher.
   */
  grace?: number
  /**
   * Write Aim check-in files (`<repo>/.aim/check_ins/`) for the run, so that Python Aim's
   * `aim-watcher` watches it too. Written lazily by the watcher thread, never on the hot path.
   * Default: true.
   */
  checkins?: boolean
  /**
   * Inside a command started by `aim-watcher run` (its environment has `AIM_STATUS_RUN_HASH`,
   * `AIM_STATUS_REPO` and `AIM_STATUS_RUN_SOCKET`), `watch()` reports into the wrapper's run
   * instead of opening a second one, unless another `hash` or `repo` is asked for; the run's
   * name, experiment, grace and notifiers are then the wrapper's. `false` watches on its own.
   * Only `watch()` joins; `Watcher.watch()` always opens its own run. Default: true.
   */
  join?: boolean
  /**
   * Report to an `aim-watcher` daemon over the network instead of a repo folder: the run lives
   * in that daemon (its deadlines, its notifiers), and this process never touches a repo folder
   * (`repo`, if given, is the daemon's repo root to use). One URL or a list tried in order, for
   * failover to a standby: `http://head:43800`, `https://…`, `ws://…/api/v1/session`, or
   * `unix:/abs/path/.aim/status/session.sock`. A process that dies without finishing its run
   * (even SIGKILLed) has it failed by the daemon about a second later.
   *
   * Default: the environment variable `AIM_STATUS_SERVER` (a comma-separated list), else none
   * (a local run).
   */
  server?: string | string[]
  /** The bearer token the daemon's `--token-file` holds; never printed. Default: `AIM_STATUS_TOKEN`, else none. */
  token?: string
  /**
   * This process's rank in a run of many processes (torchrun, Slurm, MPI): every rank of the
   * run calls `watch()` with the same `hash`, and the daemon watches them as one run (stalled
   * when any rank is late, failed when any rank dies, finished per `finishOn`). Without a
   * `server`, the ranks report to the repo's daemon over its Unix socket (one is started if
   * needed). Default: `RANK`, else `SLURM_PROCID`, else `OMPI_COMM_WORLD_RANK`; else 0.
   */
  rank?: number
  /**
   * How many ranks the run has; 1 is a run of one process. Default: `WORLD_SIZE`, else
   * `SLURM_NTASKS`, else `OMPI_COMM_WORLD_SIZE`, else 1. For more than one, the `hash`
   * defaults to one derived from `TORCHELASTIC_RUN_ID` or `SLURM_JOB_ID` (and
   * `SLURM_STEP_ID`), and is required otherwise.
   */
  worldSize?: number
  /** When a run of many ranks counts as finished: every rank finished (`'all'`), or rank 0 (`'rank0'`). Default: `'all'`. */
  finishOn?: 'all' | 'rank0'
}

/** Default `exitWhenIdle` of a daemon that `watch()` starts, seconds. */
export const DEFAULT_DAEMON_IDLE_SECONDS = 300

/** Default {@link WatcherOptions.exitTimeout}, seconds. */
export const DEFAULT_EXIT_TIMEOUT_SECONDS = 5

/** The longest {@link WatcherOptions.exitTimeout} accepted, seconds: a dying process should not linger. */
export const MAX_EXIT_TIMEOUT_SECONDS = 60

/** The environment variable that turns the default daemon off (`0`, `false`, `no`, `off`). */
export const DAEMON_ENV = 'AIM_STATUS_DAEMON'

/** Aim's watcher's grace, in seconds. */
export const DEFAULT_GRACE_SECONDS = 100

/**
 * The promise each progress line of `aim-watcher run` makes by default, in seconds. Five minutes: most training
 * loops print far more often, while an evaluation pass, a checkpoint save or a first epoch's
 * data loading may print nothing for minutes; with the default grace (100 s) a command silent
 * for about 6.7 minutes is reported stalled.
 */
export const DEFAULT_EXPECT_SECONDS = 300

/**
 * The largest promise and grace accepted, in seconds (30 days). A larger one is almost surely
 * a unit mistake (milliseconds passed as seconds).
 */
export const MAX_SECONDS = 30 * 24 * 3600

const WATCHER_KEYS = ['repo', 'notifiers', 'keepAlive', 'daemon', 'exitTimeout'] as const
const WATCH_KEYS = [...WATCHER_KEYS, 'hash', 'name', 'experiment', 'grace', 'checkins', 'join', 'server', 'token', 'rank', 'worldSize', 'finishOn'] as const

/** A new run hash as Aim makes one: the first 24 hex digits of a uuid4's randomness. */
export function newRunHash(): string {
  return randomBytes(12).toString('hex')
}

function checkObject(value: unknown, label: string): Record<string, unknown> {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidOptionError(`Expected \`${label}\` to be an object, got ${describeValue(value)}`)
  return value as Record<string, unknown>
}

function checkKnownKeys(options: Record<string, unknown>, known: readonly string[], label: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new InvalidOptionError(`Unknown option \`${key}\` of ${label}; known: ${known.join(', ')}`)
  }
}

function checkBoolean(value: unknown, label: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw new InvalidOptionError(`Expected \`${label}\` to be a boolean, got ${describeValue(value)}`)
  return value
}

/** Checks a number of seconds: finite, 0 or more, at most {@link MAX_SECONDS}. */
export function checkSeconds(value: unknown, label: string): number {
  if (typeof value !== 'number') throw new InvalidOptionError(`Expected \`${label}\` to be a number of seconds, got ${describeValue(value)}`)
  if (!(value >= 0 && value <= MAX_SECONDS)) {
    throw new OutOfRangeError(`Expected \`${label}\` to be a number of seconds from 0 to ${MAX_SECONDS}, got ${describeValue(value)}`)
  }
  return value
}

function checkText(value: unknown, label: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new InvalidOptionError(`Expected \`${label}\` to be a string, got ${describeValue(value)}`)
  if (value.length > 256) throw new OutOfRangeError(`Expected \`${label}\` to be at most 256 characters, got ${value.length}`)
  // Names end up in chat messages and log lines: control characters would forge lines.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new InvalidOptionError(`Expected \`${label}\` without control characters, got ${describeValue(value)}`)
  return value
}

/** Turns notifier specs into checked entries. */
export function checkNotifierSpecs(value: unknown, label = 'notifiers'): NotifierEntry[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new InvalidOptionError(`Expected \`${label}\` to be an array of notifiers, got ${describeValue(value)}`)
  return value.map((spec, i) => {
    checkKnownKeys(checkObject(spec, `${label}[${i}]`), ['type', 'arguments', 'events', 'messages', 'id', 'status'], `${label}[${i}]`)
    return entryFromSpec(spec as NotifierSpec)
  })
}

/** Whether to make sure a daemon watches the repo, and how long one started so lingers when idle. */
export type DaemonChoice = false | { exitWhenIdle: number }

/** The checked options of a watcher. */
export interface ResolvedWatcherOptions {
  repo: string | undefined
  notifiers: NotifierEntry[]
  keepAlive: boolean | undefined
  /** Undefined when not given: the watcher keeps what it had ({@link defaultDaemonChoice} at first). */
  daemon: DaemonChoice | undefined
  exitTimeout: number | undefined
}

/** The daemon choice when none is given: on, unless `AIM_STATUS_DAEMON` turns it off. */
export function defaultDaemonChoice(env: NodeJS.ProcessEnv = process.env): DaemonChoice {
  const value = env[DAEMON_ENV]?.trim().toLowerCase()
  return value === '0' || value === 'false' || value === 'no' || value === 'off' ? false : { exitWhenIdle: DEFAULT_DAEMON_IDLE_SECONDS }
}

function checkDaemon(value: unknown): DaemonChoice | undefined {
  if (value === undefined) return undefined
  if (value === false) return false
  if (value === true) return { exitWhenIdle: DEFAULT_DAEMON_IDLE_SECONDS }
  if (value === null || Array.isArray(value) || typeof value !== 'object') throw new InvalidOptionError(`Expected \`daemon\` to be a boolean or { exitWhenIdle }, got ${describeValue(value)}`)
  const o = value as Record<string, unknown>
  checkKnownKeys(o, ['exitWhenIdle'], 'daemon')
  const idle = o['exitWhenIdle'] === undefined ? DEFAULT_DAEMON_IDLE_SECONDS : checkSeconds(o['exitWhenIdle'], 'daemon.exitWhenIdle')
  if (idle < 1) throw new OutOfRangeError(`Expected \`daemon.exitWhenIdle\` to be at least 1 second, got ${describeValue(idle)}`)
  return { exitWhenIdle: idle }
}

function checkExitTimeout(value: unknown): number | undefined {
  if (value === undefined) return undefined
  const seconds = checkSeconds(value, 'exitTimeout')
  if (seconds > MAX_EXIT_TIMEOUT_SECONDS) throw new OutOfRangeError(`Expected \`exitTimeout\` to be a number of seconds from 0 to ${MAX_EXIT_TIMEOUT_SECONDS}, got ${describeValue(value)}`)
  return seconds
}

/** Checks the options of `Watcher.open()`. */
export function resolveWatcherOptions(options: unknown): ResolvedWatcherOptions {
  const o = checkObject(options, 'options')
  checkKnownKeys(o, WATCHER_KEYS, 'Watcher.open()')
  return resolveCommon(o)
}

function resolveCommon(o: Record<string, unknown>): ResolvedWatcherOptions {
  const repo = o['repo']
  if (repo !== undefined && (typeof repo !== 'string' || repo === '' || repo.includes('\0'))) {
    throw new InvalidOptionError(`Expected \`repo\` to be a folder path, got ${describeValue(repo)}`)
  }
  return {
    repo: repo as string | undefined,
    notifiers: checkNotifierSpecs(o['notifiers']),
    keepAlive: checkBoolean(o['keepAlive'], 'keepAlive'),
    daemon: checkDaemon(o['daemon']),
    exitTimeout: checkExitTimeout(o['exitTimeout']),
  }
}

/** The checked options of a run. */
export interface ResolvedRunOptions extends ResolvedWatcherOptions {
  hash: string
  name: string | undefined
  experiment: string | undefined
  grace: number
  checkins: boolean
  join: boolean
}

/** Checks the options of `watch()`. */
export function resolveWatchOptions(options: unknown): ResolvedRunOptions {
  const o = checkObject(options, 'options')
  checkKnownKeys(o, WATCH_KEYS, 'watch()')
  // The session's options are checked here too, so that a mistake shows whichever path runs;
  // their environment defaults are applied by watch() alone (lib/remote/session-options.ts).
  checkServers(o['server'])
  checkToken(o['token'])
  checkRank(o['rank'])
  checkWorldSize(o['worldSize'])
  checkFinishOn(o['finishOn'])
  return {
    ...resolveCommon(o),
    hash: o['hash'] === undefined ? newRunHash() : checkRunHash(o['hash']),
    name: checkText(o['name'], 'name'),
    experiment: checkText(o['experiment'], 'experiment'),
    grace: o['grace'] === undefined ? DEFAULT_GRACE_SECONDS : checkSeconds(o['grace'], 'grace'),
    checkins: checkBoolean(o['checkins'], 'checkins') ?? true,
    join: checkBoolean(o['join'], 'join') ?? true,
  }
}
