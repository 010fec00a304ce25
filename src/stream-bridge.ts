// The streams bridge: a Transport as a node:stream Duplex with node:net's
// socket surface, so node:http, node:tls and WebSocket libraries run over the
// reactor's connections unmodified, its caps, queue and idle reaping intact.
import { Duplex } from 'node:stream';
import type { Address } from './address.js';
import { type ReactorError, socketClosed } from './errors.js';
import type { Protocol, ProtocolFactory } from './protocol.js';
import type { Transport } from './transport.js';
import { validateMs } from './limits.js';
import { validateBoolean, validateDelay, validateFunction, validateKeys, validateObject } from './validate.js';

export interface TransportStreamOptions {
  /**
   * Keep the write side open once the peer ended its own. Default true, as
   * node:http's own server has it: the libraries the bridge feeds (node:http,
   * TLS, ws) end their side themselves, and TLS still writes after the peer's
   * end. false ends the write side with the peer's, as node:net's default.
   */
  allowHalfOpen?: boolean | undefined;
  /**
   * The idle timeout the listener gives its connections (its
   * `idleTimeoutMs`): `setTimeout(0)` goes back to it, so the reactor's idle
   * reaping works again. Default 0: none. createStreamServer() sets it.
   */
  idleTimeoutMs?: number | undefined;
  /** The listener's `idleResetOnWrite`, restored with its idle timeout. Default false. */
  idleResetOnWrite?: boolean | undefined;
}

const STREAM_OPTION_KEYS = ['allowHalfOpen', 'idleTimeoutMs', 'idleResetOnWrite'] as const;

type ReadyState = 'open' | 'readOnly' | 'writeOnly' | 'closed';

/**
 * A connection as a node:net-like Duplex. Flow control maps both ways: a
 * full readable buffer pauses the transport's reading and `_read` resumes it;
 * a write the transport queues past its highWaterMark holds the write's
 * callback until the transport drains, so `write()` returns false and
 * 'drain' follows the transport's. `end()` shuts down the write side (FIN),
 * `destroy()` closes (FIN; an abort when bytes are still queued, which
 * node:net would drop), `destroy(error)` and `resetAndDestroy()` abort (RST).
 * A peer's reset is an 'error' with code ECONNRESET, then 'close'.
 */
export class TransportStream extends Duplex {
  readonly transport: Transport;
  #bytesRead = 0;
  #bytesWritten = 0;
  /** What `setTimeout(0)` restores: the listener's idle timeout. */
  readonly #idleMs: number;
  readonly #idleResetOnWrite: boolean;
  /** The timeout set by setTimeout(), 0 for none: while set, an idle period emits 'timeout'. */
  #timeoutMs = 0;
  /** The callback of a write the transport queued at or past its highWaterMark. */
  #awaitingDrain: ((error?: Error | null) => void) | undefined;

  /** @internal Only the bridge (streamFactory, createStreamServer, connectStream) makes streams (the constructor is private to the types). */
  static create(transport: Transport, options: Required<TransportStreamOptions>): TransportStream {
    return new TransportStream(transport, options);
  }

  private constructor(transport: Transport, options: Required<TransportStreamOptions>) {
    super({ allowHalfOpen: options.allowHalfOpen });
    this.transport = transport;
    this.#idleMs = options.idleTimeoutMs;
    this.#idleResetOnWrite = options.idleResetOnWrite;
  }

  // ---- node:net's socket surface ----

  /** Always false: the bridge wraps connections that are open already. */
  get connecting(): boolean {
    return false;
  }

  /** Always false: see `connecting`. */
  get pending(): boolean {
    return false;
  }

  get readyState(): ReadyState {
    if (this.destroyed || this.transport.state === 'closed') return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** Bytes received. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Bytes handed to write() (including those still queued), as node:net counts them. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** The timeout set by setTimeout(), undefined when none (node:net's `socket.timeout`). */
  get timeout(): number | undefined {
    return this.#timeoutMs === 0 ? undefined : this.#timeoutMs;
  }

  get remoteAddress(): string | undefined {
    return this.#remote()?.address;
  }

  get remotePort(): number | undefined {
    return this.#remote()?.port;
  }

  get remoteFamily(): string | undefined {
    return this.#remote()?.family;
  }

  get localAddress(): string | undefined {
    return this.#local()?.address;
  }

  get localPort(): number | undefined {
    return this.#local()?.port;
  }

  get localFamily(): string | undefined {
    return this.#local()?.family;
  }

  /** This end's `{ address, family, port }`, `{}` once closed before it was asked (node:net). */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    const local = this.#local();
    return local === undefined ? {} : { address: local.address, family: local.family, port: local.port };
  }

  /**
   * Emits 'timeout' (and calls `callback`, added as a once listener) after
   * `ms` without a byte read or written; 0 disables it and restores the
   * listener's idle timeout. Runs on the reactor's native idle timer: no
   * Node timer per connection. Like node:net, 'timeout' only tells: the
   * connection stays open until the listener ends or destroys it.
   */
  setTimeout(ms: number, callback?: () => void): this {
    const timeout = validateMs(ms, 'ms');
    if (callback !== undefined) {
      validateFunction(callback, 'callback');
      if (timeout === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    this.#timeoutMs = timeout;
    if (this.#live()) {
      if (timeout > 0) this.transport.setIdleTimeout(timeout, { resetOnWrite: true });
      else this.transport.setIdleTimeout(this.#idleMs, { resetOnWrite: this.#idleResetOnWrite });
    }
    return this;
  }

  /** TCP_NODELAY (on by default on the reactor's connections). */
  setNoDelay(noDelay = true): this {
    validateBoolean(noDelay, 'noDelay');
    if (this.#live()) this.transport.setNoDelay(noDelay);
    return this;
  }

  /** TCP keepalive probes after `initialDelay` ms idle (0: the system's default), as node:net. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    validateBoolean(enable, 'enable');
    const delay = validateDelay(initialDelay, 'initialDelay');
    if (this.#live()) this.transport.setKeepAlive(enable, delay === 0 ? undefined : delay);
    return this;
  }

  /** Ends the write side, then destroys the stream once everything written is flushed (node:net). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Closes the connection with a reset (RST) and destroys the stream. */
  resetAndDestroy(): this {
    if (this.#live()) this.transport.abort();
    return this.destroy();
  }

  // ---- Duplex ----

  override _read(): void {
    if (this.transport.isPaused && this.#live()) this.transport.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.#live()) return callback(socketClosed());
    this.#bytesWritten += chunk.length;
    this.#afterWrite(this.transport.write(chunk), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    if (!this.#live()) return callback(socketClosed());
    const list = chunks.map((entry) => entry.chunk);
    for (const chunk of list) this.#bytesWritten += chunk.length;
    this.#afterWrite(this.transport.writev(list), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#live()) this.transport.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#awaitingDrain = undefined;
    if (this.#live()) {
      // node:net drops what is still queued on destroy(): here that is a reset.
      if (error !== null || this.transport.bufferedAmount > 0) this.transport.abort();
      else this.transport.close();
    }
    callback(error);
  }

  // ---- the transport's events (BridgeProtocol) ----

  /** @internal */
  received(data: Buffer): void {
    this.#bytesRead += data.length;
    // A full readable buffer stops reading: the kernel pushes back on the peer.
    if (!this.push(data) && this.#live()) this.transport.pause();
  }

  /** @internal */
  peerEnded(): void {
    this.push(null);
  }

  /** @internal */
  drained(): void {
    const callback = this.#awaitingDrain;
    this.#awaitingDrain = undefined;
    callback?.();
  }

  /** @internal The idle timer expired: 'timeout' if setTimeout() asked for it, else the listener's reaping. */
  idle(): void {
    if (this.#timeoutMs > 0) this.emit('timeout');
    else this.destroy();
  }

  /** @internal */
  lost(reason: ReactorError | undefined): void {
    if (this.destroyed) return;
    // reactor.close() is its owner's act, as closing a server's handles: no error to raise.
    if (reason !== undefined && reason.code !== 'ERR_REACTOR_CLOSED') {
      this.destroy(reason);
      return;
    }
    // Closed without an error: what was read is still there to be read; what could not be written is gone.
    this.push(null);
    if (!this.writableFinished) this.destroy();
  }

  #afterWrite(accepted: boolean, callback: (error?: Error | null) => void): void {
    // Queued at or past the transport's highWaterMark: the write completes
    // when the transport drains, so the Duplex buffers what follows and
    // write() returns false until then. A refused write (the connection is
    // going) is reported by the close that follows.
    if (accepted) callback();
    else this.#awaitingDrain = callback;
  }

  #live(): boolean {
    const state = this.transport.state;
    return state === 'open' || state === 'connecting';
  }

  #remote(): Address | undefined {
    return this.transport.remoteAddress;
  }

  #local(): Address | undefined {
    return this.transport.localAddress;
  }
}

/**
 * @internal
 * Routes a transport's events to its stream, made when the connection is:
 * for an outgoing one, the protocol exists before the transport does.
 */
export class BridgeProtocol implements Protocol {
  #stream: TransportStream | undefined;

  constructor(
    readonly options: Required<TransportStreamOptions>,
    readonly onStream: (stream: TransportStream) => void,
  ) {}

  connectionMade(transport: Transport): void {
    this.#stream = TransportStream.create(transport, this.options);
    this.onStream(this.#stream);
  }

  dataReceived(data: Buffer): void {
    this.#stream!.received(data);
  }

  readConnectionLost(): void {
    this.#stream!.peerEnded();
  }

  writeDrained(): void {
    this.#stream!.drained();
  }

  timeoutConnection(): void {
    this.#stream!.idle();
  }

  connectionLost(reason: ReactorError | undefined): void {
    this.#stream!.lost(reason);
  }
}

/**
 * A listener's factory that gives each connection as a TransportStream to
 * `onStream` — `server.emit('connection', stream)` for node:http:
 *
 *   reactor.listenTCP({ port, idleTimeoutMs }, streamFactory((s) => http.emit('connection', s), { idleTimeoutMs }))
 */
export function streamFactory(onStream: (stream: TransportStream) => void, options: TransportStreamOptions = {}): ProtocolFactory {
  validateFunction(onStream, 'onStream');
  const checked = parseStreamOptions(options); // now, not at the first connection
  return () => new BridgeProtocol(checked, onStream);
}

/** @internal TransportStreamOptions checked, with their defaults. */
export function parseStreamOptions(options: TransportStreamOptions): Required<TransportStreamOptions> {
  validateObject(options, 'options');
  validateKeys(options, 'options', STREAM_OPTION_KEYS);
  return {
    allowHalfOpen: validateBoolean(options.allowHalfOpen ?? true, 'options.allowHalfOpen'),
    idleTimeoutMs: validateMs(options.idleTimeoutMs ?? 0, 'options.idleTimeoutMs'),
    idleResetOnWrite: validateBoolean(options.idleResetOnWrite ?? false, 'options.idleResetOnWrite'),
  };
}
