/**
 * Entries of a repo's status folder that failed to be looked at (an unreadable snapshot, a FIFO,
 * a marker that is not a plain file): each is warned about once, and tried again after a backoff
 * that doubles while it keeps failing (from the poll interval up to `maxMs`), so that one bad
 * entry costs a few log lines and a few looks, never one of each per scan.
 * @module
 */

/** Default {@link Quarantine} ceiling of the backoff: 5 minutes. */
export const DEFAULT_QUARANTINE_MAX_MS = 5 * 60_000

interface Entry {
  /** What went wrong last, to tell a new trouble (logged) from the same one (not logged). */
  problem: string
  failures: number
  retryAt: number
}

/** Failed entries by id, with their backoff. */
export class Quarantine {
  readonly #entries = new Map<string, Entry>()
  readonly #minMs: number
  readonly #maxMs: number
  readonly #now: () => number

  constructor(minMs: number, maxMs: number = DEFAULT_QUARANTINE_MAX_MS, now: () => number = Date.now) {
    this.#minMs = Math.max(1, minMs)
    this.#maxMs = Math.max(this.#minMs, maxMs)
    this.#now = now
  }

  /** Records a failure of `id`; true when it should be said (first failure, or a different problem). */
  failed(id: string, problem: string): boolean {
    const previous = this.#entries.get(id)
    const failures = (previous?.failures ?? 0) + 1
    const delay = Math.min(this.#maxMs, this.#minMs * 2 ** Math.min(30, failures - 1))
    this.#entries.set(id, { problem, failures, retryAt: this.#now() + delay })
    return previous === undefined || previous.problem !== problem
  }

  /** Whether `id` is waiting out its backoff (skip it for now). */
  blocked(id: string): boolean {
    const entry = this.#entries.get(id)
    return entry !== undefined && this.#now() < entry.retryAt
  }

  /** `id` was looked at without trouble: forgotten. */
  cleared(id: string): void {
    this.#entries.delete(id)
  }

  /** Forgets entries that are no longer in the folder. */
  keepOnly(present: ReadonlySet<string>): void {
    for (const id of this.#entries.keys()) if (!present.has(id)) this.#entries.delete(id)
  }

  /** How many entries are held back. */
  get size(): number {
    return this.#entries.size
  }
}
