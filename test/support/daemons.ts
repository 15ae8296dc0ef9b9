// The daemons a test caused: found from the repo's daemon.log (each one logs its pid when it
// starts), ended by pid at the end of the test. A daemon left running would keep CI's pipe open.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { inspectLease } from '../../lib/state/lease.js'
import { daemonLeasePath, statusLayout } from '../../lib/state/layout.js'
import { repoPaths } from '../../lib/repo.js'
import { eventually } from './eventually.js'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The repo's daemon log, or '' before there is one. */
export function daemonLog(repo: string): string {
  const path = join(repo, '.aim', 'status', 'daemon.log')
  return existsSync(path) ? readFileSync(path, 'utf8') : ''
}

/** The pids of every daemon that logged its start in the repo. */
export function daemonPids(repo: string): number[] {
  return [...daemonLog(repo).matchAll(/daemon-started pid=(\d+)/g)].map((m) => Number(m[1]))
}

/** Whether a pid is still a daemon of this repo (not a reused pid). */
export function isDaemonOf(pid: number, repo: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    const state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1]
    return cmdline.includes(repo) && cmdline.includes('start') && state !== 'Z'
  } catch {
    return false
  }
}

/** Waits (polling, generously bounded) until `check` holds. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  await eventually(check, what, { timeoutMs })
}

/** The pid of the daemon holding the repo's sender lease, once one does. */
export async function senderPid(repo: string, timeoutMs = 30_000): Promise<number> {
  const path = daemonLeasePath(statusLayout(repoPaths(repo)))
  let pid: number | undefined
  await until(
    async () => {
      const lease = await inspectLease(path)
      pid = !lease.orphaned ? lease.holder?.pid : undefined
      return pid !== undefined
    },
    `a daemon holding ${repo}`,
    timeoutMs,
  )
  return pid as number
}

/** The pids of the running daemons of the repo, found in /proc (whether or not they logged). */
export function runningDaemons(repo: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      const at = args.indexOf('--repo')
      if (at >= 0 && args[at + 1] === repo && args.includes('start') && isDaemonOf(Number(name), repo)) pids.push(Number(name))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/**
 * Ends every daemon of the repo at the end of the test (SIGTERM, then SIGKILL), and waits for
 * each: those the repo's log names and those /proc shows, so that none outlives its test.
 */
export function endDaemonsAtTeardown(t: Test, repo: string): void {
  t.teardown(async () => {
    // Again until none is left: a standby or a daemon started meanwhile may show up only once
    // the first has gone.
    for (let round = 0; round < 5; round++) {
      const pids = [...new Set([...daemonPids(repo), ...runningDaemons(repo)])].filter((pid) => isDaemonOf(pid, repo))
      if (pids.length === 0) break
      for (const pid of pids) {
        process.kill(pid, 'SIGTERM')
        const end = Date.now() + 10_000
        while (isDaemonOf(pid, repo) && Date.now() < end) await sleep(25)
        if (!isDaemonOf(pid, repo)) continue
        process.kill(pid, 'SIGKILL')
        // A SIGKILL is delivered, not done: the folder goes only once the process has.
        const gone = Date.now() + 5_000
        while (isDaemonOf(pid, repo) && Date.now() < gone) await sleep(25)
      }
    }
  })
}
