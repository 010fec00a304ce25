export { Reactor, BACKEND_NAMES } from './reactor.js';
export type {
  BackendName,
  ConnectTCPOptions,
  ConnectUnixOptions,
  ListenTCPOptions,
  ListenUnixOptions,
  ReactorOptions,
} from './reactor.js';
export { Transport } from './transport.js';
export type { TransportState } from './transport.js';
export { Listener } from './listener.js';
export { DelayedCall } from './timers.js';
export { ReactorError } from './errors.js';
export type { Address } from './address.js';
export type { Protocol, ProtocolFactory } from './protocol.js';
