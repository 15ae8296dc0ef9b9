/**
 * The daemon's Prometheus metrics, through prom-client, on a registry of its own (never the
 * library's global one, which a host program may use for itself).
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `aim_status_runs` | gauge | `repo`, `status` (`running`, `stalled`, `finished`, `failed`) |
 * | `aim_status_muted_runs` | gauge | `repo` |
 * | `aim_status_transitions_total` | counter | `repo`, `kind` (`started`, `stalled`, `recovered`, `finished`, `failed`), `muted` |
 * | `aim_status_notifications_total` | counter | `repo`, `notifier_type`, `result` (`delivered`, `retrying`, `failed`) |
 * | `aim_status_detection_lag_seconds` | histogram | `repo`, `source` (`node`, `aim`) |
 * | `aim_status_outbox_depth` | gauge | `repo` |
 * | `aim_status_sender` | gauge | `repo`: 1 while this daemon sends for the repo, 0 on a standby |
 *
 * plus prom-client's default process metrics (`process_*`, `nodejs_*`).
 * @module
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { parseEventKey, type RunEvent, type RunEventKind, type RunStatus } from '../../model.js'
import type { DeliveryRecord } from '../../notify/delivery-record.js'
import type { Mute } from '../../state/mutes.js'
import type { StatusModel } from './status-model.js'

const STATUSES: readonly RunStatus[] = ['running', 'stalled', 'finished', 'failed']
const RESULT: Readonly<Record<DeliveryRecord['kind'], string>> = { notified: 'delivered', retrying: 'retrying', failed: 'failed', dropped: 'dropped' }

/** The metrics and their registry. The model is attached after both exist (each needs the other). */
export class DaemonMetrics {
  readonly registry = new Registry()
  readonly #transitions: Counter<'repo' | 'kind' | 'muted'>
  readonly #notifications: Counter<'repo' | 'notifier_type' | 'result'>
  readonly #lag: Histogram<'repo' | 'source'>
  #model: StatusModel | null = null

  constructor() {
    collectDefaultMetrics({ register: this.registry })
    const registers = [this.registry]
    const model = (): StatusModel | null => this.#model
    new Gauge({
      name: 'aim_status_runs',
      help: 'Runs known to this daemon, by repo and status.',
      labelNames: ['repo', 'status'],
      registers,
      collect() {
        const m = model()
        if (m === null) return
        this.reset()
        const counts = new Map<string, number>()
        for (const { run } of m.rows()) counts.set(`${run.repo}\n${run.status}`, (counts.get(`${run.repo}\n${run.status}`) ?? 0) + 1)
        for (const repo of m.repos) for (const status of STATUSES) this.set({ repo: repo.root, status }, counts.get(`${repo.root}\n${status}`) ?? 0)
      },
    })
    new Gauge({
      name: 'aim_status_muted_runs',
      help: 'Runs whose transitions are muted now, by repo.',
      labelNames: ['repo'],
      registers,
      collect() {
        const m = model()
        if (m === null) return
        this.reset()
        for (const repo of m.repos) this.set({ repo: repo.root }, 0)
        for (const { run, mute } of m.rows()) if (mute !== null) this.inc({ repo: run.repo })
      },
    })
    new Gauge({
      name: 'aim_status_outbox_depth',
      help: "Notifications waiting in this daemon's outbox, by repo.",
      labelNames: ['repo'],
      registers,
      collect() {
        for (const repo of model()?.repos ?? []) this.set({ repo: repo.root }, repo.outboxDepth())
      },
    })
    new Gauge({
      name: 'aim_status_sender',
      help: "1 while this daemon is the repo's sender, 0 while it stands by.",
      labelNames: ['repo'],
      registers,
      collect() {
        for (const repo of model()?.repos ?? []) this.set({ repo: repo.root }, repo.state === 'active' ? 1 : 0)
      },
    })
    this.#transitions = new Counter({ name: 'aim_status_transitions_total', help: 'Run transitions seen by this daemon, by repo, kind and whether the run was muted.', labelNames: ['repo', 'kind', 'muted'], registers })
    this.#notifications = new Counter({
      name: 'aim_status_notifications_total',
      help: "Delivery outcomes of this daemon's outbox, by repo, notifier type and result.",
      labelNames: ['repo', 'notifier_type', 'result'],
      registers,
    })
    this.#lag = new Histogram({
      name: 'aim_status_detection_lag_seconds',
      help: "From a run's deadline plus grace to the stall this daemon declared, seconds.",
      labelNames: ['repo', 'source'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
  }

  attach(model: StatusModel): void {
    this.#model = model
  }

  transition(repo: string, kind: RunEventKind, muted: boolean): void {
    this.#transitions.inc({ repo, kind, muted: String(muted) })
  }

  event(repo: string, event: RunEvent, _muted: Mute | null): void {
    if (event.kind !== 'stalled' || event.overdueSeconds === undefined) return
    const source = parseEventKey(event.key)?.source ?? 'node'
    this.#lag.observe({ repo, source }, Math.max(0, event.overdueSeconds - event.run.grace))
  }

  report(repo: string, report: DeliveryRecord): void {
    this.#notifications.inc({ repo, notifier_type: report.notifierType, result: RESULT[report.kind] })
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ text: string; contentType: string }> {
    // The look first: prom-client collects metrics concurrently, and the counters must be read
    // after the look that counts the transitions the gauges show.
    await this.#model?.current()
    return { text: await this.registry.metrics(), contentType: this.registry.contentType }
  }
}
