/**
 * A Python-Aim-like writer for the `daemon-cost` scenario: renews PER_SECOND runs' check-ins
 * each second, round robin over runs 0 to RUNS - 1 of a folder the scenario filled (run `i` is
 * `runHash(i)` at idx 1, `check_in`, promising 3600 s). A renewal is what Aim's writer and
 * lib/aim/checkin-writer.ts do: the next idx's file created, then the older one removed.
 * Spread over the second in tenths. Prints `ready` once started.
 *
 *     node --import tsx bench/support/checkin-renewer.ts FOLDER RUNS PER_SECOND
 * @module
 */
import { unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkinFileName } from './checkin-names.js'

const [folder, runsText, perSecondText] = process.argv.slice(2)
const runs = Number(runsText)
const perSecond = Number(perSecondText)
if (folder === undefined || !Number.isInteger(runs) || runs < 1 || !Number.isInteger(perSecond) || perSecond < 1) throw new TypeError('usage: checkin-renewer.ts FOLDER RUNS PER_SECOND')

const idx = new Array<number>(runs).fill(1)
let next = 0
const perTick = Math.max(1, Math.round(perSecond / 10))
setInterval(() => {
  for (let k = 0; k < perTick; k++) {
    const run = next++ % runs
    const old = idx[run] as number
    writeFileSync(join(folder, checkinFileName(run, old + 1)), '', { flag: 'wx' })
    unlinkSync(join(folder, checkinFileName(run, old)))
    idx[run] = old + 1
  }
}, 100)
console.log('ready')
