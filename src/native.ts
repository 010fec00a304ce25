// The only file that loads the binding. It also writes down the binding's
// contract: the methods of NativeReactor and the layout of event records.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConcreteBackendName, ReactorStats } from './reactor.js';
import type { UDPSocketStats } from './udp.js';

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
  // UDP sockets (native/udp.h).
  udpOpen(
    host: string,
    port: number,
    reusePort: boolean,
    reuseAddress: boolean,
    ipv6Only: boolean,
    receiveBufferSize: number,
    sendBufferSize: number,
  ): number;
  /** host undefined: the connected peer. A UdpSendResult, or -errno when the call was wrong. */
  udpSend(id: number, bytes: Uint8Array, port: number, host: string | undefined, batch: boolean): number;
  udpConnect(id: number, host: string, port: number): number;
  udpDisconnect(id: number): number;
  udpSetReading(id: number, reading: boolean): number;
  udpSetOption(id: number, option: UdpOption, value: number): number;
  udpSetMulticastInterface(id: number, interfaceAddress: string): number;
  /** source undefined: any-source membership; interfaceAddress undefined: the system's choice. */
  udpMembership(id: number, source: string | undefined, group: string, interfaceAddress: string | undefined, join: boolean): number;
  udpStats(id: number): UDPSocketStats | number;
  udpClose(id: number): number;
  /** The numeric host of the source at `offset` of a slab (IPv6 with its zone), or -errno. */
  udpFormatAddress(slab: Buffer, offset: number): string | number;
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
  Datagram = 9, // a: slab offset of the source (24 bytes, 8-aligned), the payload after it; b: payload length
  DatagramError = 10, // a: errno; b: UdpOperation. The socket stays open.
}

/** @internal Which side of a UDP socket failed (native/udp.h UdpOperation). */
export const enum UdpOperation {
  Receive = 0,
  Send = 1,
}

/** @internal What udpSend did with a datagram (native/udp.h UdpSendResult). */
export const enum UdpSendResult {
  Sent = 0,
  Queued = 1, // goes out once the batch being dispatched returns, or once the socket is writable
  Dropped = 2, // the socket's queue was full
  Failed = 3, // refused by the kernel; reported in the next batch
}

/** @internal native/udp.h UdpOption, in its order. */
export const enum UdpOption {
  Broadcast = 0,
  Ttl = 1,
  MulticastTtl = 2,
  MulticastLoopback = 3,
}

/** @internal Size of a datagram's source ahead of its payload in the slab (native PackedAddress). */
export const DATAGRAM_SOURCE_BYTES = 24;

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
