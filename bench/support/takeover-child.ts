/**
 * A training process for the `takeover` scenario: watches one run in the given repo, reports
 * progress every 100 ms promising the next within 60 s, and prints `ready <hash>` once its
 * watcher has the run. The scenario then kills or freezes it.
 *
 *     node --import tsx bench/support/takeover-child.ts REPO HASH
 * @module
 */
import { watch } from '@aim/status'

const [repo, hash] = process.argv.slice(2)
if (repo === undefined || hash === undefined) throw new TypeError('usage: takeover-child.ts REPO HASH')
const run = await watch({ repo, hash, grace: 5 })
run.reportProgress(60)
setInterval(() => run.reportProgress(60), 100)
console.log(`ready ${hash}`)
