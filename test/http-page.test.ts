// The status page in a real headless browser (Debian's chromium, driven by playwright-core; no
// browser download): it loads, shows a run stalling live without a reload, mutes it from the
// page, and saves a screenshot (in the test's folder; with UPDATE_SCREENSHOT=1 also as
// docs/status-page.png, the one the README shows).
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { chromium } from 'playwright-core'
import WebSocket from 'ws'
import { SESSION_PATH } from '../lib/session/protocol.js'
import { startChild } from './support/child.js'
import { startEndpoint, slackReply } from './support/fake-endpoints.js'
import { call, startFaceDaemon } from './support/http-face.js'
import { makeRepo, useSlack } from './fixtures/daemon/helpers.js'
import { tempRepo } from './support/temp-repo.js'

const RUNS = fileURLToPath(new URL('./fixtures/http/runs.mjs', import.meta.url))
const SCREENSHOT = fileURLToPath(new URL('../docs/status-page.png', import.meta.url))
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
// Without the background-networking flags chromium reaches out to Google's hosts; the test talks to 127.0.0.1 only.
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const RESNET = 'a1b2c3d4e5f6a7b8c9d0e1f2'

t.test('the page: a stall appears live, is muted from the page, and the screenshot is saved', async (t) => {
  // A short folder name: the page shows the repo's path.
  const dir = tempRepo(t, 'aim-').repo
  const slack = await startEndpoint(() => slackReply())
  t.teardown(() => slack.close())
  const root = makeRepo(join(dir, 'runs'))
  await useSlack(root, slack.base)
  const { daemon, url } = await startFaceDaemon(t, [root])
  await daemon.waitEvent((l) => l.event === 'active')
  const trainer = startChild(RUNS, [root, 'page'])
  t.teardown(() => void trainer.process.kill('SIGKILL'))
  await trainer.waitForLine('READY')

  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 560 } })
  t.teardown(() => context.close())
  const page = context.pages()[0] ?? (await context.newPage())
  const outside: string[] = []
  page.on('request', (request) => {
    if (!request.url().startsWith(url) && !request.url().startsWith('data:')) outside.push(request.url())
  })
  await page.goto(url)
  const row = page.locator(`tr[data-hash="${RESNET}"]`)
  await row.and(page.locator('[data-status="running"]')).waitFor({ timeout: 20_000 })
  t.equal(await page.locator('#live').textContent(), 'live')
  t.equal(await page.locator('#runs thead th').count(), 10, 'a real table with column headers')
  t.match(await row.locator('th[scope="row"]').textContent(), /resnet50-lr3e-4/)
  // A mark that a reload would wipe out.
  await page.evaluate(() => Object.assign(globalThis, { stillTheSamePage: true }))

  trainer.process.kill('SIGUSR2')
  await row.and(page.locator('[data-status="stalled"]')).waitFor({ timeout: 20_000 })
  t.equal(await page.evaluate(() => (globalThis as { stillTheSamePage?: boolean }).stillTheSamePage), true, 'updated live, without a reload')
  t.match(await row.locator('td').first().textContent(), /▲ stalled/, 'the status in words, not only in colour')
  t.match(await row.locator('ol.timeline').getAttribute('aria-label'), /Timeline of resnet50-lr3e-4/)
  t.ok((await row.locator('ol.timeline li.k-stalled').count()) >= 1, 'the stall is on the timeline')

  await row.getByRole('combobox', { name: 'Mute resnet50-lr3e-4 for' }).selectOption('healthy')
  await row.getByRole('button', { name: 'Mute resnet50-lr3e-4' }).click()
  await row.getByText('muted until healthy').waitFor({ timeout: 20_000 })
  t.match((await call(`${url}/api/v1/mutes`)).body.mutes, [{ hash: RESNET, untilHealthy: true }], "the page's mute is in the repo")
  await row.getByRole('button', { name: 'Unmute resnet50-lr3e-4' }).waitFor()
  t.equal(await page.locator('#message').textContent(), '', 'no error shown')
  t.equal(await page.locator('#token-form').isVisible(), false, 'no token asked for without a token file')
  // The training process sent its own stall notification; its delivery reaches the page too.
  await page.locator('#notifiers tbody td', { hasText: '1 / 0' }).waitFor({ timeout: 20_000 })
  t.match(await page.locator('#notifiers tbody').textContent(), /slack/)

  const shot = await page.screenshot({ path: join(dir, 'status-page.png'), fullPage: true })
  t.ok(shot.length > 10_000, `a screenshot of ${shot.length} bytes`)
  if (process.env['UPDATE_SCREENSHOT'] === '1') {
    mkdirSync(join(SCREENSHOT, '..'), { recursive: true })
    writeFileSync(SCREENSHOT, shot)
  }
  t.same(outside, [], 'the page asked nothing of any other host')
  trainer.process.kill('SIGKILL')
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})

t.test('the page: a run of many ranks reported over sessions is one row with its ranks beneath', async (t) => {
  const dir = tempRepo(t, 'aim-').repo
  const root = makeRepo(join(dir, 'runs'))
  const { daemon, url } = await startFaceDaemon(t, [root])
  await daemon.waitEvent((l) => l.event === 'active')
  const hash = 'ranked_page_run'
  // Four ranks, each its own session, as four processes on two hosts would open them.
  const sessions = await Promise.all(
    [0, 1, 2, 3].map(async (rank) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${SESSION_PATH}`)
      await once(ws, 'open')
      ws.send(JSON.stringify({ t: 'hello', v: 1, client: { id: `page-rank-${rank}-client`, host: `gpu-${rank < 2 ? 1 : 2}`, pid: 1000 + rank } }))
      ws.send(JSON.stringify({ t: 'open', seq: 0, hash, rank, worldSize: 4, grace: 60, at: Date.now(), name: 'ddp-resnet' }))
      ws.send(JSON.stringify({ t: 'progress', seq: 1, hash, rank, at: Date.now(), expectNextIn: 600 }))
      return ws
    }),
  )
  t.teardown(() => {
    for (const ws of sessions) ws.terminate()
  })
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 560 } })
  t.teardown(() => context.close())
  const page = context.pages()[0] ?? (await context.newPage())
  await page.goto(url)
  const row = page.locator(`tr[data-hash="${hash}"]:not(.rank-row)`)
  await row.waitFor({ timeout: 20_000 })
  await page.locator(`tr.rank-row[data-hash="${hash}"]`).nth(3).waitFor({ timeout: 20_000 })
  t.equal(await row.count(), 1, 'one row for the run')
  t.match(await row.locator('td').nth(2).textContent(), /4 of 4 ranks/)
  const ranks = page.locator(`tr.rank-row[data-hash="${hash}"]`)
  t.equal(await ranks.count(), 4, 'a row per rank beneath it')
  t.match(await ranks.nth(2).textContent(), /rank 2.*process 1002 on gpu-2 \(session open\)/)
  for (const ws of sessions) ws.send(JSON.stringify({ t: 'bye' }))
  daemon.process.kill('SIGTERM')
  t.equal((await daemon.exited).code, 0)
})
