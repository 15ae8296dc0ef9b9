// Type tests of the public entry: what a TypeScript user of `@aim/status` can and cannot write.
// The assertions are checked by the compiler (`npm run typecheck`, part of `npm test`); a wrong
// type is a compile error, not a test failure at run time. The few run-time checks below make
// sure the values the types describe exist.
import t from 'tap'
import { expectTypeOf } from 'expect-type'
import * as entry from '../lib/index.js'
import type { ErrorCode, FailureDetails, Run, RunEvent, RunInfo, RunStatus, WatchOptions, Watcher, WatcherEvents, DeliveryRecord, NotifierEntry } from '../lib/index.js'

t.test('watch() and the run handle', async (t) => {
  expectTypeOf(entry.watch).parameter(0).toEqualTypeOf<WatchOptions | undefined>()
  expectTypeOf(entry.watch).returns.resolves.toEqualTypeOf<Run>()
  expectTypeOf<Run['reportProgress']>().parameters.toEqualTypeOf<[expectNextIn?: number]>()
  expectTypeOf<Run['reportProgress']>().returns.toEqualTypeOf<void>()
  expectTypeOf<Run['reportSuccessfulFinish']>().returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf<Run['reportFailure']>().parameters.toEqualTypeOf<[reason?: string, details?: FailureDetails]>()
  expectTypeOf<FailureDetails['logTail']>().toEqualTypeOf<string | undefined>()
  expectTypeOf<Run['status']>().toEqualTypeOf<RunStatus>()
  expectTypeOf<Run['hash']>().toEqualTypeOf<string>()
  // Options are checked by name: a typo does not compile.
  // @ts-expect-error `hsah` is not an option
  const typo: WatchOptions = { hsah: 'x' }
  // @ts-expect-error grace is a number of seconds
  const wrong: WatchOptions = { grace: '30' }
  t.ok(typo && wrong, 'the objects exist; their types are what is tested')
})

t.test('events are typed', async (t) => {
  expectTypeOf<WatcherEvents['stalled']>().toEqualTypeOf<[event: RunEvent]>()
  expectTypeOf<WatcherEvents['notified']>().toEqualTypeOf<[record: DeliveryRecord]>()
  expectTypeOf<WatcherEvents['dropped']>().toEqualTypeOf<[record: DeliveryRecord]>()
  expectTypeOf<WatcherEvents['error']>().toEqualTypeOf<[error: Error]>()
  expectTypeOf<RunEvent['run']>().toEqualTypeOf<RunInfo>()
  expectTypeOf<RunEvent['key']>().toEqualTypeOf<string>()
  expectTypeOf<RunStatus>().toEqualTypeOf<'running' | 'stalled' | 'finished' | 'failed'>()
  expectTypeOf<Watcher['close']>().returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf<Watcher['destroy']>().returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf<Watcher['addNotifier']>().returns.resolves.toEqualTypeOf<NotifierEntry>()
  t.pass()
})

t.test('errors carry their stable code', async (t) => {
  expectTypeOf<entry.AimStatusError['code']>().toEqualTypeOf<ErrorCode>()
  expectTypeOf<ErrorCode>().toMatchTypeOf<`AIM_STATUS_${string}`>()
  expectTypeOf(entry.ErrorCodes.INVALID_OPTION).toEqualTypeOf<'AIM_STATUS_INVALID_OPTION'>()
  const error = new entry.InvalidOptionError('bad')
  expectTypeOf(error).toMatchTypeOf<TypeError>()
  t.ok(error instanceof TypeError, 'an invalid option is a TypeError')
  t.equal(error.code, 'AIM_STATUS_INVALID_OPTION')
  t.ok(
    Object.values(entry.ErrorCodes).every((code) => code.startsWith('AIM_STATUS_')),
    'every code has the prefix',
  )
})

t.test('event keys round-trip', async (t) => {
  expectTypeOf(entry.parseEventKey).returns.toEqualTypeOf<entry.EventKeyParts | null>()
  const key = entry.eventKey({ source: 'node', hash: 'abc', startedAt: 1, kind: 'stalled', episode: 2 })
  t.same(entry.parseEventKey(key), { source: 'node', hash: 'abc', startedAt: 1, kind: 'stalled', episode: 2 })
})
