import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { main } from '../lib/cli/main.js'
import { setNotifierCliIO } from '../lib/cli/notifiers.js'
import { repoPaths } from '../lib/repo.js'
import { readNotificationsConfig } from '../lib/notify/config.js'

const SLACK_URL = 'https://hooks.slack.com/services/T000/B000/VERYSECRETPART123'
const TOKEN = 'EAAtokensecretvalue0123456789'
const HOOK_URL = 'https://example.invalid/hook/secret-path-987654'
const HEADER_VALUE = 'Bearer hdr-secret-value-42'

/** Runs the program in-process with captured output; `answers` feed prompts when interactive. */
async function run(args: string[], options: { interactive?: boolean; answers?: string[]; confirm?: boolean } = {}) {
  let stdout = ''
  let stderr = ''
  const answers = [...(options.answers ?? [])]
  const restore = setNotifierCliIO({
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
    interactive: options.interactive ?? false,
    select: async () => answers.shift() ?? '',
    input: async () => answers.shift() ?? '',
    confirm: async () => options.confirm ?? true,
  })
  try {
    const code = await main(args)
    return { code, stdout, stderr }
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
  t.same(config.notifiers.map((e) => e.type), ['slack', 'workplace', 'webhook', 'logger'])
  t.equal(config.notifiers[0]?.arguments['url'], SLACK_URL, 'the file holds the real value')
  t.equal(config.notifiers[1]?.arguments['group_id'], 12345)
  t.same(config.notifiers[2]?.events, ['stalled', 'finished'])

  const list = await r('list')
  t.equal(list.code, 0)
  t.match(list.stdout, /^NOTIFIER ID\s+TYPE\s+STATUS\s+EVENTS\s+LAST DELIVERY \/ LAST ERROR/)
  t.match(list.stdout, /webhook\s+enabled\s+stalled,finished/)
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
  const config = await readNotificationsConfig(repoPaths(root))
  t.same(config.notifiers.map((e) => [e.type, e.arguments['url'], e.arguments['message']]), [['slack', SLACK_URL, 'msg {run.hash}']])
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
