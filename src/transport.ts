import { constants } from 'node:os';
import { isUint8Array } from 'node:util/types';
import { type Address, toAddress } from './address.js';
import { ReactorError, socketClosed, systemError } from './errors.js';
import { parseWriteLimits, validateMs, WRITE_BUFFER_KEYS, type WriteBufferOptions, type WriteLimits } from './limits.js';
import { CloseReason, NO_LIMIT, type NativeReactor } from './native.js';
import type { Protocol } from './protocol.js';
import type { WriteCork } from './write-cork.js';
import {
  invalidType,
  show,
  validateBoolean,
  validateDelay,
  validateFunction,
  validateInteger,
  validateKeys,
  validateObject,
} from './validate.js';

/** @internal What a transport needs from its reactor. */
export interface TransportHost {
  readonly native: NativeReactor;
  readonly cork: WriteCork;
  /** Throws ERR_REACTOR_CLOSED once the reactor is closed. */
  checkOpen(): void;
  /** The connection is gone: forget it and tell its protocol. */
  released(transport: Transport, reason: ReactorError | undefined, now: boolean): void;
}

/**
 * @internal What the transports of one listener (or of a reactor's outgoing
 * connections) share until one needs its own: the reactor and the write limits.
 */
export interface TransportKin {
  readonly host: TransportHost;
  readonly limits: WriteLimits;
}

export type TransportState = 'connecting' | 'open' | 'closing' | 'closed';

/**
 * Something that makes data and can be told to stop and go on: a transport
 * (its reading) or anything of the user's. See Transport.registerProducer.
 */
export interface Producer {
  pause(): void;
  resume(): void;
}

export interface IdleTimeoutOptions {
  /** Writes reset the idle clock too. Default false. */
  resetOnWrite?: boolean | undefined;
  /** Grace period after the idle end before an abort. Default: unchanged (15 s unless the listener set it). */
  graceMs?: number | undefined;
}

/** One connection: writes, flow control, shutdown and socket options. */
export class Transport implements Producer {
  // Every field costs each of 10,000 idle connections 8 bytes: the state and
  // flags share one small integer, and the reactor and write limits are the
  // kin shared with sibling transports until this one needs its own state
  // (its OWN flag), made then with what few transports use.
  #bits: number;
  #kin: TransportKin | OwnState;
  /** @internal */
  protocol: Protocol | undefined;

  /** @internal Only a reactor makes transports (the constructor is private to the types). */
  static create(kin: TransportKin, id: number, state: TransportState): Transport {
    return new Transport(kin, id, state);
  }

  private constructor(
    kin: TransportKin,
    /** @internal native identity */ readonly id: number,
    state: TransportState,
  ) {
    this.#bits = STATES.indexOf(state);
    this.#kin = kin;
  }

  /** connecting → open → (closing →) closed. */
  get state(): TransportState {
    return STATES[this.#bits & STATE_MASK]!;
  }

  /**
   * Whether write() still sends: false once end(), close() or abort() was
   * called, the peer's end closed it, or the native side ended its write side
   * (an idle reap, noticed at the first refused write).
   */
  get writable(): boolean {
    const state = this.#bits & STATE_MASK;
    return (state === OPEN || state === CONNECTING) && (this.#bits & ENDED) === 0;
  }

  /** Bytes accepted by write() that the kernel has not taken yet. */
  get bufferedAmount(): number {
    if (this.stateIsClosed()) return 0;
    const queued = this.io().queuedBytes(this.id);
    return queued < 0 ? 0 : queued;
  }

  /**
   * Sends now what the socket takes and queues the rest natively. Returns
   * false once highWaterMark (64 KiB) or more are queued; a write that would
   * queue more than maxWriteBuffer aborts the connection (connectionLost gets
   * ERR_WRITE_BUFFER_FULL) and returns false.
   *
   * A write to a transport that is no longer `writable` never throws into the
   * caller (a broadcast must not fail because one peer is leaving): it sends
   * nothing, returns false and is this transport's error — one that is not
   * closed yet is aborted and its connectionLost gets
   * ERR_STREAM_WRITE_AFTER_END; a closed one has had its connectionLost.
   * Bad arguments throw. The data of a dataReceived written during its batch
   * is sent when the batch returns (src/write-cork.ts); such a write to a
   * connection the native side has already closed or ended returns true, and
   * the refusal is reported on this transport then, as above.
   */
  write(data: ArrayBufferView | string, encoding?: BufferEncoding): boolean {
    const bytes = toBytes(data, encoding, 'data');
    this.host.checkOpen();
    if (!this.writable) return this.writeRefused();
    if (this.host.cork.add(this.id, bytes, this.#kin.limits.high)) return true;
    return this.queued(this.io().write(this.id, bytes));
  }

  /** Writes several chunks with one system call, in order; like write() otherwise. */
  writev(chunks: ReadonlyArray<ArrayBufferView | string>): boolean {
    if (!Array.isArray(chunks)) throw invalidType('chunks', 'an array', chunks);
    const list: Uint8Array[] = [];
    // Indexed, not mapped: a hole in a sparse array is an error, not skipped.
    for (let i = 0; i < chunks.length; i++) list.push(toBytes(chunks[i], undefined, `chunks[${i}]`));
    this.host.checkOpen();
    if (!this.writable) return this.writeRefused();
    return this.queued(this.io().writev(this.id, list));
  }

  /**
   * Optionally writes `data`, then shuts down the write side once everything
   * queued is sent. Reading goes on; the connection closes when the peer ends
   * too. Again, or once closing or closed, it does nothing (with `data`, that
   * is a write after end: see write()).
   */
  end(data?: ArrayBufferView | string, encoding?: BufferEncoding): void {
    if (data !== undefined) {
      this.write(data, encoding);
    } else {
      toBytes('', encoding, 'data'); // validates the encoding alone
      this.host.checkOpen();
    }
    if (!this.writable) return;
    this.#bits |= ENDED;
    const result = this.io().end(this.id);
    if (result === 1) this.release(undefined, false);
  }

  /**
   * Closes after everything queued is sent; connectionLost gets undefined.
   * Once closing or closed it does nothing.
   */
  close(): void {
    this.host.checkOpen();
    const state = this.#bits & STATE_MASK;
    if (state === CLOSED || state === CLOSING) return;
    const result = this.io().close(this.id);
    if (result === 1) this.release(undefined, false);
    else this.setState(CLOSING);
  }

  /**
   * Closes at once with a reset (RST); queued bytes are dropped and
   * connectionLost gets ERR_CONNECTION_ABORTED. Once closed it does nothing.
   */
  abort(): void {
    this.host.checkOpen();
    this.abortWith(new ReactorError('ERR_CONNECTION_ABORTED', 'abort() was called'));
  }

  /** @internal abort() with the reason connectionLost gets. */
  abortWith(reason: ReactorError): void {
    if (this.stateIsClosed()) return;
    this.io().abort(this.id);
    this.release(reason, false);
  }

  /**
   * Stops reading: the kernel's buffers fill and push back on the peer. Applied
   * before the reactor next waits; callable from dataReceived. No byte is lost.
   */
  pause(): void {
    this.setReading(false);
  }

  /** Reads again after pause(); bytes arrive in order. */
  resume(): void {
    this.setReading(true);
  }

  get isPaused(): boolean {
    return (this.#bits & PAUSED) !== 0;
  }

  /**
   * Ends the connection after `ms` without a byte read (and, with
   * resetOnWrite, written); 0 disables. Overrides the listener's default and
   * restarts the clock. See Protocol.timeoutConnection.
   */
  setIdleTimeout(ms: number, options: IdleTimeoutOptions = {}): void {
    const idle = validateMs(ms, 'ms');
    validateObject(options, 'options');
    validateKeys(options, 'options', ['resetOnWrite', 'graceMs']);
    this.checkNotClosing();
    const resetOnWrite = validateBoolean(options.resetOnWrite ?? false, 'options.resetOnWrite');
    const grace = options.graceMs === undefined ? NO_LIMIT : validateMs(options.graceMs, 'options.graceMs');
    this.option('setIdleTimeout', () => this.io().setIdleTimeout(this.id, idle, resetOnWrite, grace));
  }

  /**
   * Changes the write buffer limits. Omitted ones keep their value, except
   * that a new highWaterMark without a lowWaterMark sets the low mark to a
   * quarter of it, and maxWriteBuffer rises to a highWaterMark above it.
   */
  setWriteBuffer(options: WriteBufferOptions): void {
    validateObject(options, 'options');
    validateKeys(options, 'options', WRITE_BUFFER_KEYS);
    const limits = parseWriteLimits(options, this.#kin.limits);
    this.option('setWriteBuffer', () => this.io().setWriteLimits(this.id, limits.high, limits.low, limits.max));
    this.own().limits = limits;
    this.throttle(this.bufferedAmount);
  }

  get highWaterMark(): number {
    return this.#kin.limits.high;
  }

  get lowWaterMark(): number {
    return this.#kin.limits.low;
  }

  get maxWriteBuffer(): number {
    return this.#kin.limits.max;
  }

  /**
   * Flow control for piping into this transport: while its queued bytes are
   * at or above highWaterMark the producer is paused; it is resumed once they
   * fall to lowWaterMark. A Transport is a Producer (pause/resume reading).
   * Forgotten when this transport closes. Throws ERR_PRODUCER_REGISTERED if
   * one is registered already.
   */
  registerProducer(producer: Producer): void {
    validateObject(producer, 'producer');
    validateFunction(producer.pause, 'producer.pause');
    validateFunction(producer.resume, 'producer.resume');
    this.host.checkOpen();
    if (this.stateIsClosed()) throw socketClosed();
    const rare = this.own();
    if (rare.producer !== undefined) throw new ReactorError('ERR_PRODUCER_REGISTERED', 'a producer is already registered');
    rare.producer = producer;
    rare.producerPaused = false;
    this.throttle(this.bufferedAmount);
  }

  /** Forgets the producer (without resuming it). */
  unregisterProducer(): void {
    const rare = this.rare();
    if (rare !== undefined) rare.producer = undefined;
  }

  /** Nagle's algorithm is off by default (TCP_NODELAY on); no-op for Unix sockets. */
  setNoDelay(noDelay = true): void {
    validateBoolean(noDelay, 'noDelay');
    this.option('setsockopt', () => this.io().setNoDelay(this.id, noDelay));
  }

  /**
   * TCP keepalive probes. Times round up to whole seconds; an omitted value
   * keeps the system default. No-op for Unix sockets.
   */
  setKeepAlive(enable: boolean, idleMs?: number, intervalMs?: number, count?: number): void {
    validateBoolean(enable, 'enable');
    const seconds = (ms: number | undefined, name: string) =>
      ms === undefined ? 0 : Math.max(1, Math.ceil(validateDelay(ms, name) / 1000));
    const idle = seconds(idleMs, 'idleMs');
    const interval = seconds(intervalMs, 'intervalMs');
    const probes = count === undefined ? 0 : validateInteger(count, 'count', 1, 127);
    this.option('setsockopt', () => this.io().setKeepAlive(this.id, enable, idle, interval, probes));
  }

  /** This end's address (remembered once asked, so it stays readable after close). */
  get localAddress(): Address | undefined {
    const rare = this.own();
    return (rare.local ??= this.address(false));
  }

  /**
   * The peer's address (remembered once asked, so it stays readable after
   * close): on a `proxyProtocol` listener, the client its header named.
   */
  get remoteAddress(): Address | undefined {
    const rare = this.own();
    return (rare.remote ??= this.address(true));
  }

  /**
   * On a `proxyProtocol` listener, the socket's own peer: the proxy that
   * sent the header (remembered once asked). Undefined for other connections.
   */
  get proxyAddress(): Address | undefined {
    const rare = this.own();
    if (rare.proxy === undefined && !this.stateIsClosed()) {
      const raw = this.io().proxyAddress(this.id);
      rare.proxy = typeof raw === 'number' ? undefined : toAddress(raw);
    }
    return rare.proxy;
  }

  // ---- called by the reactor ----

  /** @internal */
  opened(): void {
    this.setState(OPEN);
  }

  /** @internal the native side closed the connection (errno 0: cleanly). */
  lost(errno: number, reason: number): void {
    // Building an Error captures a stack: skip it when nobody will see it
    // (an idle storm reaps thousands of connections at once).
    const seen = (this.#bits & STATE_MASK) === CONNECTING || this.protocol?.connectionLost !== undefined;
    let error: ReactorError | undefined;
    if (!seen) error = undefined;
    else if (reason === CloseReason.Idle) error = new ReactorError('ERR_IDLE_TIMEOUT', 'the connection was idle too long');
    else if (reason === CloseReason.GraceExpired) error = new ReactorError('ERR_IDLE_GRACE_EXPIRED', 'idle, then not closed by the peer in time');
    else if (errno) error = systemError(errno, 'read');
    this.release(error, true);
  }

  /** @internal queued bytes fell to the low watermark. */
  drained(): void {
    const rare = this.rare();
    if (rare?.producer !== undefined && rare.producerPaused) {
      rare.producerPaused = false;
      if (stillReads(rare.producer)) rare.producer.resume();
    }
    this.protocol?.writeDrained?.(this);
  }

  /** @internal the reactor is closing: the native side already dropped the socket. */
  dropped(reason: ReactorError): void {
    this.release(reason, false);
  }

  /** @internal the peer ended its write side. */
  peerEnded(): void {
    const protocol = this.protocol;
    if (protocol?.readConnectionLost) protocol.readConnectionLost(this);
    else if ((this.#bits & STATE_MASK) === OPEN) this.close();
  }

  // Helpers are TypeScript-private, not #private: a class with #methods
  // stamps a brand on every instance, 8 bytes per connection.

  private get host(): TransportHost {
    return this.#kin.host;
  }

  /** This transport's own state, made (from its kin) when first needed. */
  private own(): OwnState {
    if ((this.#bits & OWN) === 0) {
      this.#kin = { host: this.#kin.host, limits: this.#kin.limits };
      this.#bits |= OWN;
    }
    return this.#kin as OwnState;
  }

  private rare(): OwnState | undefined {
    return (this.#bits & OWN) === 0 ? undefined : (this.#kin as OwnState);
  }

  private release(reason: ReactorError | undefined, now: boolean): void {
    if (this.stateIsClosed()) return;
    this.setState(CLOSED);
    const rare = this.rare();
    if (rare !== undefined) rare.producer = undefined;
    this.host.released(this, reason, now);
  }

  /** A write this transport can no longer take: reported on it, never thrown. */
  private writeRefused(): boolean {
    if (!this.stateIsClosed()) {
      this.abortWith(new ReactorError('ERR_STREAM_WRITE_AFTER_END', 'write after end() or close()'));
    }
    return false;
  }

  private checkNotClosing(): void {
    if ((this.#bits & STATE_MASK) === CLOSING) throw socketClosed();
  }

  /** @internal A write corked earlier in the batch was refused when sent (-errno). */
  writeRefusedLater(result: number): void {
    this.queued(result);
  }

  /** The binding, after the writes corked so far: every call keeps its order against them. */
  private io(): NativeReactor {
    this.host.cork.flush();
    return this.host.native;
  }

  private queued(result: number): boolean {
    if (result >= 0) {
      this.host.cork.queued(this.id, result);
      return this.throttle(result);
    }
    if (result === -ENOBUFS) {
      // The native side has aborted the connection: the reader is too slow.
      const limit = this.#kin.limits.max;
      this.release(new ReactorError('ERR_WRITE_BUFFER_FULL', `more than maxWriteBuffer (${limit} bytes) queued`), false);
    } else if (result === -EPIPE) {
      // The native side ended the write side (an idle reap); its close follows.
      this.#bits |= ENDED;
    }
    // Else gone natively (EBADF): its close record is on its way.
    return false;
  }

  /** Pauses the producer at the high watermark; true while below it. */
  private throttle(queued: number): boolean {
    if (queued < this.#kin.limits.high) return true;
    const rare = this.rare();
    if (rare?.producer !== undefined && !rare.producerPaused) {
      rare.producerPaused = true;
      if (stillReads(rare.producer)) rare.producer.pause();
    }
    return false;
  }

  private setReading(reading: boolean): void {
    this.host.checkOpen();
    this.checkNotClosing();
    this.option(reading ? 'resume' : 'pause', () => this.io().setReading(this.id, reading));
    this.#bits = reading ? this.#bits & ~PAUSED : this.#bits | PAUSED;
  }

  private option(syscall: string, apply: () => number): void {
    this.host.checkOpen();
    if (this.stateIsClosed()) throw socketClosed();
    const result = apply();
    // EBADF: closed natively in this batch, its connectionLost on its way:
    // nothing left to change, as on a transport that is closed.
    if (result < 0 && result !== -EBADF) throw systemError(-result, syscall);
  }

  private stateIsClosed(): boolean {
    return (this.#bits & STATE_MASK) === CLOSED;
  }

  private setState(state: number): void {
    this.#bits = (this.#bits & ~STATE_MASK) | state;
  }

  private address(peer: boolean): Address | undefined {
    if (this.stateIsClosed()) return undefined;
    const raw = this.io().address(this.id, peer);
    return typeof raw === 'number' ? undefined : toAddress(raw);
  }
}

const { EBADF, ENOBUFS, EPIPE } = constants.errno;

// Transport's #bits: the state's index in STATES, then two flags.
const STATES: readonly TransportState[] = ['connecting', 'open', 'closing', 'closed'];
const [CONNECTING, OPEN, CLOSING, CLOSED] = [0, 1, 2, 3] as const;
const STATE_MASK = 3;
const ENDED = 4; // end() called, or the native side ended the write side
const PAUSED = 8; // reading paused by pause()
const OWN = 16; // #kin is this transport's own state

/** What few transports use: their own write limits, a registered producer, the addresses once asked. */
interface OwnState {
  readonly host: TransportHost;
  limits: WriteLimits;
  producer?: Producer | undefined;
  producerPaused?: boolean;
  local?: Address | undefined;
  remote?: Address | undefined;
  proxy?: Address | undefined;
}

/** A transport that closes stops reading anyway: pausing it is not an error to raise. */
function stillReads(producer: Producer): boolean {
  return !(producer instanceof Transport) || producer.state === 'open' || producer.state === 'connecting';
}

/** @internal The bytes of a write or send: a view's own bytes, a string encoded. */
export function toBytes(data: unknown, encoding: unknown, name: string): Uint8Array {
  if (encoding !== undefined && (typeof encoding !== 'string' || !Buffer.isEncoding(encoding))) {
    throw new ReactorError('ERR_UNKNOWN_ENCODING', `unknown encoding: ${show(encoding)}`);
  }
  if (typeof data === 'string') return Buffer.from(data, encoding as BufferEncoding | undefined);
  // A real view only: an object that merely inherits from Uint8Array has no bytes.
  if (isUint8Array(data)) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw invalidType(name, 'a Buffer, TypedArray, DataView or string', data);
}
