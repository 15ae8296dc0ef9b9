/**
 * The last lines a wrapped command wrote to standard error, as a terminal would have shown
 * them: a `\r` redraws the line (a progress bar leaves its last state, not a hundred), colour
 * and cursor escapes are dropped, each line and the whole are bounded. Secrets are scrubbed
 * when the text is taken ({@link LogTail.text}), since that is what leaves the machine.
 * @module
 */
import { StringDecoder } from 'node:string_decoder'

/** How many lines `aim-watcher run` keeps by default (`--tail`). */
export const DEFAULT_TAIL_LINES = 20

/** The longest line kept, in characters (its start; a line cut here ends with `…`). */
export const MAX_TAIL_LINE_CHARS = 1000

// CSI (colours, cursor moves), OSC (titles, links) and two-character escapes.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f]/g

/** A line as shown: what follows its last `\r`, escapes and other control characters dropped. */
export function visibleLine(raw: string): string {
  const trimmed = raw.replace(/\r+$/, '')
  const lastCr = trimmed.lastIndexOf('\r')
  const shown = (lastCr < 0 ? trimmed : trimmed.slice(lastCr + 1)).replace(ESCAPES, '').replace(CONTROLS, '')
  return shown.length > MAX_TAIL_LINE_CHARS ? `${shown.slice(0, MAX_TAIL_LINE_CHARS - 1)}…` : shown
}

/** Options of a {@link LogTail}. */
export interface LogTailOptions {
  /** How many lines are kept. Default: {@link DEFAULT_TAIL_LINES}. 0 keeps none. */
  lines?: number
  /** Applied to the text when it is taken. Default: none. */
  scrub?: (text: string) => string
}

/** Keeps the last lines of one stream. */
export class LogTail {
  readonly #max: number
  readonly #scrub: (text: string) => string
  readonly #decoder = new StringDecoder('utf8')
  /** Ended lines, oldest first, at most `#max`, already made visible. */
  readonly #lines: string[] = []
  /** The raw line not yet ended. */
  #current = ''

  constructor(options: LogTailOptions = {}) {
    this.#max = options.lines ?? DEFAULT_TAIL_LINES
    this.#scrub = options.scrub ?? ((text) => text)
  }

  /** Takes the next chunk of the stream. */
  push(chunk: Buffer): void {
    if (this.#max === 0) return
    const text = this.#decoder.write(chunk)
    let start = 0
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.#append(text.slice(start, nl))
      this.#commit()
      start = nl + 1
    }
    if (start < text.length) this.#append(text.slice(start))
  }

  #append(piece: string): void {
    this.#current += piece
    // A line that never ends (a bar redrawn for hours): keep only what a terminal would show.
    if (this.#current.length > 4 * MAX_TAIL_LINE_CHARS) this.#current = visibleLine(this.#current)
  }

  #commit(): void {
    this.#lines.push(visibleLine(this.#current))
    this.#current = ''
    if (this.#lines.length > this.#max) this.#lines.shift()
  }

  /** The kept lines (and the line being written, if any), joined by `\n`, scrubbed. */
  text(): string {
    const lines = [...this.#lines]
    const current = visibleLine(this.#current)
    if (current !== '') lines.push(current)
    while (lines.length > this.#max) lines.shift()
    return this.#scrub(lines.join('\n'))
  }
}
