/**
 * What changed in a snapshot since its last write, as a journal record's parts (see
 * `journal.ts`). The writer keeps the content of its last write as a baseline: runs and check-in
 * runs by hash (shallow copies, compared field by field), the outbox's settled keys one JSON text
 * each (the list is a window: appended at its end, cut at its start), the rest of the outbox and
 * every other `extra` key as their JSON text. Finding the change of a 10k-run state costs a pass over plain objects, much
 * less than the serialisation of the whole snapshot it saves.
 * @module
 */
import type { RunInfo } from '../model.js'
import { KEYED_EXTRA, type JournalRecord, type OutboxWindow } from './journal.js'
import { checkFiniteRanks } from './run-extras.js'
import type { SnapshotContent } from './snapshot.js'

type Parts = Omit<JournalRecord, 'generation' | 'seq' | 'writtenAt'>

/** A change found by {@link JournalBaseline.diff}: its parts, and the step that makes it the new baseline once written. */
export interface Delta {
  parts: Parts
  /** Nothing changed: there is nothing to write. */
  empty: boolean
  /** Makes the content diffed the baseline (call once the record is written). */
  commit(): void
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** `extra.checkins` split into its runs (kept per hash) and the rest; null when it is not of that shape. */
function keyedOf(extra: Record<string, unknown>): { runs: Record<string, unknown>; rest: Record<string, unknown> } | null {
  const value = extra[KEYED_EXTRA]
  if (!isRecord(value) || !isRecord(value['runs'])) return null
  const { runs, ...rest } = value
  return { runs: runs as Record<string, unknown>, rest }
}

/** The rest of `extra.checkins` as compared: `savedAt` moves at every write and says nothing. */
function restText(rest: Record<string, unknown>): string {
  return JSON.stringify({ ...rest, savedAt: undefined })
}

/** Equal flat objects (values compared with `===`; anything nested is compared as JSON). */
function sameFlat(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) {
    const x = a[key]
    const y = b[key]
    if (x === y) continue
    if (typeof x !== 'object' || typeof y !== 'object' || JSON.stringify(x) !== JSON.stringify(y)) return false
  }
  return true
}

/**
 * Refuses a run the reader would refuse: JSON turns NaN and Infinity into null, and the replay
 * would then set the whole journal aside. Refusing the write keeps the last good state.
 */
function checkFinite(run: RunInfo): void {
  if (!Number.isFinite(run.startedAt + run.lastProgressAt + run.expectNextIn + (run.deadlineAt ?? 0) + run.grace + run.episode)) {
    throw new Error(`run ${run.hash} has a field that is not a finite number: ${JSON.stringify(run)}`)
  }
  checkFiniteRanks(run)
}

/** The content of a snapshot's last write, to diff the next one against. */
export class JournalBaseline {
  readonly #owner: string
  readonly #runs = new Map<string, RunInfo>()
  readonly #keyed: boolean
  readonly #checkins = new Map<string, Record<string, unknown>>()
  #checkinsRest = ''
  #outbox: OutboxTexts
  readonly #extra = new Map<string, string>()

  constructor(content: SnapshotContent) {
    this.#owner = ownerText(content)
    for (const run of content.runs) this.#runs.set(run.hash, { ...run })
    const keyed = keyedOf(content.extra)
    this.#keyed = keyed !== null
    if (keyed !== null) {
      // Kept as given, not copied: a producer hands out a new record when a run changes (the
      // check-in reader gives an unchanged run's record again, frozen), so equal identity means
      // no change and the baseline costs no copy of 10k records.
      for (const hash in keyed.runs) this.#checkins.set(hash, keyed.runs[hash] as Record<string, unknown>)
      this.#checkinsRest = restText(keyed.rest)
    }
    this.#outbox = outboxTexts(content.outbox)
    for (const [key, value] of Object.entries(content.extra)) if (!(this.#keyed && key === KEYED_EXTRA)) this.#extra.set(key, JSON.stringify(value))
  }

  /**
   * The change from the baseline to `content`; null when it cannot be said as a record (the
   * owner or the adopter changed, or `extra.checkins` changed shape): write in full then.
   */
  diff(content: SnapshotContent): Delta | null {
    if (ownerText(content) !== this.#owner) return null
    const keyed = keyedOf(content.extra)
    if ((keyed !== null) !== this.#keyed) return null
    const parts: Parts = {}
    const steps: Array<() => void> = []

    const setRuns: RunInfo[] = []
    let kept = 0
    for (const run of content.runs) {
      const before = this.#runs.get(run.hash)
      if (before !== undefined) kept++
      if (before !== undefined && sameFlat(before as unknown as Record<string, unknown>, run as unknown as Record<string, unknown>)) continue
      checkFinite(run)
      setRuns.push(run)
    }
    const delRuns: string[] = []
    // Every run of the baseline still there: none was dropped, and no set is needed to know it.
    if (kept !== this.#runs.size) {
      const now = new Set(content.runs.map((run) => run.hash))
      for (const hash of this.#runs.keys()) if (!now.has(hash)) delRuns.push(hash)
    }
    if (setRuns.length > 0 || delRuns.length > 0) {
      parts.runs = { ...(setRuns.length > 0 ? { set: setRuns } : {}), ...(delRuns.length > 0 ? { del: delRuns } : {}) }
      steps.push(() => {
        for (const hash of delRuns) this.#runs.delete(hash)
        for (const run of setRuns) this.#runs.set(run.hash, { ...run })
      })
    }

    if (keyed !== null) {
      const set: Record<string, unknown> = {}
      let changed = 0
      let present = 0
      for (const hash in keyed.runs) {
        const state = keyed.runs[hash]
        const before = this.#checkins.get(hash)
        if (before !== undefined) present++
        if (before !== undefined && (before === state || (isRecord(state) && sameFlat(before, state)))) continue
        set[hash] = state
        changed++
      }
      const del: string[] = []
      if (present !== this.#checkins.size) for (const hash of this.#checkins.keys()) if (!(hash in keyed.runs)) del.push(hash)
      const rest = restText(keyed.rest)
      if (changed > 0 || del.length > 0 || rest !== this.#checkinsRest) {
        parts.checkins = { ...(changed > 0 ? { set } : {}), ...(del.length > 0 ? { del } : {}), rest: keyed.rest }
        steps.push(() => {
          for (const hash of del) this.#checkins.delete(hash)
          for (const hash in set) this.#checkins.set(hash, set[hash] as Record<string, unknown>)
          this.#checkinsRest = rest
        })
      }
    }

    const outbox = outboxTexts(content.outbox)
    if (outbox.rest !== this.#outbox.rest || !sameTexts(outbox.settled, this.#outbox.settled)) {
      parts.outbox = outboxWindow(this.#outbox, outbox, content.outbox) ?? { value: content.outbox ?? null }
      steps.push(() => {
        this.#outbox = outbox
      })
    }

    const setExtra: Record<string, unknown> = {}
    const texts = new Map<string, string>()
    for (const [key, value] of Object.entries(content.extra)) {
      if (keyed !== null && key === KEYED_EXTRA) continue
      const text = JSON.stringify(value)
      if (this.#extra.get(key) !== text) {
        setExtra[key] = value
        texts.set(key, text)
      }
    }
    const delExtra = [...this.#extra.keys()].filter((key) => !(key in content.extra))
    if (texts.size > 0 || delExtra.length > 0) {
      parts.extra = { ...(texts.size > 0 ? { set: setExtra } : {}), ...(delExtra.length > 0 ? { del: delExtra } : {}) }
      steps.push(() => {
        for (const key of delExtra) this.#extra.delete(key)
        for (const [key, text] of texts) this.#extra.set(key, text)
      })
    }

    return {
      parts,
      empty: steps.length === 0,
      commit: () => {
        for (const step of steps) step()
      },
    }
  }
}

/** An outbox as compared: its `settled` entries one text each (null: no such list), the rest as one text. */
interface OutboxTexts {
  rest: string
  settled: string[] | null
}

function outboxTexts(outbox: unknown): OutboxTexts {
  if (!isRecord(outbox) || !Array.isArray(outbox['settled'])) return { rest: JSON.stringify(outbox ?? null), settled: null }
  const { settled, ...rest } = outbox
  return { rest: JSON.stringify(rest), settled: (settled as unknown[]).map((entry) => JSON.stringify(entry)) }
}

function sameTexts(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === null || b === null) return a === b
  return a.length === b.length && a.every((text, i) => text === b[i])
}

/**
 * The change as a window of the settled list: the oldest `drop` entries gone, `add` appended.
 * Null when the new list is not the old one cut at its start and grown at its end (then the
 * outbox is written whole).
 */
function outboxWindow(before: OutboxTexts, after: OutboxTexts, outbox: unknown): OutboxWindow | null {
  if (before.settled === null || after.settled === null || !isRecord(outbox)) return null
  const old = before.settled
  const now = after.settled
  // Settled pairs are unique: the first kept entry says how many of the oldest left.
  let drop = now.length === 0 ? old.length : old.indexOf(now[0] as string)
  if (drop < 0) drop = old.length
  const kept = old.length - drop
  if (kept > now.length) return null
  for (let i = 0; i < kept; i++) if (old[drop + i] !== now[i]) return null
  const { settled, ...rest } = outbox
  return { rest, drop, add: (settled as unknown[]).slice(kept) }
}

function ownerText(content: SnapshotContent): string {
  return JSON.stringify([content.owner, content.adoptedBy ?? null])
}
