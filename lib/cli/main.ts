/**
 * The `aim-watcher` program. Each command group lives in its own module beside this one; this
 * file only assembles them; `bin.ts` owns the process's exit code.
 * @module
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, Option } from 'commander'
import { registerNotifierCommands } from './notifiers.js'
import { registerDaemonCommands } from './daemon.js'
import { registerRunCommand } from './run.js'
import { registerMuteCommands } from './mutes.js'
import { CliExit, cliIO, redactCommanderText } from './common.js'

/** This package's version, from its package.json (two folders up from `lib/cli/` and `dist/cli/` alike). */
export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return manifest.version
}

/** Builds the program; exported so that tests can run it in-process. */
export function buildProgram(): Command {
  const program = new Command('aim-watcher')
    .description('Watches Aim runs and tells you when one stalls, fails or dies.')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .addOption(new Option('--repo <ROOT>', 'repo root, repeatable for `start`').default([], 'the nearest folder upward holding .aim, else the current folder').argParser(collect))
    // Commander's own messages (usage errors, help, version) go where the commands' output goes.
    .configureOutput({ writeOut: (text) => cliIO().out(text), writeErr: (text) => cliIO().err(redactCommanderText(text)) })
    .showHelpAfterError()
    .exitOverride()
  registerDaemonCommands(program)
  registerNotifierCommands(program)
  registerRunCommand(program)
  registerMuteCommands(program)
  return program
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

/** How the program ends: an exit code, or a signal to die of (`run` of a command killed by one). */
export interface ProgramExit {
  code: number
  signal?: NodeJS.Signals
}

/** Runs the program with the given argv and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  return (await runProgram(argv)).code
}

/** Runs the program with the given argv and returns how it should end. */
export async function runProgram(argv: string[]): Promise<ProgramExit> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv, { from: 'user' })
    return { code: 0 }
  } catch (error) {
    if (error instanceof CliExit) return error.signal === undefined ? { code: error.exitCode } : { code: error.exitCode, signal: error.signal }
    if (error instanceof CommanderError) return { code: error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version' ? 0 : 2 }
    cliIO().err(`aim-watcher: ${error instanceof Error ? error.message : String(error)}\n`)
    return { code: 1 }
  }
}
