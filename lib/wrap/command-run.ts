/**
 * Watching any command as a run (`aim-watcher run -- CMD`): the command is started with the
 * same standard input; its standard output and error are passed on byte for byte, chunk by
 * chunk as they arrive (carriage returns and all); each line it writes (or each line matching
 * a pattern) is a progress report promising the next within `expect` seconds; its exit ends
 * the run: 0 finished, anything else failed, with the last lines of its standard error.
 *
 * Around the command:
 * - it runs in its own process group; the signals a wrapper gets to end or poke its job
 *   ({@link FORWARDED_SIGNALS}) are sent to that whole group, and the wrapper waits;
 * - a watchdog (`watchdog.ts`) ends the group if the wrapper is killed outright, and the
 *   daemon then reports the run failed from the wrapper's snapshot;
 * - the command's own code can join the run: a Node `watch()` through the join socket
 *   (`join-server.ts`), Python Aim through check-ins of the same hash (`checkin-progress.ts`).
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { systemClock } from '../clock.js'
import { DEFAULT_EXPECT_SECONDS, checkSeconds, resolveWatchOptions, type NotifierSpec, type WatchOptions } from '../options.js'
import { openOverSession } from '../remote/remote-watch.js'
import { resolveSessionChoice } from '../remote/session-options.js'
import type { Run } from '../run.js'
import { repoPaths } from '../repo.js'
import type { RunEvent } from '../model.js'
import { DeadlineTimer } from '../timer.js'
import { Watcher } from '../watcher.js'
import { CheckinProgress } from './checkin-progress.js'
import { JoinServer } from './join-server.js'
import { RUN_HASH_ENV, RUN_REPO_ENV, RUN_SOCKET_ENV } from './join-protocol.js'
import { DEFAULT_TAIL_LINES, LogTail } from './log-tail.js'
import { ProgressLines } from './progress-lines.js'
import { environmentSecrets, scrubOutput } from './scrub.js'
import { startWatchdog } from './watchdog.js'

// Defined beside the other defaults, so that the CLI can print it without loading this module.
export { DEFAULT_EXPECT_SECONDS } from '../options.js'

/** The signals passed on to the command's process group. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const

/**
 * How long the output still in the pipes is waited for once the command has exited: a process
 * it left behind may hold them open for ever.
 */
export const PIPE_DRAIN_MS = 2000

/** Options of {@link runCommand}. */
export interface RunCommandOptions {
  /** The program to run (looked up on the `PATH`). */
  command: string
  /** Its arguments. Default: none. */
  args?: readonly string[]
  /** The repo root. Default: Aim's rule (see `watch()`). */
  repo?: string
  /** The run's hash. Default: a new one. */
  hash?: string
  /** Default: none. */
  name?: string
  /** Default: none. */
  experiment?: string
  /** Seconds late past a promise before the run is stalled. Default: `watch()`'s (100). */
  grace?: number
  /** Seconds each progress line promises the next within. Default: {@link DEFAULT_EXPECT_SECONDS}. */
  expect?: number
  /** Only output lines matching it are progress. Default: every line. */
  progress?: RegExp
  /** How many lines of standard error a failure carries. Default: {@link DEFAULT_TAIL_LINES}. */
  tail?: number
  /** Make sure a daemon watches the repo (a SIGKILL of the wrapper is then reported). Default: true. */
  daemon?: boolean
  /**
   * Report the run to this daemon (one URL or a failover list, as `watch()`'s `server`) instead
   * of a repo folder; `repo`, if given, is then the daemon-side root. Default:
   * `AIM_STATUS_SERVER` of `env`, else none. Rank variables of `env` (`RANK`/`WORLD_SIZE`, …)
   * make the run one rank of a run of many, reported over a session too.
   */
  server?: string | string[]
  /** The bearer token for `server`. Default: `AIM_STATUS_TOKEN` of `env`, else none. */
  token?: string
  /** Notifiers for this run besides `config.json`'s. Default: none. */
  notifiers?: NotifierSpec[]
  /** The command's environment (the run's variables are added). Default: `process.env`. */
  env?: NodeJS.ProcessEnv
  /** The command's working folder. Default: this process's. */
  cwd?: string
  /** Where its output goes. Default: `process.stdout` and `process.stderr`. */
  stdout?: Writable
  stderr?: Writable
}

/** How the command ended, and how its run ended. */
export interface CommandOutcome {
  hash: string
  /** The command's exit code; null when a signal ended it. 127/126 when it could not be started. */
  exitCode: number | null
  /** The signal that ended the command, or null. */
  signal: NodeJS.Signals | null
  /** How the run ended. */
  status: 'finished' | 'failed'
  /** Why it failed. */
  reason?: string
}

/** Resolves after `ms`, on the injected clock's timer (the package has no raw timers). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => new DeadlineTimer(systemClock, () => resolve()).arm(systemClock.now() + ms))
}

/** Passes one stream on; resolves when it has ended. A destination that breaks closes the source, as a shell pipeline would. */
function pump(from: Readable, to: Writable, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve) => {
    let broken = false
    to.on('error', () => {
      broken = true
      from.destroy()
    })
    from.on('data', (chunk: Buffer) => {
      if (!broken && !to.write(chunk)) {
        from.pause()
        to.once('drain', () => from.resume())
      }
      onChunk(chunk)
    })
    from.once('end', resolve)
    from.once('close', resolve)
    from.once('error', () => resolve())
  })
}

/** Runs a command as a watched run; resolves when it has ended and its end is recorded. */
export async function runCommand(options: RunCommandOptions): Promise<CommandOutcome> {
  const expect = options.expect === undefined ? DEFAULT_EXPECT_SECONDS : checkSeconds(options.expect, 'expect')
  const env = options.env ?? process.env
  const out = options.stdout ?? process.stdout
  const err = options.stderr ?? process.stderr
  let child: ChildProcess | undefined
  const pending: NodeJS.Signals[] = []
  const forward = (signal: NodeJS.Signals): void => {
    if (child?.pid === undefined) {
      pending.push(signal)
      return
    }
    try {
      process.kill(-child.pid, signal)
    } catch {
      // The group is gone already: its exit is on its way.
    }
  }
  // First: while the watcher starts, a signal is held for the command instead of ending us.
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward)
  try {
    return await watchCommand(options, { expect, env, out, err, forward, pending, started: (c) => (child = c) })
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward)
  }
}

interface Context {
  expect: number
  env: NodeJS.ProcessEnv
  out: Writable
  err: Writable
  forward(signal: NodeJS.Signals): void
  pending: NodeJS.Signals[]
  started(child: ChildProcess): void
}

/** Where the wrapper's run lives: a local watcher of the repo, or a daemon over a session. */
interface RunHost {
  run: Run
  /** The repo as the command should know it (`AIM_STATUS_REPO`). */
  repo: string
  /** The check-ins folder the command's Python Aim writes into; none for a run in a remote daemon. */
  checkins: string | undefined
  flush(): Promise<void>
  close(): Promise<void>
}

async function openRunHost(options: RunCommandOptions, env: NodeJS.ProcessEnv): Promise<RunHost> {
  const runOptions: WatchOptions = {
    // The run's own check-ins stay off: every check-in of this hash is then the command's.
    checkins: false,
    daemon: options.daemon ?? true,
    ...(options.repo !== undefined ? { repo: options.repo } : {}),
    ...(options.hash !== undefined ? { hash: options.hash } : {}),
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(options.experiment !== undefined ? { experiment: options.experiment } : {}),
    ...(options.grace !== undefined ? { grace: options.grace } : {}),
    ...(options.notifiers !== undefined ? { notifiers: options.notifiers } : {}),
  }
  // The rank variables come from the command's environment, which is passed on unchanged:
  // under torchrun each rank's wrapper is one rank of one run.
  const choice = resolveSessionChoice({ ...runOptions, ...(options.server !== undefined ? { server: options.server } : {}), ...(options.token !== undefined ? { token: options.token } : {}) }, env)
  if (choice.servers !== undefined || choice.ranked !== undefined) {
    const { run, watcher } = await openOverSession(resolveWatchOptions(runOptions), choice)
    const local = choice.servers === undefined
    return {
      run,
      repo: watcher.daemon?.repo ?? options.repo ?? '',
      checkins: local && watcher.daemon !== undefined ? repoPaths(watcher.daemon.repo).checkins : undefined,
      flush: () => watcher.flush(),
      close: () => watcher.close(),
    }
  }
  const watcher = await Watcher.open({ ...(options.repo !== undefined ? { repo: options.repo } : {}) })
  try {
    const run = await watcher.watch(runOptions)
    return { run, repo: watcher.root, checkins: repoPaths(watcher.root).checkins, flush: () => watcher.flush(), close: () => watcher.close() }
  } catch (error) {
    await watcher.close()
    throw error
  }
}

async function watchCommand(options: RunCommandOptions, context: Context): Promise<CommandOutcome> {
  const { expect, env } = context
  const host = await openRunHost(options, env)
  const watchdog = startWatchdog()
  let joinServer: JoinServer | undefined
  let checkins: CheckinProgress | undefined
  try {
    const run = host.run
    const tail = new LogTail({ lines: options.tail ?? DEFAULT_TAIL_LINES, scrub: (text) => scrubOutput(text, environmentSecrets(env)) })
    /** Set once the run has ended (joined code reported a failure): nothing reports after. */
    let ended: 'failed' | undefined
    let endReason: string | undefined
    const report = (expectNextIn: number): void => {
      if (ended === undefined) run.reportProgress(expectNextIn)
    }
    const failNow = async (reason: string, logTail: string): Promise<void> => {
      if (ended !== undefined) return
      ended = 'failed'
      endReason = reason
      await run.reportFailure(reason, { logTail })
    }
    joinServer = await JoinServer.listen({
      hash: run.hash,
      welcome: { grace: run.grace, ...(run.name !== undefined ? { name: run.name } : {}), ...(run.experiment !== undefined ? { experiment: run.experiment } : {}) },
      handlers: {
        progress: report,
        finish: () => report(0),
        fail: (reason, logTail) => failNow(reason, logTail ?? tail.text()),
        settle: () => host.flush(),
      },
    })
    const server = joinServer
    const broadcast = (event: RunEvent): void => server.broadcast(event)
    for (const kind of ['stalled', 'recovered', 'finished', 'failed'] as const) run.on(kind, broadcast)
    if (host.checkins !== undefined) {
      checkins = new CheckinProgress({ folder: host.checkins, hash: run.hash, onCheckin: (c) => report(c.flag === 'finished' ? 0 : c.expectNextIn) })
      await checkins.start()
    }

    const childEnv: NodeJS.ProcessEnv = {
      ...env,
      // Python writes to a pipe in 8 KiB blocks: progress would arrive minutes late.
      PYTHONUNBUFFERED: env['PYTHONUNBUFFERED'] ?? '1',
      [RUN_HASH_ENV]: run.hash,
      [RUN_REPO_ENV]: host.repo,
      [RUN_SOCKET_ENV]: joinServer.socketPath,
    }
    report(expect)
    const child = spawn(options.command, [...(options.args ?? [])], {
      stdio: ['inherit', 'pipe', 'pipe'],
      // Its own session and process group: signals reach every process of the command.
      detached: true,
      env: childEnv,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    const startError = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      child.once('spawn', () => resolve(null))
      child.once('error', (error) => resolve(error))
    })
    if (startError !== null) {
      const reason = `could not start ${options.command}: ${startError.code ?? startError.message}`
      await failNow(reason, '')
      // As a shell says it: 127 not found, 126 found but not runnable.
      return { hash: run.hash, exitCode: startError.code === 'ENOENT' ? 127 : 126, signal: null, status: 'failed', reason }
    }
    context.started(child)
    watchdog.guard(child.pid as number)
    for (const signal of context.pending.splice(0)) context.forward(signal)

    const lines = () => new ProgressLines({ ...(options.progress !== undefined ? { pattern: options.progress } : {}), onProgress: () => report(expect) })
    const outLines = lines()
    const errLines = lines()
    const pumps = Promise.all([
      pump(child.stdout as Readable, context.out, (chunk) => outLines.push(chunk)),
      pump(child.stderr as Readable, context.err, (chunk) => {
        errLines.push(chunk)
        tail.push(chunk)
      }),
    ])
    const exit = await exited
    await Promise.race([pumps, pause(PIPE_DRAIN_MS)])
    child.stdout?.destroy()
    child.stderr?.destroy()
    checkins?.close()

    if (ended === undefined) {
      if (exit.code === 0) {
        await run.reportSuccessfulFinish()
      } else {
        endReason = exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`
        await failNow(endReason, tail.text())
      }
    }
    return {
      hash: run.hash,
      exitCode: exit.code,
      signal: exit.signal,
      status: ended ?? 'finished',
      ...(endReason !== undefined ? { reason: endReason } : {}),
    }
  } finally {
    checkins?.close()
    await joinServer?.close()
    await host.close()
    watchdog.standDown()
  }
}
