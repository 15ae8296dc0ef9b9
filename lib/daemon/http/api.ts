/**
 * The JSON API, version 1 (`/api/v1/…`): the shapes documented in the README, built from the
 * {@link StatusModel}. Times are ISO 8601 UTC strings, as in the webhook document; absent values
 * are `null`, so every field is always present.
 * @module
 */
import { AimStatusError, ErrorCodes, InvalidOptionError, describeValue } from '../../errors.js'
import { listNotifiers } from '../../notify/manage.js'
import { checkRunHash, repoPaths } from '../../repo.js'
import { muteFromRequest, mutesPath, readMutes, removeMute, setMute, type Mute } from '../../state/mutes.js'
import type { RunRow, StatusModel, TimelineMark } from './status-model.js'
import type { RankState } from '../../model.js'

/** The API version in every path. */
export const API_VERSION = 1

const iso = (at: number | null | undefined): string | null => (at === null || at === undefined || !Number.isFinite(at) ? null : new Date(at).toISOString())

/** A mute as JSON. */
export function muteJson(mute: Mute): Record<string, unknown> {
  return { until: iso(mute.until), untilHealthy: mute.untilHealthy, reason: mute.reason ?? null, createdAt: iso(mute.createdAt) }
}

function markJson(mark: TimelineMark): Record<string, unknown> {
  return { kind: mark.kind, at: iso(mark.at), ...(mark.count !== undefined ? { count: mark.count } : {}), ...(mark.muted === true ? { muted: true } : {}) }
}

/** One rank of a run of many ranks as JSON. */
function rankJson(rank: RankState): Record<string, unknown> {
  return {
    rank: rank.rank,
    host: rank.host,
    pid: rank.pid,
    status: rank.status,
    session: rank.session,
    lastProgressAt: iso(rank.lastProgressAt),
    expectNextIn: rank.expectNextIn,
    deadlineAt: iso(rank.deadlineAt),
    reason: rank.reason ?? null,
  }
}

/** One run as JSON; `timeline` adds its marks. */
export function runJson(row: RunRow, timeline: boolean): Record<string, unknown> {
  const { run, mute } = row
  const stallsAt = run.status === 'running' && run.deadlineAt !== null ? run.deadlineAt + run.grace * 1000 : null
  return {
    repo: run.repo,
    hash: run.hash,
    name: run.name ?? null,
    experiment: run.experiment ?? null,
    status: run.status,
    source: run.source,
    owner: run.owner === null ? null : { kind: run.owner.kind, pid: run.owner.pid, host: run.owner.host },
    startedAt: iso(run.startedAt),
    lastProgressAt: iso(run.lastProgressAt),
    expectNextIn: run.expectNextIn,
    deadlineAt: iso(run.deadlineAt),
    stallsAt: iso(stallsAt),
    grace: run.grace,
    episode: run.episode,
    reason: run.reason ?? null,
    // A process reporting over a session: where from, and how its session is.
    origin: run.origin ?? null,
    ...(run.ranks !== undefined ? { worldSize: run.worldSize ?? run.ranks.length, finishOn: run.finishOn ?? 'all', ranks: run.ranks.map(rankJson) } : {}),
    muted: mute !== null,
    mute: mute === null ? null : muteJson(mute),
    ...(timeline ? { timeline: row.timeline.map(markJson) } : {}),
  }
}

const STATUSES = new Set(['running', 'stalled', 'finished', 'failed'])

/** The API's answers. Each method resolves with the JSON body or throws a coded error. */
export class Api {
  readonly #model: StatusModel
  readonly #texts = new Map<string, { version: string; text: string }>()

  constructor(model: StatusModel) {
    this.#model = model
  }

  /**
   * `GET /api/v1/runs[?repo=ROOT][&status=S][&timeline=1]`, as JSON text. Each run's JSON is
   * kept until the run changes (its row's `version`): with 10k runs a list is then mostly a join
   * of strings made earlier.
   */
  async runsText(query: URLSearchParams): Promise<string> {
    await this.#model.current()
    const repo = query.get('repo')
    if (repo !== null) this.#repo(repo)
    const status = query.get('status')
    if (status !== null && !STATUSES.has(status)) throw new InvalidOptionError(`Expected status to be one of running, stalled, finished, failed, got ${describeValue(status)}`)
    const timeline = query.get('timeline') === '1' || query.get('timeline') === 'true'
    const rows = this.#model.rows()
    const parts: string[] = []
    for (const row of rows) {
      if ((repo !== null && row.run.repo !== repo) || (status !== null && row.run.status !== status)) continue
      const key = `${timeline ? 't' : ''}${row.run.repo}\n${row.run.hash}`
      let cached = this.#texts.get(key)
      if (cached === undefined || cached.version !== row.version) {
        cached = { version: row.version, text: JSON.stringify(runJson(row, timeline)) }
        this.#texts.set(key, cached)
      }
      parts.push(cached.text)
    }
    // Runs gone for good are forgotten once the cache holds twice what is shown.
    if (this.#texts.size > 2 * rows.length + 100) this.#texts.clear()
    return `{"runs":[${parts.join(',')}]}`
  }

  /** `GET /api/v1/runs/:hash[?repo=ROOT]`: with its timeline. */
  async run(hash: string, query: URLSearchParams): Promise<unknown> {
    await this.#model.current()
    const rows = this.#rowsOf(checkRunHash(hash), query.get('repo'))
    if (rows.length === 0) throw new AimStatusError(ErrorCodes.NOT_FOUND, `No run ${hash} is known`)
    if (rows.length > 1) throw new AimStatusError(ErrorCodes.BAD_REQUEST, `Run ${hash} is in several repos: add ?repo=ROOT`)
    return { run: runJson(rows[0] as RunRow, true) }
  }

  /** `GET /api/v1/notifiers`: every repo's notifiers, secrets redacted, with delivery health. */
  async notifiers(): Promise<unknown> {
    const all: unknown[] = []
    for (const repo of this.#model.repos) {
      let listings
      try {
        listings = await listNotifiers(repo.root)
      } catch (error) {
        all.push({ repo: repo.root, error: (error as Error).message })
        continue
      }
      for (const n of listings) {
        all.push({
          repo: repo.root,
          id: n.id,
          type: n.type,
          status: n.status,
          events: n.events,
          arguments: n.entry.arguments ?? {},
          usable: n.usable,
          problem: n.problem,
          delivery: { delivered: n.delivery.delivered, failed: n.delivery.failed, lastDeliveryAt: iso(n.delivery.lastDeliveryAt), lastError: n.delivery.lastError, lastErrorAt: iso(n.delivery.lastErrorAt) },
        })
      }
    }
    return { notifiers: all }
  }

  /** `GET /api/v1/mutes`: the mutes in force in every repo (runs not started yet included). */
  async mutes(): Promise<unknown> {
    const all: unknown[] = []
    const now = Date.now()
    for (const repo of this.#model.repos) {
      for (const mute of (await readMutes(mutesPath(repoPaths(repo.root)), now)).values()) all.push({ repo: repo.root, hash: mute.hash, ...muteJson(mute) })
    }
    return { mutes: all }
  }

  /** `POST /api/v1/runs/:hash/mute` with `{"for": "2h"}` or `{"untilHealthy": true}`, optional `reason` and `repo`. */
  async mute(hash: string, body: unknown): Promise<unknown> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidOptionError(`Expected a JSON object body, got ${describeValue(body)}`)
    const { repo: repoField, ...request } = body as Record<string, unknown>
    const repo = this.#repoForMutation(checkRunHash(hash), repoField)
    const mute = muteFromRequest(hash, request, Date.now())
    await setMute(mutesPath(repoPaths(repo)), mute)
    await this.#model.refresh()
    return { repo, hash, mute: muteJson(mute) }
  }

  /** `DELETE /api/v1/runs/:hash/mute[?repo=ROOT]`. */
  async unmute(hash: string, query: URLSearchParams): Promise<unknown> {
    const repo = this.#repoForMutation(checkRunHash(hash), query.get('repo') ?? undefined)
    const removed = await removeMute(mutesPath(repoPaths(repo)), hash, Date.now())
    await this.#model.refresh()
    return { repo, hash, removed }
  }

  #repo(root: string): string {
    if (!this.#model.repos.some((r) => r.root === root)) throw new AimStatusError(ErrorCodes.NOT_FOUND, `This daemon does not watch ${describeValue(root)}`)
    return root
  }

  #rowsOf(hash: string, repo: string | null): RunRow[] {
    if (repo !== null) this.#repo(repo)
    return this.#model.rows().filter((row) => row.run.hash === hash && (repo === null || row.run.repo === repo))
  }

  /** The repo a mutation is for: the one named, the only one watched, or the one that knows the run. */
  #repoForMutation(hash: string, repo: unknown): string {
    if (repo !== undefined && repo !== null) {
      if (typeof repo !== 'string') throw new InvalidOptionError(`Expected \`repo\` to be a repo root, got ${describeValue(repo)}`)
      return this.#repo(repo)
    }
    const repos = this.#model.repos
    if (repos.length === 1) return (repos[0] as (typeof repos)[number]).root
    const holding = [...new Set(this.#rowsOf(hash, null).map((r) => r.run.repo))]
    if (holding.length === 1) return holding[0] as string
    throw new AimStatusError(ErrorCodes.BAD_REQUEST, `This daemon watches several repos and run ${hash} is in ${holding.length === 0 ? 'none of them yet' : 'more than one'}: give \`repo\``)
  }
}
