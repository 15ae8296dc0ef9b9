/**
 * A training process for the `remote-runs` scenario: watches one run over a session with the
 * given server (`http://…` or `unix:/…/session.sock`), or in the given repo when the first
 * argument is `repo:PATH` (the poll-based path), reports progress every 100 ms promising the
 * next within 60 s, and prints `ready <hash>` once the run is watched. The scenario kills it.
 *
 *     node --import tsx bench/support/remote-child.ts SERVER|repo:PATH HASH [TOKEN]
 * @module
 */
import { watch } from '@aim/status'

const [where, hash, token] = process.argv.slice(2)
if (where === undefined || hash === undefined) throw new TypeError('usage: remote-child.ts SERVER|repo:PATH HASH [TOKEN]')
const run = where.startsWith('repo:') ? await watch({ repo: where.slice(5), hash, grace: 5 }) : await watch({ server: where, hash, grace: 5, ...(token !== undefined ? { token } : {}) })
run.reportProgress(60)
setInterval(() => run.reportProgress(60), 100)
console.log(`ready ${hash}`)
