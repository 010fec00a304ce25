// A UDP socket (reactor.listenUDP): sending, the connected mode, pause and
// resume, multicast and broadcast options, closing; and what its protocol
// hears. Datagrams arrive through the reactor's batches (udp-sockets.ts).
import { isIP } from 'node:net';
import { type Address, toAddress } from './address.js';
import { ReactorError, socketClosed, systemError, type ErrorTarget } from './errors.js';
import { type NativeReactor, UdpOperation, UdpOption, UdpSendResult } from './native.js';
import { toBytes } from './transport.js';
import { invalidValue, show, validateBoolean, validateCString, validateInteger } from './validate.js';

/** Who sent a datagram, as node:dgram's `rinfo`. */
export interface RemoteInfo {
  /** Numeric; an IPv4 sender on a dual-stack ('::') socket reads as '::ffff:a.b.c.d'. */
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  /** The datagram's length in bytes. */
  size: number;
}

/** What a UDP socket does with its events. Only `datagramReceived` is required. */
export interface DatagramProtocol {
  /** The socket is bound and reading; runs inside listenUDP(), before it returns. */
  startProtocol?: ((socket: UDPSocket) => void) | undefined;
  /**
   * One datagram. `data` is a view of a read slab that is never rewritten,
   * as a stream protocol's data (see Protocol.keepsData). Called once per
   * datagram, many per batch.
   */
  datagramReceived(data: Buffer, rinfo: RemoteInfo, socket: UDPSocket): void;
  /** As Protocol.keepsData: false promises `data` is not kept after datagramReceived returns. */
  readonly keepsData?: boolean | undefined;
  /**
   * A connected socket's peer refused a datagram (an ICMP port unreachable):
   * ECONNREFUSED. The socket stays open. Without this method it goes to socketError.
   */
  connectionRefused?: ((error: ReactorError, socket: UDPSocket) => void) | undefined;
  /**
   * A datagram could not be sent (EACCES for a broadcast without
   * setBroadcast, EMSGSIZE, ENETUNREACH...; `syscall` 'send') or an error
   * came back for the socket (ICMP unreachables on a connected socket,
   * `syscall` 'recv'). The socket stays open. Without this method such
   * errors are only counted (stats().errors): UDP loses datagrams silently anyway.
   */
  socketError?: ((error: ReactorError, socket: UDPSocket) => void) | undefined;
  /** The socket closed (close(), reactor.close(), reactor.shutdown()); runs once. */
  stopProtocol?: ((socket: UDPSocket) => void) | undefined;
}

/** socket.stats(): counters kept natively as events happen. */
export interface UDPSocketStats {
  datagramsIn: number;
  bytesIn: number;
  /** Datagrams the kernel took. */
  datagramsOut: number;
  bytesOut: number;
  /** Sends refused because the socket's queue (64 datagrams, 256 KiB) was full. */
  dropped: number;
  /** Failed sends and errors received, reported to the protocol or not. */
  errors: number;
}

/** @internal What a UDP socket needs from its reactor. */
export interface UDPSocketHost {
  readonly native: NativeReactor;
  /** A batch is being dispatched: sends made now go out together when it returns. */
  readonly dispatching: boolean;
  checkOpen(): void;
  /** The socket closed: no record reaches it any more. */
  forget(socket: UDPSocket): void;
  /** A protocol method threw outside a batch (the dispatcher catches those inside). */
  callbackFailed(error: unknown): void;
}

/**
 * A bound UDP socket. Sends are synchronous and take numeric hosts (or
 * 'localhost'); resolve names first (dns.lookup) if you have them.
 */
export class UDPSocket {
  #closed = false;
  #connected = false;
  #paused = false;
  #remote: Address | undefined;
  // Datagrams that reached a paused socket within its batch: (data, rinfo) pairs.
  #held: (Buffer | RemoteInfo)[] | undefined;
  #heldScheduled = false;
  // The last host send() checked and what it sends to: most sends reply to the last sender.
  #lastHost: unknown;
  #lastTarget = '';
  readonly #keepsData: boolean;

  /** @internal Only a reactor makes UDP sockets (the constructor is private to the types). */
  static create(host: UDPSocketHost, id: number, protocol: DatagramProtocol, address: Address): UDPSocket {
    return new UDPSocket(host, id, protocol, address);
  }

  private constructor(
    private readonly host: UDPSocketHost,
    /** @internal native identity */ readonly id: number,
    /** @internal */ readonly protocol: DatagramProtocol,
    /** Where it is bound: the port the system chose when 0 was asked for. */
    readonly address: Address,
  ) {
    this.#keepsData = protocol.keepsData !== false;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The connected peer, or undefined. */
  get remoteAddress(): Address | undefined {
    return this.#remote;
  }

  get isPaused(): boolean {
    return this.#paused;
  }

  /**
   * Sends one datagram to host:port (host numeric or 'localhost', the
   * default), or with `data` alone to the connected peer. Returns true when
   * the kernel took it or it is queued: sends made while the reactor
   * dispatches a batch go out together, with one system call, when the
   * batch returns; a full send buffer queues up to 64 datagrams / 256 KiB.
   * Returns false when it was not sent: the queue was full (stats().dropped)
   * or the kernel refused it — that error goes to protocol.socketError in
   * the next batch (connectionRefused for ECONNREFUSED), never thrown here.
   * Throws for bad arguments, ERR_SOCKET_DGRAM_NOT_CONNECTED /
   * ERR_SOCKET_DGRAM_IS_CONNECTED for the wrong form, EAFNOSUPPORT for an
   * IPv6 host on an IPv4 socket, ERR_SOCKET_CLOSED once closed.
   */
  send(data: ArrayBufferView | string, port?: number, host?: string): boolean {
    const bytes = toBytes(data, undefined, 'data');
    if (this.#closed) throw this.#closedError();
    let target: string | undefined;
    if (port === undefined) {
      if (host !== undefined) validatePeerPort(port);
      if (!this.#connected) throw notConnected();
    } else {
      validatePeerPort(port);
      if (this.#connected) throw isConnected();
      target = host === this.#lastHost && host !== undefined ? this.#lastTarget : this.#target(host);
    }
    const result = this.host.native.udpSend(this.id, bytes, port ?? 0, target, this.host.dispatching);
    if (result === UdpSendResult.Sent || result === UdpSendResult.Queued) return true;
    if (result >= 0) return false;
    throw systemError(-result, 'send', target === undefined ? {} : { address: target, port: port! });
  }

  /**
   * The connected mode: only host:port may send to this socket, send(data)
   * goes there, and a refusal comes back as connectionRefused.
   * Synchronous (numeric host or 'localhost', the default).
   */
  connect(port: number, host?: string): void {
    validatePeerPort(port);
    const target = this.#target(host);
    this.#checkUsable();
    if (this.#connected) throw isConnected();
    this.#result(this.host.native.udpConnect(this.id, target, port), 'connect', { address: target, port });
    this.#connected = true;
    const peer = this.host.native.address(this.id, true);
    this.#remote = typeof peer === 'number' ? undefined : toAddress(peer);
  }

  /** Leaves the connected mode: it hears from anyone again. */
  disconnect(): void {
    this.#checkUsable();
    if (!this.#connected) throw notConnected();
    this.#result(this.host.native.udpDisconnect(this.id), 'disconnect');
    this.#connected = false;
    this.#remote = undefined;
  }

  /** SO_BROADCAST: whether datagrams may go to broadcast addresses (else EACCES). */
  setBroadcast(flag: boolean): void {
    this.#setOption(UdpOption.Broadcast, +validateBoolean(flag, 'flag'), 'setBroadcast');
  }

  /** Unicast hop limit, 1–255. */
  setTTL(ttl: number): void {
    this.#setOption(UdpOption.Ttl, validateInteger(ttl, 'ttl', 1, 255), 'setTTL');
  }

  /** Multicast hop limit, 0–255 (default 1: the local network). */
  setMulticastTTL(ttl: number): void {
    this.#setOption(UdpOption.MulticastTtl, validateInteger(ttl, 'ttl', 0, 255), 'setMulticastTTL');
  }

  /** Whether this host's own members of a group hear what it sends there (default true). */
  setMulticastLoopback(flag: boolean): void {
    this.#setOption(UdpOption.MulticastLoopback, +validateBoolean(flag, 'flag'), 'setMulticastLoopback');
  }

  /**
   * Where multicast leaves: an IPv4 interface's address on an IPv4 socket;
   * on an IPv6 one '::%' and the interface ('::%eth0', '::%2').
   */
  setMulticastInterface(interfaceAddress: string): void {
    validateCString(interfaceAddress, 'interfaceAddress');
    this.#checkUsable();
    this.#result(this.host.native.udpSetMulticastInterface(this.id, interfaceAddress), 'setMulticastInterface');
  }

  /** Joins a multicast group, on the interface named as for setMulticastInterface (default: the system's choice). */
  addMembership(group: string, interfaceAddress?: string): void {
    this.#membership(undefined, group, interfaceAddress, true, 'addMembership');
  }

  dropMembership(group: string, interfaceAddress?: string): void {
    this.#membership(undefined, group, interfaceAddress, false, 'dropMembership');
  }

  /** Joins a group for the datagrams `source` sends to it only. */
  addSourceSpecificMembership(source: string, group: string, interfaceAddress?: string): void {
    validateCString(source, 'source');
    this.#membership(source, group, interfaceAddress, true, 'addSourceSpecificMembership');
  }

  dropSourceSpecificMembership(source: string, group: string, interfaceAddress?: string): void {
    validateCString(source, 'source');
    this.#membership(source, group, interfaceAddress, false, 'dropSourceSpecificMembership');
  }

  /**
   * Stops receiving: no datagramReceived until resume(), even for datagrams
   * already read in the batch being dispatched (they wait, in order).
   * Meanwhile the kernel's receive buffer fills and then drops, as UDP does.
   */
  pause(): void {
    this.#checkUsable();
    this.#result(this.host.native.udpSetReading(this.id, false), 'pause');
    this.#paused = true;
  }

  /** Receives again: what waited comes first, in order. */
  resume(): void {
    this.#checkUsable();
    this.#result(this.host.native.udpSetReading(this.id, true), 'resume');
    this.#paused = false;
    if (this.#held !== undefined && !this.#heldScheduled) {
      this.#heldScheduled = true;
      // Not from inside resume(): its caller may be in the middle of a callback.
      process.nextTick(() => this.#deliverHeld());
    }
  }

  /**
   * Closes the socket (what is queued goes if the kernel takes it now) and
   * releases its port; stopProtocol follows. Again, it does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.host.checkOpen();
    this.host.native.udpClose(this.id);
    this.#stopped();
  }

  stats(): UDPSocketStats {
    this.#checkUsable();
    const stats = this.host.native.udpStats(this.id);
    if (typeof stats === 'number') throw systemError(-stats, 'stats');
    return stats;
  }

  // ---- called by the reactor ----

  /** @internal One datagram; returns whether `data` may be kept. */
  received(data: Buffer, rinfo: RemoteInfo): boolean {
    if (this.#paused || this.#held !== undefined) {
      (this.#held ??= []).push(data, rinfo);
      return true;
    }
    this.protocol.datagramReceived(data, rinfo, this);
    return this.#keepsData;
  }

  /** @internal An error that leaves the socket open. */
  failed(errno: number, operation: UdpOperation): void {
    const protocol = this.protocol;
    if (protocol.connectionRefused === undefined && protocol.socketError === undefined) return;
    const target: ErrorTarget = this.#remote === undefined ? {} : { address: this.#remote.address, port: this.#remote.port };
    const error = systemError(errno, operation === UdpOperation.Send ? 'send' : 'recv', target);
    if (error.code === 'ECONNREFUSED' && protocol.connectionRefused !== undefined) protocol.connectionRefused(error, this);
    else protocol.socketError?.(error, this);
  }

  /** @internal The reactor closed, and its sockets with it. */
  dropped(): void {
    this.#stopped();
  }

  #stopped(): void {
    this.#closed = true;
    this.#held = undefined;
    this.host.forget(this);
    const stop = this.protocol.stopProtocol;
    if (stop === undefined) return;
    process.nextTick(() => {
      try {
        stop.call(this.protocol, this);
      } catch (error) {
        this.host.callbackFailed(error);
      }
    });
  }

  #deliverHeld(): void {
    this.#heldScheduled = false;
    const held = this.#held;
    if (held === undefined) return;
    let at = 0;
    while (at < held.length && !this.#paused && !this.#closed) {
      const data = held[at++] as Buffer;
      const rinfo = held[at++] as RemoteInfo;
      try {
        this.protocol.datagramReceived(data, rinfo, this);
      } catch (error) {
        this.host.callbackFailed(error);
      }
    }
    if (this.#held !== held) return; // closed meanwhile
    held.splice(0, at);
    if (held.length === 0) this.#held = undefined;
  }

  /** 'localhost' (the default) as this socket's family names it; a numeric host as it is. */
  #target(host: unknown): string {
    let target: string;
    if (host === undefined || host === 'localhost') {
      target = this.address.family === 'IPv6' ? '::1' : '127.0.0.1';
    } else {
      validateCString(host, 'host');
      if (isIP(host) === 0) throw invalidValue('host', host, 'must be a numeric IPv4/IPv6 address or "localhost" (resolve names first)');
      target = host;
    }
    this.#lastHost = host;
    this.#lastTarget = target;
    return target;
  }

  #membership(source: string | undefined, group: string, interfaceAddress: string | undefined, join: boolean, syscall: string): void {
    validateCString(group, 'group');
    if (interfaceAddress !== undefined) validateCString(interfaceAddress, 'interfaceAddress');
    this.#checkUsable();
    this.#result(this.host.native.udpMembership(this.id, source, group, interfaceAddress, join), syscall);
  }

  #setOption(option: UdpOption, value: number, syscall: string): void {
    this.#checkUsable();
    this.#result(this.host.native.udpSetOption(this.id, option, value), syscall);
  }

  #result(result: number, syscall: string, target: ErrorTarget = {}): void {
    if (result < 0) throw systemError(-result, syscall, target);
  }

  #checkUsable(): void {
    if (this.#closed) throw this.#closedError();
  }

  /** ERR_REACTOR_CLOSED when the reactor, not only the socket, is gone. */
  #closedError(): ReactorError {
    this.host.checkOpen();
    return socketClosed();
  }
}

function validatePeerPort(value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ReactorError('ERR_SOCKET_BAD_PORT', `"port" must be an integer >= 1 and <= 65535, got ${show(value)}`);
  }
}

const notConnected = (): ReactorError => new ReactorError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'the socket is not connected');
const isConnected = (): ReactorError => new ReactorError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'the socket is connected: send(data) goes to its peer');
