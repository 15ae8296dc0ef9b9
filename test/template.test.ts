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
