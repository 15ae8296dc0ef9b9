// `aim-watcher run` and what the command itself reports: a --progress pattern against a
// tqdm-style bar, a Node watch() joining the wrapper's run, Python Aim check-ins of its hash.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startEndpoint } from './support/fake-endpoints.js'
import { makeRepo } from './fixtures/daemon/helpers.js'
import { FIXTURES, slackTexts, slackWithTail, startWrapper } from './support/wrapper.js'

t.test('--progress counts only matching lines: a tqdm bar redrawn with \\r keeps the run alive, chatter does not', async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, ['stalled', 'recovered', 'failed'])
  const wrapper = startWrapper(root, ['--hash', 'bar', '--expect', '2', '--grace', '1', '--progress', '\\d+/\\d+ \\['], ['python3', join(FIXTURES, 'tqdm-bar.py')])
  t.teardown(() => void wrapper.process.kill('SIGKILL'))
  await wrapper.waitForOutput('bar stopped')
  t.same(slack.requests, [], 'four seconds of bar redraws (twice the promise and grace): no stall')
  const stoppedAt = Date.now()
  await slack.waitForRequests(1)
  t.ok((slack.requests[0]?.receivedAt ?? 0) >= stoppedAt, 'the stall came once the bar had stopped, although lines went on')
  t.same(await wrapper.exited, { code: 0, signal: null })
  t.same(
    slackTexts(slack.requests).map((m) => m.event),
    ['stalled'],
    'once; the exit 0 is no alarm',
  )
  t.match(wrapper.stderr().toString(), /\r {3}2%\|#{5} {5}\| 20\/1000 \[00:02<00:10, 5\.00it\/s\]\n$/, 'the bar passed through as drawn')
})

t.test("a wrapped Node script's watch() joins the wrapper's run", async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, ['started', 'stalled', 'recovered', 'failed'])
  // Lines never count here: every promise is the script's own reportProgress(1).
  const wrapper = startWrapper(root, ['--hash', 'joined', '--expect', '600', '--grace', '1', '--progress', '^no line matches this$'], [process.execPath, join(FIXTURES, 'join-watch.mjs')])
  t.teardown(() => void wrapper.process.kill('SIGKILL'))
  t.same(await wrapper.exited, { code: 1, signal: null })
  const out = wrapper.stdout().toString()
  t.match(out, /joined joined same/, "the script's handle is the wrapper's run")
  t.match(out, /saw stalled,recovered/, "the run's events reach the joined handle")
  t.match(out, /reported/)
  const texts = slackTexts(slack.requests)
  t.same(
    texts.map((m) => m.event),
    ['started', 'stalled', 'recovered', 'failed'],
    'one run, each event once; the exit 1 after the failure adds nothing',
  )
  t.ok(
    texts.every((m) => m.text.split(' ')[1] === 'joined'),
    'no second run',
  )
  t.match(texts[3]?.text, /^failed joined diverged: loss is NaN/, "the script's reason")
})

t.test("Python Aim check-ins of the run's hash count as its progress", async (t) => {
  const root = makeRepo(t.testdir())
  const slack = await startEndpoint()
  t.teardown(() => slack.close())
  await slackWithTail(root, slack.base, ['stalled', 'recovered', 'failed'])
  const wrapper = startWrapper(root, ['--hash', 'pyaim', '--expect', '2', '--grace', '1', '--progress', '^no line matches this$'], ['python3', join(FIXTURES, 'aim-checkins.py')])
  t.teardown(() => void wrapper.process.kill('SIGKILL'))
  await wrapper.waitForOutput('check-ins stopped')
  t.same(slack.requests, [], 'four and a half seconds of check-ins (past the promise and grace): no stall')
  const stoppedAt = Date.now()
  await slack.waitForRequests(1)
  t.ok((slack.requests[0]?.receivedAt ?? 0) >= stoppedAt, 'the stall came once the check-ins had stopped')
  t.same(await wrapper.exited, { code: 0, signal: null })
  t.same(
    slackTexts(slack.requests).map((m) => m.event),
    ['stalled'],
  )
  t.ok(
    readdirSync(join(root, '.aim', 'check_ins')).every((name) => name.startsWith('pyaim-')),
    "the wrapper wrote no check-ins of its own: every one is the command's",
  )
})
