import t from 'tap'
import { compileTemplate } from '../lib/notify/template.js'
import type { RunEvent } from '../lib/model.js'
import { AIM_DEFAULT_MESSAGE } from '../lib/notify/contract.js'

const event: RunEvent = {
  kind: 'stalled',
  key: 'abc/stalled/1',
  at: 0,
  run: { hash: 'abc', status: 'stalled', startedAt: 0, lastProgressAt: 0, expectNextIn: 3, deadlineAt: 3000, grace: 1, episode: 1 },
  repo: '/r',
  host: 'h',
  pid: 1,
  overdueSeconds: 1.04,
}

t.test('Aim default and escapes', async (t) => {
  t.equal(compileTemplate(AIM_DEFAULT_MESSAGE).render(event), "❗️ Something wrong with Run 'abc'. Please check. ❗️")
  t.equal(compileTemplate('{{run.hash}} = {run.hash} }}').render(event), '{run.hash} = abc }')
  t.equal(compileTemplate('{run.overdue}s over').render(event), '1.0s over')
})

t.test('unknown variable and stray braces are rejected', async (t) => {
  t.throws(() => compileTemplate('{run.nope}'), { code: 'AIM_STATUS_INVALID_TEMPLATE', message: /unknown variable \{run\.nope\}/ })
  t.throws(() => compileTemplate('a } b'), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
  t.throws(() => compileTemplate('a { b'), { code: 'AIM_STATUS_INVALID_TEMPLATE' })
})

t.test('rank and origin variables', async (t) => {
  const ranked: RunEvent = {
    ...event,
    run: {
      ...event.run,
      worldSize: 8,
      ranks: [
        { rank: 0, host: 'host-a', pid: 1, status: 'stalled', lastProgressAt: 0, expectNextIn: 3, deadlineAt: 5000, session: 'open' },
        { rank: 1, host: 'host-c', pid: 2, status: 'running', lastProgressAt: 0, expectNextIn: 3, deadlineAt: 1000, session: 'open' },
        { rank: 2, host: 'host-b', pid: 3, status: 'stalled', lastProgressAt: 0, expectNextIn: 3, deadlineAt: 3000, session: 'lost' },
        { rank: 3, host: 'host-d', pid: 4, status: 'stalled', lastProgressAt: 0, expectNextIn: 3, deadlineAt: 5000, session: 'open' },
      ],
    },
  }
  const render = (source: string, e: RunEvent) => compileTemplate(source).render(e)
  t.equal(render('{run.silent_ranks}', ranked), '2 (host-b), 0 (host-a), 3 (host-d)', 'first silent first; ties by rank; running ranks left out')
  t.equal(render('{run.world_size}', ranked), '8')
  t.equal(render('[{run.silent_ranks}|{run.world_size}|{run.host}]', event), '[||]', 'empty for a run without ranks or origin')
  const remote: RunEvent = { ...event, run: { ...event.run, origin: { host: 'laptop', pid: 9, via: 'unix', session: 'open' } } }
  t.equal(render('{run.host}', remote), 'laptop')
})
