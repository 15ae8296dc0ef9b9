/**
 * The repo actor's worker entry, run by piscina. Thin on purpose: all logic is in service.ts,
 * which is tested in-process. The task returns as soon as the service listens on its port; the
 * thread then lives on its port and timers (piscina's `atomics: 'disabled'` keeps its event loop
 * running between tasks), and it never keeps the training process alive by itself.
 * @module
 */
import { toPlainError, type PlainError } from '../errors.js'
import { startActorService } from './service.js'
import type { ActorStartup } from './protocol.js'

/**
 * Resolves undefined once the service listens; a failure to start resolves its plain form
 * instead of throwing, because an error thrown from a task reaches the host without its `code`
 * (structured clone keeps only name, message and stack).
 */
export default async function startActor(startup: ActorStartup): Promise<{ startFailed: PlainError } | undefined> {
  try {
    await startActorService(startup)
    return undefined
  } catch (error) {
    return { startFailed: toPlainError(error) }
  }
}
