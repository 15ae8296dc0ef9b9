// The `aim-watcher` program as a user meets it: the built executable (dist/cli/bin.js) run as a
// real child process, and on a real pseudo-terminal (through `script`) for its prompts.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RUN_EVENT_KINDS } from '../lib/model.js'
import { readNotificationsConfig } from '../lib/notify/config.js'
import { repoPaths } from '../lib/repo.js'
import { exec, type Ran } from './support/child.js'
import { startTerminal } from './support/terminal.js'

const bin = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** Help text with its line wrapping undone. */
const unwrapped = (text: string): string => text.replace(/\s+/g, ' ')

const cli = (args: string[], cwd?: string): Promise<Ran> => exec(process.execPath, [bin, ...args], cwd !== undefined ? { cwd } : {})

const repo = (dir: string): string => {
  mkdirSync(join(dir, '.aim'), { recursive: true })
  return dir
}

t.test('--version and help with defaults', async (t) => {
  t.ok(existsSync(bin), 'dist/ is built (npm test builds first)')
  for (const flag of ['--version', '-V']) {
    const res = await cli([flag])
    t.equal(res.code, 0)
    t.equal(res.stdout.trim(), version, `${flag} prints package.json's version`)
  }
  const start = await cli(['start', '--help'])
  t.equal(start.code, 0)
  const startHelp = unwrapped(start.stdout)
  t.match(startHelp, /--grace <S> [^]*?\(default: 100, as Aim\)/)
  t.match(startHelp, /--stale-ms <MS> [^]*?\(default: 10000\)/)
  t.match(startHelp, /--poll-ms <MS> [^]*?\(default: 1000\)/)
  const top = unwrapped((await cli(['--help'])).stdout)
  t.match(top, /--repo <ROOT> repo root, repeatable for `start` \(default: the nearest folder upward holding \.aim, else the current folder\)/)
  t.match(top, /-V, --version/)
  const add = unwrapped((await cli(['notifiers', 'add', '--help'])).stdout)
  t.match(add, /--events <LIST> [^]*?\(default: stalled,failed,recovered\)/)
  t.match(add, /--base-url <URL> [^]*?\(default: https:\/\/graph\.facebook\.com\)/)
  for (const kind of RUN_EVENT_KINDS) t.match(add, `--message-${kind} <TEMPLATE>`)
  t.match(unwrapped((await cli(['notifiers', 'test', '--help'])).stdout), /--timeout <MS> [^]*?\(default: 10000\)/)
})

t.test('--repo: missing folders and non-repos are refused, twice is refused, add creates and says so', async (t) => {
  const dir = t.testdir({ plain: {} })
  const missing = join(dir, 'runs-typo')
  for (const args of [['start'], ['status'], ['notifiers', 'list'], ['notifiers', 'test'], ['notifiers', 'get-log-level'], ['notifiers', 'set-log-level', 'ERROR']]) {
    const res = await cli(['--repo', missing, ...args])
    t.equal(res.code, 2, `${args.join(' ')}: usage error`)
    t.match(res.stderr, `aim-watcher: --repo ${missing}: no such folder`, args.join(' '))
  }
  t.notOk(existsSync(missing), 'nothing created by a command that only reads or watches')
  const plain = join(dir, 'plain')
  for (const args of [['status'], ['notifiers', 'list'], ['notifiers', 'enable', 'abc']]) {
    const res = await cli(['--repo', plain, ...args])
    t.equal(res.code, 2, `${args.join(' ')}: not a repo`)
    t.match(res.stderr, /not an Aim repo \(no \.aim folder in it\)/)
  }
  t.notOk(existsSync(join(plain, '.aim')))
  const a = repo(join(dir, 'a'))
  const b = repo(join(dir, 'b'))
  for (const args of [['status'], ['notifiers', 'list'], ['notifiers', 'add', 'logger']]) {
    const res = await cli(['--repo', a, '--repo', b, ...args])
    t.equal(res.code, 2, `${args.join(' ')} with two --repo`)
    t.match(res.stderr, /works on one repo: give --repo once \(got 2: /)
  }
  // A shell in a folder that is no repo, without --repo: the message says where it looked.
  const res = await cli(['notifiers', 'list'], plain)
  t.equal(res.code, 2)
  t.match(res.stderr, /no --repo given, and no folder from here upward holds \.aim/)

  const added = await cli(['--repo', missing, 'notifiers', 'add', 'logger'])
  t.equal(added.code, 0, added.stderr)
  t.match(added.stderr, `aim-watcher: created the folder ${missing} and a new repo in it (${join(missing, '.aim')})`)
  const again = await cli(['--repo', missing, 'notifiers', 'add', 'logger', '--message', 'second {run.hash}'])
  t.equal(again.code, 0)
  t.equal(again.stderr, '', 'said once: the repo exists now')
  t.equal((await cli(['--repo', missing, 'notifiers', 'list'])).code, 0)
})

t.test('errors name the flag, not the option field behind it', async (t) => {
  const root = repo(t.testdir())
  const cases: Array<[string[], RegExp]> = [
    [['start', '--stale-ms', '100'], /AIM_STATUS_OUT_OF_RANGE: Expected --stale-ms to be an integer of at least 2000, got 100/],
    [['start', '--poll-ms', '10'], /Expected --poll-ms /],
    [['start', '--grace', '5'], /Expected --grace to be a number of seconds of at least 30/],
    [['start', '--poll-ms', 'soon'], /--poll-ms expects an integer, got "soon"/],
    [['start', '--log-level', 'verbose'], /AIM_STATUS_INVALID_OPTION: Expected --log-level to be one of debug, info, warn, error, got "verbose"/],
    [['status', '--stale-ms', 'x'], /--stale-ms expects an integer/],
    [['notifiers', 'add', 'slack', '--webhook-url', 'ftp://example.com/x'], /slack notifier: --webhook-url must be an http:\/\/ or https:\/\/ URL/],
    [['notifiers', 'add', 'workplace', '--group-id', 'abc', '--access-token', 'tok'], /workplace notifier: --group-id must be a positive integer/],
    [['notifiers', 'add', 'workplace', '--group-id', '1', '--access-token', 'tok', '--base-url', 'nope'], /--base-url must be an absolute/],
    [['notifiers', 'add', 'webhook', '--url', 'https://example.com/h', '--header', 'Content-Type=text/plain'], /webhook notifier: --header may not set Content-Type/],
    [['notifiers', 'add', 'logger', '--message', '{run.nope}'], /--message: Invalid message template "\{run\.nope\}": unknown variable/],
    [['notifiers', 'add', 'logger', '--events', 'stalled', '--message-stalled', '{oops'], /--message-stalled: Invalid message template/],
    [['notifiers', 'test', '--timeout', '0'], /Expected --timeout to be a positive number/],
  ]
  for (const [args, message] of cases) {
    const res = await cli(['--repo', root, ...args])
    t.equal(res.code, 2, args.join(' '))
    t.match(res.stderr, message, args.join(' '))
    t.notMatch(res.stderr, /staleMs|pollMs|logLevel|timeoutMs|argument "|`grace`/, 'no field names of the library')
  }
  t.notOk(existsSync(repoPaths(root).config), 'nothing was written')
})

t.test("--events and --message-<event> set the notifier's events and per-event messages", async (t) => {
  const root = repo(t.testdir())
  const res = await cli(['--repo', root, 'notifiers', 'add', 'logger', '--events', 'stalled,finished', '--message-stalled', 'LATE {run.hash}', '--message-finished', 'DONE {run.hash}'])
  t.equal(res.code, 0, res.stderr)
  const [entry] = (await readNotificationsConfig(repoPaths(root))).notifiers
  t.same(entry?.events, ['stalled', 'finished'])
  t.same(entry?.messages, { stalled: 'LATE {run.hash}', finished: 'DONE {run.hash}' })
  // `notifiers test` sends a stall: the per-event message is the one used.
  const sent = await cli(['--repo', root, 'notifiers', 'test'])
  t.equal(sent.code, 0, sent.stderr)
  t.match(sent.stdout, /^LATE notifier_test$/m)
  const refused = await cli(['--repo', root, 'notifiers', 'add', 'logger', '--message-started', 'go {run.hash}'])
  t.equal(refused.code, 2)
  t.match(refused.stderr, /--message-started: this notifier does not send started events \(its events: stalled,failed,recovered\); add started to --events/)
})

t.test('add --if-missing adds a notifier once', async (t) => {
  const root = repo(t.testdir())
  const args = ['--repo', root, 'notifiers', 'add', 'webhook', '--url', 'https://example.com/hook', '--header', 'X-Team=ml', '--if-missing']
  const first = await cli(args)
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /Added notifier/)
  const second = await cli(args)
  t.equal(second.code, 0, second.stderr)
  const [entry] = (await readNotificationsConfig(repoPaths(root))).notifiers
  t.match(second.stdout, `Notifier ${entry?.id} (webhook) has these arguments already: nothing added.`)
  t.equal((await readNotificationsConfig(repoPaths(root))).notifiers.length, 1)
  const other = await cli([...args.slice(0, -3), '--header', 'X-Team=infra', '--if-missing'])
  t.match(other.stdout, /Added notifier/, 'other arguments: another notifier')
  t.equal((await readNotificationsConfig(repoPaths(root))).notifiers.length, 2)
})

t.test('notifiers list fits 80 columns; --wide and --json have everything', async (t) => {
  const root = repo(t.testdir())
  await cli(['--repo', root, 'notifiers', 'add', 'workplace', '--group-id', '12345', '--access-token', 'EAAtokensecretvalue0123456789', '--events', 'started,stalled,recovered,finished,failed'])
  await cli(['--repo', root, 'notifiers', 'add', 'logger'])
  const list = await cli(['--repo', root, 'notifiers', 'list'])
  t.equal(list.code, 0)
  const lines = list.stdout.trimEnd().split('\n')
  t.equal(lines.length, 3)
  t.match(lines[0], /^NOTIFIER ID\s+TYPE\s+STATUS\s+LAST DELIVERY$/)
  t.match(lines[1], /^[0-9a-f-]{36}\s+workplace\s+enabled\s+never$/)
  t.same(
    lines.filter((l) => l.length > 80),
    [],
    'no line wider than 80 columns',
  )
  const wide = await cli(['--repo', root, 'notifiers', 'list', '--wide'])
  t.match(wide.stdout, /^NOTIFIER ID\s+TYPE\s+STATUS\s+EVENTS\s+LAST DELIVERY \/ LAST ERROR/)
  t.match(wide.stdout, /workplace\s+enabled\s+started,stalled,recovered,finished,failed/)
  const json = JSON.parse((await cli(['--repo', root, 'notifiers', 'list', '--json'])).stdout) as Array<{ events: string[] }>
  t.same(json[0]?.events, ['started', 'stalled', 'recovered', 'finished', 'failed'])
  t.notOk(list.stdout.includes('EAAtokensecretvalue0123456789') || wide.stdout.includes('EAAtokensecretvalue0123456789'))
})

t.test('on a terminal: Ctrl-C in a prompt exits 130 quietly', async (t) => {
  const root = repo(t.testdir())
  const term = startTerminal(process.execPath, [bin, '--repo', root, 'notifiers', 'add'])
  await term.waitFor('Notifier type')
  term.type('\x03')
  t.equal(await term.exited, 130)
  t.notMatch(term.screen(), /force closed|ExitPromptError|\n\s+at /, 'no library message, no stack')
  t.notOk(existsSync(repoPaths(root).config), 'nothing saved')
})

t.test("on a terminal: a refused value is asked again, and Aim's [Y/n] question saves", async (t) => {
  const root = repo(t.testdir())
  const term = startTerminal(process.execPath, [bin, '--repo', root, 'notifiers', 'add'])
  let at = await term.waitFor('Notifier type')
  term.type('\x1b[B\x1b[B\r') // logger, slack, workplace
  at = await term.waitFor('Workplace group id', at)
  term.type('twelve\r')
  at = await term.waitFor('--group-id must be a positive integer', at)
  term.type('\x15123\r') // clear the refused answer, type another
  at = await term.waitFor('Workplace access token', at)
  term.type('EAAtokensecretvalue0123456789\r')
  at = await term.waitFor('Graph API base URL (https://graph.facebook.com)', at)
  term.type('\r') // keep the default: not stored
  at = await term.waitFor('Message template', at)
  term.type('\r')
  at = await term.waitFor('Events to send', at)
  term.type(' \r') // tick "started" (the cursor's first line) besides the defaults
  at = await term.waitFor('Set a different message for some events? [y/N]', at)
  term.type('y\r')
  at = await term.waitFor('Message for started events', at)
  term.type('{run.nope}\r')
  at = await term.waitFor('--message-started: Invalid message template', at)
  term.type('\x15GO {run.hash}\r')
  for (const kind of ['stalled', 'recovered', 'failed']) {
    at = await term.waitFor(`Message for ${kind} events`, at)
    term.type('\r')
  }
  await term.waitFor('Save notifier configuration above? [Y/n]', at)
  term.type('\r')
  t.equal(await term.exited, 0, term.screen())
  t.notOk(term.screen().includes('EAAtokensecretvalue0123456789'), 'the token was never shown')
  const [entry] = (await readNotificationsConfig(repoPaths(root))).notifiers
  t.same(entry?.arguments, { group_id: 123, access_token: 'EAAtokensecretvalue0123456789', message: "❗️ Something wrong with Run '{run.hash}'. Please check. ❗️" })
  t.same(entry?.events, ['started', 'stalled', 'recovered', 'failed'])
  t.same(entry?.messages, { started: 'GO {run.hash}' })
})
