// A reactor's UDP sockets: listenUDP's options, the sockets by native slot,
// and the records of a batch that are theirs (one kDatagram record per
// datagram, kDatagramError for errors that leave a socket open).
import { isIP } from 'node:net';
import { type Address, listenHost, toAddress } from './address.js';
import { systemError } from './errors.js';
import { DATAGRAM_SOURCE_BYTES, type NativeReactor, RecordKind, slotOf } from './native.js';
import { validateDatagramProtocol } from './protocol.js';
import { type DatagramProtocol, UDPSocket, type UDPSocketHost } from './udp.js';
import { SourceReader } from './udp-sources.js';
import { validateBoolean, validateCString, validateInteger, validateKeys, validateObject, validatePort } from './validate.js';

export interface ListenUDPOptions {
  port: number;
  /** Numeric address or 'localhost'. Default '0.0.0.0' (IPv4, as node:dgram's udp4); '::' takes both families. */
  host?: string | undefined;
  /** SO_REUSEPORT: several sockets (processes) share the port, the kernel spreading datagrams. Default false. */
  reusePort?: boolean | undefined;
  /** SO_REUSEADDR: several receivers of one multicast group bind one port. Default false. */
  reuseAddress?: boolean | undefined;
  /** For '::' and other IPv6 hosts: IPv6 only, no IPv4-mapped senders. Default false. */
  ipv6Only?: boolean | undefined;
  /** SO_RCVBUF in bytes (the system doubles it and caps it at net.core.rmem_max). Default: the system's. */
  receiveBufferSize?: number | undefined;
  /** SO_SNDBUF in bytes. Default: the system's. */
  sendBufferSize?: number | undefined;
}

const KEYS = ['port', 'host', 'reusePort', 'reuseAddress', 'ipv6Only', 'receiveBufferSize', 'sendBufferSize'];

/** @internal What the UDP sockets need from their reactor. */
export interface UDPReactor {
  readonly native: NativeReactor;
  readonly dispatching: boolean;
  checkOpen(): void;
  callbackFailed(error: unknown): void;
}

/** @internal */
export class UDPSockets implements UDPSocketHost {
  // Indexed by native slot; an entry is checked against the record's identity.
  readonly #bySlot: (UDPSocket | undefined)[] = [];
  #sources: SourceReader | undefined;

  constructor(private readonly reactor: UDPReactor) {}

  get native(): NativeReactor {
    return this.reactor.native;
  }

  get dispatching(): boolean {
    return this.reactor.dispatching;
  }

  checkOpen(): void {
    this.reactor.checkOpen();
  }

  callbackFailed(error: unknown): void {
    this.reactor.callbackFailed(error);
  }

  forget(socket: UDPSocket): void {
    const slot = slotOf(socket.id);
    if (this.#bySlot[slot] === socket) this.#bySlot[slot] = undefined;
  }

  listen(options: ListenUDPOptions, protocol: DatagramProtocol): UDPSocket {
    validateObject(options, 'options');
    validateKeys(options, 'options', KEYS);
    const port = validatePort(options.port);
    let host = '0.0.0.0';
    if (options.host !== undefined) {
      validateCString(options.host, 'host');
      host = listenHost(options.host);
    }
    const reusePort = validateBoolean(options.reusePort ?? false, 'reusePort');
    const reuseAddress = validateBoolean(options.reuseAddress ?? false, 'reuseAddress');
    const ipv6Only = validateBoolean(options.ipv6Only ?? false, 'ipv6Only');
    const receiveBufferSize = validateInteger(options.receiveBufferSize ?? 0, 'receiveBufferSize', 0, 0x7fffffff);
    const sendBufferSize = validateInteger(options.sendBufferSize ?? 0, 'sendBufferSize', 0, 0x7fffffff);
    validateDatagramProtocol(protocol);
    const native = this.native;
    const id = native.udpOpen(host, port, reusePort, reuseAddress, ipv6Only, receiveBufferSize, sendBufferSize);
    if (id < 0) throw systemError(-id, 'bind', { address: host, port });
    const raw = native.address(id, false);
    const address: Address = typeof raw === 'number' ? { address: host, port, family: isIP(host) === 6 ? 'IPv6' : 'IPv4' } : toAddress(raw);
    const socket = UDPSocket.create(this, id, protocol, address);
    this.#bySlot[slotOf(id)] = socket;
    if (protocol.startProtocol !== undefined) {
      try {
        protocol.startProtocol(socket);
      } catch (error) {
        this.callbackFailed(error); // the socket is everyone's: it stays open
      }
    }
    return socket;
  }

  /**
   * One record of the batch being dispatched (RecordKind.Datagram or
   * DatagramError). Returns whether the datagram's bytes may be kept.
   */
  handle(kind: number, slot: number, id: number, a: number, b: number, slab: Buffer): boolean {
    const socket = this.#bySlot[slot];
    if (socket === undefined || socket.id !== id) return false;
    if (kind === RecordKind.DatagramError) {
      socket.failed(a, b);
      return false;
    }
    const sources = (this.#sources ??= new SourceReader((memory, at) => this.native.udpFormatAddress(memory, at)));
    const start = a + DATAGRAM_SOURCE_BYTES;
    return socket.received(slab.subarray(start, start + b), sources.read(slab, a, b));
  }

  /** reactor.shutdown(): every socket closes. */
  closeAll(): void {
    for (const socket of this.#bySlot) socket?.close();
  }

  /** reactor.close() closed them natively. */
  dropAll(): void {
    for (const socket of this.#bySlot) socket?.dropped();
  }
}
