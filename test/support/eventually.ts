// The one way tests wait for something to become true: poll a check until it gives a value (or
// true), with a generous time limit that names what never happened. Real time passes only here
// and in the processes under test; the tests themselves never sleep before asserting.

/** Options of {@link eventually}. */
export interface EventuallyOptions {
  /** Give up after this long, ms. Default 60 000: generous for a loaded 2-core machine. */
  timeoutMs?: number
  /** Wait between checks, ms. Default 25. */
  intervalMs?: number
}

/**
 * Resolves with the first value `check` gives that is neither `undefined`, `null` nor `false`;
 * rejects after `timeoutMs` with an error naming `what`.
 */
export async function eventually<T>(check: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, options: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000
  const intervalMs = options.intervalMs ?? 25
  const giveUpAt = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== null && value !== false) return value
    if (Date.now() > giveUpAt) throw new Error(`never happened within ${timeoutMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
