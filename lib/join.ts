/**
 * Joining a wrapper's run: code started by `aim-watcher run` finds `AIM_STATUS_RUN_HASH`,
 * `AIM_STATUS_REPO` and `AIM_STATUS_RUN_SOCKET` in its environment, and its `watch()` reports
 * into that run (through the wrapper's socket) instead of opening a second one. The handle is
 * an ordinary {@link Run} (the same hot path, the same coalescing) on another channel.
 *
 * What a joined handle does: `reportProgress(s)` is a promise on the wrapper's run, as an
 * output line is; `reportFailure(reason)` fails the run at once with that reason (and the
 * wrapper's stderr tail); `reportSuccessfulFinish()` clears the deadline, and the command's
 * exit status then decides how the run ends; `close()` lets go. Events of the run reach the
 * handle as usual.
 * @module
 */
import { connect } from 'node:net'
import { systemClock } from './clock.js'
import type { RunEvent } from './model.js'
import { resolveRepoRoot } from './repo.js'
import { Run, type RunChannel } from './run.js'
import { DeadlineTimer } from './timer.js'
import type { WatchOptions } from './options.js'
import { JOIN_PROTOCOL_VERSION, RUN_HASH_ENV, RUN_REPO_ENV, RUN_SOCKET_ENV, jsonLines, type JoinReply, type JoinRequest } from './wrap/join-protocol.js'

/** How long a `watch()` waits for the wrapper's welcome before watching on its own. */
export const JOIN_TIMEOUT_MS = 5000

/** The wrapper's run this `watch()` call should join, or undefined (see the module comment). */
export function joinTarget(options: WatchOptions, env: NodeJS.ProcessEnv = process.env): { hash: string; repo: string; socket: string } | undefined {
  const hash = env[RUN_HASH_ENV]
  const repo = env[RUN_REPO_ENV]
  const socket = env[RUN_SOCKET_ENV]
  if (!hash || !repo || !socket || options === null || typeof options !== 'object') return undefined
  if (options.join === false) return undefined
  if (options.hash !== undefined && options.hash !== hash) return undefined
  if (options.repo !== undefined && typeof options.repo === 'string' && resolveRepoRoot(options.repo) !== resolveRepoRoot(repo)) return undefined
  return { hash, repo, socket }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Joins the wrapper's run, or resolves undefined when the wrapper cannot be reached (it is
 * said on standard error, and the caller watches on its own).
 */
export async function joinWrapperRun(target: { hash: string; socket: string }): Promise<Run | undefined> {
  const socket = connect(target.socket)
  socket.setEncoding('utf8')
  // Made once the wrapper has answered; the socket's handlers, set up before, find it then.
  // eslint-disable-next-line prefer-const
  let run: Run | undefined
  let nextSettle = 1
  const settles = new Map<number, () => void>()
  const settleAll = (): void => {
    for (const resolve of settles.values()) resolve()
    settles.clear()
  }
  const welcome = new Promise<Extract<JoinReply, { kind: 'welcome' }> | string>((resolve) => {
    const timer = new DeadlineTimer(systemClock, () => resolve(`no answer within ${JOIN_TIMEOUT_MS} ms`))
    timer.arm(systemClock.now() + JOIN_TIMEOUT_MS)
    socket.on('error', (error) => {
      timer.close()
      resolve(error.message)
    })
    socket.on('close', () => {
      timer.close()
      resolve('the wrapper closed the connection')
      settleAll()
    })
    socket.on(
      'data',
      jsonLines((value) => {
        if (!isRecord(value)) return
        switch (value['kind']) {
          case 'welcome':
            timer.close()
            resolve(value as Extract<JoinReply, { kind: 'welcome' }>)
            return
          case 'refused':
            timer.close()
            resolve(String(value['reason']))
            return
          case 'settled': {
            const id = value['id'] as number
            settles.get(id)?.()
            settles.delete(id)
            if (settles.size === 0) socket.unref()
            return
          }
          case 'event':
            if (isRecord(value['event'])) run?.deliver(value['event'] as unknown as RunEvent)
            return
          default:
            return
        }
      }),
    )
  })
  const write = (request: JoinRequest): void => {
    if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(request)}\n`)
  }
  write({ kind: 'join', version: JOIN_PROTOCOL_VERSION, hash: target.hash, pid: process.pid })
  const answer = await welcome
  if (typeof answer === 'string') {
    socket.destroy()
    process.stderr.write(`@aim/status: could not join run ${target.hash} of the wrapping aim-watcher (${answer}); watching on its own\n`)
    return undefined
  }
  // Joined code must never be kept alive by its watcher: only a pending settle holds the socket.
  socket.unref()
  const channel: RunChannel = {
    post(message) {
      switch (message.kind) {
        case 'progress':
          write({ kind: 'progress', expectNextIn: message.expectNextIn })
          return
        case 'finish':
          write({ kind: 'finish' })
          return
        case 'fail':
          write({ kind: 'fail', reason: message.reason, ...(message.logTail !== undefined ? { logTail: message.logTail } : {}) })
          return
        case 'open':
          // The run is the wrapper's, opened already.
          return
        default:
          return
      }
    },
    settle() {
      if (socket.destroyed) return Promise.resolve()
      const id = nextSettle++
      socket.ref()
      return new Promise<void>((resolve) => {
        settles.set(id, resolve)
        write({ kind: 'settle', id })
      })
    },
    release() {
      socket.end()
    },
  }
  run = new Run({ hash: answer.hash, name: answer.name, experiment: answer.experiment, grace: answer.grace, checkins: false, channel })
  return run
}
