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
