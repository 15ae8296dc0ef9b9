/**
 * What the command modules share: the exit-code convention and the repo option.
 *
 * Exit codes: 0 success; 1 the command failed (unknown notifier id, delivery failed in
 * `notifiers test`, …); 2 usage error (unknown flag, missing value when not on a terminal).
 * @module
 */
import type { Command } from 'commander'
import { resolveRepoRoot } from '../repo.js'

/** Thrown by a command to end the program with a given exit code after it printed its message. */
export class CliExit extends Error {
  constructor(readonly exitCode: number, message = `exit ${exitCode}`) {
    super(message)
  }
}

/** The repo roots given with `--repo` (default: Aim's rule), from any subcommand. */
export function repoRoots(command: Command): string[] {
  const repos = (command.optsWithGlobals() as { repo?: string[] }).repo ?? []
  return repos.length > 0 ? repos.map((r) => resolveRepoRoot(r)) : [resolveRepoRoot(undefined)]
}

/** The single repo root for commands that take one. */
export function repoRoot(command: Command): string {
  const roots = repoRoots(command)
  if (roots.length > 1) throw new CliExit(2, 'this command takes one --repo')
  return roots[0] as string
}
