/**
 * The repo actor's worker entry, run by piscina. Thin on purpose: all logic is in service.ts,
 * which is tested in-process. The task returns as soon as the service listens on its port; the
 * thread then lives on its port and timers (piscina's `atomics: 'disabled'` keeps its event loop
 * running between tasks), and it never keeps the training process alive by itself.
 * @module
 */
import { startActorService } from './service.js'
import type { ActorStartup } from './protocol.js'

export default async function startActor(startup: ActorStartup): Promise<void> {
  await startActorService(startup)
}
