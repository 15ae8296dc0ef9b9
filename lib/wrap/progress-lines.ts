/**
 * Which output of a wrapped command counts as progress: a line, ended by `\n` or `\r` (a tqdm
 * bar redraws itself with `\r`, so each redraw is a line), or only lines that match a pattern.
 * Fed the raw chunks of a stream; the chunks themselves are passed through elsewhere, untouched.
 *
 * Without a pattern a chunk costs two byte searches: no decoding, no copying, whatever its size.
 * @module
 */
import { StringDecoder } from 'node:string_decoder'

const LF = 0x0a
const CR = 0x0d

/**
 * How much of one line is kept for matching a pattern (its start: where a step counter or a
 * tqdm bar's percentage is). A longer line still counts as one line.
 */
export const MAX_MATCHED_LINE_CHARS = 16 * 1024

/** Options of a {@link ProgressLines}. */
export interface ProgressLinesOptions {
  /** Only lines matching it count. Default: every line. */
  pattern?: RegExp
  /** Called once per chunk in which at least one line counted. */
  onProgress(): void
}

/** Finds progress lines in one output stream. */
export class ProgressLines {
  readonly #pattern: RegExp | undefined
  readonly #onProgress: () => void
  readonly #decoder = new StringDecoder('utf8')
  /** The start of the line not yet ended (only kept with a pattern). */
  #partial = ''

  constructor(options: ProgressLinesOptions) {
    this.#pattern = options.pattern === undefined ? undefined : new RegExp(options.pattern.source, options.pattern.flags.replace(/[gy]/g, ''))
    this.#onProgress = options.onProgress
  }

  /** Looks at the next chunk of the stream. */
  push(chunk: Buffer): void {
    if (this.#pattern === undefined) {
      if (chunk.indexOf(LF) >= 0 || chunk.indexOf(CR) >= 0) this.#onProgress()
      return
    }
    if (this.#matchLines(this.#decoder.write(chunk))) this.#onProgress()
  }

  #matchLines(text: string): boolean {
    const pattern = this.#pattern as RegExp
    let counted = false
    let start = 0
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i)
      if (code !== LF && code !== CR) continue
      const line = this.#partial + text.slice(start, Math.min(i, start + MAX_MATCHED_LINE_CHARS))
      this.#partial = ''
      start = i + 1
      // The empty "line" between the `\r` and `\n` of a CRLF is no line.
      if (!counted && line !== '' && pattern.test(line)) counted = true
    }
    if (start < text.length && this.#partial.length < MAX_MATCHED_LINE_CHARS) {
      this.#partial = (this.#partial + text.slice(start)).slice(0, MAX_MATCHED_LINE_CHARS)
    }
    return counted
  }
}
