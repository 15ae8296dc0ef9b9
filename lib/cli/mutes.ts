/**
 * `aim-watcher mute HASH (--for DURATION | --until-healthy)`, `unmute HASH` and `mutes`: the
 * repo's mutes (`status/mutes.json`), seen at once by every process and daemon of the repo.
 * @module
 */
import type { Command } from 'commander'
import { repoPaths } from '../repo.js'
import { muteFromRequest, mutesPath, readMutes, removeMute, setMute, type Mute } from '../state/mutes.js'
import { failWith, note, out, repoRoot } from './common.js'

const MUTE_FLAGS: Readonly<Record<string, string>> = { for: '--for', untilHealthy: '--until-healthy', reason: '--reason' }

/** How a mute reads in one line. */
export function describeMute(mute: Mute): string {
  const until = mute.untilHealthy ? 'until its next recovery or finish' : `until ${new Date(mute.until as number).toISOString()}`
  return `${mute.hash} muted ${until}${mute.reason !== undefined ? ` (${mute.reason})` : ''}`
}

export function registerMuteCommands(program: Command): void {
  program
    .command('mute')
    .description("record a run's transitions without sending them, for a while or until it is healthy again; the run need not have started")
    .argument('<HASH>', 'the run hash')
    .option('--for <DURATION>', 'how long: 90s, 30m, 2h, 1d, 1h30m or seconds (at most 30 days)')
    .option('--until-healthy', "until the run's next recovery or finish")
    .option('--reason <TEXT>', 'why (shown on the status page and by `mutes`)')
    .option('--json', 'print the mute as JSON')
    .action(async (hash: string, options: { for?: string; untilHealthy?: boolean; reason?: string; json?: boolean }, command: Command) => {
      const root = repoRoot(command, 'repo')
      let mute: Mute
      try {
        mute = muteFromRequest(
          hash,
          { ...(options.for !== undefined ? { for: options.for } : {}), ...(options.untilHealthy === true ? { untilHealthy: true } : {}), ...(options.reason !== undefined ? { reason: options.reason } : {}) },
          Date.now(),
        )
        await setMute(mutesPath(repoPaths(root)), mute)
      } catch (error) {
        throw failWith(error, MUTE_FLAGS)
      }
      out(options.json === true ? JSON.stringify(mute) : describeMute(mute))
    })
  program
    .command('unmute')
    .description("end a run's mute")
    .argument('<HASH>', 'the run hash')
    .action(async (hash: string, _options: unknown, command: Command) => {
      const root = repoRoot(command, 'repo')
      let removed: boolean
      try {
        removed = await removeMute(mutesPath(repoPaths(root)), hash, Date.now())
      } catch (error) {
        throw failWith(error)
      }
      if (removed) out(`${hash} unmuted`)
      else note(`${hash} was not muted`)
    })
  program
    .command('mutes')
    .description('list the mutes in force')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const root = repoRoot(command, 'repo')
      let mutes: Mute[]
      try {
        mutes = [...(await readMutes(mutesPath(repoPaths(root)), Date.now())).values()]
      } catch (error) {
        throw failWith(error)
      }
      if (options.json === true) out(JSON.stringify(mutes, null, 2))
      else if (mutes.length === 0) out('no mutes')
      else for (const mute of mutes) out(describeMute(mute))
    })
}
