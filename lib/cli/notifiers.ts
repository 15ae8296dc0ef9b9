/**
 * `aim-watcher notifiers …`: manage the notifiers of a repo. A thin shell over
 * lib/notify/manage.ts, with Aim's commands and flags plus ours.
 *
 * Every value has a flag; prompts appear only when stdin is a terminal. There, every value not
 * given as a flag is asked for (optional ones with their default), and a value the notifier
 * would refuse is refused at once and asked again. Without a terminal a missing required value
 * is a usage error (exit 2) naming its flag, and `add` saves without asking: the command line
 * is the confirmation (a script cannot answer "[Y/n]").
 *
 * Exit codes: 0 success; 1 failure (unknown notifier id, a test delivery failed, corrupt or
 * locked config); 2 usage (unknown flag, missing or invalid value, no repo at `--repo`);
 * 130 Ctrl-C in a prompt.
 *
 * Secrets given on the command line (URLs, tokens, header values, signing secrets) are
 * replaced by their redacted form in everything this module prints, errors included.
 * @module
 */
import type { Command } from 'commander'
import type { RunEventKind } from '../model.js'
import { RUN_EVENT_KINDS } from '../model.js'
import { AIM_DEFAULT_MESSAGE, DEFAULT_NOTIFIER_EVENTS } from '../notify/contract.js'
import { findNotifierType, notifierFlags, notifierTypeNames, redactEntry } from '../notify/registry.js'
import { compileTemplate } from '../notify/template.js'
import { DEFAULT_GRAPH_BASE_URL } from '../notify/types/workplace.js'
import { addNotifier, disableNotifier, enableNotifier, entryFromSpec, findSameNotifier, getLogLevel, listNotifiers, logLevelName, removeNotifier, setLogLevel, testNotifiers, type NotifierSpec } from '../notify/manage.js'
import { cliIO, fail, failWith, forgetSecrets, newRepoNote, note, numberFlag, out, redactCommanderText, redactText, rememberSecret, repoRoot, setCliIO, type CliIO } from './common.js'
import { formatNotifierTable } from './notifier-table.js'
import { forTerminal } from '../text.js'

/** The program's input and output, as the notifier commands see them (see {@link CliIO}). */
export type NotifierCliIO = CliIO

/** Replaces the commands' input and output (tests); returns a function that restores the previous. */
export function setNotifierCliIO(replacement: Partial<NotifierCliIO>): () => void {
  return setCliIO(replacement)
}

/**
 * Wraps an action so that every failure ends as a CliExit with the right code and a printed
 * message, in flag terms (`add` words its own, knowing the type).
 */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args)
    } catch (error) {
      throw failWith(error, flagsOf(undefined))
    } finally {
      forgetSecrets()
    }
  }
}

/** One value a type needs: its flag, where it goes, whether it is required and secret. */
interface ArgumentFlag {
  flag: string
  /** Commander's attribute name of the flag. */
  option: string
  argument: string
  required: boolean
  secret: boolean
  prompt: string
  /** The value the notifier uses when none is given; offered by the prompt, and not stored when kept. */
  default?: string
  /**
   * A value the type accepts, standing in for this argument while another one is checked
   * before this one is asked (the type's validation stops at its first complaint).
   */
  probe?: string
}

/**
 * What the CLI adds to a type's own flags (each type describes its flags, prompts and secrets in
 * its module; lib/notify/registry.ts lists them): a value standing in for an argument while
 * another is checked, and the default a prompt offers.
 */
const FLAG_EXTRAS: Readonly<Record<string, Pick<ArgumentFlag, 'probe' | 'default'>>> = {
  '--webhook-url': { probe: 'https://hooks.slack.com/x' },
  '--group-id': { probe: '1' },
  '--access-token': { probe: 'token' },
  '--base-url': { default: DEFAULT_GRAPH_BASE_URL },
  '--url': { probe: 'https://example.com/hook' },
}

/** Commander's attribute name of a flag: `--webhook-url` is `webhookUrl`. */
const optionName = (flag: string): string => flag.replace(/^--/, '').replace(/-([a-z])/g, (_all, letter: string) => letter.toUpperCase())

/** A type's flags, from its own description, with the CLI's extras. */
function typeFlags(type: string): ArgumentFlag[] {
  return (findNotifierType(type)?.flags ?? []).map((flag) => ({ ...flag, option: optionName(flag.flag), ...FLAG_EXTRAS[flag.flag] }))
}

/** The flag of a per-event message: `--message-stalled`. */
export const messageFlag = (kind: RunEventKind): string => `--message-${kind}`
/** Its commander option name: `messageStalled`. */
const messageOption = (kind: RunEventKind): string => `message${kind[0]?.toUpperCase() ?? ''}${kind.slice(1)}`

interface AddOptions {
  /** The types' flags (built from the registry), by commander's attribute name. */
  [flag: string]: string | string[] | boolean | undefined
  header: string[]
  secret?: string
  message?: string
  events?: string
  yes?: boolean
  ifMissing?: boolean
  [perEventMessage: `message${string}`]: string | undefined
}

/** The library's argument names as the flags of a type, for its error messages. */
export function flagsOf(type: string | undefined): Record<string, string> {
  const flags: Record<string, string> = { message: '--message', headers: '--header', events: '--events', timeoutMs: '--timeout' }
  for (const spec of typeFlags(type ?? '')) flags[spec.argument] = spec.flag
  return flags
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

/** Why `text` is not a list of events for `--events`, or true. */
export function checkEvents(text: string): true | string {
  const events = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
  const unknown = events.filter((e) => !RUN_EVENT_KINDS.includes(e as RunEventKind))
  if (events.length === 0 || unknown.length > 0) return `--events: expected a comma-separated list of ${RUN_EVENT_KINDS.join(', ')}, got "${text}"`
  return true
}

function parseEvents(text: string): RunEventKind[] {
  const checked = checkEvents(text)
  if (checked !== true) throw fail(2, checked)
  return [
    ...new Set(
      text
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== ''),
    ),
  ] as RunEventKind[]
}

/** Why `template` is not a usable message template for `flag`, or true. */
export function checkTemplate(flag: string, template: string): true | string {
  try {
    compileTemplate(template)
    return true
  } catch (error) {
    return `${flag}: ${(error as Error).message}`
  }
}

/**
 * Why `value` cannot be argument `argument` of a `type` notifier, or true: the type's own
 * validation, run with the values gathered so far and stand-ins for the required ones not
 * asked yet; complaints about other arguments are not this value's fault.
 */
export function checkArgument(type: string, argument: string, value: unknown, gathered: Record<string, unknown>): true | string {
  const definition = findNotifierType(type)
  if (definition === undefined) return `unknown notifier type "${type}"`
  const trial: Record<string, unknown> = {}
  for (const spec of typeFlags(type)) if (spec.probe !== undefined) trial[spec.argument] = spec.probe
  try {
    definition.validate({ ...trial, ...gathered, [argument]: value })
    return true
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (!message.includes(`argument "${argument}"`)) return true
    return redactText(message.replace(`argument "${argument}"`, flagsOf(type)[argument] ?? argument))
  }
}

/** Reads one `NAME=VALUE` of `--header`; the value becomes a secret. */
export function parseHeader(text: string): [string, string] | string {
  const at = text.indexOf('=')
  if (at <= 0) return '--header: expected NAME=VALUE'
  return [text.slice(0, at).trim(), text.slice(at + 1)]
}

function addHeader(headers: Record<string, string>, name: string, value: string): void {
  // defineProperty: a header named "__proto__" stays a plain field.
  Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
  rememberSecret(value)
}

function parseHeaders(values: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const value of values) {
    const parsed = parseHeader(value)
    if (typeof parsed === 'string') throw fail(2, parsed)
    addHeader(headers, ...parsed)
  }
  return headers
}

/** On a terminal, asks for headers one at a time until an empty answer. */
async function askHeaders(): Promise<Record<string, string>> {
  const headers: Record<string, string> = {}
  for (;;) {
    const answer = await cliIO().input('Request header NAME=VALUE (empty: no more headers)', {
      validate: (text) => {
        if (text.trim() === '') return true
        const parsed = parseHeader(text)
        if (typeof parsed === 'string') return parsed
        const trial: Record<string, string> = { ...headers }
        Object.defineProperty(trial, parsed[0], { value: parsed[1], enumerable: true })
        return checkArgument('webhook', 'headers', trial, {})
      },
    })
    if (answer.trim() === '') return headers
    const parsed = parseHeader(answer) as [string, string]
    addHeader(headers, ...parsed)
  }
}

/** Takes a value from its flag, else from a prompt on a terminal, else fails naming the flag (when required). */
async function valueFor(type: string, spec: ArgumentFlag, given: string | undefined, gathered: Record<string, unknown>): Promise<string | undefined> {
  if (given !== undefined) return given
  const io = cliIO()
  if (!io.interactive) {
    if (spec.required) throw fail(2, `missing ${spec.flag} (stdin is not a terminal, so nothing can be asked)`)
    return undefined
  }
  const answer = await io.input(spec.prompt, {
    secret: spec.secret,
    ...(spec.default !== undefined ? { default: spec.default } : {}),
    validate: (value) => {
      if (value === '') return spec.required ? `${spec.flag}: a value is required` : true
      return checkArgument(type, spec.argument, value, gathered)
    },
  })
  // An empty answer or the default kept: nothing stored, as when the flag is left out.
  return answer === '' || answer === spec.default ? undefined : answer
}

/** The events from `--events`, else the checkbox on a terminal (defaults ticked); undefined means the default. */
async function eventsFor(given: string | undefined): Promise<RunEventKind[] | undefined> {
  if (given !== undefined) return parseEvents(given)
  const io = cliIO()
  if (!io.interactive) return undefined
  const chosen = await io.checkbox(
    'Events to send',
    RUN_EVENT_KINDS.map((kind) => ({ value: kind, checked: DEFAULT_NOTIFIER_EVENTS.includes(kind) })),
    { validate: (values) => (values.length > 0 ? true : 'choose at least one event') },
  )
  const same = chosen.length === DEFAULT_NOTIFIER_EVENTS.length && DEFAULT_NOTIFIER_EVENTS.every((kind) => chosen.includes(kind))
  return same ? undefined : (chosen as RunEventKind[])
}

/** The per-event templates from `--message-<event>`, else asked on a terminal for each event on request. */
async function messagesFor(options: AddOptions, events: readonly RunEventKind[]): Promise<Partial<Record<RunEventKind, string>> | undefined> {
  const messages: Partial<Record<RunEventKind, string>> = {}
  for (const kind of RUN_EVENT_KINDS) {
    const template = options[messageOption(kind) as `message${string}`]
    if (template === undefined) continue
    if (!events.includes(kind)) throw fail(2, `${messageFlag(kind)}: this notifier does not send ${kind} events (its events: ${events.join(',')}); add ${kind} to --events`)
    const checked = checkTemplate(messageFlag(kind), template)
    if (checked !== true) throw fail(2, checked)
    messages[kind] = template
  }
  const io = cliIO()
  if (Object.keys(messages).length === 0 && io.interactive && (await io.confirm('Set a different message for some events?', { default: false }))) {
    for (const kind of events) {
      const template = await io.input(`Message for ${kind} events (empty: the message above)`, { validate: (text) => (text === '' ? true : checkTemplate(messageFlag(kind), text)) })
      if (template !== '') messages[kind] = template
    }
  }
  return Object.keys(messages).length > 0 ? messages : undefined
}

async function addCommand(typeArgument: string | undefined, options: AddOptions, command: Command): Promise<void> {
  for (const flag of notifierTypeNames().flatMap(typeFlags)) {
    const value = options[flag.option]
    if (flag.secret && typeof value === 'string') rememberSecret(value)
  }
  const root = repoRoot(command, 'create')
  const io = cliIO()
  let type = typeArgument
  if (type === undefined) {
    if (!io.interactive) throw fail(2, `missing notifier type: add one of ${notifierTypeNames().join(', ')}`)
    type = await io.select('Notifier type', notifierTypeNames())
  }
  if (findNotifierType(type) === undefined) throw fail(2, `unknown notifier type "${type}"; known: ${notifierTypeNames().join(', ')}`)
  const flags = typeFlags(type)
  const allowed = new Set(flags.map((f) => f.flag))
  for (const flag of notifierTypeNames().flatMap(typeFlags)) {
    if (!allowed.has(flag.flag) && options[flag.option] !== undefined) throw fail(2, `${flag.flag} does not apply to a ${type} notifier`)
  }
  if (type !== 'webhook' && options.header.length > 0) throw fail(2, `--header does not apply to a ${type} notifier`)

  const args: Record<string, unknown> = {}
  for (const flag of flags) {
    const value = await valueFor(type, flag, options[flag.option] as string | undefined, args)
    if (value === undefined) continue
    if (flag.secret) rememberSecret(value)
    args[flag.argument] = value
  }
  if (options.header.length > 0) args['headers'] = parseHeaders(options.header)
  else if (type === 'webhook' && io.interactive) {
    const headers = await askHeaders()
    if (Object.keys(headers).length > 0) args['headers'] = headers
  }
  if (options.message !== undefined) {
    const checked = checkTemplate('--message', options.message)
    if (checked !== true) throw fail(2, checked)
    args['message'] = options.message
  } else if (io.interactive) {
    args['message'] = await io.input('Message template (Aim style, e.g. {run.hash})', { default: AIM_DEFAULT_MESSAGE, validate: (text) => checkTemplate('--message', text) })
  }
  const spec: NotifierSpec = { type, arguments: args }
  const events = await eventsFor(options.events)
  if (events !== undefined) spec.events = events
  const messages = await messagesFor(options, events ?? DEFAULT_NOTIFIER_EVENTS)
  if (messages !== undefined) spec.messages = messages

  const inFlags = flagsOf(type)
  let preview
  try {
    preview = entryFromSpec(spec) // validates now: a mistake shows before the question
  } catch (error) {
    throw failWith(error, inFlags)
  }
  const existing = options.ifMissing === true ? await findSameNotifier(root, spec) : undefined
  if (existing !== undefined) {
    out(`Notifier ${existing.id} (${existing.type}) has these arguments already: nothing added.`)
    return
  }
  out(JSON.stringify(redactEntry(preview), null, 2))
  if (options.yes !== true && io.interactive && !(await io.confirm('Save notifier configuration above?'))) {
    out('Not saved.')
    return
  }
  const created = newRepoNote(root)
  const entry = await addNotifier(root, { ...spec, id: preview.id, ifMissing: options.ifMissing === true }).catch((error: unknown) => {
    throw failWith(error, inFlags)
  })
  if (created !== undefined) note(created)
  if (entry.id !== preview.id) out(`Notifier ${entry.id} (${entry.type}) has these arguments already: nothing added.`)
  else out(`Added notifier ${entry.id} (${entry.type}).`)
}

async function listCommand(options: { json?: boolean; wide?: boolean }, command: Command): Promise<void> {
  const listings = await listNotifiers(repoRoot(command, 'repo'))
  if (options.json === true) {
    out(JSON.stringify(listings, null, 2))
    return
  }
  for (const line of formatNotifierTable(listings, { wide: options.wide === true })) out(line)
}

/** The default of `notifiers test --timeout`, in ms. */
const DEFAULT_TEST_TIMEOUT_MS = 10_000

async function testCommand(id: string | undefined, options: { timeout?: number }, command: Command): Promise<void> {
  const root = repoRoot(command, 'repo')
  const results = await testNotifiers(root, id, { timeoutMs: options.timeout ?? DEFAULT_TEST_TIMEOUT_MS, writeLine: (line) => out(line) })
  if (results.length === 0) {
    out('No enabled notifiers to test.')
    return
  }
  let failed = 0
  for (const { id: notifierId, type, outcome } of results) {
    if (outcome.kind === 'delivered') out(forTerminal(`${notifierId} ${type}: delivered${outcome.detail !== undefined ? ` (${outcome.detail})` : ''}`))
    else {
      failed += 1
      out(forTerminal(`${notifierId} ${type}: FAILED (${outcome.kind}): ${outcome.error}`))
    }
  }
  if (failed > 0) throw fail(1, `${failed} of ${results.length} notifier(s) failed`)
}

export function registerNotifierCommands(program: Command): void {
  const notifiers = program
    .command('notifiers')
    .description('manage the notifiers of a repo (add, list, enable, disable, remove, test, log level)')
    // Subcommands created below inherit this: commander's own messages, secrets redacted.
    .configureOutput({ writeOut: (text) => cliIO().out(text), writeErr: (text) => cliIO().err(redactCommanderText(text)) })
    .exitOverride()

  const add = notifiers
    .command('add')
    .description('add a notifier; on a terminal, values not given as flags are asked for (creates the repo if there is none)')
    .argument('[type]', `${notifierTypeNames().join(', ')}, or a type registered from code`)
    .option('--header <NAME=VALUE>', 'webhook: a request header, repeatable; values are secret (default: none)', collect, [])
    .option('--message <TEMPLATE>', `message template, Aim style ({run.hash}) (default: Aim's "${AIM_DEFAULT_MESSAGE}")`)
    .option('--events <LIST>', `events to send, comma-separated among ${RUN_EVENT_KINDS.join(',')} (default: ${DEFAULT_NOTIFIER_EVENTS.join(',')})`)
  // Each type's own flags, as it describes them (a flag two types share is declared once).
  const declared = new Set(['--header'])
  for (const flag of notifierFlags()) {
    if (declared.has(flag.flag)) continue
    declared.add(flag.flag)
    add.option(`${flag.flag} <${flag.placeholder ?? flag.argument.toUpperCase()}>`, flag.description)
  }
  for (const kind of RUN_EVENT_KINDS) add.option(`${messageFlag(kind)} <TEMPLATE>`, `message template for ${kind} events only (default: --message, else the default ${kind} message)`)
  add
    .option('--if-missing', 'add nothing if a notifier of this type with the same arguments exists (default: always add)')
    .option('-y, --yes', 'save without asking "Save notifier configuration above? [Y/n]" (default: ask on a terminal)')
    .action(action(addCommand))

  notifiers
    .command('list')
    .description('list the notifiers: NOTIFIER ID, TYPE, STATUS, LAST DELIVERY (80 columns; secrets redacted)')
    .option('--wide', 'also EVENTS, and the full LAST DELIVERY / LAST ERROR')
    .option('--json', 'print JSON: every field')
    .action(action(listCommand))

  const byId = (name: string, description: string, fn: (root: string, id: string) => Promise<void>, done: string): void => {
    notifiers
      .command(name)
      .description(description)
      .argument('<ID>', 'notifier id (see `notifiers list`)')
      .action(
        action(async (id: string, _options: unknown, command: Command) => {
          await fn(repoRoot(command, 'repo'), id)
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
    .option('--timeout <MS>', `how long one notifier may take (default: ${DEFAULT_TEST_TIMEOUT_MS})`, numberFlag('--timeout', false))
    .action(action(testCommand))

  notifiers
    .command('get-log-level')
    .description("print Aim's log level for the watcher")
    .action(
      action(async (_options: unknown, command: Command) => {
        out(logLevelName(await getLogLevel(repoRoot(command, 'repo'))))
      }),
    )

  notifiers
    .command('set-log-level')
    .description("set Aim's log level for the watcher")
    .argument('<LEVEL>', 'DEBUG, INFO, WARNING, ERROR, CRITICAL, or a number 0-50')
    .action(
      action(async (level: string, _options: unknown, command: Command) => {
        const value = await setLogLevel(repoRoot(command, 'repo'), level)
        out(`Log level set to ${logLevelName(value)} (${value}).`)
      }),
    )
}
