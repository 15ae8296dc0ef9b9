/**
 * The `aim-watcher` program. Each command group lives in its own module beside this one; this
 * file only assembles them; `bin.ts` owns the process's exit code.
 * @module
 */
import { Command, CommanderError } from 'commander'
import { registerNotifierCommands } from './notifiers.js'
import { registerDaemonCommands } from './daemon.js'
import { CliExit } from './common.js'

/** Builds the program; exported so that tests can run it in-process. */
export function buildProgram(): Command {
  const program = new Command('aim-watcher')
    .description('Watches Aim runs and tells you when one stalls, fails or dies.')
    .option('--repo <ROOT>', 'repo root (default: nearest folder upward holding .aim, else the current folder); repeatable for start', collect, [])
    .showHelpAfterError()
    .exitOverride()
  registerDaemonCommands(program)
  registerNotifierCommands(program)
  return program
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

/** Runs the program with the given argv and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv, { from: 'user' })
    return 0
  } catch (error) {
    if (error instanceof CliExit) return error.exitCode
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version' ? 0 : 2
    process.stderr.write(`aim-watcher: ${error instanceof Error ? error.message : String(error)}\n`)
    return 1
  }
}
