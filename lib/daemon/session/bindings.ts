/**
 * Which session reports each run (or rank) of a repo: a run is bound to the client (a process,
 * known by its random `client.id`) that opened or resumed it, and to that client's current
 * connection while it has one. A client that reconnects keeps its bindings; one that leaves
 * without a goodbye has them failed after the reconnect window unless it resumes them first.
 * @module
 */

/** One run or rank, and who reports it. */
export interface Binding<C> {
  hash: string
  rank: number | undefined
  clientId: string
  /** The client's connection that last opened or resumed it, or null once it went. */
  conn: C | null
}

const keyOf = (hash: string, rank: number | undefined): string => (rank === undefined ? hash : `${hash}#${rank}`)

/** The bindings of one repo. */
export class Bindings<C> {
  readonly #byKey = new Map<string, Binding<C>>()
  readonly #byHash = new Map<string, Set<Binding<C>>>()

  /** Binds a run (or rank) to a client's connection; a binding of another client is taken over (the newest open wins). */
  bind(hash: string, rank: number | undefined, clientId: string, conn: C): Binding<C> {
    const key = keyOf(hash, rank)
    let binding = this.#byKey.get(key)
    if (binding === undefined) {
      binding = { hash, rank, clientId, conn }
      this.#byKey.set(key, binding)
      let set = this.#byHash.get(hash)
      if (set === undefined) this.#byHash.set(hash, (set = new Set()))
      set.add(binding)
    }
    binding.clientId = clientId
    binding.conn = conn
    return binding
  }

  /** Whether this client holds the run (or rank). */
  holds(hash: string, rank: number | undefined, clientId: string): boolean {
    return this.#byKey.get(keyOf(hash, rank))?.clientId === clientId
  }

  /** The bindings held through one connection. */
  ofConnection(conn: C): Array<Binding<C>> {
    return [...this.#byKey.values()].filter((b) => b.conn === conn)
  }

  /** Moves the bindings of a live connection to the client's new one (a reconnect that replaced it). */
  move(from: C, to: C): void {
    for (const binding of this.#byKey.values()) if (binding.conn === from) binding.conn = to
  }

  /** The bindings of one run (several for a run of many ranks). */
  ofRun(hash: string): ReadonlySet<Binding<C>> {
    return this.#byHash.get(hash) ?? new Set()
  }

  /** Forgets one binding. */
  drop(binding: Binding<C>): void {
    const key = keyOf(binding.hash, binding.rank)
    if (this.#byKey.get(key) !== binding) return
    this.#byKey.delete(key)
    const set = this.#byHash.get(binding.hash)
    set?.delete(binding)
    if (set?.size === 0) this.#byHash.delete(binding.hash)
  }

  /** Forgets every binding of a run (it ended). */
  dropRun(hash: string): void {
    for (const binding of [...this.ofRun(hash)]) this.drop(binding)
  }

  /** How many runs and ranks are bound. */
  get size(): number {
    return this.#byKey.size
  }

  clear(): void {
    this.#byKey.clear()
    this.#byHash.clear()
  }
}
