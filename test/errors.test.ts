import { MessageChannel } from 'node:worker_threads'
import { once } from 'node:events'
import t from 'tap'
import * as errors from '../lib/errors.js'
import { AimStatusError, CorruptFileError, ERROR_CLASSES, ErrorCodes, createError, fromPlainError, toPlainError, type PlainError } from '../lib/errors.js'

/** Sends a plain error through a real port, as a thread does (structured clone). */
async function acrossAPort(plain: PlainError): Promise<PlainError> {
  const { port1, port2 } = new MessageChannel()
  try {
    const received = once(port2, 'message')
    port1.postMessage(plain)
    return (await received)[0] as PlainError
  } finally {
    port1.close()
    port2.close()
  }
}

t.test('every code has a class, and every error class of the module is in the table', async (t) => {
  t.same(Object.keys(ERROR_CLASSES).sort(), Object.values(ErrorCodes).sort())
  const exported: unknown[] = Object.values(errors)
  const classes = exported.filter((value): value is typeof Error => typeof value === 'function' && value.prototype instanceof Error)
  t.ok(classes.length >= 5, 'the module exports its classes')
  const inTable: unknown[] = Object.values(ERROR_CLASSES)
  for (const Class of classes) t.ok(inTable.includes(Class), `${Class.name} is in the table`)
})

t.test('every code crosses a thread as its class, with its code, name, message and stack', async (t) => {
  for (const code of Object.values(ErrorCodes)) {
    const original = createError(code, `something about ${code}`)
    t.ok(original instanceof ERROR_CLASSES[code], `${code} is made as ${ERROR_CLASSES[code].name}`)
    t.equal(original.code, code)
    const back = fromPlainError(await acrossAPort(toPlainError(original))) as Error & { code?: string }
    t.ok(back instanceof ERROR_CLASSES[code], `${code} comes back as ${ERROR_CLASSES[code].name}`)
    t.equal(back.constructor, original.constructor, `${code}: the same class`)
    t.match(back, { code, name: original.name, message: original.message, stack: original.stack }, code)
  }
})

t.test('an error thrown from its own class comes back as that class', async (t) => {
  const cases: Array<[Error & { code: string }, abstract new (...args: never[]) => Error]> = [
    [new errors.InvalidOptionError('bad option'), errors.InvalidOptionError],
    [new errors.OutOfRangeError('too big'), errors.OutOfRangeError],
    [new errors.InvalidIdError('bad id'), errors.InvalidIdError],
    [new AimStatusError(ErrorCodes.LEASE_LOST, 'lost'), AimStatusError],
  ]
  for (const [original, Class] of cases) {
    const back = fromPlainError(await acrossAPort(toPlainError(original)))
    t.ok(back instanceof Class, original.name)
    t.match(back, { code: original.code, name: original.name, message: original.message })
  }
})

t.test('a CorruptFileError keeps where the file went', async (t) => {
  const original = new CorruptFileError('x.json is not a valid state file', { path: '/r/x.json', setAsidePath: '/r/x.json.corrupt-1' })
  const plain = await acrossAPort(toPlainError(original))
  t.same(plain.details, { path: '/r/x.json', setAsidePath: '/r/x.json.corrupt-1' })
  const back = fromPlainError(plain)
  t.ok(back instanceof CorruptFileError && back instanceof AimStatusError)
  t.match(back, { code: ErrorCodes.CORRUPT_FILE, name: 'CorruptFileError', path: '/r/x.json', setAsidePath: '/r/x.json.corrupt-1' })
  const bare = fromPlainError(toPlainError(new AimStatusError(ErrorCodes.CORRUPT_FILE, 'Invalid outbox state')))
  t.ok(bare instanceof CorruptFileError, 'the code decides the class')
  t.equal((bare as CorruptFileError).path, undefined, 'no path when none was known')
})

t.test('codes outside the table', async (t) => {
  const newer = fromPlainError({ name: 'AimStatusError', code: 'AIM_STATUS_FROM_A_NEWER_VERSION', message: 'm' })
  t.ok(newer instanceof AimStatusError)
  t.equal((newer as AimStatusError).code, 'AIM_STATUS_FROM_A_NEWER_VERSION')
  const foreign = fromPlainError(toPlainError(Object.assign(new Error('no such file'), { code: 'ENOENT', errno: -2 })))
  t.notOk(foreign instanceof AimStatusError)
  t.match(foreign, { code: 'ENOENT', errno: -2, message: 'no such file' })
  t.same(toPlainError('a string'), { name: 'Error', message: 'a string' })
  t.notOk(Object.hasOwn(ERROR_CLASSES, 'toString'), 'only own keys are codes')
  t.notOk(fromPlainError({ name: 'Error', code: 'toString', message: 'm' }) instanceof AimStatusError)
})
