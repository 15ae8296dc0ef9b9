#!/usr/bin/env node
// The `aim-watcher` executable: runs the program and owns the process's exit code. The only
// place in the package that ends the process.
import { constants } from 'node:os'
import { runProgram } from './main.js'

runProgram(process.argv.slice(2)).then(
  ({ code, signal }) => {
    process.exitCode = code
    if (signal === undefined) return
    // `run` of a command killed by a signal dies of the same signal, as a shell would show it,
    // once what it wrote has left. The code stays the answer where the signal does not end
    // the process (Node ignores SIGPIPE, say).
    process.exitCode = 128 + (constants.signals[signal] ?? 0)
    process.stdout.write('', () =>
      process.stderr.write('', () => {
        for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const) process.removeAllListeners(name)
        process.kill(process.pid, signal)
      }),
    )
  },
  (error: unknown) => {
    process.stderr.write(`aim-watcher: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
