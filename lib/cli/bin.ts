#!/usr/bin/env node
// The `aim-watcher` executable: runs the program and owns the process's exit code. The only
// place in the package that ends the process.
import { main } from './main.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`aim-watcher: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
