// The demo: a training loop that promises a report every 0.5 s, then stalls on purpose. With
// no notifier configured, the watcher's logger prints Aim's message about 1.5 s later; the
// loop then recovers and finishes.
//
//   npm run demo
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { watch } from '@aim/status'

const repo = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'aim-status-demo-'))
const run = await watch({ repo, name: 'demo', grace: 1 })
console.log(`watching run ${run.hash} in ${repo} (promise 0.5 s, grace 1 s)`)
run.on('stalled', (event) => console.log(`[event] stalled, ${event.overdueSeconds?.toFixed(2)} s past its deadline`))
run.on('recovered', () => console.log('[event] recovered'))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
for (let step = 1; step <= 10; step++) {
  await sleep(100) // a training step
  run.reportProgress(0.5)
}
console.log('step 10: now stalling for 3 s on purpose...')
await sleep(3000)
for (let step = 11; step <= 15; step++) {
  await sleep(100)
  run.reportProgress(0.5)
}
await run.reportSuccessfulFinish()
console.log('finished')
