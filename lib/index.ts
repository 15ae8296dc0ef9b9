/**
 * `@aim/status`: tells you when a machine-learning training run stalls, fails or dies.
 *
 * ```ts
 * import { watch } from '@aim/status'
 * const run = await watch({ repo: './runs' })
 * for (const batch of data) { step(batch); run.reportProgress(3) }
 * await run.reportSuccessfulFinish()
 * ```
 * @module
 */
export { watch } from './watch.js'
export { Run } from './run.js'
export type { FailureDetails, RunEvents } from './run.js'
export { Watcher } from './watcher.js'
export type { WatcherEvents } from './watcher.js'
export type { WatchOptions, WatcherOptions, NotifierSpec } from './options.js'
export { DEFAULT_GRACE_SECONDS, MAX_SECONDS } from './options.js'
export { ErrorCodes, AimStatusError, InvalidOptionError, OutOfRangeError, InvalidIdError, CorruptFileError } from './errors.js'
export type { ErrorCode } from './errors.js'
export type { NotifierEntry, Notifier, NotifierType, NotifierContext, NotifierFlag, SendContext, DeliveryOutcome } from './notify/contract.js'
export type { RunEvent, RunEventKind, RunInfo, RunStatus, EventKeyParts, EpisodeKind } from './model.js'
export { AIM_DEFAULT_MESSAGE, DEFAULT_MESSAGES, DEFAULT_NOTIFIER_EVENTS } from './notify/contract.js'
export { RUN_EVENT_KINDS, eventKey, parseEventKey } from './model.js'
export type { DeliveryRecord, DeliveryRecordKind, DeliveryEndReason, NotifierStats } from './notify/delivery-record.js'
export { registerNotifierType } from './notify/registry.js'
export { redactSecret, scrub } from './notify/redact.js'
export { addNotifier, listNotifiers, enableNotifier, disableNotifier, removeNotifier, testNotifiers, getLogLevel, setLogLevel } from './notify/manage.js'
export type { NotifierListing, NotifierTestResult, TestNotifiersOptions } from './notify/manage.js'
export { DEFAULT_LOG_LEVEL, announceWatcher } from './notify/manage.js'
export { ensureDaemon } from './daemon-launch.js'
export type { EnsureDaemonOptions, EnsureDaemonResult } from './daemon-launch.js'
export { webhookDocument, signBody, SIGNATURE_HEADER, IDEMPOTENCY_HEADER } from './notify/types/webhook.js'
export type { WebhookDocument } from './notify/types/webhook.js'
export type { Mute, MuteRequest } from './state/mutes.js'
export { parseDuration, MAX_MUTE_SECONDS } from './state/mutes.js'
