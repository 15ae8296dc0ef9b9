import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { main } from '../lib/cli/main.js'
import { checkArgument, checkEvents, checkTemplate, parseHeader, setNotifierCliIO } from '../lib/cli/notifiers.js'
import { formatNotifierTable, timeAgo } from '../lib/cli/notifier-table.js'
import { inFlagTerms } from '../lib/cli/common.js'
import { repoPaths } from '../lib/repo.js'
import { readNotificationsConfig } from '../lib/notify/config.js'
import { addNotifier, listNotifiers, type NotifierListing } from '../lib/notify/manage.js'
import { writeNotifierStatus } from '../lib/notify/status-file.js'

const SLACK_URL = 'https://hooks.slack.com/services/T000/B000/VERYSECRETPART123'
const TOKEN = 'EAAtokensecretvalue0123456789'
const HOOK_URL = 'https://example.invalid/hook/secret-path-987654'
const HEADER_VALUE = 'Bearer hdr-secret-value-42'

interface Terminal {
  interactive?: boolean
  /** Answers to the type choice and the text questions, in order. A refused answer is followed by the next (as the prompt asks again). */
  answers?: string[]
  /** The events ticked in the checkbox (default: those ticked to begin with). */
  events?: string[]
  /** The answer to "Save notifier configuration above?" (default yes). */
  confirm?: boolean
  /** The answer to "Set a different message for some events?" (default no). */
  perEvent?: boolean
}

/**
 * Runs the program in-process with captured output; on a pretend terminal, answers come from
 * `answers`, and each text answer goes through the prompt's `validate` as the real prompt
 * does: a refused answer is recorded in `refused`, and the next answer is taken.
 */
async function run(args: string[], options: Terminal = {}) {
  let stdout = ''
  let stderr = ''
  const refused: string[] = []
  const questions: string[] = []
  const answers = [...(options.answers ?? [])]
  const restore = setNotifierCliIO({
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
    interactive: options.interactive ?? false,
    select: async (message) => {
      questions.push(message)
      return answers.shift() ?? ''
    },
    input: async (message, o) => {
      questions.push(message)
      for (;;) {
        const answer = answers.length > 0 ? (answers.shift() as string) : (o.default ?? '')
        const verdict = o.validate?.(answer) ?? true
        if (verdict === true) return answer
        refused.push(verdict)
        if (answers.length === 0) throw new Error(`no answer left after "${answer}" was refused: ${verdict}`)
      }
    },
    checkbox: async (message, choices, o) => {
      questions.push(message)
      const ticked = options.events ?? choices.filter((c) => c.checked).map((c) => c.value)
      const verdict = o?.validate?.(ticked) ?? true
      if (verdict !== true) throw new Error(`checkbox refused: ${verdict}`)
      return ticked
    },
    confirm: async (message) => {
      questions.push(message)
      return message.startsWith('Save') ? (options.confirm ?? true) : (options.perEvent ?? false)
    },
  })
  try {
    const code = await main(args)
    return { code, stdout, stderr, refused, questions }
  } finally {
    restore()
  }
}

const secretsIn = (text: string) => [SLACK_URL, TOKEN, HOOK_URL, HEADER_VALUE].filter((s) => text.includes(s))

t.test('add with flags for every type, list, --json; secrets never printed', async (t) => {
  const root = t.testdir({})
  const r = (...a: string[]) => run(['--repo', root, 'notifiers', ...a])
  const outputs: string[] = []
  for (const args of [
    ['add', 'slack', '--webhook-url', SLACK_URL, '--message', 'Run {run.hash} stuck'],
    ['add', 'workplace', '--group-id', '12345', '--access-token', TOKEN, '--base-url', 'http://127.0.0.1:9'],
    ['add', 'webhook', '--url', HOOK_URL, '--header', `Authorization=${HEADER_VALUE}`, '--secret', 'sig-secret-value-xyz', '--events', 'stalled,finished'],
    ['add', 'logger', '--yes'],
  ]) {
    const res = await r(...args)
    t.equal(res.code, 0, args.join(' '))
    t.match(res.stdout, /Added notifier [0-9a-f-]{36}/)
    outputs.push(res.stdout, res.stderr)
  }
  const config = await readNotificationsConfig(repoPaths(root))
  t.same(
    config.notifiers.map((e) => e.type),
    ['slack', 'workplace', 'webhook', 'logger'],
  )
  t.equal(config.notifiers[0]?.arguments['url'], SLACK_URL, 'the file holds the real value')
  t.equal(config.notifiers[1]?.arguments['group_id'], 12345)
  t.same(config.notifiers[2]?.events, ['stalled', 'finished'])

  const list = await r('list', '--wide')
  t.equal(list.code, 0)
  t.match(list.stdout, /^NOTIFIER ID\s+TYPE\s+STATUS\s+EVENTS\s+LAST DELIVERY \/ LAST ERROR/)
  t.match(list.stdout, /webhook\s+enabled\s+stalled,finished/)
  const narrow = await r('list')
  t.match(narrow.stdout, /^NOTIFIER ID\s+TYPE\s+STATUS\s+LAST DELIVERY\n/)
  outputs.push(narrow.stdout)
  const json = await r('list', '--json')
  const parsed = JSON.parse(json.stdout) as Array<{ id: string; type: string }>
  t.equal(parsed.length, 4)
  outputs.push(list.stdout, json.stdout)
  t.same(secretsIn(outputs.join('\n')), [], 'no secret in any output')
  t.notOk(outputs.join('\n').includes('sig-secret-value-xyz'))
})

t.test('non-TTY: missing values are usage errors naming the flag; nothing written', async (t) => {
  const root = t.testdir({})
  const r = (...a: string[]) => run(['--repo', root, 'notifiers', ...a])
  let res = await r('add', 'slack')
  t.equal(res.code, 2)
  t.match(res.stderr, /missing --webhook-url/)
  res = await r('add', 'workplace', '--group-id', '1')
  t.equal(res.code, 2)
  t.match(res.stderr, /missing --access-token/)
  res = await r('add')
  t.equal(res.code, 2)
  t.match(res.stderr, /missing notifier type/)
  res = await r('add', 'slack', '--webhook-url', 'ftp://nope/' + TOKEN)
  t.equal(res.code, 2, 'invalid value: usage')
  t.same(secretsIn(res.stderr + res.stdout), [])
  res = await r('add', 'logger', '--url', HOOK_URL)
  t.equal(res.code, 2)
  t.match(res.stderr, /--url does not apply/)
  res = await r('add', 'logger', '--events', 'stalled,exploded')
  t.equal(res.code, 2)
  t.notOk(existsSync(repoPaths(root).config), 'nothing was written')
})

t.test('TTY: prompts for type and values, and the confirmation can decline', async (t) => {
  const root = t.testdir({})
  let res = await run(['--repo', root, 'notifiers', 'add'], { interactive: true, answers: ['slack', SLACK_URL, 'msg {run.hash}'], confirm: false })
  t.equal(res.code, 0)
  t.match(res.stdout, /Not saved/)
  t.notOk(existsSync(repoPaths(root).config))
  res = await run(['--repo', root, 'notifiers', 'add'], { interactive: true, answers: ['slack', SLACK_URL, 'msg {run.hash}'] })
  t.equal(res.code, 0)
  t.same(res.questions, ['Notifier type', 'Slack webhook URL', 'Message template (Aim style, e.g. {run.hash})', 'Events to send', 'Set a different message for some events?', 'Save notifier configuration above?'])
  const config = await readNotificationsConfig(repoPaths(root))
  t.same(
    config.notifiers.map((e) => [e.type, e.arguments['url'], e.arguments['message']]),
    [['slack', SLACK_URL, 'msg {run.hash}']],
  )
  t.same(secretsIn(res.stdout + res.stderr), [])
})

t.test('enable, disable, remove, unknown and hostile ids, test, log level', async (t) => {
  const root = t.testdir({})
  const r = (...a: string[]) => run(['--repo', root, 'notifiers', ...a])
  await r('add', 'logger', '--message', 'hello {run.hash}')
  const id = (await readNotificationsConfig(repoPaths(root))).notifiers[0]?.id as string
  t.equal((await r('disable', id)).code, 0)
  t.equal((await readNotificationsConfig(repoPaths(root))).notifiers[0]?.status, 'disabled')
  let res = await r('test')
  t.equal(res.code, 0)
  t.match(res.stdout, /No enabled notifiers/)
  t.equal((await r('enable', id)).code, 0)
  res = await r('test')
  t.equal(res.code, 0)
  t.match(res.stdout, /hello notifier_test/)
  t.match(res.stdout, new RegExp(`${id} logger: delivered`))
  res = await r('enable', '4f9a0000-0000-4000-8000-000000000000')
  t.equal(res.code, 1)
  t.match(res.stderr, /No notifier with id/)
  res = await r('remove', '../x')
  t.equal(res.code, 2)
  t.match(res.stderr, /notifier id/)
  // A notifier whose endpoint refuses: test exits 1.
  await r('add', 'workplace', '--group-id', '7', '--access-token', TOKEN, '--base-url', 'http://127.0.0.1:1')
  res = await r('test', '--timeout', '5000')
  t.equal(res.code, 1)
  t.match(res.stdout, /workplace: FAILED/)
  t.same(secretsIn(res.stdout + res.stderr), [])
  t.equal((await r('set-log-level', 'ERROR')).code, 0)
  res = await r('get-log-level')
  t.equal(res.stdout.trim(), 'ERROR')
  t.equal((await r('set-log-level', 'LOUD')).code, 2)
  t.equal((await r('remove', id)).code, 0)
  t.equal((await readNotificationsConfig(repoPaths(root))).notifiers.length, 1)
  t.equal((await r('list', '--help')).code, 0)
})

t.test('end to end: the built executable as a real child process', async (t) => {
  const bin = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
  t.ok(existsSync(bin), 'dist/ is built (npm test builds first)')
  const root = t.testdir({})
  const exec = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, '--repo', root, 'notifiers', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      child.on('close', (code) => resolve({ code, stdout, stderr }))
    })
  let res = await exec('add', 'slack', '--webhook-url', SLACK_URL)
  t.equal(res.code, 0, res.stderr)
  res = await exec('add', 'slack')
  t.equal(res.code, 2)
  t.match(res.stderr, /--webhook-url/)
  res = await exec('list', '--json')
  t.equal(res.code, 0)
  t.equal((JSON.parse(res.stdout) as unknown[]).length, 1)
  t.same(secretsIn(res.stdout + res.stderr), [])
  t.equal(JSON.parse(readFileSync(repoPaths(root).config, 'utf8')).notifications.version, '1.0')
})

t.test('TTY: every option a flag covers is asked, and refused values are asked again', async (t) => {
  const root = t.testdir({ '.aim': {} })
  // workplace: a bad group id and a bad base URL refused; the message kept; events chosen.
  let res = await run(['--repo', root, 'notifiers', 'add', 'workplace'], {
    interactive: true,
    answers: ['abc', '42', TOKEN, 'not a url', 'http://127.0.0.1:9', 'W {run.hash}'],
    events: ['stalled', 'finished'],
  })
  t.equal(res.code, 0, res.stderr)
  t.same(res.refused, ['workplace notifier: --group-id must be a positive integer (or a string of digits)', 'workplace notifier: --base-url must be an absolute http:// or https:// URL'])
  let entry = (await readNotificationsConfig(repoPaths(root))).notifiers[0]
  t.same(entry?.arguments, { group_id: 42, access_token: TOKEN, base_url: 'http://127.0.0.1:9', message: 'W {run.hash}' })
  t.same(entry?.events, ['stalled', 'finished'])

  // workplace again, the base URL's default kept: it is not stored (Aim's shape).
  res = await run(['--repo', root, 'notifiers', 'add', 'workplace', '--group-id', '7', '--access-token', TOKEN], { interactive: true, answers: ['https://graph.facebook.com', ''] })
  t.equal(res.code, 0, res.stderr)
  entry = (await readNotificationsConfig(repoPaths(root))).notifiers[1]
  t.notOk('base_url' in (entry?.arguments ?? {}), 'the default base URL is not stored')
  t.equal(entry?.events, undefined, 'the default events are not stored')

  // webhook: url, secret, two headers (one refused), message, per-event messages (one refused).
  res = await run(['--repo', root, 'notifiers', 'add', 'webhook'], {
    interactive: true,
    perEvent: true,
    answers: [HOOK_URL, 'sig-secret-value-xyz', 'no-equals-sign', 'Content-Type=text/plain', `Authorization=${HEADER_VALUE}`, 'X-Team=ml', '', 'H {run.hash}', '{run.nope}', 'S {run.hash}', '', ''],
  })
  t.equal(res.code, 0, res.stderr)
  t.same(res.refused, ['--header: expected NAME=VALUE', 'webhook notifier: --header may not set Content-Type: the notifier sets it', res.refused[2]])
  t.match(res.refused[2], /^--message-stalled: Invalid message template "\{run\.nope\}": unknown variable/)
  t.same(
    res.questions.filter((q) => q.startsWith('Message for')),
    ['Message for stalled events (empty: the message above)', 'Message for failed events (empty: the message above)', 'Message for recovered events (empty: the message above)'],
  )
  entry = (await readNotificationsConfig(repoPaths(root))).notifiers[2]
  t.same(entry?.arguments, { url: HOOK_URL, secret: 'sig-secret-value-xyz', headers: { Authorization: HEADER_VALUE, 'X-Team': 'ml' }, message: 'H {run.hash}' })
  t.same(entry?.messages, { stalled: 'S {run.hash}' })
  t.same(secretsIn(res.stdout + res.stderr), [], 'secrets typed at prompts are not printed either')
  t.notOk((res.stdout + res.stderr).includes('sig-secret-value-xyz'))

  // An optional secret left empty: no signing.
  res = await run(['--repo', root, 'notifiers', 'add', 'webhook', '--url', HOOK_URL], { interactive: true, answers: ['', '', 'x {run.hash}'] })
  t.equal(res.code, 0, res.stderr)
  t.same((await readNotificationsConfig(repoPaths(root))).notifiers[3]?.arguments, { url: HOOK_URL, message: 'x {run.hash}' })
})

t.test('the validation functions behind the prompts', async (t) => {
  t.equal(checkArgument('slack', 'url', 'https://hooks.slack.com/services/T/B/X', {}), true)
  t.equal(checkArgument('slack', 'url', 'ftp://x', {}), 'slack notifier: --webhook-url must be an http:// or https:// URL, not ftp:')
  t.equal(checkArgument('workplace', 'group_id', '12', {}), true, 'the token, not asked yet, is not held against the group id')
  t.equal(checkArgument('workplace', 'access_token', 'has space', { group_id: '1' }), 'workplace notifier: --access-token must be a non-empty string without spaces')
  t.equal(checkArgument('nope', 'x', 1, {}), 'unknown notifier type "nope"')
  t.equal(checkTemplate('--message', 'ok {run.hash}'), true)
  t.match(checkTemplate('--message-failed', '{run.nope}'), /^--message-failed: Invalid message template/)
  t.equal(checkEvents('stalled, failed'), true)
  t.match(checkEvents('stalled,exploded'), /^--events: expected a comma-separated list of started, stalled, recovered, finished, failed/)
  t.match(checkEvents(''), /^--events/)
  t.same(parseHeader('A=b=c'), ['A', 'b=c'])
  t.equal(parseHeader('=x'), '--header: expected NAME=VALUE')
  t.equal(inFlagTerms('Expected `staleMs` and `other` and argument "url"', { staleMs: '--stale-ms', url: '--url' }), 'Expected --stale-ms and `other` and --url')
})

t.test('addNotifier({ ifMissing: true }) returns the entry of the same type and arguments', async (t) => {
  const root = t.testdir({})
  const first = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL }, events: ['stalled'], ifMissing: true })
  const again = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL }, ifMissing: true })
  t.equal(again.id, first.id, 'the same notifier, whatever its events')
  const byDefault = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL } })
  t.not(byDefault.id, first.id, 'without ifMissing every call adds')
  const other = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL, message: 'other {run.hash}' }, ifMissing: true })
  t.not(other.id, first.id, 'other arguments: another notifier')
  // Key order and normalisation do not make a difference: group_id 5 and "5" are the same.
  const w1 = await addNotifier(root, { type: 'workplace', arguments: { group_id: '5', access_token: TOKEN }, ifMissing: true })
  const w2 = await addNotifier(root, { type: 'workplace', arguments: { access_token: TOKEN, group_id: 5 }, ifMissing: true })
  t.equal(w2.id, w1.id)
  t.equal((await readNotificationsConfig(repoPaths(root))).notifiers.length, 4)
  await t.rejects(addNotifier(root, { type: 'logger', ifMissing: 'yes' as unknown as boolean }), { code: 'AIM_STATUS_INVALID_OPTION', message: /ifMissing/ })
})

t.test('the notifier table: 80 columns by default, every detail when wide', async (t) => {
  const root = t.testdir({})
  const ok = await addNotifier(root, { type: 'logger' })
  const failing = await addNotifier(root, { type: 'slack', arguments: { url: SLACK_URL } })
  const now = Date.UTC(2026, 0, 2, 12, 0, 0)
  await writeNotifierStatus(repoPaths(root), {
    [ok.id]: { delivered: 3, failed: 0, lastDeliveryAt: now - 90_000, lastError: null, lastErrorAt: null },
    [failing.id]: { delivered: 1, failed: 2, lastDeliveryAt: now - 7_200_000, lastError: 'permanent: HTTP 404 no_service — the channel was archived or the webhook revoked', lastErrorAt: now - 5_000 },
  })
  const listings: NotifierListing[] = await listNotifiers(root)
  const narrow = formatNotifierTable(listings, { now })
  t.same(
    narrow.slice(1).map((l) => l.replace(/\s+/g, ' ')),
    [`${ok.id} logger enabled ok 1m ago`, `${failing.id} slack enabled error 5s ago`],
  )
  t.same(
    narrow.filter((l) => l.length > 80),
    [],
  )
  const wide = formatNotifierTable(listings, { now, wide: true })
  t.match(wide[2], /stalled,failed,recovered\s+ok 2026-01-02T10:00:00\.000Z \(1\); error 2026-01-02T11:59:55\.000Z: permanent: HTTP 404 no_service — the channel was archived or the webhook revoked$/)
  t.same([timeAgo(now - 59_000, now), timeAgo(now - 3_600_000, now), timeAgo(now - 3 * 86_400_000, now), timeAgo(now + 5_000, now)], ['59s ago', '1h ago', '3d ago', '0s ago'])
})
