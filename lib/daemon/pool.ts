/**
 * A few file-system tasks at once: an adoption mostly waits for its writes to become durable
 * (fsync), so a handful in flight overlap those waits instead of queueing them end to end.
 * @module
 */

/**
 * Runs `task` for items taken from `next()` with at most `width` in flight, until `next()` gives
 * undefined; resolves when every task started has ended. A task's failure is its own to handle.
 */
export async function drainConcurrently<T>(width: number, next: () => T | undefined, task: (item: T) => Promise<void>): Promise<void> {
  const lane = async (): Promise<void> => {
    for (let item = next(); item !== undefined; item = next()) await task(item)
  }
  await Promise.all(Array.from({ length: width }, lane))
}
