/**
 * What the command modules share: the exit-code convention, the program's output and prompts
 * (replaceable by tests), the repo option, and errors worded in flags.
 *
 * Exit codes: 0 success; 1 the command failed (unknown notifier id, delivery failed in
 * `notifiers test`, …); 2 usage error (unknown flag, missing value when not on a terminal, a
 * `--repo` that is not a repo); 130 interrupted (Ctrl-C in a prompt), as shells report SIGINT.
 * @module
 */
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from 'commander'
import { ErrorCodes, toPlainError } from '../errors.js'
import { aimFolderName, resolveRepoRoot } from '../repo.js'
import { redactSecret, scrub } from '../notify/redact.js'

/** Thrown by a command to end the program with a given exit code after it printed its message. */
export class CliExit extends Error {
  /**
   * @param signal the program should end by this signal instead (`run`: the command was killed
   *   by it); `exitCode` is then the fallback if the signal does not end the process.
   */
  constructor(
    readonly exitCode: number,
    message = `exit ${exitCode}`,
    readonly signal?: NodeJS.Signals,
  ) {
    super(message)
  }
}

/** The exit code of a program ended by SIGINT (128 + 2), which is what Ctrl-C in a prompt means. */
export const INTERRUPTED_EXIT_CODE = 130

/** A choice of a checkbox prompt. */
export interface CheckboxChoice {
  value: string
  checked: boolean
}

/** Where the commands read and write; replaceable so that tests can run `main()` in-process. */
export interface CliIO {
  out(text: string): void
  err(text: string): void
  /** Whether prompts may be shown (stdin is a terminal). */
  interactive: boolean
  /** Asks to choose one of `choices`. */
  select(message: string, choices: string[]): Promise<string>
  /**
   * Asks for a value; `secret` hides what is typed; `validate` returns true or the reason the
   * value is refused, and the question is asked again until it returns true.
   */
  input(message: string, options: { secret?: boolean; default?: string; validate?: (value: string) => true | string }): Promise<string>
  /** Asks to tick some of `choices`; `validate` as for {@link CliIO.input}. */
  checkbox(message: string, choices: CheckboxChoice[], options?: { validate?: (values: string[]) => true | string }): Promise<string[]>
  /** Asks a yes/no question, answered `[Y/n]` (or `[y/N]` when the default is no). */
  confirm(message: string, options?: { default?: boolean }): Promise<boolean>
}

/** Whether an error is the prompt library's "the user pressed Ctrl-C" (its ExitPromptError). */
function isPromptInterrupt(error: unknown): boolean {
  return error instanceof Error && error.name === 'ExitPromptError'
}

/** Runs a prompt; Ctrl-C ends the program with exit 130 and no message (the user knows). */
async function prompting<T>(ask: () => Promise<T>): Promise<T> {
  try {
    return await ask()
  } catch (error) {
    if (isPromptInterrupt(error)) {
      process.stderr.write('\n')
      throw new CliExit(INTERRUPTED_EXIT_CODE, 'interrupted')
    }
    throw error
  }
}

/** Aim's question reads "[Y/n]": brackets around the hint instead of the library's parentheses. */
const confirmTheme = { style: { defaultAnswer: (hint: string) => `[${hint}]` } }

const terminalIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  get interactive() {
    return process.stdin.isTTY === true
  },
  // The prompt library is loaded only when a prompt is shown: scripts never pay for it.
  async select(message, choices) {
    const { select } = await import('@inquirer/prompts')
    return prompting(() => select({ message, choices: choices.map((value) => ({ value })) }))
  },
  async input(message, options) {
    const prompts = await import('@inquirer/prompts')
    const validate = options.validate ?? (() => true)
    if (options.secret === true) return prompting(() => prompts.password({ message, mask: '*', validate }))
    return prompting(() => prompts.input({ message, ...(options.default !== undefined ? { default: options.default } : {}), validate }))
  },
  async checkbox(message, choices, options = {}) {
    const { checkbox } = await import('@inquirer/prompts')
    const validate = options.validate
    return prompting(() =>
      checkbox({
        message,
        choices: choices.map((c) => ({ value: c.value, checked: c.checked })),
        ...(validate !== undefined ? { validate: (items: ReadonlyArray<{ value: string }>) => validate(items.map((i) => i.value)) } : {}),
      }),
    )
  },
  async confirm(message, options = {}) {
    const { confirm } = await import('@inquirer/prompts')
    return prompting(() => confirm({ message, default: options.default ?? true, theme: confirmTheme }))
  },
}

let io: CliIO = terminalIO

/** The program's current input and output. */
export function cliIO(): CliIO {
  return io
}

/** Replaces the program's input and output (tests); returns a function that restores the previous. */
export function setCliIO(replacement: Partial<CliIO>): () => void {
  const previous = io
  io = { ...terminalIO, ...replacement }
  return () => {
    io = previous
  }
}

/** Secret values seen on this command line, replaced by their redacted form in all output. */
const secrets: string[] = []

/** Remembers a secret so that nothing printed from now on shows it. */
export function rememberSecret(value: string): void {
  secrets.push(value)
}

/** Forgets the secrets of a command that has ended. */
export function forgetSecrets(): void {
  secrets.length = 0
}

/** `text` with every remembered secret redacted, then through the one scrubber (every configured secret, any URL's userinfo). */
export function redactText(text: string): string {
  let safe = text
  for (const secret of secrets) if (secret.length >= 4) safe = safe.split(secret).join(redactSecret(secret))
  return scrub(safe)
}

/**
 * Commander's own messages echo what was typed ("unknown option '--webhook-urll=https://…'"):
 * the value of any `--flag=value`, and any URL, is shown redacted.
 */
export function redactCommanderText(text: string): string {
  return redactText(text)
    .replace(/(--?[A-Za-z0-9-]+=)([^'"\s]+)/g, (_all, flag: string, value: string) => `${flag}${redactSecret(value)}`)
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"]+/gi, (url) => (url.includes('/…') ? url : redactSecret(url)))
}

/** Prints a line on standard output, secrets redacted. */
export function out(line = ''): void {
  io.out(`${redactText(line)}\n`)
}

/** Prints `aim-watcher: <message>` on standard error, secrets redacted. */
export function note(message: string): void {
  io.err(`aim-watcher: ${redactText(message)}\n`)
}

/** Prints the message and returns the exit to throw. */
export function fail(code: number, message: string): CliExit {
  note(message)
  return new CliExit(code, message)
}

/**
 * Rewords a library error in the program's terms: each `` `field` `` and `argument "field"`
 * of the library becomes the flag that sets it (`` `staleMs` `` -> `--stale-ms`).
 */
export function inFlagTerms(message: string, flags: Readonly<Record<string, string>>): string {
  return message.replace(/`([A-Za-z_][\w.]*)`|argument "([^"]+)"/g, (whole, field: string | undefined, argument: string | undefined) => {
    const flag = flags[(field ?? argument) as string]
    return flag === undefined ? whole : flag
  })
}

/** The library's codes for bad input: a usage error (exit 2); any other failure exits 1. */
const USAGE_CODES: readonly string[] = [ErrorCodes.INVALID_OPTION, ErrorCodes.OUT_OF_RANGE, ErrorCodes.INVALID_ID, ErrorCodes.INVALID_NOTIFIER, ErrorCodes.INVALID_TEMPLATE, ErrorCodes.TOKEN_REQUIRED]

/**
 * Prints a library error (its code, and its message in flag terms, see {@link inFlagTerms})
 * and returns the exit to throw: 2 for bad input, 1 for anything else. A {@link CliExit} is
 * returned as it is: its message was printed already.
 */
export function failWith(error: unknown, flags: Readonly<Record<string, string>> = {}): CliExit {
  if (error instanceof CliExit) return error
  const plain = toPlainError(error)
  const usage = plain.code !== undefined && USAGE_CODES.includes(plain.code)
  return fail(usage ? 2 : 1, `${plain.code ?? plain.name}: ${inFlagTerms(plain.message, flags)}`)
}

/** A commander parser for a numeric flag: a usage error naming the flag unless the value is a (whole) number. */
export function numberFlag(flag: string, integer: boolean): (value: string) => number {
  return (value: string): number => {
    const parsed = Number(value)
    if (value.trim() === '' || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed))) {
      throw fail(2, `AIM_STATUS_INVALID_OPTION: ${flag} expects ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(value.slice(0, 40))}`)
    }
    return parsed
  }
}

/** What a command needs of its `--repo` folders. */
export type RepoNeed =
  /** An existing folder; it need not hold `.aim` yet (`start`: the daemon may start before the first run). */
  | 'folder'
  /** An existing Aim repo: the folder holds `.aim` (Aim's `Repo.from_path` refuses others too). */
  | 'repo'
  /** Created by the command when missing (`notifiers add`), which then says so (see {@link newRepoNote}). */
  | 'create'

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** Checks a root as `need` asks: a usage error naming the flag when it does not meet it. */
function checkRoot(root: string, given: boolean, need: RepoNeed): void {
  const where = given ? `--repo ${root}` : `no --repo given, and no folder from here upward holds ${aimFolderName()}: ${root}`
  if (existsSync(root) && !isFolder(root)) throw fail(2, `${where}: not a folder`)
  if (need === 'create') return
  if (!existsSync(root)) throw fail(2, `${where}: no such folder`)
  if (need === 'repo' && !isFolder(join(root, aimFolderName()))) {
    throw fail(2, `${where}: not an Aim repo (no ${aimFolderName()} folder in it); check the path, or make it one with \`aim init\` or \`aim-watcher --repo ${root} notifiers add …\``)
  }
}

/** What to say after a command has made `root` a repo, or undefined when it already was one. */
export function newRepoNote(root: string): string | undefined {
  const aim = join(root, aimFolderName())
  if (!existsSync(root)) return `created the folder ${root} and a new repo in it (${aim})`
  if (!isFolder(aim)) return `created a new repo: ${aim}`
  return undefined
}

/** `notifiers list`, `start`: the command as typed, for messages. */
function commandPath(command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c !== null && c.parent !== null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

function givenRepos(command: Command): string[] {
  return (command.optsWithGlobals() as { repo?: string[] }).repo ?? []
}

/** The repo roots given with `--repo` (default: Aim's rule), each checked as `need` says. */
export function repoRoots(command: Command, need: RepoNeed): string[] {
  const given = givenRepos(command)
  const roots = given.length > 0 ? given.map((r) => resolveRepoRoot(r)) : [resolveRepoRoot(undefined)]
  for (const root of roots) checkRoot(root, given.length > 0, need)
  return roots
}

/** The single repo root for commands that take one, checked as `need` says. */
export function repoRoot(command: Command, need: RepoNeed): string {
  const given = givenRepos(command)
  if (given.length > 1) {
    throw fail(2, `\`${commandPath(command)}\` works on one repo: give --repo once (got ${given.length}: ${given.join(', ')}); only \`start\` watches several`)
  }
  return repoRoots(command, need)[0] as string
}
