/**
 * The table `aim-watcher notifiers list` prints. The default fits an 80-column terminal:
 * Aim's three columns in Aim's widths (NOTIFIER ID 40, TYPE 10, STATUS 10), then how the last
 * delivery went, in short. `--wide` adds the events and the full delivery and error detail.
 * @module
 */
import type { NotifierListing } from '../notify/manage.js'
import { forTerminal } from '../text.js'

/** The width the default table keeps to. */
export const NARROW_WIDTH = 80

/** Options of {@link formatNotifierTable}. */
export interface NotifierTableOptions {
  /** Every column, untruncated. Default: false. */
  wide?: boolean
  /** The time "ago" is counted from, in ms since the epoch. Default: `Date.now()`. */
  now?: number
}

/** `3s ago`, `5m ago`, `2h ago`, `4d ago`: how long before `now` `at` was. */
export function timeAgo(at: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000))
  if (seconds < 60) return `${seconds}s ago`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`
  return `${Math.floor(seconds / 86_400)}d ago`
}

/** The last outcome in a few words: `ok 5m ago`, `error 12s ago`, `never`, `skipped`. */
function lastOutcome(listing: NotifierListing, now: number): string {
  if (listing.problem !== null) return 'skipped'
  const { lastDeliveryAt, lastErrorAt } = listing.delivery
  if (lastErrorAt !== null && (lastDeliveryAt === null || lastErrorAt >= lastDeliveryAt)) return `error ${timeAgo(lastErrorAt, now)}`
  if (lastDeliveryAt !== null) return `ok ${timeAgo(lastDeliveryAt, now)}`
  return 'never'
}

/** Every delivery detail: times in ISO 8601, the count, the last error's text, or why it is skipped. */
function deliveryDetail(listing: NotifierListing): string {
  const { delivery } = listing
  if (listing.problem !== null) return `skipped: ${listing.problem}`
  const parts: string[] = []
  if (delivery.lastDeliveryAt !== null) parts.push(`ok ${new Date(delivery.lastDeliveryAt).toISOString()} (${delivery.delivered})`)
  if (delivery.lastErrorAt !== null) parts.push(`error ${new Date(delivery.lastErrorAt).toISOString()}: ${delivery.lastError ?? ''}`)
  return parts.length > 0 ? parts.join('; ') : '-'
}

/** `text` cut to `width` characters, the last one an ellipsis when something was cut. */
function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`
}

/** The table's lines: a header, then one line per notifier. */
export function formatNotifierTable(listings: readonly NotifierListing[], options: NotifierTableOptions = {}): string[] {
  const now = options.now ?? Date.now()
  if (options.wide === true) {
    return [
      `${'NOTIFIER ID'.padEnd(40)} ${'TYPE'.padEnd(10)} ${'STATUS'.padEnd(10)} ${'EVENTS'.padEnd(26)} LAST DELIVERY / LAST ERROR`,
      // Config text comes from a shared file: escape sequences in it never reach the terminal.
      ...listings.map((l) => `${forTerminal(l.id).padEnd(40)} ${forTerminal(l.type).padEnd(10)} ${l.status.padEnd(10)} ${forTerminal(l.events.join(',')).padEnd(26)} ${forTerminal(deliveryDetail(l))}`),
    ]
  }
  const fixed = 40 + 1 + 10 + 1 + 10 + 1
  const rest = NARROW_WIDTH - fixed
  return [
    `${'NOTIFIER ID'.padEnd(40)} ${'TYPE'.padEnd(10)} ${'STATUS'.padEnd(10)} ${fit('LAST DELIVERY', rest)}`,
    // An id longer than its column is printed whole: it is what `enable ID` and the others take.
    ...listings.map((l) => `${forTerminal(l.id).padEnd(40)} ${fit(forTerminal(l.type), 10).padEnd(10)} ${l.status.padEnd(10)} ${fit(forTerminal(lastOutcome(l, now)), rest)}`),
  ]
}
