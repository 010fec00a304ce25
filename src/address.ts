import { isIP } from 'node:net';
import { invalidValue } from './validate.js';

export interface Address {
  /** Numeric host, or the socket path for Unix sockets. */
  address: string;
  /** 0 for Unix sockets. */
  port: number;
  family: 'IPv4' | 'IPv6' | 'unix';
}

/**
 * @internal
 * Listening takes numeric hosts so it can be synchronous (the port is known on
 * return); "localhost" is the one name accepted, as 127.0.0.1.
 */
export function listenHost(host: string): string {
  if (host === 'localhost') return '127.0.0.1';
  if (isIP(host) === 0) throw invalidValue('host', host, 'must be a numeric IPv4/IPv6 address or "localhost"');
  return host;
}

/** @internal */
export function toAddress(raw: { address: string; port: number; family: string }): Address {
  return { address: raw.address, port: raw.port, family: raw.family as Address['family'] };
}

/** Where a server listens: a port to bind (with host, backlog...), or a socket made elsewhere. */
export interface ListenSocketOptions {
  /** The port to bind; required unless `fd` is given. */
  port?: number | undefined;
  /**
   * A listening socket made elsewhere to serve instead of binding one (a
   * worker's from workerContext().fd, or systemd's), adopted as
   * reactor.adoptListener() does; excludes port, host, backlog, reusePort, ipv6Only.
   */
  fd?: number | undefined;
  /** Numeric address or "localhost". Default: "::" (dual-stack), else "0.0.0.0". */
  host?: string | undefined;
  /** Default 511. */
  backlog?: number | undefined;
  /** SO_REUSEPORT: several listeners (processes) share the port. Default false. */
  reusePort?: boolean | undefined;
  /** For IPv6 hosts: refuse IPv4-mapped connections. Default false. */
  ipv6Only?: boolean | undefined;
}
