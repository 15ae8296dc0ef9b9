/**
 * Where `watch()` reports when it reports over a session, and as which rank: the options given
 * in code, else the environment a launcher sets (torchrun, Slurm, Open MPI), and the hash every
 * rank of one run shares (given, or derived from the launcher's job id, so that each rank
 * computes the same one without talking to the others).
 * @module
 */
import { createHash } from 'node:crypto'
import { InvalidOptionError, OutOfRangeError, describeValue } from '../errors.js'
import type { FinishOn } from '../model.js'
import { checkRunHash } from '../repo.js'

/** The environment variable listing the daemons to report to, comma-separated. */
export const SERVER_ENV = 'AIM_STATUS_SERVER'
/** The environment variable holding the sessions' bearer token. */
export const TOKEN_ENV = 'AIM_STATUS_TOKEN'
/** The most ranks a run may have (the protocol's limit). */
export const MAX_WORLD_SIZE = 100_000

/** The launchers' variables, in the order they are looked at: `[rank, world size]`. */
const RANK_ENVS = [
  ['RANK', 'WORLD_SIZE'],
  ['SLURM_PROCID', 'SLURM_NTASKS'],
  ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'],
] as const

/** What the session of one `watch()` call needs besides the run's own options. */
export interface SessionChoice {
  /** The daemons, in failover order; undefined: no server (a local run, or a ranked one over the repo's socket). */
  servers: string[] | undefined
  token: string | undefined
  /** Set for a run of many ranks (worldSize above 1). */
  ranked: { rank: number; worldSize: number; finishOn: FinishOn } | undefined
  /** The shared hash of a ranked run derived from the environment, when none was given. */
  derivedHash: string | undefined
}

/** Checks one server URL: `http(s)://`, `ws(s)://` or `unix:/absolute/path.sock`. */
export function checkServerUrl(value: unknown, label = 'server'): string {
  if (typeof value !== 'string' || value === '') throw new InvalidOptionError(`Expected \`${label}\` to be a URL (http://host:port, ws://…, unix:/path.sock), got ${describeValue(value)}`)
  if (value.startsWith('unix:')) {
    if (!value.slice(5).startsWith('/') || value.includes('\0')) throw new InvalidOptionError(`Expected \`${label}\` to be unix: followed by an absolute socket path, got ${describeValue(value)}`)
    return value
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InvalidOptionError(`Expected \`${label}\` to be a URL (http://host:port, ws://…, unix:/path.sock), got ${describeValue(value)}`)
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new InvalidOptionError(`Expected \`${label}\` to use http, https, ws, wss or unix, got ${describeValue(url.protocol)}`)
  // A token belongs in `token`: credentials in a URL end up in logs.
  if (url.username !== '' || url.password !== '') throw new InvalidOptionError(`Expected \`${label}\` without credentials in the URL; give the token as \`token\``)
  return value
}

/** Checks `server` (one URL or a list). */
export function checkServers(value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value]
  if (list.length === 0) throw new InvalidOptionError('Expected `server` to name at least one URL, got an empty list')
  return list.map((url, i) => checkServerUrl(url, Array.isArray(value) ? `server[${i}]` : 'server'))
}

/** Checks `token`; an error never repeats it. */
export function checkToken(value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new InvalidOptionError(`Expected \`token\` to be a string, got a ${value === null ? 'null' : typeof value}`)
  // eslint-disable-next-line no-control-regex
  if (value === '' || value.length > 4096 || /[\s\u0000-\u001f\u007f]/.test(value)) throw new InvalidOptionError('Expected `token` to be 1 to 4096 characters without spaces or control characters')
  return value
}

function checkCount(value: unknown, label: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new InvalidOptionError(`Expected \`${label}\` to be an integer, got ${describeValue(value)}`)
  if (value < min || value > max) throw new OutOfRangeError(`Expected \`${label}\` to be an integer from ${min} to ${max}, got ${describeValue(value)}`)
  return value
}

/** Checks `rank`. */
export const checkRank = (value: unknown): number | undefined => checkCount(value, 'rank', 0, MAX_WORLD_SIZE - 1)
/** Checks `worldSize`. */
export const checkWorldSize = (value: unknown): number | undefined => checkCount(value, 'worldSize', 1, MAX_WORLD_SIZE)

/** Checks `finishOn`. */
export function checkFinishOn(value: unknown): FinishOn | undefined {
  if (value === undefined || value === 'all' || value === 'rank0') return value
  throw new InvalidOptionError(`Expected \`finishOn\` to be 'all' or 'rank0', got ${describeValue(value)}`)
}

/** A launcher's rank and world size, the first launcher whose both variables are integers. */
export function rankFromEnv(env: NodeJS.ProcessEnv): { rank: number; worldSize: number; from: string } | undefined {
  for (const [rankName, sizeName] of RANK_ENVS) {
    const rank = env[rankName]
    const size = env[sizeName]
    if (rank === undefined || size === undefined || !/^\d+$/.test(rank.trim()) || !/^\d+$/.test(size.trim())) continue
    return { rank: Number(rank), worldSize: Number(size), from: `${rankName}/${sizeName}` }
  }
  return undefined
}

/**
 * The hash every rank of a launched job computes alike: from torchrun's `TORCHELASTIC_RUN_ID`
 * (`te_` and the first 24 hex digits of its sha256: the id may hold any characters), else
 * Slurm's `SLURM_JOB_ID` (`slurm_<id>`, `_<SLURM_STEP_ID>` when set). Undefined when neither is set.
 */
export function sharedHashFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const te = env['TORCHELASTIC_RUN_ID']
  if (te !== undefined && te !== '') return `te_${createHash('sha256').update(te).digest('hex').slice(0, 24)}`
  const job = env['SLURM_JOB_ID']
  if (job !== undefined && /^[A-Za-z0-9_]{1,40}$/.test(job)) {
    const step = env['SLURM_STEP_ID']
    return `slurm_${job}${step !== undefined && /^[A-Za-z0-9_]{1,16}$/.test(step) ? `_${step}` : ''}`
  }
  return undefined
}

/** The session options given to `watch()` (already type-checked), completed from the environment. */
export interface GivenSessionOptions {
  hash?: unknown
  server?: unknown
  token?: unknown
  rank?: unknown
  worldSize?: unknown
  finishOn?: unknown
}

/**
 * Decides the session of a `watch()` call: options in code win over the environment. A run of
 * more than one rank needs a hash shared by its ranks: given, or derived from the launcher.
 */
export function resolveSessionChoice(options: GivenSessionOptions, env: NodeJS.ProcessEnv = process.env): SessionChoice {
  const servers =
    checkServers(options.server) ??
    checkServers(
      env[SERVER_ENV]?.split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '') || undefined,
    )
  const token = checkToken(options.token) ?? (env[TOKEN_ENV] !== undefined && env[TOKEN_ENV] !== '' ? checkToken(env[TOKEN_ENV]) : undefined)
  let rank = checkRank(options.rank)
  let worldSize = checkWorldSize(options.worldSize)
  const finishOn = checkFinishOn(options.finishOn) ?? 'all'
  if (rank === undefined && worldSize === undefined) {
    const launched = rankFromEnv(env)
    if (launched !== undefined) {
      rank = launched.rank
      worldSize = launched.worldSize
    }
  }
  if (worldSize === undefined && rank !== undefined) throw new InvalidOptionError('Expected `worldSize` with `rank`: a run of many ranks needs both')
  if (worldSize !== undefined && rank === undefined) rank = 0
  if (worldSize === undefined || worldSize <= 1 || rank === undefined) return { servers, token, ranked: undefined, derivedHash: undefined }
  if (rank >= worldSize) throw new OutOfRangeError(`Expected \`rank\` to be below \`worldSize\` (${worldSize}), got ${rank}`)
  let derivedHash: string | undefined
  if (options.hash === undefined) {
    derivedHash = sharedHashFromEnv(env)
    if (derivedHash === undefined) {
      throw new InvalidOptionError(`Expected \`hash\` for a run of ${worldSize} ranks: every rank must name the same run (give \`hash\`, or launch with torchrun or Slurm, whose job id it is derived from)`)
    }
    checkRunHash(derivedHash)
  }
  return { servers, token, ranked: { rank, worldSize, finishOn }, derivedHash }
}
