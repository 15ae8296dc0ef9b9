/**
 * The package's internal reach into its own objects, for its tests: members keyed by
 * {@link testHooks} end a watcher's thread as a crash would, or hand a watcher a message as if
 * its thread had sent it. Not exported from the package entry; the members are tagged internal, so
 * the published types leave them out (`stripInternal`).
 * @module
 */

/** The key of an object's test hooks. */
export const testHooks: unique symbol = Symbol('@aim/status test hooks')

/** The test hooks of an `ActorHost`. */
export interface HostTestHooks {
  /** Terminates the actor thread without warning, as a crash would. */
  terminateThread(): Promise<void>
}

/** The test hooks of a `Watcher`. */
export interface WatcherTestHooks extends HostTestHooks {
  /** Handles `message` as if the watcher's thread had sent it. */
  receiveFromThread(message: unknown): void
}
