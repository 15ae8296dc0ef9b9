/**
 * Where things live in a repo. Python Aim keeps everything under `<root>/.aim/` (the folder
 * name can be changed with the environment variable `__AIM_REPO_NAME__`); we add `status/`
 * beside Aim's own folders. Every path built from an outside string goes through
 * {@link safeChild}, so a hostile run hash or notifier id can never point outside the repo.
 * @module
 */
import { existsSync } from 'node:fs'
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path'
import { AimStatusError, ErrorCodes, InvalidIdError, describeValue } from './errors.js'

/** The name of Aim's folder inside a repo root: `.aim`, or `$__AIM_REPO_NAME__`. */
export function aimFolderName(env: NodeJS.ProcessEnv = process.env): string {
  const name = env['__AIM_REPO_NAME__']
  // The variable names a single folder; anything that could climb or nest is ignored.
  return name !== undefined && /^[A-Za-z0-9._-]{1,64}$/.test(name) && name !== '.' && name !== '..' ? name : '.aim'
}

/**
 * The repo root as Aim finds it: the given folder, or else the nearest folder upward from
 * `cwd` that holds `.aim`, or else `cwd` itself.
 */
export function resolveRepoRoot(repo: string | undefined, cwd: string = process.cwd()): string {
  if (repo !== undefined) {
    const root = resolve(cwd, repo)
    // Aim accepts the `.aim` folder itself as the repo; so do we.
    return root.endsWith(`${sep}${aimFolderName()}`) ? dirname(root) : root
  }
  let dir = resolve(cwd)
  for (;;) {
    if (existsSync(join(dir, aimFolderName()))) return dir
    const parent = dirname(dir)
    if (parent === dir) return resolve(cwd)
    dir = parent
  }
}

/** Absolute paths of the folders and files a repo uses. */
export interface RepoPaths {
  root: string
  /** `<root>/.aim` */
  aim: string
  /** `<root>/.aim/status`: our snapshots, leases, exit markers and daemon logs. */
  status: string
  /** `<root>/.aim/check_ins`: Aim's check-in files. */
  checkins: string
  /** `<root>/.aim/ext/notifications`: Aim's notifier configuration and state. */
  notifications: string
  /** `<root>/.aim/ext/notifications/config.json` */
  config: string
  /** `<root>/.aim/ext/notifications/last_run_notifications` */
  lastRunNotifications: string
}

/** The paths of a repo root (already resolved). */
export function repoPaths(root: string): RepoPaths {
  if (!isAbsolute(root)) throw new AimStatusError(ErrorCodes.INVALID_PATH, `repo root must be absolute, got ${describeValue(root)}`)
  const aim = join(root, aimFolderName())
  const notifications = join(aim, 'ext', 'notifications')
  return {
    root,
    aim,
    status: join(aim, 'status'),
    checkins: join(aim, 'check_ins'),
    notifications,
    config: join(notifications, 'config.json'),
    lastRunNotifications: join(notifications, 'last_run_notifications'),
  }
}

/**
 * The repo root of a path under `<root>/.aim/`: the parent of its nearest ancestor named like
 * Aim's folder; null when it has none.
 */
export function repoRootOf(path: string): string | null {
  const name = aimFolderName()
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    if (basename(dir) === name) return dirname(dir)
  }
  return null
}

/** Run hashes: Aim makes 24 hex digits; we accept what Aim's file names can carry safely. */
export const RUN_HASH_PATTERN = /^[A-Za-z0-9_]{1,64}$/

/** Throws `AIM_STATUS_INVALID_ID` unless `hash` is a safe run hash. */
export function checkRunHash(hash: unknown, label = 'hash'): string {
  if (typeof hash !== 'string' || !RUN_HASH_PATTERN.test(hash)) {
    throw new InvalidIdError(`Expected \`${label}\` to be 1 to 64 characters of [A-Za-z0-9_], got ${describeValue(hash)}`)
  }
  return hash
}

/**
 * Joins one name onto a folder, refusing anything that is not a single plain path segment
 * (separators, `.`/`..`, NUL, empty). The result is checked to stay inside `folder`.
 */
export function safeChild(folder: string, name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name) || name.length > 255) {
    throw new AimStatusError(ErrorCodes.INVALID_PATH, `Refusing the file name ${describeValue(name)}: not a single plain path segment`)
  }
  const child = join(folder, name)
  if (dirname(child) !== resolve(folder)) {
    throw new AimStatusError(ErrorCodes.INVALID_PATH, `Refusing the file name ${describeValue(name)}: it leaves ${folder}`)
  }
  return child
}
