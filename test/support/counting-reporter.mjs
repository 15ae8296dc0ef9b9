// A tap reporter that passes the TAP stream through unchanged and ends with the line
// `N passed, N failed` (CI reads that line; tap's own `# { total, pass, fail }` it does not).
// Counts are tap's: assertions, not test blocks.
import { Transform } from 'node:stream'

export default class CountingReporter extends Transform {
  #tail = ''
  #pass = 0
  #fail = 0
  #seen = false

  _transform(chunk, _encoding, callback) {
    const text = this.#tail + chunk.toString()
    const lines = text.split('\n')
    this.#tail = lines.pop() ?? ''
    for (const line of lines) this.#read(line)
    callback(null, chunk)
  }

  _flush(callback) {
    if (this.#tail) this.#read(this.#tail)
    const failed = this.#seen ? this.#fail : Math.max(this.#fail, 1)
    callback(null, `\n${this.#pass} passed, ${failed} failed\n`)
  }

  #read(line) {
    // The root summary, e.g. `# { total: 12, pass: 12, fail: 0 }`; the last one wins.
    const summary = /^#\s*\{\s*total:\s*(\d+),\s*pass:\s*(\d+)(?:,\s*fail:\s*(\d+))?/.exec(line.trim())
    if (summary) {
      this.#seen = true
      this.#pass = Number(summary[2])
      this.#fail = Number(summary[3] ?? 0)
    }
  }
}
