/**
 * Which notifiers hear about a repo's events: the ones configured in the repo's `config.json`
 * plus the ones given in code to this process. When there are none at all, a logger is used
 * (Aim's default configuration is one logger), so a stall is never silent.
 * @module
 */
import type { NotifierContext, NotifierEntry, Notifier } from '../notify/contract.js'
import { createNotifier, findNotifierType } from '../notify/registry.js'

/** The notifier used when nothing is configured: a logger with Aim's default message. */
export const DEFAULT_LOGGER_ENTRY: NotifierEntry = Object.freeze({
  id: 'default-logger',
  type: 'logger',
  status: 'enabled',
  arguments: {},
}) as NotifierEntry

/**
 * Keeps the live notifier set of a repo: rebuilt when the configuration or the notifiers
 * given in code change, reused otherwise.
 */
export class NotifierSet {
  #configured: NotifierEntry[] = []
  /** Ids of the configuration's invalid entries: configured (their status is kept), never created. */
  #invalidIds: string[] = []
  #programmatic: NotifierEntry[] = []
  #notifiers: Notifier[] = []
  readonly #context: NotifierContext
  readonly #warn: (message: string) => void
  readonly #warnedTypes = new Set<string>()

  constructor(context: NotifierContext, warn: (message: string) => void) {
    this.#context = context
    this.#warn = warn
    this.#rebuild()
  }

  /** Entries read from the repo's configuration, and the ids of the ones that are invalid. */
  setConfigured(entries: NotifierEntry[], invalidIds: readonly string[] = []): void {
    this.#configured = entries
    this.#invalidIds = [...invalidIds]
    this.#rebuild()
  }

  /** Entries given in code to this process. */
  setProgrammatic(entries: NotifierEntry[]): void {
    this.#programmatic = entries
    this.#rebuild()
  }

  /** Whether an id belongs to an entry of the repo's configuration. */
  isConfigured(id: string): boolean {
    return this.#configured.some((entry) => entry.id === id) || this.#invalidIds.includes(id)
  }

  /** Whether nothing is configured nor given in code: the default logger stands in. */
  usesDefaultOnly(): boolean {
    return this.#configured.length === 0 && this.#programmatic.length === 0
  }

  /** The notifiers to use now (enabled or not: the sender filters by status and events). */
  current(): Notifier[] {
    return this.#notifiers
  }

  #rebuild(): void {
    const entries = [...this.#configured, ...this.#programmatic]
    // An invalid entry does not count here: while it is broken, the logger says what happens.
    const chosen = entries.length === 0 ? [DEFAULT_LOGGER_ENTRY] : entries
    const notifiers: Notifier[] = []
    for (const entry of chosen) {
      if (findNotifierType(entry.type) === undefined) {
        // As Aim does: an unknown type is skipped with a warning (once, not per event).
        if (!this.#warnedTypes.has(entry.type)) this.#warn(`notifier ${entry.id}: unknown type "${entry.type}", skipped`)
        this.#warnedTypes.add(entry.type)
        continue
      }
      try {
        notifiers.push(createNotifier(entry, this.#context))
      } catch (error) {
        this.#warn(`notifier ${entry.id}: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
    this.#notifiers = notifiers
  }
}
