// The only file that loads the binding. It also writes down the binding's
// contract: the methods of NativeReactor and the layout of event records.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConcreteBackendName, ReactorStats } from './reactor.js';

/** @internal Methods return numbers: ids and counts are >= 0, failures are -errno. */
export interface NativeReactor {
  /** Event records, RECORD_WORDS int32 each, rewritten for every batch. */
  readonly records: Int32Array;
  readonly backend: ConcreteBackendName;
  /** io_uring was asked for and the kernel refused a ring (errno, else 0): epoll runs instead. */
  readonly fallbackErrno: number;
  /**
   * The dispatcher passed to createReactor, kept here (non-enumerable) so it
   * lives as long as this object: the core holds both only weakly while
   * nothing (listener, connection, ref'd timer) is live, so a dropped idle
   * reactor can be collected.
   */
  readonly dispatch: Dispatch;
  listenTcp(host: string, port: number, backlog: number, reusePort: boolean, ipv6Only: boolean): number;
  listenUnix(path: string, backlog: number): number;
  /** Caps, queue and connection defaults; NO_LIMIT (2^32 - 1) means none. */
  configureListener(
    id: number,
    maxConnections: number,
    maxPerPeer: number,
    queueLimit: number,
    queueTimeoutMs: number,
    overflowReset: boolean,
    overflowBytes: Uint8Array | undefined,
    idleMs: number,
    graceMs: number,
    idleResetsOnWrite: boolean,
    highWater: number,
    lowWater: number,
    maxWrite: number,
    waitInBacklog: boolean,
  ): number;
  /** [served and open, parked] */
  listenerCounts(id: number): [number, number] | number;
  connectTcp(host: string, port: number): number;
  connectUnix(path: string): number;
  /**
   * A listening stream socket made elsewhere; owned from a returned id on,
   * the caller's on -errno. requireTcp: a Unix socket is refused with -EPROTOTYPE.
   */
  adoptListener(fd: number, requireTcp: boolean): number;
  /** A connected stream socket made elsewhere, open and read at once; ownership as adoptListener. */
  adoptConnection(fd: number): number;
  /** Watches fd, which stays the caller's; interest: 1 readable, 2 writable. close(id) stops it. */
  watch(fd: number, interest: number): number;
  /** 0, or -EBADF when the watcher is gone (fd closed behind its back). */
  watchUpdate(id: number, interest: number): number;
  watchKeepAlive(id: number, keepAlive: boolean): number;
  write(id: number, bytes: Uint8Array): number;
  writev(id: number, chunks: Uint8Array[]): number;
  end(id: number): number;
  close(id: number): number;
  abort(id: number): number;
  setReading(id: number, reading: boolean): number;
  /** graceMs NO_LIMIT keeps the connection's grace period. */
  setIdleTimeout(id: number, ms: number, resetsOnWrite: boolean, graceMs: number): number;
  setIdleNotify(id: number, notify: boolean): number;
  setWriteLimits(id: number, high: number, low: number, max: number): number;
  stats(): ReactorStats | number;
  setNoDelay(id: number, enable: boolean): number;
  setKeepAlive(id: number, enable: boolean, idleSeconds: number, intervalSeconds: number, count: number): number;
  address(id: number, peer: boolean): { address: string; port: number; family: string } | number;
  queuedBytes(id: number): number;
  timerStart(delayMs: number): number;
  timerCancel(id: number): number;
  timerReset(id: number, delayMs: number): number;
  timerKeepAlive(id: number, keepAlive: boolean): number;
  shutdown(): void;
}

/** @internal "No limit" for the native u32 limits. */
export const NO_LIMIT = 0xffffffff;

/**
 * @internal
 * Called once per batch with the record count and, when it changed, the read
 * slab. Returns true if no view of the batch's bytes was kept.
 */
export type Dispatch = (count: number, slab: Buffer | undefined) => boolean;

interface Binding {
  /**
   * Throws an Error with code ERR_REACTOR_BACKEND_UNAVAILABLE for a backend
   * this machine lacks, or the errno name (EMFILE, ENFILE, ENOMEM, EAGAIN)
   * when the system ran out of descriptors, memory or threads making it.
   * Returns undefined, throwing nothing, only while the environment is being
   * torn down (a worker terminating), when no JavaScript runs anyway.
   */
  createReactor(dispatch: Dispatch, backend: string, allocateSlab: (size: number) => Buffer): NativeReactor | undefined;
  /** The names poller.cc's available_backends() gives: BACKEND_NAMES less 'auto'. */
  backends: ConcreteBackendName[];
}

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binding = (require('node-gyp-build') as (dir: string) => Binding)(root);

/** @internal */
export const createNativeReactor = binding.createReactor;
/** @internal */
export const nativeBackends: readonly ConcreteBackendName[] = Object.freeze([...binding.backends]);

// Record layout (native/loop.h): kind, slot, generation, a, b.
/** @internal */
export const RECORD_WORDS = 5;
/** @internal */
export const enum RecordKind {
  Accepted = 1, // a, b: listener slot and generation
  Connected = 2,
  Data = 3, // a: offset in the slab, b: length
  Eof = 4,
  Closed = 5, // a: errno, 0 when clean; b: CloseReason
  Timer = 6,
  Drain = 7, // queued bytes fell to the low watermark
  Idle = 8, // idle timeout on a connection whose protocol has timeoutConnection
  Watch = 9, // a watcher's descriptor is ready; a: flags (src/watcher.ts), b: errno
}

/** @internal */
export const enum CloseReason {
  None = 0,
  Idle = 1, // reaped after an idle timeout
  GraceExpired = 2, // reaped, then aborted when the peer had not closed within the grace period
}

/** @internal Identities are generation * 2^24 + slot (native/slot_table.h). */
export function packId(slot: number, gen: number): number {
  return gen * 0x1000000 + slot;
}

/** @internal */
export function slotOf(id: number): number {
  return id % 0x1000000;
}
