/**
 * What happened to one notification for one notifier: reported as `notified` and
 * `delivery-failed` events on the `Watcher`.
 * @module
 */
import type { RunEventKind } from '../model.js'

export interface DeliveryReport {
  /** `notified`: delivered; `retrying`: a transient failure, another attempt is scheduled; `delivery-failed`: given up or out of budget. */
  kind: 'notified' | 'retrying' | 'delivery-failed'
  notifierId: string
  notifierType: string
  /** The event's key (see RunEvent.key). */
  eventKey: string
  eventKind: RunEventKind
  hash: string
  /** Attempts made so far. */
  attempts: number
  /** The last error, for `retrying` and `delivery-failed`. */
  error?: string
  at: number
}
