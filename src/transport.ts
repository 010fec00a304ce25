import { type Address, toAddress } from './address.js';
import { ReactorError, socketClosed, systemError } from './errors.js';
import type { NativeReactor } from './native.js';
import type { Protocol } from './protocol.js';
import { invalidType, validateBoolean, validateDelay, validateInteger } from './validate.js';

/** What a transport needs from its reactor. */
export interface TransportHost {
  readonly native: NativeReactor;
  /** Throws ERR_REACTOR_CLOSED once the reactor is closed. */
  checkOpen(): void;
  /** The connection is gone: forget it and tell its protocol. */
  released(transport: Transport, reason: ReactorError | undefined, now: boolean): void;
}

export type TransportState = 'connecting' | 'open' | 'closing' | 'closed';

/** Writes at or above this many queued bytes make write() return false. */
const HIGH_WATER_MARK = 64 * 1024;

/** One connection: writes, shutdown and socket options. */
export class Transport {
  #state: TransportState;
  #ended = false;
  #localAddress: Address | undefined;
  #remoteAddress: Address | undefined;
  /** @internal */
  protocol: Protocol | undefined;

  /** @internal */
  constructor(
    private readonly host: TransportHost,
    /** @internal native identity */ readonly id: number,
    state: TransportState,
  ) {
    this.#state = state;
  }

  /** connecting → open → (closing →) closed. */
  get state(): TransportState {
    return this.#state;
  }

  /** Bytes accepted by write() that the kernel has not taken yet. */
  get bufferedAmount(): number {
    if (this.#state === 'closed') return 0;
    const queued = this.host.native.queuedBytes(this.id);
    return queued < 0 ? 0 : queued;
  }

  /**
   * Sends now what the socket takes and queues the rest natively. Returns
   * false once 64 KiB or more are queued. Throws ERR_SOCKET_CLOSED after
   * close()/abort() and ERR_STREAM_WRITE_AFTER_END after end().
   */
  write(data: Uint8Array | string, encoding?: BufferEncoding): boolean {
    const bytes = toBytes(data, encoding, 'data');
    this.#checkWritable();
    return this.#queued(this.host.native.write(this.id, bytes));
  }

  /** Writes several chunks with one system call, in order. */
  writev(chunks: ReadonlyArray<Uint8Array | string>): boolean {
    if (!Array.isArray(chunks)) throw invalidType('chunks', 'an array', chunks);
    const list = chunks.map((chunk, i) => toBytes(chunk, undefined, `chunks[${i}]`));
    this.#checkWritable();
    return this.#queued(this.host.native.writev(this.id, list));
  }

  /**
   * Optionally writes `data`, then shuts down the write side once everything
   * queued is sent. Reading goes on; the connection closes when the peer ends
   * too.
   */
  end(data?: Uint8Array | string, encoding?: BufferEncoding): void {
    if (data !== undefined) this.write(data, encoding);
    else this.#checkWritable();
    this.#ended = true;
    const result = this.host.native.end(this.id);
    if (result === 1) this.#release(undefined, false);
  }

  /** Closes after everything queued is sent. Throws ERR_SOCKET_CLOSED if already closed. */
  close(): void {
    this.host.checkOpen();
    if (this.#state === 'closed' || this.#state === 'closing') throw socketClosed();
    const result = this.host.native.close(this.id);
    if (result === 1) this.#release(undefined, false);
    else this.#state = 'closing';
  }

  /** Closes at once with a reset (RST); queued bytes are dropped. */
  abort(): void {
    this.host.checkOpen();
    if (this.#state === 'closed') throw socketClosed();
    this.host.native.abort(this.id);
    this.#release(undefined, false);
  }

  /** Nagle's algorithm is off by default (TCP_NODELAY on); no-op for Unix sockets. */
  setNoDelay(noDelay = true): void {
    validateBoolean(noDelay, 'noDelay');
    this.#option('setsockopt', () => this.host.native.setNoDelay(this.id, noDelay));
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
    this.#option('setsockopt', () => this.host.native.setKeepAlive(this.id, enable, idle, interval, probes));
  }

  /** This end's address (remembered once asked, so it stays readable after close). */
  get localAddress(): Address | undefined {
    return (this.#localAddress ??= this.#address(false));
  }

  /** The peer's address (remembered once asked, so it stays readable after close). */
  get remoteAddress(): Address | undefined {
    return (this.#remoteAddress ??= this.#address(true));
  }

  // ---- called by the reactor ----

  /** @internal */
  opened(): void {
    this.#state = 'open';
  }

  /** @internal the native side closed the connection (errno 0: cleanly). */
  lost(errno: number): void {
    this.#release(errno ? systemError(errno, 'read') : undefined, true);
  }

  /** @internal the reactor is closing: the native side already dropped the socket. */
  dropped(reason: ReactorError): void {
    this.#release(reason, false);
  }

  /** @internal the peer ended its write side. */
  peerEnded(): void {
    const protocol = this.protocol;
    if (protocol?.readConnectionLost) protocol.readConnectionLost(this);
    else if (this.#state === 'open') this.close();
  }

  #release(reason: ReactorError | undefined, now: boolean): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.host.released(this, reason, now);
  }

  #checkWritable(): void {
    this.host.checkOpen();
    if (this.#state === 'closed' || this.#state === 'closing') throw socketClosed();
    if (this.#ended) throw new ReactorError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
  }

  #queued(result: number): boolean {
    if (result < 0) throw systemError(-result, 'write');
    return result < HIGH_WATER_MARK;
  }

  #option(syscall: string, apply: () => number): void {
    this.host.checkOpen();
    if (this.#state === 'closed') throw socketClosed();
    const result = apply();
    if (result < 0) throw systemError(-result, syscall);
  }

  #address(peer: boolean): Address | undefined {
    if (this.#state === 'closed') return undefined;
    const raw = this.host.native.address(this.id, peer);
    return typeof raw === 'number' ? undefined : toAddress(raw);
  }
}

function toBytes(data: unknown, encoding: BufferEncoding | undefined, name: string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, encoding);
  if (data instanceof Uint8Array) return data;
  throw invalidType(name, 'a Buffer, Uint8Array or string', data);
}
