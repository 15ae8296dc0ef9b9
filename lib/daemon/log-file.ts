/**
 * The daemon's log file (`status/daemon.log` when `ensureDaemon()` starts it): appended to
 * safely and rotated. The file sits in a shared folder: it is opened without following links and
 * only as a plain file with one link (anything else at its name is set aside and a fresh file
 * made), and it is rotated by size so a flood can never fill the disk: past `maxBytes` it is
 * renamed `daemon.log.1` (`.1` to `.2`, …) and a new file is started; `keep` old files are kept.
 * A failed write (a full disk) drops that line, never the daemon.
 * @module
 */
import { closeSync, fstatSync, lstatSync, renameSync, rmSync, writeSync } from 'node:fs'
import { STATE_FILE_MODE } from '../state/files.js'
import { openAppendReplacingSync } from '../state/safe-fs.js'

/** Default {@link LogFileOptions.maxBytes}: 10 MiB. */
export const DEFAULT_LOG_MAX_BYTES = 10 << 20
/** Default {@link LogFileOptions.keep}: 3 old files. */
export const DEFAULT_LOG_KEEP = 3

/** Options of {@link LogFile}. */
export interface LogFileOptions {
  /** Rotate when the file would grow past this many bytes. Default {@link DEFAULT_LOG_MAX_BYTES}. */
  maxBytes?: number
  /** How many rotated files (`.1` … `.keep`) are kept. Default {@link DEFAULT_LOG_KEEP}. */
  keep?: number
  /** Said once in the new file when an unsafe entry at the log's name was set aside. */
  onSetAside?: (aside: string) => void
}

/** An append-only, size-rotated log file. */
export class LogFile {
  readonly path: string
  readonly #maxBytes: number
  readonly #keep: number
  #fd: number
  #size: number
  #ino: number
  /** Lines that could not be written (a full disk, say). */
  dropped = 0

  constructor(path: string, options: LogFileOptions = {}) {
    this.path = path
    this.#maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES
    this.#keep = options.keep ?? DEFAULT_LOG_KEEP
    const { fd, setAsidePath } = openAppendReplacingSync(path, STATE_FILE_MODE)
    this.#fd = fd
    const info = fstatSync(fd)
    this.#size = info.size
    this.#ino = info.ino
    if (setAsidePath !== null) options.onSetAside?.(setAsidePath)
  }

  /** Appends one line (a newline is added). */
  writeLine(line: string): void {
    const data = Buffer.from(`${line}\n`)
    try {
      if (this.#fd < 0) this.#reopen()
      else if (this.#size > 0 && this.#size + data.length > this.#maxBytes) this.#rotate()
      writeSync(this.#fd, data)
      this.#size += data.length
    } catch {
      this.dropped += 1
    }
  }

  #rotate(): void {
    // Only our own file is rotated: if the name now holds something else (moved, replaced),
    // that entry is left alone and a fresh file is opened (or what is there set aside).
    let ours: boolean
    try {
      ours = lstatSync(this.path).ino === this.#ino
    } catch {
      ours = false
    }
    if (ours) {
      rmSync(`${this.path}.${this.#keep}`, { force: true })
      for (let n = this.#keep - 1; n >= 1; n--) {
        try {
          renameSync(`${this.path}.${n}`, `${this.path}.${n + 1}`)
        } catch {
          // Missing: fewer generations so far.
        }
      }
      if (this.#keep > 0) renameSync(this.path, `${this.path}.1`)
      else rmSync(this.path, { force: true })
    }
    this.close()
    this.#reopen()
  }

  #reopen(): void {
    const { fd } = openAppendReplacingSync(this.path, STATE_FILE_MODE)
    this.#fd = fd
    const info = fstatSync(fd)
    this.#size = info.size
    this.#ino = info.ino
  }

  /** Closes the file (a later line opens it again). */
  close(): void {
    const fd = this.#fd
    // Forgotten first: a closed descriptor's number may be reused by another open.
    this.#fd = -1
    if (fd >= 0) closeSync(fd)
  }
}
