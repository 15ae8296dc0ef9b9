/**
 * Text from outside (files under `.aim/`, notifier configuration, run reasons) made safe to
 * show: on one log line, or on a terminal. A newline in a value would let it forge a log line of
 * its own; an escape sequence would let it recolour, move the cursor or retitle a terminal.
 * A leaf module: it imports nothing.
 * @module
 */

// C0 controls, DEL and C1 controls (U+0080..U+009F: a terminal may read U+009B as ESC [), plus
// the Unicode line and paragraph separators, which some viewers break lines at.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g

function escapeControl(c: string): string {
  if (c === '\n') return '\\n'
  if (c === '\r') return '\\r'
  if (c === '\t') return '\\t'
  const code = c.charCodeAt(0)
  return code > 0xff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`
}

/**
 * One line of text: every control character (newlines included) written as a visible escape
 * (`\n`, `\x1b`, …), so the value can never end a line or drive a terminal. Cut to `max`
 * characters (with `...`) when longer.
 */
export function oneLine(value: string, max = Infinity): string {
  const escaped = value.replace(CONTROL, escapeControl)
  return escaped.length > max ? `${escaped.slice(0, Math.max(0, max - 3))}...` : escaped
}

// ESC-introduced sequences (CSI with parameters, OSC up to BEL or ST, two-character escapes),
// and their 8-bit C1 forms.
// eslint-disable-next-line no-control-regex
const TERMINAL_SEQUENCE = /(?:\u001b\[|\u009b)[\u0030-\u003f]*[\u0020-\u002f]*[\u0040-\u007e]?|(?:\u001b\]|\u009d)[^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[\u0020-\u002f]*[\u0030-\u007e]?/g

/**
 * Text for a terminal: escape sequences removed whole, and any other control character (a
 * newline too: config text is one field) shown as a visible escape.
 */
export function forTerminal(value: string): string {
  return oneLine(value.replace(TERMINAL_SEQUENCE, ''))
}
