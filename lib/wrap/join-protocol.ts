/**
 * How a wrapped command's own code joins the wrapper's run (`aim-watcher run`), shared by both
 * ends. The wrapper puts three variables in the command's environment; a `watch()` that finds
 * them (for the same repo, and no other hash asked for) connects to the wrapper's socket and
 * reports into the wrapper's run instead of opening a second one.
 *
 * On the socket, one JSON document per line each way. The joining side sends `join` first and
 * waits for `welcome` (or `refused`); then any number of `progress`, `finish`, `fail` and
 * `settle`; the wrapper answers each `settle` with `settled` once everything sent before it has
 * been applied (a failure: recorded and under way to the notifiers), and sends the run's
 * transitions as `event`.
 * @module
 */
import type { RunEvent } from '../model.js'

/** The wrapper's run hash. Python code can join too: `aim.Run(run_hash=os.environ['AIM_STATUS_RUN_HASH'])`. */
export const RUN_HASH_ENV = 'AIM_STATUS_RUN_HASH'
/** The wrapper's repo root (absolute). */
export const RUN_REPO_ENV = 'AIM_STATUS_REPO'
/** The path of the wrapper's Unix socket that a Node `watch()` joins through. */
export const RUN_SOCKET_ENV = 'AIM_STATUS_RUN_SOCKET'

/** The protocol's version, in `join`. */
export const JOIN_PROTOCOL_VERSION = 1

/** The longest line either side accepts, in characters. */
export const MAX_JOIN_LINE_CHARS = 64 * 1024

/** Joining side -> wrapper. */
export type JoinRequest =
  { kind: 'join'; version: number; hash: string; pid: number } | { kind: 'progress'; expectNextIn: number } | { kind: 'finish' } | { kind: 'fail'; reason: string; logTail?: string } | { kind: 'settle'; id: number }

/** Wrapper -> joining side. */
export type JoinReply = { kind: 'welcome'; hash: string; grace: number; name?: string; experiment?: string } | { kind: 'refused'; reason: string } | { kind: 'settled'; id: number } | { kind: 'event'; event: RunEvent }

/** Splits a stream of text into JSON lines; a line too long or not JSON is passed as `undefined`. */
export function jsonLines(onLine: (value: unknown) => void): (chunk: string) => void {
  let buffer = ''
  return (chunk: string) => {
    buffer += chunk
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch {
        value = undefined
      }
      onLine(value)
    }
    if (buffer.length > MAX_JOIN_LINE_CHARS) {
      buffer = ''
      onLine(undefined)
    }
  }
}
