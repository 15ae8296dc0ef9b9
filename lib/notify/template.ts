/**
 * Aim-style message templates: Python `str.format` syntax with dotted fields, `{run.hash}`,
 * and `{{` / `}}` for literal braces. A template is compiled (and so checked) when a notifier
 * is configured: an unknown variable is an error then, not when a run fails.
 * @module
 */
import { AimStatusError, ErrorCodes } from '../errors.js'
import type { RankState, RunEvent, RunInfo } from '../model.js'

const formatTime = (ms: number | null | undefined): string => (ms == null ? '' : new Date(ms).toISOString())

/**
 * The silent ranks of a run of many ranks (status `stalled`), first silent first: by deadline,
 * then by rank. Empty for a run without ranks.
 */
export function silentRanksOf(run: RunInfo): RankState[] {
  if (run.ranks === undefined) return []
  return run.ranks.filter((rank) => rank.status === 'stalled').sort((a, b) => (a.deadlineAt ?? Infinity) - (b.deadlineAt ?? Infinity) || a.rank - b.rank)
}

/** Every variable a template may use, with how it is read from an event. */
export const TEMPLATE_VARIABLES: Readonly<Record<string, (event: RunEvent) => string>> = {
  'run.hash': (e) => e.run.hash,
  'run.name': (e) => e.run.name ?? '',
  'run.experiment': (e) => e.run.experiment ?? '',
  'run.status': (e) => e.run.status,
  'run.reason': (e) => e.run.reason ?? '',
  'run.log_tail': (e) => e.run.logTail ?? '',
  'run.promised': (e) => String(e.run.expectNextIn),
  'run.grace': (e) => String(e.run.grace),
  'run.overdue': (e) => (e.overdueSeconds === undefined ? '' : e.overdueSeconds.toFixed(1)),
  'run.last_progress': (e) => formatTime(e.run.lastProgressAt),
  'run.deadline': (e) => formatTime(e.run.deadlineAt),
  'run.episode': (e) => String(e.run.episode),
  /** A run of many ranks: its silent ranks with their hosts, first silent first, e.g. `2 (gpu-3), 0 (gpu-1)`. */
  'run.silent_ranks': (e) =>
    silentRanksOf(e.run)
      .map((rank) => `${rank.rank} (${rank.host})`)
      .join(', '),
  'run.world_size': (e) => (e.run.worldSize === undefined ? '' : String(e.run.worldSize)),
  /** The host a run reporting over a session reports from. */
  'run.host': (e) => e.run.origin?.host ?? '',
  event: (e) => e.kind,
  time: (e) => formatTime(e.at),
  repo: (e) => e.repo,
  host: (e) => e.host,
  pid: (e) => String(e.pid),
}

type Piece = string | ((event: RunEvent) => string)

/** A checked template, ready to render events. */
export interface CompiledTemplate {
  readonly source: string
  render(event: RunEvent): string
}

const invalid = (source: string, why: string): AimStatusError => new AimStatusError(ErrorCodes.INVALID_TEMPLATE, `Invalid message template ${JSON.stringify(source)}: ${why}`)

/** Parses and checks a template; throws `AIM_STATUS_INVALID_TEMPLATE` naming the problem. */
export function compileTemplate(source: string): CompiledTemplate {
  if (typeof source !== 'string') throw invalid(String(source), 'a template must be a string')
  const pieces: Piece[] = []
  let literal = ''
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]
    if (ch === '{') {
      if (source[i + 1] === '{') {
        literal += '{'
        i++
        continue
      }
      const close = source.indexOf('}', i + 1)
      if (close < 0) throw invalid(source, `"{" at position ${i} is never closed (write "{{" for a literal brace)`)
      const field = source.slice(i + 1, close).trim()
      // Own fields only: `{constructor}`, `{__proto__}` or `{toString}` would otherwise find
      // Object.prototype's members and throw when a run fails, not now.
      const variable = Object.hasOwn(TEMPLATE_VARIABLES, field) ? TEMPLATE_VARIABLES[field] : undefined
      if (typeof variable !== 'function') {
        throw invalid(
          source,
          `unknown variable {${field}}; known: ${Object.keys(TEMPLATE_VARIABLES)
            .map((k) => `{${k}}`)
            .join(', ')}`,
        )
      }
      if (literal !== '') pieces.push(literal)
      literal = ''
      pieces.push(variable)
      i = close
    } else if (ch === '}') {
      if (source[i + 1] !== '}') throw invalid(source, `single "}" at position ${i} (write "}}" for a literal brace)`)
      literal += '}'
      i++
    } else {
      literal += ch
    }
  }
  if (literal !== '') pieces.push(literal)
  return {
    source,
    render(event: RunEvent): string {
      let out = ''
      for (const piece of pieces) out += typeof piece === 'string' ? piece : piece(event)
      return out
    },
  }
}
