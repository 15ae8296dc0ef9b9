// The session fields of runs in a snapshot: written and read back as they were (both run
// layouts: columns and objects), absent for runs without them, and a bad field refused with a
// message naming it.
import t from 'tap'
import type { RunInfo } from '../lib/model.js'
import { encodeRuns, parseRunInfo, parseSnapshot, SNAPSHOT_FORMAT } from '../lib/state/snapshot.js'
import { currentOwner } from '../lib/state/owner.js'

const plain: RunInfo = { hash: 'run_plain', status: 'running', startedAt: 1_700_000_000_000, lastProgressAt: 1_700_000_001_000, expectNextIn: 60, deadlineAt: 1_700_000_061_000, grace: 5, episode: 0 }
const remote: RunInfo = { ...plain, hash: 'run_remote', origin: { host: 'gpu-1', pid: 41, via: 'tcp', session: 'lost' } }
const ranked: RunInfo = {
  ...plain,
  hash: 'run_ranked',
  worldSize: 2,
  finishOn: 'rank0',
  ranks: [
    { rank: 0, host: 'gpu-1', pid: 50, status: 'running', lastProgressAt: 1_700_000_001_000, expectNextIn: 30, deadlineAt: 1_700_000_031_000, session: 'open' },
    { rank: 1, host: 'gpu-2', pid: 51, status: 'failed', lastProgressAt: 1_700_000_000_500, expectNextIn: 0, deadlineAt: null, session: 'closed', reason: 'oom' },
  ],
}

const snapshotOf = (runs: unknown, version: number): unknown => ({ format: SNAPSHOT_FORMAT, version, owner: currentOwner('daemon'), generation: 1, writtenAt: plain.startedAt, runs, outbox: null, extra: {} })

t.test('columns and objects keep the session fields; runs without them get none', async (t) => {
  const columns = JSON.parse(JSON.stringify(encodeRuns([plain, remote, ranked], plain.startedAt)))
  t.same(parseSnapshot(snapshotOf(columns, 2)).runs, [plain, remote, ranked])
  t.equal(encodeRuns([plain], plain.startedAt).sessions, undefined, 'no column when no run has session fields')
  t.same(parseSnapshot(snapshotOf(JSON.parse(JSON.stringify([plain, remote, ranked])), 1)).runs, [plain, remote, ranked])
})

t.test('a bad session field is refused, naming it', async (t) => {
  t.throws(() => parseRunInfo({ ...remote, origin: { ...remote.origin, via: 'carrier-pigeon' } }, 'runs[0]'), /runs\[0\]\.origin\.via/)
  t.throws(() => parseRunInfo({ ...remote, origin: { ...remote.origin, pid: -1 } }, 'runs[0]'), /origin\.pid/)
  t.throws(() => parseRunInfo({ ...ranked, ranks: [{ ...ranked.ranks?.[0], session: 'maybe' }] }, 'runs[0]'), /runs\[0\]\.ranks\[0\]\.session/)
  t.throws(() => parseRunInfo({ ...ranked, worldSize: 0 }, 'runs[0]'), /worldSize/)
  const columns = JSON.parse(JSON.stringify(encodeRuns([remote], plain.startedAt)))
  columns.sessions[0] = 'nope'
  t.throws(() => parseSnapshot(snapshotOf(columns, 2)), /runs\.sessions\[0\]/)
})
