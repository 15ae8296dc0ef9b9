/**
 * `late-endpoints`: copies per event when an endpoint answers late. Each case is an outbox on
 * the injected clock and a notifier whose answer time is scripted (it answers `answerAfterMs`
 * after each request, whether or not the sender is still waiting: a late answer to an attempt
 * that timed out is still a copy delivered). Time moves on the manual clock, so 10 minutes of
 * retries take milliseconds. Baseline: the previous rule (the same 10 s timeout on every
 * attempt, the plain backoff), run the same way.
 * @module
 */
import { ManualClock } from '../../lib/clock.js'
import type { DeliveryOutcome, Notifier } from '../../lib/notify/contract.js'
import { DeliveryEngine } from '../../lib/notify/delivery.js'
import type { DeliveryRecord } from '../../lib/notify/delivery-record.js'
import type { RunEvent } from '../../lib/model.js'
import { type Scenario, goal, printTable } from '../support/report.js'

const EVENT: RunEvent = {
  kind: 'stalled',
  key: 'bench@1700000000000/stalled/1',
  at: 0,
  run: { hash: 'bench', status: 'stalled', startedAt: 0, lastProgressAt: 0, expectNextIn: 60, deadlineAt: 60_000, grace: 10, episode: 1 },
  repo: '/bench',
  host: 'bench',
  pid: 1,
}

/** Copies one event costs before its first answer is in, for an endpoint answering after `answerAfterMs`. */
async function copiesFor(answerAfterMs: number, timeoutsMs: readonly number[] | undefined): Promise<{ copies: number; deliveredAfterS: number }> {
  const clock = new ManualClock(0)
  let copies = 0
  let delivered: number | null = null
  const notifier: Notifier = {
    entry: { id: 'late', type: 'scripted', status: 'enabled', arguments: {} },
    render: () => 'text',
    send: (_event, _text, signal) => {
      copies++
      return new Promise<DeliveryOutcome>((resolve) => {
        const timer = clock.setTimer(() => resolve({ kind: 'delivered' }), answerAfterMs)
        signal.addEventListener('abort', () => clock.clearTimer(timer), { once: true })
      })
    },
  }
  const engine = new DeliveryEngine({
    clock,
    notifiers: () => [notifier],
    commit: async () => {},
    random: () => 0.5,
    ...(timeoutsMs !== undefined ? { timeoutsMs } : {}),
    onOutcome: (record: DeliveryRecord) => {
      if (record.kind === 'notified') delivered = clock.now()
    },
  })
  await engine.accept(EVENT)
  const end = 15 * 60_000
  while (delivered === null && clock.now() < end) {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    clock.advance(100)
  }
  await engine.close()
  return { copies, deliveredAfterS: delivered === null ? Number.NaN : delivered / 1000 }
}

export const lateEndpoints: Scenario = {
  name: 'late-endpoints',
  description: 'copies per event for endpoints answering after 5, 12 and 30 s (injected clock, scripted answer times); baseline: one fixed 10 s timeout',
  async run() {
    const rows = []
    const copies: Record<number, number> = {}
    for (const seconds of [5, 12, 30]) {
      const now = await copiesFor(seconds * 1000, undefined)
      const before = await copiesFor(seconds * 1000, [10_000])
      copies[seconds] = now.copies
      const shown = (s: number): string => (Number.isNaN(s) ? 'never (budget spent)' : `${s.toFixed(1)} s`)
      rows.push([`${seconds} s`, now.copies, shown(now.deliveredAfterS), before.copies, shown(before.deliveredAfterS)])
    }
    printTable('late-endpoints: copies per event', ['answers after', 'copies', 'first answer in', 'baseline copies', 'baseline answer in'], rows)
    goal('an endpoint answering after 12 s gets at most 2 copies', (copies[12] ?? Infinity) <= 2, `${copies[12]}`)
    goal('after 5 s: 1 copy; after 30 s: at most 3', copies[5] === 1 && (copies[30] ?? Infinity) <= 3, `${copies[5]} and ${copies[30]}`)
  },
}
