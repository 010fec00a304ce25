// The only file that loads the binding. It also writes down the binding's
// contract: the methods of NativeReactor and the layout of event records.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReactorError } from './errors.js';
import type { ConcreteBackendName, ReactorStats } from './reactor.js';
import type { UDPSocketStats } from './udp.js';

/** @internal Methods return numbers: ids and counts are >= 0, failures are -errno. */
export interface NativeReactor {
  /** Event records, RECORD_WORDS int32 each, rewritten for every batch. */
  readonly records: Int32Array;
  /** Writes corked during a batch (src/write-cork.ts): id, slab offset, length per entry. */
  readonly corked: Float64Array;
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
  /**
   * The object the binding made, when this is createNativeReactor's copy of it:
   * the async resource of every batch, holding the dispatcher, kept alive with it.
   */
  readonly made?: NativeReactor;
  listenTcp(host: string, port: number, backlog: number, reusePort: boolean, ipv6Only: boolean): number;
  listenUnix(path: string, backlog: number): number;
  /**
   * A listener's caps, queue and connection defaults. Throws a TypeError
   * (ERR_INVALID_ARG_TYPE) or RangeError (ERR_OUT_OF_RANGE) naming the field
   * when a field is missing or not what the interface says: a bug of ours.
   */
  configureListener(id: number, config: NativeListenerConfig): number;
  /** [served and open, parked] */
  listenerCounts(id: number): [number, number] | number;
  /** Connections the listener accepted that are still open, the listener closed or not (0 once the reactor closed). */
  listenerConnections(id: number): number;
  /** Takes no more connections from the listener's socket, which stays open; 0 or -errno. */
  stopAccepting(id: number): number;
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
  /**
   * Sends the first `count` entries of `corked`, in order, each length turned
   * into that write's result; returns how many results are not 0.
   */
  writeCorked(count: number): number;
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
  // The native HTTP server (native/http_server.h, http_connections.cc).
  /** Makes a listener an HTTP one (before its first accept). */
  configureHttp(id: number, config: NativeHttpConfig): number;
  /**
   * The response head and maybe body bytes; end: the response is complete.
   * flags (HttpResponseFlags), headerLines ("Name: value\r\n" each) and
   * reason (empty: the standard phrase) only when there are any. Bytes
   * queued, or -errno.
   */
  httpRespond(
    id: number,
    status: number,
    body: string | Uint8Array | undefined,
    end: boolean,
    flags?: number,
    headerLines?: string,
    reason?: string,
  ): number;
  /** More of the response body after httpRespond. */
  httpSend(id: number, body: string | Uint8Array | undefined, end: boolean): number;
  /** Pauses (false) or resumes the request body's records. */
  httpBodyReading(id: number, reading: boolean): number;
}

/** @internal What configureHttp() takes: u32 bytes and milliseconds, NO_LIMIT for none. */
export interface NativeHttpConfig {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxPendingBytes: number;
}

/** @internal httpRespond's flags: the user's headers frame the body, or close the connection. */
export const enum HttpResponseFlags {
  UserLength = 1,
  UserClose = 2,
}

/** @internal A request descriptor's 32-bit words (native/http_server.h), then the head's bytes. */
export const enum HttpDescriptor {
  ListenerSlot = 0,
  ListenerGen = 1,
  Flags = 2, // HttpHeadFlags | version minor << 8
  LengthLow = 3,
  LengthHigh = 4,
  MethodOffset = 5,
  MethodLength = 6,
  TargetOffset = 7,
  TargetLength = 8,
  HeaderCount = 9,
  FixedWords = 10, // then per header: name offset, name length, value offset, value length
}

/** @internal */
export const enum HttpHeadFlags {
  KeepAlive = 1,
  Head = 2,
  ExpectContinue = 4,
  Upgrade = 8,
  Chunked = 16,
  Length = 32,
}

/** @internal "No limit" for the native u32 limits. */
export const NO_LIMIT = 0xffffffff;

/**
 * @internal
 * What configureListener() takes (native/admission.h's AdmissionPolicy and
 * ConnDefaults), named as the options they come from. Counts, bytes and
 * milliseconds are u32; NO_LIMIT means none.
 */
export interface NativeListenerConfig {
  maxConnections: number;
  maxConnectionsPerPeer: number;
  queueLimit: number;
  queueTimeoutMs: number;
  /** Over the cap, leave connections in the kernel's backlog instead of parking them. */
  waitInBacklog: boolean;
  /** Rejected connections are reset, not closed gracefully. */
  overflowReset: boolean;
  /** Sent to a rejected connection before the graceful close; empty: nothing. */
  overflowBytes: Uint8Array;
  idleTimeoutMs: number;
  idleGraceMs: number;
  idleResetOnWrite: boolean;
  highWaterMark: number;
  lowWaterMark: number;
  maxWriteBuffer: number;
}

/**
 * @internal
 * Called once per batch with the record count and, when it changed, the read
 * slab. Returns true if no view of the batch's bytes was kept.
 */
export type Dispatch = (count: number, slab: Buffer | undefined) => boolean;

/**
 * @internal
 * How the binding writes event records (native/addon.cc record_layout()):
 * int32 words per record, and the number of each kind and close reason.
 */
export interface RecordLayout {
  words: number;
  kinds: Record<string, number>;
  closeReasons: Record<string, number>;
}

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
  /** Absent from binaries older than the check below. */
  recordLayout?: RecordLayout;
  /** A listening TCP socket no reactor watches (native listen_tcp): its fd, or -errno. */
  listenSocket(host: string, port: number, backlog: number, reusePort: boolean, ipv6Only: boolean): number;
  /** The local address of a socket, or -errno. */
  socketAddress(fd: number): { address: string; port: number; family: string } | number;
}

// Record layout (native/loop.h): kind, slot, generation, a, b; checked at load.
/** @internal */
export const RECORD_WORDS = 5;

// Kinds and close reasons are const enums, not numbers read from the binding:
// the dispatch loop then compares each record with inlined integers, where
// numbers read at load would cost a load from memory per comparison. The
// price is that they are copied from native/loop.h, so each enum has a table
// giving every member's name in the binding's recordLayout, and
// checkRecordLayout() compares the two when the binding loads. A new kind is
// a line in RecordKind and one in RECORD_KIND_NAMES (the table's type makes
// leaving it out a compile error), plus its case in Reactor's dispatch.

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
  Datagram = 10, // a: slab offset of the source (24 bytes, 8-aligned), the payload after it; b: payload length
  DatagramError = 11, // a: errno; b: UdpOperation. The socket stays open.
  HttpRequest = 12, // an HTTP request head; a, b: its descriptor's offset and length in the slab
  HttpBody = 13, // a, b: decoded request body bytes in the slab
  HttpEnd = 14, // the request's body is complete
}

const RECORD_KIND_NAMES: { readonly [K in RecordKind]: string } = {
  [RecordKind.Accepted]: 'accepted',
  [RecordKind.Connected]: 'connected',
  [RecordKind.Data]: 'data',
  [RecordKind.Eof]: 'eof',
  [RecordKind.Closed]: 'closed',
  [RecordKind.Timer]: 'timer',
  [RecordKind.Drain]: 'drain',
  [RecordKind.Idle]: 'idle',
  [RecordKind.Watch]: 'watch',
  [RecordKind.Datagram]: 'datagram',
  [RecordKind.DatagramError]: 'datagramError',
  [RecordKind.HttpRequest]: 'httpRequest',
  [RecordKind.HttpBody]: 'httpBody',
  [RecordKind.HttpEnd]: 'httpEnd',
};

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

const CLOSE_REASON_NAMES: { readonly [K in CloseReason]: string } = {
  [CloseReason.None]: 'none',
  [CloseReason.Idle]: 'idle',
  [CloseReason.GraceExpired]: 'graceExpired',
};

/**
 * @internal
 * Throws ERR_NATIVE_MISMATCH, naming every difference, unless the binding at
 * `file` writes records as this file reads them. A binary built from another
 * version (a stale build/ or prebuild) would otherwise be misread record by
 * record: one kind renumbered calls the wrong protocol method.
 */
export function checkRecordLayout(layout: RecordLayout | undefined, file: string): void {
  const differences: string[] = [];
  if (layout === undefined) {
    differences.push('it exports no record layout');
  } else {
    if (layout.words !== RECORD_WORDS) differences.push(`records are ${layout.words} words there, ${RECORD_WORDS} here`);
    compareNumbers('record kind', RECORD_KIND_NAMES, layout.kinds, differences);
    compareNumbers('close reason', CLOSE_REASON_NAMES, layout.closeReasons, differences);
  }
  if (differences.length > 0) {
    throw new ReactorError(
      'ERR_NATIVE_MISMATCH',
      `the native binding ${file} is not from this version of native-reactor (rebuild it): ${differences.join('; ')}`,
    );
  }
}

/** Adds to `differences` each name both sides do not number alike. */
function compareNumbers(what: string, ours: Readonly<Record<number, string>>, theirs: Readonly<Record<string, number>>, differences: string[]): void {
  const names = new Set<string>();
  for (const [number, name] of Object.entries(ours)) {
    names.add(name);
    const native = Object.hasOwn(theirs, name) ? theirs[name] : undefined;
    if (native === undefined) differences.push(`${what} "${name}" (${number}) is missing there`);
    else if (native !== Number(number)) differences.push(`${what} "${name}" is ${native} there, ${number} here`);
  }
  for (const [name, native] of Object.entries(theirs)) {
    if (!names.has(name)) differences.push(`${what} "${name}" (${native}) is not handled here`);
  }
}

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// path() names the binary it loads (absent where a platform's require.addon stands in).
const loadBinding = require('node-gyp-build') as { (dir: string): Binding; path?: (dir: string) => string };
const binding = loadBinding(root);
checkRecordLayout(binding.recordLayout, loadBinding.path?.(root) ?? root);

/**
 * @internal The binding's reactor object, copied into an object literal: made
 * by Node-API one property at a time, the original is in V8's dictionary mode,
 * so every `native.write()` of a batch was a hash lookup the optimizing compiler
 * cannot inline; the literal has a fixed shape. The copy keeps the original
 * alive (the core holds it only weakly while nothing is live).
 */
export function createNativeReactor(
  dispatch: Dispatch,
  backend: string,
  allocateSlab: (size: number) => Buffer,
): NativeReactor | undefined {
  const made = binding.createReactor(dispatch, backend, allocateSlab);
  return made && { ...made, made };
}
/** @internal Sockets bound outside any reactor, to be handed to other processes. */
export const nativeSockets: Pick<Binding, 'listenSocket' | 'socketAddress'> = {
  listenSocket: binding.listenSocket,
  socketAddress: binding.socketAddress,
};
/** @internal */
export const nativeBackends: readonly ConcreteBackendName[] = Object.freeze([...binding.backends]);

/** @internal Identities are generation * 2^24 + slot (native/slot_table.h). */
export function packId(slot: number, gen: number): number {
  return gen * 0x1000000 + slot;
}

/** @internal */
export function slotOf(id: number): number {
  return id % 0x1000000;
}
