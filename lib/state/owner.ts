/**
 * Who owns a snapshot: a random id, the process (pid and start time) and the machine it runs
 * on. Liveness is judged from this record: on the same host a pid that no longer exists, or
 * that now belongs to a process started at another time (a reused pid), means the owner is
 * dead; on another host nothing can be known and the lease's staleness decides.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { AimStatusError, ErrorCodes, InvalidIdError, describeValue } from '../errors.js'

/** Who holds a snapshot: a training process's repo actor, or the watcher daemon. */
export type OwnerKind = 'process' | 'daemon'

/** An owner's identity, as stored in snapshots, lease fences and exit markers. */
export interface OwnerInfo {
  /** A random token, unique per owner; names its files (`owners/<id>.json`). */
  id: string
  kind: OwnerKind
  pid: number
  /** The host name, for people reading the files. */
  host: string
  /**
   * What makes a pid meaningful: on Linux the kernel's boot id and the pid namespace, so two
   * containers that share a host name but not a pid space are not taken for one host.
   * Elsewhere the host name.
   */
  hostId: string
  /** When the process started, epoch ms (on Linux from `/proc`, elsewhere an estimate). */
  startTime: number
  /**
   * The process start time in clock ticks since boot (`/proc/<pid>/stat` field 22), or null
   * off Linux. Compared exactly, it tells a reused pid from the owner.
   */
  startTicks: number | null
}

/** What is known about whether an owner still runs. */
export type OwnerLiveness = 'alive' | 'dead' | 'unknown'

/** Owner ids: safe as one file-name segment. */
export const OWNER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** Throws `AIM_STATUS_INVALID_ID` unless `id` is a safe owner id. */
export function checkOwnerId(id: unknown, label = 'owner id'): string {
  if (typeof id !== 'string' || !OWNER_ID_PATTERN.test(id)) {
    throw new InvalidIdError(`Expected \`${label}\` to be 1 to 64 characters of [A-Za-z0-9_-], got ${describeValue(id)}`)
  }
  return id
}

/** A new random owner id (24 hex digits, like Aim's run hashes). */
export function newOwnerId(): string {
  return randomBytes(12).toString('hex')
}

// USER_HZ: the unit of /proc/<pid>/stat times. It is 100 on every Linux architecture Node
// supports (the kernel ABI fixes it for user space; see proc(5), "clock ticks").
const TICKS_PER_SECOND = 100

interface ProcStat {
  state: string
  startTicks: number
}

/** Reads state and start ticks from `/proc/<pid>/stat`; null when there is no such process. */
function readProcStat(pid: number): ProcStat | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or ')': split
  // after the last ')'. What follows starts at field 3 (state); starttime is field 22.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const state = fields[0]
  const startTicks = Number(fields[19])
  if (state === undefined || !Number.isSafeInteger(startTicks)) return null
  return { state, startTicks }
}

let cachedBootTimeMs: number | null | undefined

/** The boot time from `/proc/stat` (`btime`), epoch ms; null off Linux. */
function bootTimeMs(): number | null {
  if (cachedBootTimeMs !== undefined) return cachedBootTimeMs
  cachedBootTimeMs = null
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'))
    if (match?.[1] !== undefined) cachedBootTimeMs = Number(match[1]) * 1000
  } catch {
    // Not Linux, or /proc not mounted: fall back to estimates.
  }
  return cachedBootTimeMs
}

let cachedHostId: string | undefined

/** This process's host identity (see {@link OwnerInfo.hostId}). */
export function currentHostId(): string {
  if (cachedHostId !== undefined) return cachedHostId
  let id = `host:${hostname()}`
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim()
    const pidNamespace = readlinkSync('/proc/self/ns/pid')
    id = `linux:${bootId}:${pidNamespace}`
  } catch {
    // Keep the host name: pids are then trusted within a host name.
  }
  cachedHostId = id
  return id
}

/** The identity of this process as an owner of the given kind, with a fresh random id. */
export function currentOwner(kind: OwnerKind): OwnerInfo {
  if (kind !== 'process' && kind !== 'daemon') {
    throw new AimStatusError(ErrorCodes.INVALID_OPTION, `Expected the owner kind to be 'process' or 'daemon', got ${describeValue(kind)}`)
  }
  const stat = readProcStat(process.pid)
  const boot = bootTimeMs()
  const startTicks = stat?.startTicks ?? null
  const startTime = startTicks !== null && boot !== null ? boot + (startTicks * 1000) / TICKS_PER_SECOND : Math.round(Date.now() - process.uptime() * 1000)
  return { id: newOwnerId(), kind, pid: process.pid, host: hostname(), hostId: currentHostId(), startTime, startTicks }
}

/**
 * Whether an owner still runs. Same host: `/proc` (or signal 0 where there is no `/proc`)
 * plus the start-time check, so a reused pid is `dead`; a zombie counts as dead. Another host:
 * `unknown` (leave it to the lease's staleness).
 */
export function ownerLiveness(owner: OwnerInfo): OwnerLiveness {
  if (owner.hostId !== currentHostId()) return 'unknown'
  if (owner.startTicks !== null) {
    const stat = readProcStat(owner.pid)
    if (stat !== null) return stat.state === 'Z' || stat.state === 'X' || stat.startTicks !== owner.startTicks ? 'dead' : 'alive'
    // No readable entry: gone, or hidden by a `hidepid` mount of /proc. Signal 0 tells which.
  }
  try {
    process.kill(owner.pid, 0)
    return 'alive'
  } catch (error) {
    // EPERM: the pid exists but belongs to another user. Without a start time to compare,
    // a reused pid cannot be told apart, so an existing pid counts as alive.
    return (error as NodeJS.ErrnoException).code === 'ESRCH' ? 'dead' : 'alive'
  }
}

/** Checks a value read from a file as an {@link OwnerInfo}; throws a plain message otherwise. */
export function parseOwnerInfo(value: unknown, label: string): OwnerInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${label} is not an object`)
  const o = value as Record<string, unknown>
  checkOwnerId(o['id'], `${label}.id`)
  if (o['kind'] !== 'process' && o['kind'] !== 'daemon') throw new Error(`${label}.kind is ${describeValue(o['kind'])}`)
  if (!Number.isSafeInteger(o['pid']) || (o['pid'] as number) <= 0) throw new Error(`${label}.pid is ${describeValue(o['pid'])}`)
  for (const key of ['host', 'hostId'] as const) {
    if (typeof o[key] !== 'string' || (o[key] as string).length > 512) throw new Error(`${label}.${key} is ${describeValue(o[key])}`)
  }
  if (typeof o['startTime'] !== 'number' || !Number.isFinite(o['startTime'])) throw new Error(`${label}.startTime is ${describeValue(o['startTime'])}`)
  const ticks = o['startTicks']
  if (ticks !== null && (!Number.isSafeInteger(ticks) || (ticks as number) < 0)) throw new Error(`${label}.startTicks is ${describeValue(ticks)}`)
  return {
    id: o['id'] as string,
    kind: o['kind'],
    pid: o['pid'] as number,
    host: o['host'] as string,
    hostId: o['hostId'] as string,
    startTime: o['startTime'],
    startTicks: ticks as number | null,
  }
}
