// reactor.watch(): readiness of a descriptor the caller owns (a pipe, a tty,
// an eventfd, an inotify fd, a serial device, a socket made elsewhere), as
// Twisted's addReader/addWriter and libuv's uv_poll_t give it.
import { constants } from 'node:os';
import { descriptorError, ReactorError } from './errors.js';
import type { NativeReactor } from './native.js';
import { invalidValue, validateBoolean, validateKeys, validateObject } from './validate.js';

/** What `reactor.watch()` and `watcher.update()` take. */
export interface WatchOptions {
  /** Report when reading would not block (bytes, or the end). */
  readable?: boolean | undefined;
  /** Report when writing would not block. */
  writable?: boolean | undefined;
}

/** What a watcher watches for now: `watcher.interest`. */
export interface WatchInterest {
  readonly readable: boolean;
  readonly writable: boolean;
}

/** What happened, for the callback: any of these may come together. */
export interface WatchEvent {
  /** Reading would not block: bytes wait, or the end (a read returns 0). */
  readonly readable: boolean;
  /** Writing would not block. */
  readonly writable: boolean;
  /**
   * The other end hung up: a pipe's writer closed, a socket's peer shut down
   * its sending side. Nothing more will arrive, so what is left can be read
   * now. Reported once: the watcher stops until `update()`.
   */
  readonly hangup: boolean;
  /**
   * An error condition, reported once (the watcher stops until `update()`):
   * a socket's pending error (`ECONNRESET`...), `EIO` for another descriptor
   * (its next read or write says which), or `EBADF` when the descriptor was
   * closed behind the watcher's back, which closes the watcher.
   */
  readonly error: ReactorError | undefined;
}

export type WatchCallback = (event: WatchEvent, watcher: Watcher) => void;

/** @internal What a watcher needs from its reactor. */
export interface WatcherHost {
  readonly native: NativeReactor;
  /** Throws ERR_REACTOR_CLOSED once the reactor is closed. */
  checkOpen(): void;
  /** The watcher is closed: its records are no longer for anyone. */
  forgetWatcher(watcher: Watcher): void;
}

// The interest bits native/poller.h's Interest gives them.
const enum Interest {
  Readable = 1,
  Writable = 2,
}

// A kWatch record's flags (native/loop.h WatchFlags).
const enum WatchFlag {
  Readable = 1,
  Writable = 2,
  Hangup = 4,
  Error = 8,
  Closed = 16,
}

const WATCH_KEYS = ['readable', 'writable'];

/** @internal The interest `options` asks for, each key absent keeping its value in `current`. */
export function parseWatchOptions(options: unknown, current: WatchInterest): WatchInterest {
  validateObject(options, 'options');
  validateKeys(options, 'options', WATCH_KEYS);
  const { readable, writable } = options as WatchOptions;
  return {
    readable: readable === undefined ? current.readable : validateBoolean(readable, 'options.readable'),
    writable: writable === undefined ? current.writable : validateBoolean(writable, 'options.writable'),
  };
}

/** @internal A watch() that asks for nothing would watch nothing: refused. */
export function checkWatchesSomething(interest: WatchInterest, options: unknown): void {
  if (!interest.readable && !interest.writable) {
    throw invalidValue('options', JSON.stringify(options), 'must ask for readable or writable (update() stops a watcher)');
  }
}

/** @internal */
export function interestBits(interest: WatchInterest): number {
  return (interest.readable ? Interest.Readable : 0) | (interest.writable ? Interest.Writable : 0);
}

/**
 * A descriptor watched for readiness: `reactor.watch(fd, options, callback)`.
 * Level-triggered: what is left unread (or writable) is reported again at
 * the next turn of the loop. The descriptor stays the caller's: `close()`
 * stops watching and never closes it. Close the watcher before the
 * descriptor; a descriptor closed first is the caller's error, reported as
 * `EBADF` where it can be seen.
 */
export class Watcher {
  #closed = false;
  #interest: WatchInterest;
  #ref = true;

  /** @internal Only reactor.watch() makes watchers (the constructor is private to the types). */
  static create(host: WatcherHost, id: number, fd: number, interest: WatchInterest, callback: WatchCallback): Watcher {
    return new Watcher(host, id, fd, interest, callback);
  }

  private constructor(
    private readonly host: WatcherHost,
    /** @internal native identity */ readonly id: number,
    /** The descriptor watched (still the caller's). */
    readonly fd: number,
    interest: WatchInterest,
    private readonly callback: WatchCallback,
  ) {
    this.#interest = Object.freeze(interest);
  }

  /** True once close() ran, the callback threw, the reactor closed or the descriptor turned out closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** What it watches for now; both false while stopped by `update()`. */
  get interest(): WatchInterest {
    return this.#interest;
  }

  /**
   * Changes what is watched for; a key left out keeps its value, and both
   * false stops the watcher (it stays open). Also restarts a watcher stopped
   * after a hang-up or an error, which is then reported again if it still
   * holds. Throws ERR_WATCHER_CLOSED once closed, and EBADF (closing the
   * watcher) when the descriptor turns out to have been closed.
   */
  update(options: WatchOptions): void {
    const interest = parseWatchOptions(options, this.#interest);
    this.host.checkOpen();
    if (this.#closed) throw new ReactorError('ERR_WATCHER_CLOSED', `the watcher of fd ${this.fd} is closed`);
    const result = this.host.native.watchUpdate(this.id, interestBits(interest));
    if (result < 0) {
      if (result === -EBADF) this.stopped(); // the native side let go of it
      throw descriptorError(-result, 'watch', this.fd);
    }
    this.#interest = Object.freeze(interest);
  }

  /** Stops watching; the descriptor stays open. Again, it does nothing. */
  close(): void {
    if (this.#closed) return;
    this.host.checkOpen();
    this.host.native.close(this.id);
    this.stopped();
  }

  /** Lets the process exit while this watcher is open, like `unref()` on Node's handles. */
  unref(): this {
    this.#keepAlive(false);
    return this;
  }

  /** Makes the open watcher keep the process alive again (the default). */
  ref(): this {
    this.#keepAlive(true);
    return this;
  }

  hasRef(): boolean {
    return this.#ref;
  }

  #keepAlive(keepAlive: boolean): void {
    this.#ref = keepAlive;
    if (!this.#closed) this.host.native.watchKeepAlive(this.id, keepAlive);
  }

  /** @internal A kWatch record: flags and, with an error, its errno. */
  report(flags: number, errno: number): void {
    if (flags & WatchFlag.Closed) this.stopped();
    this.callback(
      {
        readable: (flags & WatchFlag.Readable) !== 0,
        writable: (flags & WatchFlag.Writable) !== 0,
        hangup: (flags & WatchFlag.Hangup) !== 0,
        error: flags & WatchFlag.Error ? descriptorError(errno, 'watch', this.fd) : undefined,
      },
      this,
    );
  }

  /** @internal Closed here or natively: forgotten by its reactor. */
  stopped(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.host.forgetWatcher(this);
  }
}

const { EBADF } = constants.errno;
