// A node:net Server look-alike over a reactor listener: what libraries that
// take a server (or `server.emit('connection', socket)`) expect, with the
// reactor's caps, queue and idle reaping underneath.
import { EventEmitter } from 'node:events';
import type { Address, ListenSocketOptions } from './address.js';
import { ReactorError } from './errors.js';
import { type ConnectionLimitOptions, LIMIT_KEYS } from './limits.js';
import type { Listener } from './listener.js';
import { BIND_KEYS, Reactor } from './reactor.js';
import { streamFactory, type TransportStream } from './stream-bridge.js';
import {
  invalidType,
  validateBoolean,
  validateExclusive,
  validateFunction,
  validateKeys,
  validateObject,
  validatePort,
} from './validate.js';

export interface StreamServerOptions extends ConnectionLimitOptions {
  /** Keep a connection's write side open once the peer ended. Default true: see TransportStreamOptions. */
  allowHalfOpen?: boolean | undefined;
}

/** What `server.listen(options)` takes: where to listen (limits go to createStreamServer). */
export type StreamListenOptions = ListenSocketOptions;

const SERVER_KEYS = ['allowHalfOpen', ...LIMIT_KEYS] as const;
const LISTEN_KEYS = ['port', 'fd', ...BIND_KEYS] as const;

/**
 * Events: 'connection' (a TransportStream), 'listening', 'error' (listen
 * failed: EADDRINUSE...), 'close' (closed, and every connection gone).
 * Unlike node:net, `maxConnections` queues clients over the cap (FIFO, bytes
 * intact) instead of dropping them; it is fixed once listening.
 */
export class StreamServer extends EventEmitter {
  readonly reactor: Reactor;
  readonly #options: StreamServerOptions;
  readonly #streams = new Set<TransportStream>();
  #listener: Listener | undefined;
  #closing = false;
  // drain() waits for the last connection to close the listener.
  #whenDrained: (() => void) | undefined;

  constructor(reactor: Reactor, options: StreamServerOptions = {}) {
    super();
    if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'a Reactor', reactor);
    validateObject(options, 'options');
    validateKeys(options, 'options', SERVER_KEYS);
    if (options.allowHalfOpen !== undefined) validateBoolean(options.allowHalfOpen, 'options.allowHalfOpen');
    this.reactor = reactor;
    this.#options = { ...options };
  }

  get listening(): boolean {
    return this.#listener?.listening ?? false;
  }

  /** Connections served at once; more wait in the reactor's queue. Infinity: no cap. */
  get maxConnections(): number {
    return this.#options.maxConnections ?? Infinity;
  }

  set maxConnections(value: number) {
    if (this.#listener !== undefined) {
      throw new ReactorError('ERR_SERVER_ALREADY_LISTEN', 'maxConnections is fixed once the server listens');
    }
    this.#options.maxConnections = value; // checked by listen()
  }

  /**
   * listen(port?, host?, callback?) or listen({ port, host, backlog,
   * reusePort, ipv6Only }, callback?), or listen({ fd }, callback?) to serve
   * a listening socket made elsewhere. The port is bound on return
   * (`address()`); 'listening' and `callback` follow on the next tick, and a
   * failure to bind is an 'error' event, as with node:net. Bad arguments throw.
   */
  listen(port?: number | StreamListenOptions, host?: string | (() => void), callback?: () => void): this {
    let listen: StreamListenOptions;
    if (typeof port === 'object' && port !== null) {
      listen = port;
      validateKeys(listen, 'options', LISTEN_KEYS);
      validateExclusive(listen, 'options', 'fd', ['port', ...BIND_KEYS]);
      if (host !== undefined && typeof host !== 'function') throw invalidType('callback', 'a function', host);
      callback = host;
    } else {
      if (typeof host === 'function') {
        callback = host;
        host = undefined;
      }
      listen = { port: port ?? 0, host };
    }
    if (callback !== undefined) validateFunction(callback, 'callback');
    if (this.#listener !== undefined) throw new ReactorError('ERR_SERVER_ALREADY_LISTEN', 'the server is already listening');
    const { allowHalfOpen, ...limits } = this.#options;
    const { fd, ...bind } = listen;
    const onStream = (stream: TransportStream) => this.#connected(stream);
    const factory = streamFactory(onStream, {
      allowHalfOpen,
      idleTimeoutMs: limits.idleTimeoutMs,
      idleResetOnWrite: limits.idleResetOnWrite,
    });
    try {
      this.#listener =
        fd === undefined
          ? this.reactor.listenTCP({ ...limits, ...bind, port: validatePort(bind.port ?? 0) }, factory)
          : this.reactor.adoptListener(fd, factory, limits);
    } catch (error) {
      // A refused bind is an event, as node:net's; a bad argument is thrown.
      if (!isSystemError(error)) throw error;
      process.nextTick(() => this.emit('error', error));
      return this;
    }
    this.#closing = false;
    if (callback !== undefined) this.once('listening', callback);
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  /** `{ address, family, port }` while listening, else null. */
  address(): Address | null {
    return this.listening ? { ...this.#listener!.address } : null;
  }

  /**
   * Stops accepting (clients waiting over the cap are turned away with the
   * queue's overflow policy); 'close' follows once every connection is gone.
   * `callback` gets ERR_SERVER_NOT_RUNNING if the server was not listening.
   */
  close(callback?: (error?: Error) => void): this {
    if (callback !== undefined) validateFunction(callback, 'callback');
    const listener = this.#listener;
    if (listener === undefined || !listener.listening) {
      const error = new ReactorError('ERR_SERVER_NOT_RUNNING', 'the server is not running');
      if (callback !== undefined) this.once('close', () => callback(error));
      process.nextTick(() => this.emit('close'));
      return this;
    }
    if (callback !== undefined) this.once('close', () => callback());
    if (!this.reactor.closed) listener.close();
    this.#listener = undefined;
    this.#closing = true;
    this.#closeIfDrained();
    return this;
  }

  /**
   * A worker's graceful stop (runWorkers): stops accepting without closing
   * the socket (the processes sharing it take the new clients), serves the
   * connections it has, and once the last one has gone closes as close()
   * does; resolves then. Rejects with ERR_SERVER_NOT_RUNNING if not listening.
   */
  drain(): Promise<void> {
    const listener = this.#listener;
    if (listener === undefined || !listener.listening) {
      return Promise.reject(new ReactorError('ERR_SERVER_NOT_RUNNING', 'the server is not running'));
    }
    listener.stopAccepting();
    return new Promise((resolve) => {
      // close() may have been called meanwhile: its 'close' settles this too.
      this.#whenDrained = () => (this.#listener === undefined ? this.once('close', () => resolve()) : this.close(() => resolve()));
      this.#closeIfDrained();
    });
  }

  /** Connections open now, as node:net's `getConnections`. */
  getConnections(callback: (error: Error | null, count: number) => void): this {
    validateFunction(callback, 'callback');
    const count = this.#streams.size;
    process.nextTick(() => callback(null, count));
    return this;
  }

  #connected(stream: TransportStream): void {
    this.#streams.add(stream);
    stream.once('close', () => {
      this.#streams.delete(stream);
      this.#closeIfDrained();
    });
    this.emit('connection', stream);
  }

  #closeIfDrained(): void {
    if (this.#streams.size > 0) return;
    const drained = this.#whenDrained;
    this.#whenDrained = undefined;
    drained?.();
    if (!this.#closing) return;
    this.#closing = false;
    process.nextTick(() => this.emit('close'));
  }
}

/** A net.Server-like server whose connections are TransportStreams (see StreamServer). */
export function createStreamServer(
  reactor: Reactor,
  options?: StreamServerOptions | ((stream: TransportStream) => void),
  connectionListener?: (stream: TransportStream) => void,
): StreamServer {
  if (typeof options === 'function') {
    connectionListener = options;
    options = undefined;
  }
  const server = new StreamServer(reactor, options);
  if (connectionListener !== undefined) {
    validateFunction(connectionListener, 'connectionListener');
    server.on('connection', connectionListener);
  }
  return server;
}

function isSystemError(error: unknown): boolean {
  return error instanceof ReactorError && error.syscall !== undefined;
}
