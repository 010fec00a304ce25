// Who sent a datagram: the source the native side wrote ahead of its payload
// in the read slab (native/datagram.h PackedAddress, host byte order for
// family and port: u16 family (4 or 6), u16 port, u32 IPv6 scope, 16 address
// bytes) turned into node:dgram's rinfo. This runs once per datagram, so the
// address string is cached per sender: a server hears from the same peers
// again and again, and formatting an address costs more than the rest.
import type { RemoteInfo } from './udp.js';

// Senders remembered per family; a server hearing from more starts over.
const CACHE_LIMIT = 4096;

/** @internal */
export class SourceReader {
  #slab: Buffer | undefined;
  #u16: Uint16Array<ArrayBufferLike> = new Uint16Array(0);
  #u32: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  // The last sender of each family, then the cache behind it.
  #lastIPv4 = -1;
  #lastIPv4Name = '';
  readonly #ipv4 = new Map<number, string>();
  readonly #lastIPv6 = new Uint32Array(5);
  #lastIPv6Name = '';
  readonly #ipv6 = new Map<string, string>();

  /** format: the native formatter of an IPv6 source (its zone named as the system names it). */
  constructor(private readonly format: (slab: Buffer, offset: number) => string | number) {}

  /** The rinfo of the datagram whose source is at `at` in `slab` and whose payload has `size` bytes. */
  read(slab: Buffer, at: number, size: number): RemoteInfo {
    if (slab !== this.#slab) this.#view(slab);
    const half = at >>> 1;
    const port = this.#u16[half + 1]!;
    if (this.#u16[half] === 4) return { address: this.#nameIPv4(slab, at), family: 'IPv4', port, size };
    return { address: this.#nameIPv6(slab, at), family: 'IPv6', port, size };
  }

  // The slab is an ArrayBuffer of its own (Buffer.allocUnsafeSlow) and
  // sources are 8-aligned in it, so word views read them in place.
  #view(slab: Buffer): void {
    this.#slab = slab;
    this.#u16 = new Uint16Array(slab.buffer, slab.byteOffset, slab.byteLength >>> 1);
    this.#u32 = new Uint32Array(slab.buffer, slab.byteOffset, slab.byteLength >>> 2);
  }

  #nameIPv4(slab: Buffer, at: number): string {
    const key = this.#u32[(at >>> 2) + 2]!;
    if (key === this.#lastIPv4) return this.#lastIPv4Name;
    let name = this.#ipv4.get(key);
    if (name === undefined) {
      const bytes = at + 8;
      name = `${slab[bytes]}.${slab[bytes + 1]}.${slab[bytes + 2]}.${slab[bytes + 3]}`;
      if (this.#ipv4.size >= CACHE_LIMIT) this.#ipv4.clear();
      this.#ipv4.set(key, name);
    }
    this.#lastIPv4 = key;
    this.#lastIPv4Name = name;
    return name;
  }

  #nameIPv6(slab: Buffer, at: number): string {
    const u32 = this.#u32;
    const last = this.#lastIPv6;
    const word = at >>> 2;
    // The scope (word 1) and the four address words.
    const scope = u32[word + 1]!;
    const w0 = u32[word + 2]!;
    const w1 = u32[word + 3]!;
    const w2 = u32[word + 4]!;
    const w3 = u32[word + 5]!;
    if (this.#lastIPv6Name !== '' && w3 === last[3] && w2 === last[2] && w1 === last[1] && w0 === last[0] && scope === last[4]) {
      return this.#lastIPv6Name;
    }
    const key = `${w0}:${w1}:${w2}:${w3}%${scope}`;
    let name = this.#ipv6.get(key);
    if (name === undefined) {
      const formatted = this.format(slab, at);
      name = typeof formatted === 'string' ? formatted : '';
      if (this.#ipv6.size >= CACHE_LIMIT) this.#ipv6.clear();
      this.#ipv6.set(key, name);
    }
    last[0] = w0;
    last[1] = w1;
    last[2] = w2;
    last[3] = w3;
    last[4] = scope;
    this.#lastIPv6Name = name;
    return name;
  }
}

