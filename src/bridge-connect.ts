// Outgoing connections as TransportStreams: a client's end of the bridge
// (tls.connect({ socket }), a protocol library that takes a Duplex).
import { CONNECT_KEYS, type ConnectOptions } from './connect.js';
import type { Reactor } from './reactor.js';
import { BridgeProtocol, parseStreamOptions, type TransportStream } from './stream-bridge.js';
import { invalidValue, validateKeys, validateObject } from './validate.js';

export interface ConnectStreamOptions extends ConnectOptions {
  /** TCP port; give `path` instead for a Unix socket. */
  port?: number | undefined;
  /** Name or numeric address. Default "localhost" (127.0.0.1). */
  host?: string | undefined;
  /** A Unix socket's path, in place of host and port. */
  path?: string | undefined;
  /** Keep the write side open once the peer ended. Default true: see TransportStreamOptions. */
  allowHalfOpen?: boolean | undefined;
}

/**
 * Connects (TCP, or a Unix socket with `path`) and resolves with the
 * connection as a TransportStream; rejects as connectTCP/connectUnix do
 * (ECONNREFUSED, ENOTFOUND, ETIMEDOUT with `timeoutMs`, ABORT_ERR).
 */
export function connectStream(reactor: Reactor, options: ConnectStreamOptions): Promise<TransportStream> {
  validateObject(options, 'options');
  validateKeys(options, 'options', ['port', 'host', 'path', 'allowHalfOpen', ...CONNECT_KEYS]);
  const { allowHalfOpen, path, port, host, ...connect } = options;
  if (path !== undefined && (port !== undefined || host !== undefined)) {
    throw invalidValue('options.path', path, 'is a Unix socket: give it without host and port');
  }
  const streamOptions = parseStreamOptions({ allowHalfOpen });
  let made: TransportStream | undefined;
  const protocol = new BridgeProtocol(streamOptions, (stream) => (made = stream));
  const connected =
    path !== undefined ? reactor.connectUnix({ ...connect, path }, protocol) : reactor.connectTCP({ ...connect, port: port!, host }, protocol);
  // connectionMade has run when the connect resolves.
  return connected.then(() => made!);
}
