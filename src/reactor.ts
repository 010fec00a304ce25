import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { type Address, listenHost, toAddress } from './address.js';
import { abortError, checkNotAborted, CONNECT_KEYS, type ConnectLimits, type ConnectOptions, parseConnectOptions } from './connect.js';
import { descriptorError, ReactorError, reactorClosed, systemError, type ErrorTarget } from './errors.js';
import {
  type ConnectionLimitOptions,
  DEFAULT_WRITE_LIMITS,
  LIMIT_KEYS,
  type ListenerConfig,
  parseListenerConfig,
  validateMs,
} from './limits.js';
import { HTTP_KEYS, HTTP_LIMIT_KEYS, HttpExchanges, HTTPServer, type ListenHTTPOptions, parseHttpConfig, type RequestHandler } from './http.js';
import { Listener } from './listener.js';
import {
  createNativeReactor,
  type NativeReactor,
  nativeBackends,
  packId,
  RECORD_WORDS,
  RecordKind,
  slotOf,
} from './native.js';
import { type Protocol, type ProtocolFactory, validateProtocol } from './protocol.js';
import { DelayedCall } from './timers.js';
import { Transport, type TransportKin } from './transport.js';
import { WriteCork } from './write-cork.js';
import type { DatagramProtocol, UDPSocket } from './udp.js';
import { type ListenUDPOptions, UDPSockets } from './udp-sockets.js';
import { checkWatchesSomething, interestBits, parseWatchOptions, type WatchCallback, Watcher, type WatchOptions } from './watcher.js';
import {
  invalidValue,
  show,
  validateBoolean,
  validateCString,
  validateDelay,
  validateFunction,
  validateInteger,
  validateKeys,
  validateObject,
  validateExclusive,
  validatePort,
} from './validate.js';

/** @internal What only binding a socket takes: refused beside an `fd` to adopt. */
export const BIND_KEYS = ['host', 'backlog', 'reusePort', 'ipv6Only'] as const;

export const BACKEND_NAMES = ['auto', 'epoll', 'kqueue', 'poll', 'select', 'io_uring'] as const;
/** What `new Reactor({ backend })` takes: a backend, or 'auto' for the platform's best. */
export type BackendName = (typeof BACKEND_NAMES)[number];
/** A backend a reactor runs on: `reactor.backend`, the entries of `Reactor.backends`. */
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

/**
 * `Reactor.backends`: the backends available here, frozen. Its includes()
 * and indexOf() take any string, not only a backend name, and includes()
 * narrows it: `if (Reactor.backends.includes(name)) new Reactor({ backend: name })`.
 */
export interface BackendList extends ReadonlyArray<ConcreteBackendName> {
  includes(name: string, fromIndex?: number): name is ConcreteBackendName;
  indexOf(name: string, fromIndex?: number): number;
}

/** The backend asked for could not run, so another runs in its place. */
export interface BackendFallback {
  readonly requested: BackendName;
  /** Why: the errno name of the kernel's refusal (EPERM, ENOSYS, ENOMEM...). */
  readonly code: string;
}

// A process is told once per reason, not once per reactor.
const fallbacksWarned = new Set<string>();

export interface ReactorOptions {
  /** Default: $NATIVE_REACTOR_BACKEND, else 'auto' (the platform's best). */
  backend?: BackendName | undefined;
  /**
   * Receives errors thrown by protocol methods and timer callbacks (the
   * connection concerned is aborted first). Without it they are rethrown as
   * uncaught exceptions, as node:net does.
   */
  onError?: ((error: unknown) => void) | undefined;
}

export interface ListenTCPOptions extends ConnectionLimitOptions {
  port: number;
  /** Numeric address or "localhost". Default: "::" (dual-stack), else "0.0.0.0". */
  host?: string | undefined;
  /** Default 511. */
  backlog?: number | undefined;
  /** SO_REUSEPORT: several listeners (processes) share the port. Default false. */
  reusePort?: boolean | undefined;
  /** For IPv6 hosts: refuse IPv4-mapped connections. Default false. */
  ipv6Only?: boolean | undefined;
}

export interface ListenUnixOptions extends ConnectionLimitOptions {
  path: string;
  backlog?: number | undefined;
}

export interface ConnectTCPOptions extends ConnectOptions {
  port: number;
  /** Name or numeric address. Default "localhost" (127.0.0.1). */
  host?: string | undefined;
}

export interface ConnectUnixOptions extends ConnectOptions {
  path: string;
}

/**
 * reactor.stats(): counters kept natively as events happen (native/loop.h
 * Stats; the binding returns this object as it is).
 */
export interface ReactorStats {
  open: number;
  queued: number;
  accepted: number;
  rejected: number;
  queueTimeouts: number;
  abandoned: number;
  reaped: number;
  idleTimeouts: number;
  bytesIn: number;
  bytesOut: number;
  loopIterations: number;
  batches: number;
  records: number;
  maxBatch: number;
  emfile: number;
  /** Requests the native HTTP server handed to JavaScript. */
  httpRequests: number;
  /** Requests it refused itself (400, 408, 413, 431, 505), closing their connection. */
  httpRefused: number;
}

export interface ShutdownOptions {
  /** Connections still open after this are aborted. Default 15 s. */
  timeoutMs?: number | undefined;
}

export interface ShutdownResult {
  /** Connections that closed by themselves (gracefully) before the timeout. */
  closed: number;
  /** Connections aborted at the timeout. */
  aborted: number;
}

interface PendingConnect {
  resolve(transport: Transport): void;
  reject(error: unknown): void;
  target: ErrorTarget;
  /** Stops the connect's timer and abort listener. */
  settled(): void;
}

/**
 * The event reactor: listeners, connections and timers, driven natively and
 * reported to JavaScript one batch at a time.
 */
// It is the TransportHost, ListenerHost and TimerHost of what it makes (checked
// where it passes itself to them): no `implements` clause, which would name
// those internal interfaces, and members stripped from its declarations.
export class Reactor {
  /** Backends this build can run on this machine, the default first. */
  static readonly backends: BackendList = nativeBackends as BackendList;
  /** Set when io_uring was asked for and the kernel refused it: epoll runs instead. */
  readonly backendFallback: BackendFallback | undefined;

  /** @internal */
  readonly native: NativeReactor;
  /** @internal Writes of dataReceived's data made during a batch, sent when it returns. */
  readonly cork: WriteCork;
  readonly #records: Int32Array;
  #slab: Buffer = Buffer.alloc(0);
  #dataKept = false; // in the batch being dispatched
  #closed = false;
  readonly #onError: ((error: unknown) => void) | undefined;
  // Indexed by native slot; an entry is checked against the record's identity.
  readonly #transports: (Transport | undefined)[] = [];
  readonly #transportKin: TransportKin = { host: this, limits: DEFAULT_WRITE_LIMITS }; // outgoing and adopted connections'
  // Keyed by full identity: a timer slot freed natively can be reused by a
  // new call before JavaScript has run the old one's record.
  readonly #timers = new Map<number, DelayedCall>();
  readonly #listeners = new Map<number, Listener>();
  readonly #watchers = new Map<number, Watcher>();
  readonly #connecting = new Map<Transport, PendingConnect>();
  readonly #udp = new UDPSockets(this);
  #http: HttpExchanges | undefined;
  /** @internal A batch of records is being dispatched (UDP sends made now go out together when it returns). */
  dispatching = false;
  #shutdown: Promise<ShutdownResult> | undefined;
  // Transports a shutdown waits for, and what to call when the last is gone.
  #draining: Set<Transport> | undefined;
  #drained: (() => void) | undefined;

  constructor(options: ReactorOptions = {}) {
    validateObject(options, 'options');
    validateKeys(options, 'options', ['backend', 'onError']);
    const backend: string = options.backend ?? process.env.NATIVE_REACTOR_BACKEND ?? 'auto';
    if (!(BACKEND_NAMES as readonly string[]).includes(backend)) {
      throw invalidValue('backend', backend, `must be one of ${BACKEND_NAMES.join(', ')}`);
    }
    if (options.onError !== undefined) validateFunction(options.onError, 'onError');
    this.#onError = options.onError;
    let native: NativeReactor | undefined;
    try {
      native = createNativeReactor(
        (count, slab) => this.#dispatch(count, slab),
        backend,
        Buffer.allocUnsafeSlow, // read slabs need no zero-fill: the core writes before JavaScript reads
      );
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'ERR_REACTOR_BACKEND_UNAVAILABLE';
      if (code !== 'ERR_REACTOR_BACKEND_UNAVAILABLE') {
        // EMFILE, ENFILE, ENOMEM, EAGAIN: the process, not the backend, ran short.
        throw new ReactorError(code, `new Reactor() ${code}: the ${backend} backend could not get a descriptor, memory or a thread`);
      }
      throw new ReactorError(code, `backend "${backend}" is not available here (have: ${nativeBackends.join(', ')})`);
    }
    // Only while the environment is being torn down does the binding give nothing back.
    if (native === undefined) throw reactorClosed();
    this.native = native;
    this.#records = this.native.records;
    this.cork = new WriteCork(this.native, (id, result) => this.#corkedWriteRefused(id, result));
    if (this.native.fallbackErrno > 0) {
      const code = getSystemErrorName(-this.native.fallbackErrno);
      this.backendFallback = Object.freeze({ requested: backend as BackendName, code });
      if (!fallbacksWarned.has(code)) {
        fallbacksWarned.add(code);
        process.emitWarning(`${backend} is unavailable (${code}); using ${this.native.backend}`, {
          code: 'NATIVE_REACTOR_BACKEND_FALLBACK',
          detail: 'The kernel refused an io_uring instance (disabled by sysctl or a seccomp policy, or not built in).',
        });
      }
    }
  }

  /** The backend in use, e.g. "epoll". */
  get backend(): ConcreteBackendName {
    return this.native.backend;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Listens on TCP. Synchronous: `listener.address.port` is the bound port. */
  listenTCP(options: ListenTCPOptions, factory: ProtocolFactory): Listener {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['port', 'host', 'backlog', 'reusePort', 'ipv6Only', ...LIMIT_KEYS]);
    const port = validatePort(options.port);
    validateFunction(factory, 'factory');
    const backlog = validateInteger(options.backlog ?? 511, 'backlog', 1, 0x7fffffff);
    const reusePort = validateBoolean(options.reusePort ?? false, 'reusePort');
    const ipv6Only = validateBoolean(options.ipv6Only ?? false, 'ipv6Only');
    const config = parseListenerConfig(options, true);
    let host: string;
    let id: number;
    if (options.host === undefined) {
      host = '::';
      id = this.native.listenTcp(host, port, backlog, reusePort, ipv6Only);
      if (id === -EAFNOSUPPORT) {
        host = '0.0.0.0';
        id = this.native.listenTcp(host, port, backlog, reusePort, ipv6Only);
      }
    } else {
      validateCString(options.host, 'host');
      host = listenHost(options.host);
      id = this.native.listenTcp(host, port, backlog, reusePort, ipv6Only);
    }
    if (id < 0) throw systemError(-id, 'listen', { address: host, port });
    return this.#addListener(id, factory, config);
  }

  /** Listens on a Unix socket path; the path is removed when the listener closes. */
  listenUnix(options: ListenUnixOptions, factory: ProtocolFactory): Listener {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['path', 'backlog', ...LIMIT_KEYS]);
    validateCString(options.path, 'path');
    validateFunction(factory, 'factory');
    const backlog = validateInteger(options.backlog ?? 511, 'backlog', 1, 0x7fffffff);
    const config = parseListenerConfig(options, false);
    const id = this.native.listenUnix(options.path, backlog);
    if (id < 0) throw systemError(-id, 'listen', { address: options.path });
    return this.#addListener(id, factory, config);
  }

  /**
   * A native HTTP/1.1 server (src/http.ts): requests parsed natively, one
   * `handler(request, response)` call per request. Synchronous, like listenTCP.
   * With `fd` it serves a listening socket made elsewhere, as adoptListener
   * (a worker's, from runWorkers()), instead of binding one.
   */
  listenHTTP(options: ListenHTTPOptions, handler: RequestHandler): HTTPServer {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['port', 'fd', ...BIND_KEYS, ...HTTP_LIMIT_KEYS, ...HTTP_KEYS]);
    validateExclusive(options, 'options', 'fd', ['port', ...BIND_KEYS]);
    validateFunction(handler, 'handler');
    const http = parseHttpConfig(options);
    const { maxHeaderBytes, maxBodyBytes, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, fd, ...tcp } = options;
    // Between requests a connection's idle timeout is the keep-alive timeout.
    const idleTimeoutMs = http.keepAliveTimeoutMs;
    const listener =
      fd === undefined
        ? this.listenTCP({ ...tcp, port: tcp.port!, idleTimeoutMs }, () => null)
        : this.adoptListener(fd, () => null, { ...(tcp as ConnectionLimitOptions), idleTimeoutMs });
    this.native.configureHttp(listener.id, http);
    this.#http ??= new HttpExchanges(this);
    const server = new HTTPServer(listener, handler, listener.transportKin.limits.high, this.#http);
    this.#http.add(server);
    return server;
  }

  /**
   * Connects over TCP. Resolves with the transport once connected (after
   * `protocol.connectionMade`); rejects with ECONNREFUSED, ENOTFOUND, ...
   */
  async connectTCP(options: ConnectTCPOptions, protocol: Protocol): Promise<Transport> {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['port', 'host', ...CONNECT_KEYS]);
    const port = validatePort(options.port);
    validateProtocol(protocol);
    const name = options.host ?? 'localhost';
    validateCString(name, 'host');
    const limits = parseConnectOptions(options);
    checkNotAborted(limits.signal);
    const host = await resolveHost(name);
    this.checkOpen();
    checkNotAborted(limits.signal);
    return this.#connect(this.native.connectTcp(host, port), protocol, { address: host, port }, limits);
  }

  /** Connects to a Unix socket path; settles like connectTCP. */
  async connectUnix(options: ConnectUnixOptions, protocol: Protocol): Promise<Transport> {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['path', ...CONNECT_KEYS]);
    validateCString(options.path, 'path');
    validateProtocol(protocol);
    const limits = parseConnectOptions(options);
    checkNotAborted(limits.signal);
    return this.#connect(this.native.connectUnix(options.path), protocol, { address: options.path }, limits);
  }

  /**
   * Serves a listening stream socket made elsewhere: inherited from a parent,
   * or passed by systemd socket activation (see systemdListenFds()). TCP or
   * Unix; `limits` are those of listenTCP (maxConnectionsPerPeer only for
   * TCP). The socket is made non-blocking and close-on-exec (flags a parent
   * sharing it sees too) and from then on belongs to the reactor, which
   * closes it with the listener; a Unix socket's path is left in place. On a
   * throw the caller still owns `fd`: EBADF (not open), ENOTSOCK, EINVAL (not
   * a stream socket, or not listening), EEXIST (this reactor has it already),
   * EMFILE (the backend cannot watch it). POSIX only.
   */
  adoptListener(fd: number, factory: ProtocolFactory, limits: ConnectionLimitOptions = {}): Listener {
    this.checkOpen();
    checkPosix('adopting a descriptor');
    validateInteger(fd, 'fd', 0, 0x7fffffff);
    validateFunction(factory, 'factory');
    validateObject(limits, 'limits');
    validateKeys(limits, 'limits', LIMIT_KEYS);
    // Everything is checked before the socket is taken; the family is known after.
    const config = parseListenerConfig(limits, true);
    const requireTcp = limits.maxConnectionsPerPeer !== undefined;
    const id = this.native.adoptListener(fd, requireTcp);
    if (id === -EPROTOTYPE && requireTcp) {
      throw invalidValue('maxConnectionsPerPeer', limits.maxConnectionsPerPeer, `applies to TCP listeners only (fd ${fd} is a Unix socket)`);
    }
    if (id < 0) throw descriptorError(-id, 'adoptListener', fd);
    return this.#addListener(id, factory, config);
  }

  /**
   * Serves a connected stream socket made elsewhere (TCP or Unix), as a
   * connection just made: returns its transport after
   * `protocol.connectionMade` ran, reading from then on. Ownership and flags
   * as adoptListener (TCP_NODELAY is set, as on accepted connections). On a
   * throw the caller still owns `fd`: EBADF, ENOTSOCK, EINVAL (not a stream
   * socket, or a listening one), ENOTCONN, EEXIST, EMFILE. POSIX only.
   */
  adoptConnection(fd: number, protocol: Protocol): Transport {
    this.checkOpen();
    checkPosix('adopting a descriptor');
    validateInteger(fd, 'fd', 0, 0x7fffffff);
    validateProtocol(protocol);
    const id = this.native.adoptConnection(fd);
    if (id < 0) throw descriptorError(-id, 'adoptConnection', fd);
    const transport = Transport.create(this.#transportKin, id, 'open');
    transport.protocol = protocol;
    if (protocol.timeoutConnection) this.native.setIdleNotify(id, true);
    this.#transports[slotOf(id)] = transport;
    try {
      protocol.connectionMade?.(transport);
    } catch (error) {
      this.#failed(transport, error); // as for any protocol method: aborted, then onError
    }
    return transport;
  }

  /**
   * Opens a UDP socket bound to host:port (numeric host or 'localhost';
   * default '0.0.0.0') and reads from it at once: `protocol.startProtocol`
   * has run when it returns, and `datagramReceived` gets each datagram.
   * Synchronous: `socket.address.port` is the bound port when 0 was asked
   * for. Throws EADDRINUSE, EACCES, EADDRNOTAVAIL... from bind. The socket
   * keeps the process alive until it is closed.
   */
  listenUDP(options: ListenUDPOptions, protocol: DatagramProtocol): UDPSocket {
    this.checkOpen();
    return this.#udp.listen(options, protocol);
  }

  /**
   * Watches a descriptor the caller owns and keeps (a pipe, a tty, an
   * eventfd, an inotify fd, a serial device, a socket made elsewhere) for
   * readability and/or writability: `callback(event, watcher)` runs at each
   * turn of the loop while it holds (level-triggered, as libuv's uv_poll).
   * A hang-up or an error is reported once, then the watcher stops until
   * `update()`. The descriptor is never read, written, closed or changed
   * (its flags included): `watcher.close()` stops watching only. Throws
   * EBADF (not open), EEXIST (this reactor has it: its own socket, or
   * watched already), EMFILE (select: fd >= FD_SETSIZE), EPERM (epoll: a
   * regular file). POSIX only. A throwing callback closes its watcher and
   * goes to onError.
   */
  watch(fd: number, options: WatchOptions, callback: WatchCallback): Watcher {
    this.checkOpen();
    checkPosix('watching a descriptor');
    validateInteger(fd, 'fd', 0, 0x7fffffff);
    const interest = parseWatchOptions(options, { readable: false, writable: false });
    checkWatchesSomething(interest, options);
    validateFunction(callback, 'callback');
    const id = this.native.watch(fd, interestBits(interest));
    if (id < 0) throw descriptorError(-id, 'watch', fd);
    const watcher = Watcher.create(this, id, fd, interest, callback);
    this.#watchers.set(id, watcher);
    return watcher;
  }

  /**
   * Runs fn(...args) after `ms` milliseconds (fractions round up). Calls due
   * together run in the order they were set, in one batch.
   */
  callLater<A extends unknown[]>(ms: number, fn: (...args: A) => void, ...args: A): DelayedCall {
    this.checkOpen();
    const delay = validateDelay(ms, 'ms');
    validateFunction(fn, 'fn');
    const id = this.native.timerStart(delay);
    if (id < 0) throw systemError(-id, 'callLater');
    const call = DelayedCall.create(this, id, fn as (...args: unknown[]) => void, args);
    this.#timers.set(id, call);
    return call;
  }

  /**
   * Counters kept natively as events happen (no walk over connections):
   * open and queued connections now; totals of accepted, rejected (queue
   * overflow or timeout, per-peer cap, listener closed), queueTimeouts,
   * abandoned (parked clients that left), reaped (idle connections the
   * reactor ended), idleTimeouts (every expiry), bytesIn, bytesOut,
   * loopIterations, batches, records (records / batches = mean batch size),
   * maxBatch and emfile (accepts that found no free descriptor). Throws
   * ERR_REACTOR_CLOSED once closed.
   */
  stats(): ReactorStats {
    this.checkOpen();
    const stats = this.native.stats();
    if (typeof stats === 'number') throw reactorClosed();
    return stats;
  }

  /**
   * Graceful shutdown: closes every listener (parked connections are
   * rejected), asks each connection to finish (protocol.shutdownRequested,
   * else close(): flush, then close), aborts whatever is still open after
   * `timeoutMs`, then closes the reactor. Resolves with how many connections
   * closed by themselves and how many were aborted. Calling it again while it
   * runs returns the same promise; after the reactor closed it throws
   * ERR_REACTOR_CLOSED.
   */
  shutdown(options: ShutdownOptions = {}): Promise<ShutdownResult> {
    this.checkOpen();
    validateObject(options, 'options');
    validateKeys(options, 'options', ['timeoutMs']);
    const timeoutMs = validateMs(options.timeoutMs ?? 15_000, 'options.timeoutMs');
    if (this.#shutdown) return this.#shutdown;
    let resolve!: (result: ShutdownResult) => void;
    // Set before any protocol runs: a shutdownRequested that calls shutdown() gets this promise.
    this.#shutdown = new Promise<ShutdownResult>((settle) => (resolve = settle));
    for (const listener of [...this.#listeners.values()]) listener.close();
    this.#udp.closeAll();
    const draining = new Set<Transport>();
    for (const transport of this.#transports) if (transport !== undefined) draining.add(transport);
    const total = draining.size;
    this.#draining = draining;
    let aborted = 0;
    const deadline = this.callLater(timeoutMs, () => {
      for (const transport of [...draining]) {
        aborted++;
        transport.abortWith(new ReactorError('ERR_SHUTDOWN_TIMEOUT', `still open ${timeoutMs} ms after shutdown()`));
      }
    });
    const drained = (): void => {
      if (this.#drained !== drained) return; // once
      this.#draining = undefined;
      this.#drained = undefined;
      if (!this.#closed) {
        deadline.cancel();
        this.close();
      }
      resolve({ closed: total - aborted, aborted });
    };
    this.#drained = drained;
    for (const transport of [...draining]) {
      if (this.#closed) break;
      if (transport.state === 'closed' || transport.state === 'closing') continue;
      try {
        const protocol = transport.protocol;
        // A connection still being made has no conversation to finish.
        if (transport.state !== 'connecting' && protocol?.shutdownRequested) protocol.shutdownRequested(transport);
        else transport.close();
      } catch (error) {
        this.#failed(transport, error);
      }
    }
    if (draining.size === 0) drained();
    return this.#shutdown;
  }

  /**
   * Closes every listener and connection at once (queued bytes are dropped;
   * protocols get connectionLost with ERR_REACTOR_CLOSED) and cancels every
   * timer. Throws ERR_REACTOR_CLOSED if already closed.
   */
  close(): void {
    this.checkOpen();
    this.cork.flush();
    this.#closed = true;
    this.native.shutdown();
    const reason = reactorClosed();
    for (const transport of this.#transports) transport?.dropped(reason);
    for (const listener of this.#listeners.values()) listener.stopped();
    this.#udp.dropAll();
    for (const call of this.#timers.values()) call.deactivate();
    for (const watcher of [...this.#watchers.values()]) watcher.stopped();
    this.#listeners.clear();
    this.#timers.clear();
    this.#http?.settleDrained();
  }

  // ---- hosts' callbacks ----

  /** @internal */
  checkOpen(): void {
    if (this.#closed) throw reactorClosed();
  }

  /** @internal */
  released(transport: Transport, reason: ReactorError | undefined, now: boolean): void {
    const slot = slotOf(transport.id);
    if (this.#transports[slot] === transport) this.#transports[slot] = undefined;
    this.cork.forget(transport.id);
    if (this.#draining?.delete(transport) && this.#draining.size === 0) process.nextTick(this.#drained!);
    const pending = this.#connecting.get(transport);
    if (pending) {
      this.#connecting.delete(transport);
      pending.settled();
      const error = reason?.errno ? systemError(-reason.errno, 'connect', pending.target) : reason;
      pending.reject(error ?? new ReactorError('ERR_SOCKET_CLOSED', 'closed before connecting'));
      return;
    }
    const protocol = transport.protocol;
    if (!protocol?.connectionLost) return;
    if (now) protocol.connectionLost(reason, transport);
    else
      process.nextTick(() => {
        try {
          protocol.connectionLost!(reason, transport);
        } catch (error) {
          this.#failed(undefined, error);
        }
      });
  }

  /** @internal A protocol method threw where no batch catches it. */
  callbackFailed(error: unknown): void {
    this.#failed(undefined, error);
  }

  /** @internal */
  forgetWatcher(watcher: Watcher): void {
    this.#watchers.delete(watcher.id);
  }

  /** @internal */
  closeListener(listener: Listener): void {
    this.#listeners.delete(listener.id);
    this.native.close(listener.id);
  }

  /** @internal */
  stopAccepting(listener: Listener): void {
    this.native.stopAccepting(listener.id);
  }

  /** @internal */
  listenerCounts(listener: Listener): [number, number] {
    this.checkOpen();
    const counts = this.native.listenerCounts(listener.id);
    return typeof counts === 'number' ? [0, 0] : counts;
  }

  /** @internal */
  timerCancel(call: DelayedCall): void {
    this.checkOpen();
    this.native.timerCancel(call.id);
    this.#timers.delete(call.id);
  }

  /** @internal */
  timerReset(call: DelayedCall, delayMs: number): void {
    this.checkOpen();
    if (this.native.timerReset(call.id, delayMs) === 1) return;
    // Already due in the batch being dispatched: its record is now skipped
    // and the call gets a fresh native timer.
    const id = this.native.timerStart(delayMs);
    if (id < 0) throw systemError(-id, 'callLater');
    this.#timers.delete(call.id);
    call.id = id;
    this.#timers.set(id, call);
    if (!call.hasRef()) this.native.timerKeepAlive(id, false);
  }

  /** @internal */
  timerKeepAlive(call: DelayedCall, keepAlive: boolean): void {
    this.checkOpen();
    this.native.timerKeepAlive(call.id, keepAlive);
  }

  // ---- internals ----

  #addListener(id: number, factory: ProtocolFactory, config: ListenerConfig): Listener {
    this.native.configureListener(id, config.native);
    const raw = this.native.address(id, false);
    const address: Address =
      typeof raw === 'number' ? { address: '', port: 0, family: 'unix' } : toAddress(raw);
    const listener = Listener.create(this, id, factory, { host: this, limits: config.writeLimits }, address);
    this.#listeners.set(id, listener);
    return listener;
  }

  #connect(id: number, protocol: Protocol, target: ErrorTarget, limits: ConnectLimits): Promise<Transport> {
    if (id < 0) return Promise.reject(systemError(-id, 'connect', target));
    const transport = Transport.create(this.#transportKin, id, 'connecting');
    transport.protocol = protocol;
    if (protocol.timeoutConnection) this.native.setIdleNotify(id, true);
    this.#transports[slotOf(id)] = transport;
    const { timeoutMs, signal } = limits;
    // The connecting transport keeps the process alive; its timer need not.
    const timer =
      timeoutMs > 0
        ? this.callLater(timeoutMs, () => transport.abortWith(systemError(ETIMEDOUT, 'connect', target))).unref()
        : undefined;
    const onAbort = () => transport.abortWith(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    const settled = () => {
      if (!this.#closed) timer?.cancel();
      signal?.removeEventListener('abort', onAbort);
    };
    return new Promise((resolve, reject) => this.#connecting.set(transport, { resolve, reject, target, settled }));
  }

  /**
   * Walks one batch of records; see RecordKind. A throw is confined to its
   * record. Returns true when no protocol that got data may have kept it, so
   * the native side can read into those bytes again.
   */
  #dispatch(count: number, slab: Buffer | undefined): boolean {
    if (slab !== undefined) this.#slab = slab;
    this.#dataKept = false;
    this.dispatching = true;
    const records = this.#records;
    for (let at = 0, end = count * RECORD_WORDS; at < end && !this.#closed; at += RECORD_WORDS) {
      const kind = records[at]!;
      const slot = records[at + 1]!;
      const id = packId(slot, records[at + 2]!);
      try {
        this.#handle(kind, slot, id, records[at + 3]!, records[at + 4]!);
      } catch (error) {
        const transport = kind === RecordKind.Timer ? undefined : this.#transports[slot];
        this.#failed(transport?.id === id ? transport : undefined, error);
      }
    }
    this.#http?.batchEnded();
    this.cork.end();
    this.dispatching = false;
    return !this.#dataKept;
  }

  #handle(kind: number, slot: number, id: number, a: number, b: number): void {
    if (kind === RecordKind.Datagram || kind === RecordKind.DatagramError) {
      if (this.#udp.handle(kind, slot, id, a, b, this.#slab)) this.#dataKept = true;
      return;
    }
    if (kind >= RecordKind.HttpRequest && kind <= RecordKind.HttpEnd) {
      this.#dataKept = true; // a request's head and body stay views of the slab
      this.#http!.handle(kind, slot, id, a, b, this.#slab);
      return;
    }
    if (kind === RecordKind.Timer) {
      const call = this.#timers.get(id);
      if (call === undefined) return;
      this.#timers.delete(id);
      call.fire();
      return;
    }
    if (kind === RecordKind.Accepted) {
      this.#accept(id, slot, packId(a, b));
      return;
    }
    if (kind === RecordKind.Watch) {
      this.#watched(id, a, b);
      return;
    }
    const transport = this.#transports[slot];
    if (transport === undefined || transport.id !== id) {
      this.#http?.connectionEvent(kind, slot, id); // HTTP connections have no transport
      return;
    }
    switch (kind) {
      case RecordKind.Data: {
        const protocol = transport.protocol!;
        if (protocol.keepsData !== false) this.#dataKept = true;
        const data = this.#slab.subarray(a, a + b);
        this.cork.receiving(data, a);
        protocol.dataReceived(data, transport);
        break;
      }
      case RecordKind.Connected:
        this.#connected(transport);
        break;
      case RecordKind.Eof:
        transport.peerEnded();
        break;
      case RecordKind.Closed:
        transport.lost(a, b);
        break;
      case RecordKind.Drain:
        transport.drained();
        break;
      case RecordKind.Idle:
        transport.protocol!.timeoutConnection?.(transport);
        break;
    }
  }

  #accept(id: number, slot: number, listenerId: number): void {
    const listener = this.#listeners.get(listenerId);
    const transport = Transport.create(listener?.transportKin ?? this.#transportKin, id, 'open');
    this.#transports[slot] = transport;
    if (listener === undefined) {
      transport.abort(); // its listener closed earlier in this batch
      return;
    }
    const protocol = listener.factory(transport);
    // Closed during the factory call (reactor.close(), transport.abort()):
    // the protocol never had a connection, so it gets neither call.
    if (transport.state === 'closed') return;
    if (protocol == null) {
      transport.close();
      return;
    }
    validateProtocol(protocol);
    transport.protocol = protocol;
    if (protocol.timeoutConnection) this.native.setIdleNotify(id, true);
    protocol.connectionMade?.(transport);
  }

  /** A watcher's callback that throws closes it, as a protocol's aborts its connection. */
  #watched(id: number, flags: number, errno: number): void {
    const watcher = this.#watchers.get(id);
    if (watcher === undefined) return; // closed earlier in this batch
    try {
      watcher.report(flags, errno);
    } catch (error) {
      if (!this.#closed) watcher.close();
      this.#failed(undefined, error);
    }
  }

  #connected(transport: Transport): void {
    transport.opened();
    const pending = this.#connecting.get(transport);
    this.#connecting.delete(transport);
    pending?.settled();
    try {
      transport.protocol!.connectionMade?.(transport);
    } finally {
      pending?.resolve(transport);
    }
  }

  #corkedWriteRefused(id: number, result: number): void {
    const transport = this.#transports[slotOf(id)];
    if (transport?.id === id) transport.writeRefusedLater(result);
  }

  /** A protocol or timer callback threw: abort its connection and report the error. */
  #failed(transport: Transport | undefined, error: unknown): void {
    if (transport !== undefined && !this.#closed) {
      const reason = new ReactorError('ERR_CALLBACK_THREW', `a protocol method threw: ${show(error)}`);
      reason.cause = error;
      transport.abortWith(reason);
    }
    if (this.#onError) this.#onError(error);
    else
      process.nextTick(() => {
        throw error;
      });
  }
}

const { EAFNOSUPPORT, EPROTOTYPE, ETIMEDOUT } = constants.errno;

/** Descriptors of the caller's are POSIX only: JavaScript has none of a Windows socket. */
function checkPosix(what: string): void {
  if (process.platform === 'win32') {
    throw new ReactorError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `${what} is not supported on Windows`);
  }
}

async function resolveHost(host: string): Promise<string> {
  if (host === 'localhost') return '127.0.0.1';
  if (isIP(host) !== 0) return host;
  try {
    return (await lookup(host)).address;
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'ENOTFOUND';
    const failure = new ReactorError(code, `getaddrinfo ${code} ${host}`);
    failure.syscall = 'getaddrinfo';
    failure.address = host;
    throw failure;
  }
}
