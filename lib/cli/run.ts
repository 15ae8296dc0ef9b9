/**
 * `aim-watcher run [options] -- COMMAND [ARGS...]`: runs a command as a watched run (see
 * `lib/wrap/command-run.ts`) and ends as it ended: with its exit code, or by its signal.
 * @module
 */
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { DEFAULT_EXPECT_SECONDS, DEFAULT_GRACE_SECONDS } from '../options.js'
import { DEFAULT_TAIL_LINES } from '../wrap/log-tail.js'
import { CliExit, fail, failWith, note, numberFlag, repoRoot } from './common.js'

/** The options' names as flags, for error messages. */
const RUN_FLAGS: Readonly<Record<string, string>> = { hash: '--hash', name: '--name', experiment: '--experiment', grace: '--grace', expect: '--expect', repo: '--repo', server: '--server', token: '--token-file' }

/** The most stderr lines a failure may carry. */
const MAX_TAIL = 1000

interface RunFlags {
  hash?: string
  name?: string
  experiment?: string
  grace?: number
  expect?: number
  progress?: string
  tail?: number
  daemon: boolean
  server?: string
  tokenFile?: string
}

/** The token in a file (its first line, trimmed); the token itself never appears in an error. */
function readToken(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw fail(2, `AIM_STATUS_INVALID_OPTION: --token-file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const token = (text.split('\n')[0] ?? '').trim()
  if (token === '') throw fail(2, `AIM_STATUS_INVALID_OPTION: --token-file ${path} holds no token`)
  return token
}

function progressPattern(source: string | undefined): RegExp | undefined {
  if (source === undefined) return undefined
  try {
    return new RegExp(source)
  } catch (error) {
    throw fail(2, `AIM_STATUS_INVALID_OPTION: --progress expects a regular expression: ${(error as Error).message}`)
  }
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .usage('[options] -- COMMAND [ARGS...]')
    .description(
      'run COMMAND as a watched run: its output passes through unchanged, each output line is progress, ' + 'exit 0 finishes the run, anything else fails it with the last lines of stderr; exits as COMMAND did',
    )
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('--hash <HASH>', 'the run hash, [A-Za-z0-9_]{1,64} (default: a new one); also given to COMMAND as AIM_STATUS_RUN_HASH')
    .option('--name <NAME>', 'a name for the run, shown as {run.name} (default: none)')
    .option('--experiment <NAME>', "the run's experiment, shown as {run.experiment} (default: none)")
    .option('--grace <S>', `seconds late past a promise before the run is stalled (default: ${DEFAULT_GRACE_SECONDS}, as Aim)`, numberFlag('--grace', false))
    .option('--expect <S>', `seconds within which each progress line promises the next (default: ${DEFAULT_EXPECT_SECONDS})`, numberFlag('--expect', false))
    .option('--progress <REGEX>', "only output lines matching REGEX are progress, e.g. tqdm's bar: '\\d+/\\d+ \\[' (default: every line)")
    .option('--tail <N>', `lines of stderr a failure carries, as {run.log_tail}; 0 for none (default: ${DEFAULT_TAIL_LINES})`, numberFlag('--tail', true))
    .option('--server <URL[,URL...]>', 'report the run to this aim-watcher daemon (http://host:port, a comma-separated failover list) instead of a repo folder (default: AIM_STATUS_SERVER, else none)')
    .option('--token-file <FILE>', "the daemon's bearer token, read from FILE (default: AIM_STATUS_TOKEN, else none)")
    .option('--no-daemon', 'do not start an aim-watcher daemon for the repo when none runs (default: one is started, so a SIGKILL of this wrapper is still reported)')
    .action(async (argv: string[], flags: RunFlags, command: Command) => {
      const server = flags.server
        ?.split(',')
        .map((url) => url.trim())
        .filter((url) => url !== '')
      const token = flags.tokenFile !== undefined ? readToken(flags.tokenFile) : undefined
      // With a daemon by URL, no folder here is the repo: --repo, if given, names the daemon's.
      const remote = server !== undefined || (process.env['AIM_STATUS_SERVER'] ?? '') !== ''
      const given = command.optsWithGlobals<{ repo?: string[] | string }>().repo
      const root = remote ? (Array.isArray(given) ? given[0] : given) : repoRoot(command, 'folder')
      const [program_, ...args] = argv
      if (flags.tail !== undefined && (flags.tail < 0 || flags.tail > MAX_TAIL)) throw fail(2, `AIM_STATUS_OUT_OF_RANGE: --tail expects 0 to ${MAX_TAIL} lines, got ${flags.tail}`)
      const progress = progressPattern(flags.progress)
      let outcome
      try {
        // Loaded here: the watcher and its worker pool are not needed by the other commands (a daemon).
        const { runCommand } = await import('../wrap/command-run.js')
        outcome = await runCommand({
          command: program_ as string,
          args,
          ...(root !== undefined ? { repo: root } : {}),
          ...(server !== undefined ? { server } : {}),
          ...(token !== undefined ? { token } : {}),
          daemon: flags.daemon,
          ...(flags.hash !== undefined ? { hash: flags.hash } : {}),
          ...(flags.name !== undefined ? { name: flags.name } : {}),
          ...(flags.experiment !== undefined ? { experiment: flags.experiment } : {}),
          ...(flags.grace !== undefined ? { grace: flags.grace } : {}),
          ...(flags.expect !== undefined ? { expect: flags.expect } : {}),
          ...(flags.tail !== undefined ? { tail: flags.tail } : {}),
          ...(progress !== undefined ? { progress } : {}),
        })
      } catch (error) {
        throw failWith(error, RUN_FLAGS)
      }
      if (outcome.exitCode === 127 || outcome.exitCode === 126) note(outcome.reason ?? 'could not start the command')
      if (outcome.signal !== null) throw new CliExit(128, `killed by ${outcome.signal}`, outcome.signal)
      if (outcome.exitCode !== 0) throw new CliExit(outcome.exitCode ?? 1, outcome.reason)
    })
}
