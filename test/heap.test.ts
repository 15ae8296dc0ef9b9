import t from 'tap'
import { IndexedMinHeap } from '../lib/actor/heap.js'

t.test('push, update, delete, pop in priority order', async (t) => {
  const heap = new IndexedMinHeap<string>()
  t.equal(heap.pop(), undefined)
  heap.set('a', 5)
  heap.set('b', 3)
  heap.set('c', 8)
  t.equal(heap.peekKey(), 'b')
  heap.set('c', 1)
  t.equal(heap.peekKey(), 'c')
  t.equal(heap.priorityOf('c'), 1)
  heap.set('c', 10)
  t.equal(heap.peekKey(), 'b')
  t.ok(heap.delete('b'))
  t.notOk(heap.delete('b'))
  t.equal(heap.size, 2)
  t.same([heap.pop(), heap.pop(), heap.pop()], ['a', 'c', undefined])
  heap.set('x', 1)
  heap.clear()
  t.equal(heap.size, 0)
  t.notOk(heap.has('x'))
})

t.test('randomized against a simple model', async (t) => {
  // A seeded generator, so a failure can be replayed.
  let seed = 12345
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const heap = new IndexedMinHeap<number>()
  const model = new Map<number, number>()
  const mismatches: string[] = []
  for (let step = 0; step < 20_000; step++) {
    const key = Math.floor(random() * 300)
    const op = random()
    if (op < 0.55) {
      const priority = Math.floor(random() * 1000)
      heap.set(key, priority)
      model.set(key, priority)
    } else if (op < 0.8) {
      if (heap.delete(key) !== model.delete(key)) mismatches.push(`delete ${key} at step ${step}`)
    } else {
      const popped = heap.pop()
      if (model.size === 0) {
        if (popped !== undefined) mismatches.push(`pop from empty gave ${popped} at step ${step}`)
      } else {
        const min = Math.min(...model.values())
        if (model.get(popped as number) !== min) mismatches.push(`pop gave a non-minimum at step ${step}`)
        model.delete(popped as number)
      }
    }
    if (step % 97 === 0) heap.assertInvariants()
    if (heap.size !== model.size) mismatches.push(`size ${heap.size} != ${model.size} at step ${step}`)
  }
  t.same(mismatches, [], 'the heap agrees with the model at every step')
  heap.assertInvariants()
  t.equal(heap.size, model.size)
})
