/**
 * Hot reload of the notifier configuration: whoever delivers (the in-process actor, the
 * daemon) follows `config.json` so that `notifiers add|disable|…` take effect without a
 * restart.
 *
 * Two sources of change, because neither is enough alone: `fs.watch` on the notifications
 * folder reacts at once where the OS supports it, and a stat poll catches what it misses (NFS
 * and other network file systems deliver no inotify events for changes made on other hosts;
 * inotify watches can run out). Events are coalesced, and a change is reported only when the
 * file's content changed. A file caught half-edited by hand, or corrupt, is reported through
 * `onError` and the last good configuration stays in force.
 * @module
 */
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { DeadlineTimer } from '../timer.js'
import { OutOfRangeError, describeValue } from '../errors.js'
import type { RepoPaths } from '../repo.js'
import { readStateFile } from '../state/safe-fs.js'
import { parseNotificationsConfig, type NotificationsConfig } from './config.js'

/** Options of {@link watchNotificationsConfig}. */
export interface WatchConfigOptions {
  /** Where timers come from. Default: the system clock. */
  clock?: Clock
  /** How often the file is stat'ed, in ms, for file systems without change events. Default: 1000. */
  pollMs?: number
  /** How long a burst of change events is gathered before the file is read, in ms. Default: 50. */
  debounceMs?: number
  /** Whether to use `fs.watch` besides polling. Default: true. */
  useFsWatch?: boolean
  /** Called when the file cannot be read or parsed; the last good configuration stays. Default: ignore. */
  onError?: (error: Error) => void
}

/** A running watch; `close()` stops it and is safe to call twice. */
export interface ConfigWatch {
  close(): void
}

const checkMs = (name: string, value: number): number => {
  if (!Number.isFinite(value) || value < 0) throw new OutOfRangeError(`Expected \`${name}\` to be a number of ms from 0 up, got ${describeValue(value)}`)
  return value
}

/**
 * Follows the configuration. `onChange` is called once with the current configuration as soon
 * as it is read (so a caller needs no separate first read, and no change can fall between the
 * two), then after every change of content.
 */
export function watchNotificationsConfig(paths: RepoPaths, onChange: (config: NotificationsConfig) => void, options: WatchConfigOptions = {}): ConfigWatch {
  const clock = options.clock ?? systemClock
  const pollMs = checkMs('pollMs', options.pollMs ?? 1000)
  const debounceMs = checkMs('debounceMs', options.debounceMs ?? 50)
  const onError = options.onError ?? (() => undefined)
  const fileName = basename(paths.config)

  let closed = false
  let lastText: string | undefined // content of the last configuration reported (null file = '')
  let lastBadText: string | undefined // so one corrupt state is reported once
  let lastStat = ''
  let lastReadError: string | undefined
  // Armed while a burst of change events is gathered: the file is read when it fires.
  const debounce = new DeadlineTimer(clock, () => void read())
  // Armed for the next stat, `pollMs` after the last one ended.
  const pollTimer = new DeadlineTimer(clock, () => void poll())
  let reading = false
  let readAgain = false
  let watcher: FSWatcher | undefined

  const read = async (): Promise<void> => {
    if (closed) return
    if (reading) {
      readAgain = true
      return
    }
    reading = true
    try {
      // Never blocks on a FIFO nor follows a link (AIM_STATUS_UNSAFE_FILE, through onError).
      const text = (await readStateFile(paths.config)) ?? ''
      lastReadError = undefined
      if (closed || text === lastText) return
      let config: NotificationsConfig
      try {
        config = parseNotificationsConfig(paths.config, text === '' ? undefined : text)
      } catch (error) {
        if (text !== lastBadText) {
          lastBadText = text
          onError(error as Error)
        }
        return
      }
      lastText = text
      lastBadText = undefined
      onChange(config)
    } catch (error) {
      // One unreadable state (a FIFO, a link, no permission) is reported once, not every poll.
      const message = (error as Error).message
      if (message !== lastReadError) onError(error as Error)
      lastReadError = message
    } finally {
      reading = false
      if (readAgain && !closed) {
        readAgain = false
        void read()
      }
    }
  }

  const schedule = (): void => {
    if (closed || debounce.dueAt !== null) return
    debounce.arm(clock.now() + debounceMs)
  }

  const startFsWatch = (): void => {
    if (watcher !== undefined || options.useFsWatch === false) return
    try {
      // Not persistent: following the configuration must never keep a process alive.
      watcher = watch(paths.notifications, { persistent: false }, (_event, name) => {
        if (name === null || name === fileName) schedule()
      })
      watcher.on('error', () => {
        // The folder was removed or the watch broke: polling carries on, and re-arms this.
        watcher?.close()
        watcher = undefined
      })
    } catch {
      // The folder does not exist yet (re-tried on every poll) or the OS refuses: poll only.
      watcher = undefined
    }
  }

  const poll = async (): Promise<void> => {
    if (closed) return
    startFsWatch()
    let signature: string
    try {
      const s = await stat(paths.config)
      signature = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
    } catch {
      signature = 'missing'
    }
    if (signature !== lastStat) {
      lastStat = signature
      schedule()
    }
    if (!closed) pollTimer.arm(clock.now() + pollMs)
  }

  startFsWatch()
  void read()
  void poll()

  return {
    close() {
      if (closed) return
      closed = true
      watcher?.close()
      watcher = undefined
      debounce.close()
      pollTimer.close()
    },
  }
}
