export { Reactor, BACKEND_NAMES } from './reactor.js';
export type {
  BackendFallback,
  BackendList,
  BackendName,
  ConcreteBackendName,
  ConnectTCPOptions,
  ConnectUnixOptions,
  ListenTCPOptions,
  ListenUnixOptions,
  ReactorOptions,
  ReactorStats,
  ShutdownOptions,
  ShutdownResult,
} from './reactor.js';
export { Transport } from './transport.js';
export type { IdleTimeoutOptions, Producer, TransportState } from './transport.js';
export type { ConnectionLimitOptions, QueueOptions, WriteBufferOptions } from './limits.js';
export type { ConnectOptions } from './connect.js';
export { Listener } from './listener.js';
export { HTTPServer } from './http.js';
export type { ListenHTTPOptions, RequestHandler } from './http.js';
export { HTTPRequest } from './http-request.js';
export { HTTPResponse } from './http-response.js';
export type { HeaderValue } from './http-response.js';
export { UDPSocket } from './udp.js';
export type { DatagramProtocol, RemoteInfo, UDPSocketStats } from './udp.js';
export type { ListenUDPOptions } from './udp-sockets.js';
export { systemdListenFds, SD_LISTEN_FDS_START } from './systemd.js';
export { runWorkers, Workers } from './workers.js';
export type { RunWorkersOptions, WorkerExit, WorkerInfo, WorkerRestart, WorkersListenOptions, WorkersStats } from './workers.js';
export { workerContext, WorkerContext } from './worker-context.js';
export type { WorkerHandlers } from './worker-context.js';
export type { SystemdListenFdsOptions } from './systemd.js';
export { DelayedCall } from './timers.js';
export { Watcher } from './watcher.js';
export type { WatchCallback, WatchEvent, WatchInterest, WatchOptions } from './watcher.js';
export { ReactorError } from './errors.js';
export type { Address, ListenSocketOptions } from './address.js';
export type { Protocol, ProtocolFactory } from './protocol.js';
export { TransportStream, streamFactory } from './stream-bridge.js';
export type { TransportStreamOptions } from './stream-bridge.js';
export { StreamServer, createStreamServer } from './bridge-server.js';
export type { StreamListenOptions, StreamServerOptions } from './bridge-server.js';
export { connectStream } from './bridge-connect.js';
export type { ConnectStreamOptions } from './bridge-connect.js';
