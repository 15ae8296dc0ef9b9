/**
 * The check-ins of the `daemon-cost` scenario's Python runs: run `i` is `runHash(i)`, writing
 * `check_in` files that promise an hour (an idle run: nothing falls due while it is measured).
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { formatCheckinName } from '../../lib/aim/checkins.js'
import { runHash } from './report.js'

/** The name of run `run`'s check-in at `idx`. */
export const checkinFileName = (run: number, idx: number): string => formatCheckinName({ hash: runHash(run), idx, flag: 'check_in', time: 1_795_887_686.41, expectNextIn: 3600 })

/** A check-ins folder holding `runs` runs at idx 1. */
export function fillCheckins(folder: string, runs: number): void {
  mkdirSync(folder, { recursive: true })
  for (let run = 0; run < runs; run++) writeFileSync(join(folder, checkinFileName(run, 1)), '')
}
