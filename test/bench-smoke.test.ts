// The benchmarks still run (the in-process scenarios; the daemon ones are in bench-smoke-daemon.test.ts).
import t from 'tap'
import { IN_PROCESS, WITH_DAEMONS, WITH_SESSIONS, listedScenarios, smokeScenarios } from './support/bench-smoke.js'

t.test('the two smoke files cover every scenario bench/main.ts lists', async (t) => {
  t.same([...(await listedScenarios())].sort(), [...IN_PROCESS, ...WITH_DAEMONS, ...WITH_SESSIONS].sort())
})

smokeScenarios(IN_PROCESS)
