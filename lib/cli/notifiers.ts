/**
 * `aim-watcher notifiers …`: manage the notifiers of a repo. A thin shell over
 * lib/notify/manage.ts, with Aim's commands and flags plus ours.
 *
 * Every value has a flag; prompts appear only when stdin is a terminal. Without a terminal a
 * missing required value is a usage error (exit 2) naming its flag, and `add` saves without
 * asking: the command line is the confirmation (a script cannot answer "[Y/n]").
 *
 * Exit codes: 0 success; 1 failure (unknown notifier id, a test delivery failed, corrupt or
 * locked config); 2 usage (unknown flag, missing or invalid value).
 *
 * Secrets given on the command line (URLs, tokens, header values, signing secrets) are
 * replaced by their redacted form in everything this module prints, errors included.
 * @module
 */
import type { Command } from 'commander'
import type { NotifierFlag } from '../notify/contract.js'
import { ErrorCodes } from '../errors.js'
import type { RunEventKind } from '../model.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { findNotifierType, notifierFlags, notifierTypeNames, redactEntry } from '../notify/registry.js'
import { redactSecret, scrub } from '../notify/redact.js'
import {
  addNotifier,
  disableNotifier,
  enableNotifier,
  entryFromSpec,
  getLogLevel,
  listNotifiers,
  logLevelName,
  removeNotifier,
  setLogLevel,
  testNotifiers,
  type NotifierListing,
  type NotifierSpec,
} from '../notify/manage.js'
import { CliExit, repoRoot } from './common.js'

/** Where the commands read and write; replaceable so that tests can run `main()` in-process. */
export interface NotifierCliIO {
  out(text: string): void
  err(text: string): void
  /** Whether prompts may be shown (stdin is a terminal). */
  interactive: boolean
  /** Asks to choose one of `choices`. */
  select(message: string, choices: string[]): Promise<string>
  /** Asks for a value; `secret` hides what is typed. */
  input(message: string, options: { secret?: boolean; default?: string }): Promise<string>
  /** Asks a yes/no question (default yes). */
  confirm(message: string): Promise<boolean>
}

const terminalIO: NotifierCliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  get interactive() {
    return process.stdin.isTTY === true
  },
  // The prompt library is loaded only when a prompt is shown: scripts never pay for it.
  async select(message, choices) {
    const { select } = await import('@inquirer/prompts')
    return select({ message, choices: choices.map((value) => ({ value })) })
  },
  async input(message, options) {
    const prompts = await import('@inquirer/prompts')
    if (options.secret === true) return prompts.password({ message, mask: '*' })
    return prompts.input({ message, ...(options.default !== undefined ? { default: options.default } : {}), required: true })
  },
  async confirm(message) {
    const { confirm } = await import('@inquirer/prompts')
    return confirm({ message, default: true })
  },
}

let io: NotifierCliIO = terminalIO

/** Replaces the commands' input and output (tests); returns a function that restores the previous. */
export function setNotifierCliIO(replacement: Partial<NotifierCliIO>): () => void {
  const previous = io
  io = { ...terminalIO, ...replacement }
  return () => {
    io = previous
  }
}

/** Secret values seen on this command line, replaced in all output. */
let secrets: string[] = []

function redactText(text: string): string {
  let safe = text
  for (const secret of secrets) if (secret.length >= 4) safe = safe.split(secret).join(redactSecret(secret))
  // Then the one scrubber: every configured secret, and any URL's userinfo.
  return scrub(safe)
}

/**
 * Commander's own messages echo what was typed ("unknown option '--webhook-urll=https://…'"):
 * the value of any `--flag=value`, and any URL, is shown redacted.
 */
function redactCommanderText(text: string): string {
  return redactText(text)
    .replace(/(--?[A-Za-z0-9-]+=)([^'"\s]+)/g, (_all, flag: string, value: string) => `${flag}${redactSecret(value)}`)
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"]+/gi, (url) => (url.includes('/…') ? url : redactSecret(url)))
}

const out = (line = ''): void => io.out(`${redactText(line)}\n`)
const fail = (code: number, message: string): CliExit => {
  io.err(`aim-watcher: ${redactText(message)}\n`)
  return new CliExit(code, message)
}

/** Maps the library's coded errors to exit codes: bad input is usage (2), the rest failure (1). */
function exitFor(error: unknown): never {
  if (error instanceof CliExit) throw error
  const code = (error as { code?: unknown }).code
  const message = error instanceof Error ? error.message : String(error)
  const usage: unknown[] = [ErrorCodes.INVALID_OPTION, ErrorCodes.OUT_OF_RANGE, ErrorCodes.INVALID_ID, ErrorCodes.INVALID_NOTIFIER, ErrorCodes.INVALID_TEMPLATE]
  throw fail(usage.includes(code) ? 2 : 1, message)
}

/** Wraps an action so that every failure ends as a CliExit with the right code and a printed message. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args)
    } catch (error) {
      exitFor(error)
    } finally {
      secrets = []
    }
  }
}

/** Commander's attribute name for a flag (`--webhook-url` -> `webhookUrl`). */
const optionName = (flag: string): string => flag.replace(/^--/, '').replace(/-([a-z])/g, (_all, c: string) => c.toUpperCase())

interface AddOptions {
  /** The types' flags (built from the registry), by commander's attribute name. */
  [flag: string]: string | string[] | boolean | undefined
  header: string[]
  secret?: string
  message?: string
  events?: string
  yes?: boolean
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

function parseEvents(text: string): RunEventKind[] {
  const events = text.split(',').map((e) => e.trim()).filter((e) => e !== '')
  const unknown = events.filter((e) => !RUN_EVENT_KINDS.includes(e as RunEventKind))
  if (events.length === 0 || unknown.length > 0) throw fail(2, `--events: expected a comma-separated list of ${RUN_EVENT_KINDS.join(', ')}, got "${text}"`)
  return events as RunEventKind[]
}

function parseHeaders(values: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const value of values) {
    const at = value.indexOf('=')
    if (at <= 0) throw fail(2, '--header: expected NAME=VALUE')
    // defineProperty: a header named "__proto__" stays a plain field.
    Object.defineProperty(headers, value.slice(0, at).trim(), { value: value.slice(at + 1), enumerable: true, writable: true, configurable: true })
    secrets.push(value.slice(at + 1))
  }
  return headers
}

/** Takes a value from its flag, else from a prompt on a terminal, else fails naming the flag. */
async function valueFor(spec: NotifierFlag, given: string | undefined): Promise<string | undefined> {
  if (given !== undefined) return given
  if (!spec.required) return undefined
  if (!io.interactive) throw fail(2, `missing ${spec.flag} (stdin is not a terminal, so nothing can be asked)`)
  return io.input(spec.prompt, { secret: spec.secret })
}

async function addCommand(typeArgument: string | undefined, options: AddOptions, command: Command): Promise<void> {
  for (const flag of notifierFlags()) {
    const value = options[optionName(flag.flag)]
    if (flag.secret && typeof value === 'string') secrets.push(value)
  }
  const root = repoRoot(command)
  let type = typeArgument
  if (type === undefined) {
    if (!io.interactive) throw fail(2, `missing notifier type: add one of ${notifierTypeNames().join(', ')}`)
    type = await io.select('Notifier type', notifierTypeNames())
  }
  if (findNotifierType(type) === undefined) throw fail(2, `unknown notifier type "${type}"; known: ${notifierTypeNames().join(', ')}`)
  const flags = findNotifierType(type)?.flags ?? []
  const allowed = new Set(flags.map((f) => f.flag))
  for (const flag of notifierFlags()) {
    if (!allowed.has(flag.flag) && options[optionName(flag.flag)] !== undefined) throw fail(2, `${flag.flag} does not apply to a ${type} notifier`)
  }
  if (type !== 'webhook' && options.header.length > 0) throw fail(2, `--header does not apply to a ${type} notifier`)

  const args: Record<string, unknown> = {}
  for (const flag of flags) {
    const value = await valueFor(flag, options[optionName(flag.flag)] as string | undefined)
    if (value === undefined) continue
    if (flag.secret) secrets.push(value)
    args[flag.argument] = value
  }
  if (options.header.length > 0) args['headers'] = parseHeaders(options.header)
  if (typeof options.message === 'string') args['message'] = options.message
  else if (io.interactive) args['message'] = await io.input('Message template (Aim style, e.g. {run.hash})', { default: entryFromSpec({ type: 'logger' }).arguments['message'] as string })
  const spec: NotifierSpec = { type, arguments: args }
  if (typeof options.events === 'string') spec.events = parseEvents(options.events)

  const preview = entryFromSpec(spec) // validates now: a mistake shows before the question
  out(JSON.stringify(redactEntry(preview), null, 2))
  if (options.yes !== true && io.interactive && !(await io.confirm('Save notifier configuration above?'))) {
    out('Not saved.')
    return
  }
  const entry = await addNotifier(root, { ...spec, id: preview.id })
  out(`Added notifier ${entry.id} (${entry.type}).`)
}

function deliveryColumn(listing: NotifierListing): string {
  const { delivery } = listing
  if (listing.problem !== null) return `skipped: ${listing.problem}`
  const parts: string[] = []
  if (delivery.lastDeliveryAt !== null) parts.push(`ok ${new Date(delivery.lastDeliveryAt).toISOString()} (${delivery.delivered})`)
  if (delivery.lastErrorAt !== null) parts.push(`error ${new Date(delivery.lastErrorAt).toISOString()}: ${delivery.lastError ?? ''}`)
  return parts.length > 0 ? parts.join('; ') : '-'
}

async function listCommand(options: { json?: boolean }, command: Command): Promise<void> {
  const listings = await listNotifiers(repoRoot(command))
  if (options.json === true) {
    out(JSON.stringify(listings, null, 2))
    return
  }
  // Aim's columns first, in Aim's widths, then ours.
  out(`${'NOTIFIER ID'.padEnd(40)} ${'TYPE'.padEnd(10)} ${'STATUS'.padEnd(10)} ${'EVENTS'.padEnd(26)} LAST DELIVERY / LAST ERROR`)
  for (const listing of listings) {
    out(`${listing.id.padEnd(40)} ${listing.type.padEnd(10)} ${listing.status.padEnd(10)} ${listing.events.join(',').padEnd(26)} ${deliveryColumn(listing)}`)
  }
}

async function testCommand(id: string | undefined, options: { timeout: string }, command: Command): Promise<void> {
  const timeoutMs = Number(options.timeout)
  const results = await testNotifiers(repoRoot(command), id, { timeoutMs, writeLine: (line) => out(line) })
  if (results.length === 0) {
    out('No enabled notifiers to test.')
    return
  }
  let failed = 0
  for (const { id: notifierId, type, outcome } of results) {
    if (outcome.kind === 'delivered') out(`${notifierId} ${type}: delivered${outcome.detail !== undefined ? ` (${outcome.detail})` : ''}`)
    else {
      failed += 1
      out(`${notifierId} ${type}: FAILED (${outcome.kind}): ${outcome.error}`)
    }
  }
  if (failed > 0) throw fail(1, `${failed} of ${results.length} notifier(s) failed`)
}

export function registerNotifierCommands(program: Command): void {
  const notifiers = program
    .command('notifiers')
    .description('manage the notifiers of a repo (add, list, enable, disable, remove, test, log level)')
    // Subcommands created below inherit this; it sends commander's own messages through `io`.
    .configureOutput({ writeOut: (text) => io.out(text), writeErr: (text) => io.err(redactCommanderText(text)) })
    .exitOverride()

  const add = notifiers
    .command('add')
    .description('add a notifier; values not given as flags are asked for on a terminal')
    .argument('[type]', `${notifierTypeNames().join(', ')}, or a registered custom type`)
  // Each type's own flags, from its description in the registry (one flag may serve two types).
  const seen = new Set<string>()
  for (const flag of notifierFlags()) {
    if (seen.has(flag.flag)) continue
    seen.add(flag.flag)
    add.option(`${flag.flag} <${flag.argument.toUpperCase()}>`, flag.description)
  }
  add
    .option('--header <NAME=VALUE>', 'webhook: a request header (repeatable; values are secret)', collect, [])
    .option('--message <TEMPLATE>', "message template, Aim style ({run.hash}); default: Aim's message")
    .option('--events <LIST>', `events to send, comma-separated among ${RUN_EVENT_KINDS.join(',')} (default stalled,failed,recovered)`)
    .option('-y, --yes', 'save without asking "Save notifier configuration above? [Y/n]"')
    .action(action(addCommand))

  notifiers
    .command('list')
    .description('list the notifiers: NOTIFIER ID, TYPE, STATUS, EVENTS, LAST DELIVERY / LAST ERROR (secrets redacted)')
    .option('--json', 'print JSON')
    .action(action(listCommand))

  const byId = (name: string, description: string, fn: (root: string, id: string) => Promise<void>, done: string): void => {
    notifiers
      .command(name)
      .description(description)
      .argument('<ID>', 'notifier id (see `notifiers list`)')
      .action(
        action(async (id: string, _options: unknown, command: Command) => {
          await fn(repoRoot(command), id)
          out(`Notifier ${id} ${done}.`)
        }),
      )
  }
  byId('enable', 'enable a notifier', enableNotifier, 'enabled')
  byId('disable', 'disable a notifier (it stays configured)', disableNotifier, 'disabled')
  byId('remove', 'remove a notifier', removeNotifier, 'removed')

  notifiers
    .command('test')
    .description('send a test message through every enabled notifier, or the one given; exit 1 if any failed')
    .argument('[ID]', 'notifier id (default: every enabled notifier)')
    .option('--timeout <MS>', 'how long one notifier may take', '10000')
    .action(action(testCommand))

  notifiers
    .command('get-log-level')
    .description("print Aim's log level for the watcher")
    .action(
      action(async (_options: unknown, command: Command) => {
        out(logLevelName(await getLogLevel(repoRoot(command))))
      }),
    )

  notifiers
    .command('set-log-level')
    .description("set Aim's log level for the watcher")
    .argument('<LEVEL>', 'DEBUG, INFO, WARNING, ERROR, CRITICAL, or a number 0-50')
    .action(
      action(async (level: string, _options: unknown, command: Command) => {
        const value = await setLogLevel(repoRoot(command), level)
        out(`Log level set to ${logLevelName(value)} (${value}).`)
      }),
    )
}
