// The deadline timer: arming rules and lateness on a ManualClock, long delays on a clock that
// caps its waits as the system clock does, the real system clock, and keeping a real child
// process alive (or not).
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { MAX_TIMER_DELAY_MS, ManualClock, systemClock, type TimerHandle, type TimerOptions } from '../lib/clock.js'
import { DeadlineTimer, type TimerFiring } from '../lib/timer.js'
import { startChild } from './support/child.js'

const KEEP_ALIVE = fileURLToPath(new URL('./fixtures/timer/keep-alive.mjs', import.meta.url))

/** A ManualClock that counts the waits armed on it and what they were asked for. */
class CountingClock extends ManualClock {
  armed = 0
  lastOptions: TimerOptions | undefined
  override setTimer(callback: () => void, delayMs: number, options?: TimerOptions): TimerHandle {
    this.armed++
    this.lastOptions = options
    return super.setTimer(callback, delayMs)
  }
}

/** A ManualClock that caps one wait as the system clock does (setTimeout's 32-bit limit). */
class CappedClock extends CountingClock {
  override setTimer(callback: () => void, delayMs: number, options?: TimerOptions): TimerHandle {
    return super.setTimer(callback, Math.min(delayMs, MAX_TIMER_DELAY_MS), options)
  }
}

function recorded<C extends ManualClock>(clock: C, options?: TimerOptions) {
  const firings: TimerFiring[] = []
  const timer = new DeadlineTimer(clock, (firing) => firings.push(firing), options)
  return { clock, timer, firings }
}

t.test('fires once at its time and is disarmed by firing', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  const start = clock.now()
  t.equal(timer.dueAt, null, 'disarmed at first')
  timer.arm(start + 1000)
  t.equal(timer.dueAt, start + 1000)
  clock.advance(999)
  t.same(firings, [], 'not before its time')
  clock.advance(5000)
  t.same(firings, [{ dueAt: start + 1000, firedAt: start + 1000, lateMs: 0 }], 'once, at its time, not late')
  t.equal(timer.dueAt, null)
  t.equal(clock.pendingTimers, 0)
})

t.test('re-arming replaces the time, earlier or later; one clock timer at a time', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  const start = clock.now()
  timer.arm(start + 1000)
  timer.arm(start + 500)
  t.equal(clock.pendingTimers, 1)
  clock.advance(500)
  t.same(
    firings.map((f) => f.dueAt),
    [start + 500],
    'the earlier time replaced the first',
  )
  clock.advance(2000)
  t.equal(firings.length, 1, 'the replaced time never fires')

  const later = clock.now()
  timer.arm(later + 500)
  timer.arm(later + 1000)
  t.equal(clock.pendingTimers, 1)
  clock.advance(600)
  t.equal(firings.length, 1, 'nothing at the replaced earlier time')
  clock.advance(400)
  t.same(
    firings.map((f) => f.dueAt),
    [start + 500, later + 1000],
  )
})

t.test('arming for the time it is armed for is a no-op', async (t) => {
  const { clock, timer, firings } = recorded(new CountingClock())
  const start = clock.now()
  timer.arm(start + 1000)
  clock.advance(300)
  timer.arm(start + 1000)
  timer.arm(start + 1000)
  t.equal(clock.armed, 1, 'no new clock timer')
  t.equal(clock.pendingTimers, 1)
  clock.jump(2000)
  clock.advance(0)
  t.same(firings, [{ dueAt: start + 1000, firedAt: start + 2300, lateMs: 1300 }], 'lateness still counts from the first arming')
})

t.test('disarm cancels; it can be armed again', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  const start = clock.now()
  timer.arm(start + 100)
  timer.disarm()
  t.equal(timer.dueAt, null)
  t.equal(clock.pendingTimers, 0)
  clock.advance(1000)
  t.same(firings, [])
  timer.disarm()
  timer.arm(start + 1500)
  clock.advance(500)
  t.same(
    firings.map((f) => f.dueAt),
    [start + 1500],
  )

  timer.arm(clock.now() + 100)
  timer.arm(Infinity)
  t.equal(timer.dueAt, null, 'Infinity disarms')
  t.equal(clock.pendingTimers, 0)
  t.throws(() => timer.arm(Number.NaN), RangeError)
  t.equal(timer.dueAt, null, 'NaN armed nothing')
})

t.test('close disarms for good; arm is then a no-op', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  timer.arm(clock.now() + 100)
  t.notOk(timer.closed)
  timer.close()
  t.ok(timer.closed)
  t.equal(clock.pendingTimers, 0)
  timer.arm(clock.now() + 100)
  t.equal(timer.dueAt, null)
  t.equal(clock.pendingTimers, 0)
  timer.close()
  clock.advance(1000)
  t.same(firings, [])
})

t.test('the callback may arm again from inside (a periodic timer), or close', async (t) => {
  const clock = new ManualClock()
  const start = clock.now()
  const seen: number[] = []
  const timer = new DeadlineTimer(clock, ({ dueAt }) => {
    seen.push(dueAt - start)
    if (seen.length < 3) timer.arm(dueAt + 100)
    else timer.close()
  })
  timer.arm(start + 100)
  clock.advance(1000)
  t.same(seen, [100, 200, 300])
  t.equal(clock.pendingTimers, 0)
})

t.test('a time already past fires at once, not counted late', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  const now = clock.now()
  timer.arm(now - 5000)
  t.same(firings, [], 'never inline: the owner finishes what it was doing first')
  clock.advance(0)
  t.same(firings, [{ dueAt: now - 5000, firedAt: now, lateMs: 0 }])
})

t.test('lateness is exact on a ManualClock: a frozen process fires late by its overdue time', async (t) => {
  const { clock, timer, firings } = recorded(new ManualClock())
  const start = clock.now()
  timer.arm(start + 1000)
  clock.advance(999)
  clock.jump(61_001) // frozen across the due time: nothing runs meanwhile
  t.same(firings, [], 'nothing fires while frozen')
  clock.advance(0)
  t.same(firings, [{ dueAt: start + 1000, firedAt: start + 62_000, lateMs: 61_000 }])

  // Armed for the past, then frozen: late by the freeze only.
  const at = clock.now()
  timer.arm(at - 10)
  clock.jump(250)
  clock.advance(0)
  t.same(firings[1], { dueAt: at - 10, firedAt: at + 250, lateMs: 250 })
})

t.test('delays past the 32-bit limit: waits again until the time comes', async (t) => {
  const { clock, timer, firings } = recorded(new CappedClock())
  const start = clock.now()
  const dueAt = start + 3 * MAX_TIMER_DELAY_MS + 5
  timer.arm(dueAt)
  clock.advance(MAX_TIMER_DELAY_MS)
  t.same(firings, [], 'the capped wait ended early: not fired')
  t.equal(timer.dueAt, dueAt, 'still armed for its time')
  t.equal(clock.pendingTimers, 1)
  clock.advanceTo(dueAt - 1)
  t.same(firings, [])
  clock.advance(1)
  t.same(firings, [{ dueAt, firedAt: dueAt, lateMs: 0 }])
  t.equal(clock.armed, 4, 'three capped waits and the rest')
  t.equal(clock.pendingTimers, 0)
})

t.test('keepsProcessAlive reaches the clock only when asked for', async (t) => {
  const kept = recorded(new CountingClock(), { keepsProcessAlive: true })
  kept.timer.arm(kept.clock.now() + 10)
  t.same(kept.clock.lastOptions, { keepsProcessAlive: true })
  const plain = recorded(new CountingClock())
  plain.timer.arm(plain.clock.now() + 10)
  t.notOk(plain.clock.lastOptions?.keepsProcessAlive, 'unref by default')
})

t.test('system clock: never fires early; a delay past 2^31 ms does not fire at once', async (t) => {
  const overflow: string[] = []
  const onWarning = (warning: Error) => overflow.push(warning.name)
  process.on('warning', onWarning)
  t.teardown(() => void process.off('warning', onWarning))

  let farFired = false
  const far = new DeadlineTimer(systemClock, () => (farFired = true))
  t.teardown(() => far.close())
  const farAt = systemClock.now() + 2 ** 31 + 10_000
  far.arm(farAt)

  // A real short wait; how long it takes on a loaded machine does not matter.
  const near = await new Promise<TimerFiring>((resolve) => new DeadlineTimer(systemClock, resolve, { keepsProcessAlive: true }).arm(systemClock.now() + 300))
  t.ok(near.firedAt >= near.dueAt, `fired no earlier than its time (late by ${near.lateMs.toFixed(2)} ms)`)
  t.ok(near.lateMs >= 0)
  t.notOk(farFired, 'the far timer has not fired')
  t.equal(far.dueAt, farAt, 'and is still armed for its time')
  t.same(
    overflow.filter((name) => name === 'TimeoutOverflowWarning'),
    [],
    'no setTimeout overflow',
  )
})

t.test("a real process: a ref'd timer keeps it alive until it fires, an unref'd one does not", async (t) => {
  const kept = startChild(KEEP_ALIVE, ['ref', '300'])
  t.teardown(() => void kept.process.kill('SIGKILL'))
  const fired = JSON.parse(await kept.waitForLine('"fired"')) as { early: boolean; lateMs: number }
  t.equal(fired.early, false, 'not before its time')
  t.same(await kept.exited, { code: 0, signal: null }, 'then the process ended by itself')

  // Ten minutes away: the process ends long before, with nothing else to wait for.
  const free = startChild(KEEP_ALIVE, ['unref', '600000'])
  t.teardown(() => void free.process.kill('SIGKILL'))
  t.same(await free.exited, { code: 0, signal: null }, "the unref'd timer let the process end")
  t.same(
    free.lines.map((l) => (JSON.parse(l) as { event: string }).event),
    ['armed'],
    'without firing',
  )

  const released = startChild(KEEP_ALIVE, ['ref', '600000', 'disarm'])
  t.teardown(() => void released.process.kill('SIGKILL'))
  t.same(await released.exited, { code: 0, signal: null }, "a disarmed ref'd timer holds nothing")
  t.same(
    released.lines.map((l) => (JSON.parse(l) as { event: string }).event),
    ['armed'],
  )
})
