// `aim-watcher run -- CMD` with real processes: Python scripts that hang, crash, end well or
// handle SIGTERM, a wrapper killed outright, and a loopback Slack counting the notifications.
import t from 'tap'
import { join } from 'node:path'
import { startEndpoint } from './support/fake-endpoints.js'
import { makeRepo, sleep, startDaemon } from './fixtures/daemon/helpers.js'
import { FIXTURES, alive, runDirectly, slackTexts, slackWithTail, startWrapper } from './support/wrapper.js'
import { eventually } from './support/eventually.js'

const ALL = ['started', 'stalled', 'recovered', 'finished', 'failed'] as const

t.test('a command that prints steps then hangs is reported stalled once', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, ['stalled', 'recovered', 'failed'])
  const wrapper = startWrapper(root, ['--hash', 'hangs', '--expect', '1', '--grace', '1'], ['python3', join(FIXTURES, 'steps-then-hang.py')])
  t.teardown(() => void wrapper.process.kill('SIGKILL'))
  await wrapper.waitForOutput('hanging')
  await slack.waitForRequests(1)
  // Well past a second stall's time, had there been one: one episode, one message.
  await sleep(3000)
  t.same(
    slackTexts(slack.requests).map((m) => m.event),
    ['stalled'],
  )
  wrapper.process.kill('SIGTERM')
  const exit = await wrapper.exited
  t.equal(exit.signal, 'SIGTERM', 'the wrapper dies of the signal that killed the command')
  const texts = slackTexts(slack.requests)
  t.same(
    texts.map((m) => m.event),
    ['stalled', 'failed'],
  )
  t.match(texts[1]?.text, /^failed hangs killed by SIGTERM/)
})

t.test('a CUDA out-of-memory crash: failed once with reason and tail, exit 3, output byte for byte', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, [...ALL])
  const token = 'hf_abcdefghijklmnopqrstuvwxyz0123456789'
  const command = ['python3', join(FIXTURES, 'cuda-oom.py')]
  const wrapper = startWrapper(root, ['--hash', 'oom', '--tail', '5'], command, { HF_TOKEN: token })
  const exit = await wrapper.exited
  t.same(exit, { code: 3, signal: null })
  const direct = runDirectly(command, { HF_TOKEN: token })
  t.equal(direct.status, 3)
  t.ok(wrapper.stdout().equals(direct.stdout), 'stdout passed through byte for byte (a trailing \\r included)')
  t.ok(wrapper.stderr().equals(direct.stderr), 'stderr passed through byte for byte (escapes and the token included)')
  const texts = slackTexts(slack.requests)
  t.same(
    texts.map((m) => m.event),
    ['started', 'failed'],
    'failed once, after its start',
  )
  const failed = texts[1]?.text ?? ''
  t.match(failed, /^failed oom exited with code 3\n/)
  t.match(failed, /torch\.cuda\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 2\.00 GiB/)
  t.equal(failed.split('\n').length, 1 + 5, 'the last 5 lines of stderr')
  t.notMatch(failed, /Traceback/, 'lines before the tail are left out')
  const all = slack.requests.map((r) => r.body).join('\n')
  t.notOk(all.includes(token), 'the token never leaves in a message')
  t.notMatch(all, /\\u001b/, 'colour escapes are dropped from the tail')
})

t.test('a command that exits 0: finished, nothing alarming', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  // The default events: the ones somebody must act on.
  await slackWithTail(root, slack.base, ['stalled', 'recovered', 'failed'])
  const wrapper = startWrapper(root, ['--hash', 'fine', '--expect', '5'], ['python3', join(FIXTURES, 'exits-zero.py')])
  t.same(await wrapper.exited, { code: 0, signal: null })
  t.equal(wrapper.stdout().toString(), 'step 1\nstep 2\nstep 3\nstep 4\nstep 5\ndone\n')
  t.same(slack.requests, [], 'no notification')
  // A notifier that listens for finishes hears one.
  const listening = makeRepo(t.testdir())
  await slackWithTail(listening, slack.base, ['finished', 'failed'])
  const again = startWrapper(listening, ['--hash', 'fine2'], ['python3', join(FIXTURES, 'exits-zero.py')])
  t.same(await again.exited, { code: 0, signal: null })
  t.same(
    slackTexts(slack.requests).map((m) => m.event),
    ['finished'],
  )
})

t.test("SIGTERM to the wrapper reaches the script's handler; reported once", async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, [...ALL])
  const wrapper = startWrapper(root, ['--hash', 'polite'], ['python3', join(FIXTURES, 'sigterm-handler.py')])
  t.teardown(() => void wrapper.process.kill('SIGKILL'))
  await wrapper.waitForOutput('ready')
  wrapper.process.kill('SIGTERM')
  t.same(await wrapper.exited, { code: 143, signal: null }, 'the wrapper waited, then exited as the script did')
  t.match(wrapper.stdout().toString(), /caught SIGTERM, checkpoint saved/)
  const texts = slackTexts(slack.requests)
  t.same(
    texts.map((m) => m.event),
    ['started', 'failed'],
  )
  t.match(texts[1]?.text, /^failed polite exited with code 143/)
})

t.test('SIGKILL to the wrapper: the script is ended and the daemon reports the run failed', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, ['stalled', 'failed'])
  const daemon = startDaemon([root])
  t.teardown(async () => {
    daemon.process.kill('SIGTERM')
    await daemon.exited
  })
  await daemon.waitEvent((l) => l.event === 'active')
  const wrapper = startWrapper(root, ['--hash', 'killed', '--expect', '600'], ['python3', join(FIXTURES, 'steps-then-hang.py')])
  await wrapper.waitForOutput('hanging')
  const pid = Number(/pid (\d+)/.exec(wrapper.stdout().toString())?.[1])
  t.ok(alive(pid), 'the script runs')
  wrapper.process.kill('SIGKILL')
  t.equal((await wrapper.exited).signal, 'SIGKILL')
  await eventually(() => !alive(pid), 'the script ended by the watchdog after the wrapper was killed')
  t.notOk(alive(pid), 'the script was ended by the watchdog')
  await slack.waitForRequests(1)
  const texts = slackTexts(slack.requests)
  t.same(
    texts.map((m) => m.event),
    ['failed'],
  )
  t.match(texts[0]?.text, /^failed killed process gone: pid \d+/)
})
