// Type fixture (never run): what an ESM consumer may and may not write.
// Every `@ts-expect-error` line must fail to compile; test/types.test.ts runs
// tsc over this file against the built declarations.
import {
  BACKEND_NAMES,
  DelayedCall,
  Listener,
  Reactor,
  ReactorError,
  Transport,
  UDPSocket,
  Watcher,
  type Address,
  type BackendList,
  type BackendName,
  type ConcreteBackendName,
  type ListenTCPOptions,
  type Protocol,
  type ProtocolFactory,
  type ReactorStats,
  type ShutdownResult,
  type DatagramProtocol,
  type ListenUDPOptions,
  type RemoteInfo,
  type UDPSocketStats,
  type WatchEvent,
  type WatchInterest,
  type WatchOptions,
} from 'native-reactor';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): void {}

// ---- backend names ----
assertType<Equal<BackendName, 'auto' | 'epoll' | 'kqueue' | 'poll' | 'select' | 'io_uring'>>();
assertType<Equal<ConcreteBackendName, 'epoll' | 'kqueue' | 'poll' | 'select' | 'io_uring'>>();
assertType<Equal<(typeof BACKEND_NAMES)[number], BackendName>>();
assertType<Equal<(typeof Reactor.backends)[number], ConcreteBackendName>>();
assertType<Equal<typeof Reactor.backends, BackendList>>();
assertType<Equal<Reactor['backend'], ConcreteBackendName>>();

const reactor = new Reactor();
const running: ConcreteBackendName = reactor.backend;
// @ts-expect-error a reactor never runs on 'auto'
const notAuto: typeof reactor.backend = 'auto';
// @ts-expect-error Reactor.backends is read-only
Reactor.backends.push('epoll');
// @ts-expect-error reactor.backend is read-only
reactor.backend = 'poll';

// includes() and indexOf() take any string; includes() narrows it.
declare const fromEnv: string;
if (Reactor.backends.includes(fromEnv)) {
  const picked: ConcreteBackendName = fromEnv;
  new Reactor({ backend: picked });
}
const position: number = Reactor.backends.indexOf(fromEnv);
// @ts-expect-error a plain string is not a backend name
new Reactor({ backend: fromEnv });
// @ts-expect-error a misspelt backend
new Reactor({ backend: 'epol' });
new Reactor({ backend: 'auto' });

// ---- optional fields take undefined (exactOptionalPropertyTypes) ----
new Reactor({ backend: undefined, onError: undefined });
new Reactor({});
new Reactor(undefined);

const echo: Protocol = {
  dataReceived(data, transport) {
    const bytes: Buffer = data;
    transport.write(bytes);
  },
  connectionMade: undefined,
  readConnectionLost: undefined,
  writeDrained: undefined,
  timeoutConnection: undefined,
  shutdownRequested: undefined,
  connectionLost: undefined,
  keepsData: undefined,
};
const factory: ProtocolFactory = () => echo;

const tcpOptions: ListenTCPOptions = {
  port: 0,
  host: undefined,
  backlog: undefined,
  reusePort: undefined,
  ipv6Only: undefined,
  idleTimeoutMs: undefined,
  idleResetOnWrite: undefined,
  idleGraceMs: undefined,
  maxConnections: undefined,
  maxConnectionsPerPeer: undefined,
  highWaterMark: undefined,
  lowWaterMark: undefined,
  maxWriteBuffer: undefined,
  queue: undefined,
};
const listener: Listener = reactor.listenTCP(tcpOptions, factory);
reactor.listenTCP(
  { port: 0, queue: { mode: undefined, limit: undefined, timeoutMs: undefined, overflow: undefined } },
  () => undefined,
);
reactor.listenTCP({ port: 0, queue: { mode: 'backlog', overflow: Buffer.from('HTTP/1.1 503\r\n\r\n') } }, () => null);
reactor.listenUnix({ path: '/tmp/x.sock', backlog: undefined, maxConnections: undefined }, factory);
const address: Address = listener.address;
const port: number = address.port;

async function clients(): Promise<void> {
  const transport: Transport = await reactor.connectTCP({ port, host: undefined }, echo);
  transport.setIdleTimeout(1000, { resetOnWrite: undefined, graceMs: undefined });
  transport.setKeepAlive(true, undefined, undefined, undefined);
  transport.write('text', undefined);
  await reactor.connectUnix({ path: '/tmp/x.sock' }, echo);
  const result: ShutdownResult = await reactor.shutdown({ timeoutMs: undefined });
  void result;
}
void clients;

// ---- wrong option types do not compile ----
// @ts-expect-error port is a number
reactor.listenTCP({ port: '80' }, factory);
// @ts-expect-error a misspelt option
reactor.listenTCP({ port: 0, hots: '::' }, factory);
// @ts-expect-error null is not undefined
reactor.listenTCP({ port: 0, host: null }, factory);
// @ts-expect-error port is required
reactor.listenTCP({ host: '::' }, factory);
// @ts-expect-error an unknown queue mode
reactor.listenTCP({ port: 0, queue: { mode: 'fifo' } }, factory);
// @ts-expect-error a protocol needs dataReceived
reactor.listenTCP({ port: 0 }, () => ({}));
// @ts-expect-error connectionLost's reason is a ReactorError or undefined
reactor.connectTCP({ port }, { dataReceived() {}, connectionLost: (reason: string) => void reason });
// @ts-expect-error the Unix listener has no TCP options
reactor.listenUnix({ path: '/tmp/y.sock', reusePort: true }, factory);
// @ts-expect-error timeoutMs is a number
reactor.shutdown({ timeoutMs: '1s' });

// ---- UDP ----
const datagrams: DatagramProtocol = {
  datagramReceived(data: Buffer, rinfo: RemoteInfo, socket: UDPSocket) {
    socket.send(data, rinfo.port, rinfo.address);
  },
  startProtocol: undefined,
  connectionRefused: (error: ReactorError) => void error.code,
  socketError: undefined,
  stopProtocol: undefined,
  keepsData: undefined,
};
const udpOptions: ListenUDPOptions = {
  port: 0,
  host: undefined,
  reusePort: undefined,
  reuseAddress: undefined,
  ipv6Only: undefined,
  receiveBufferSize: undefined,
  sendBufferSize: undefined,
};
const udp: UDPSocket = reactor.listenUDP(udpOptions, datagrams);
const sent: boolean = udp.send('x', 53, undefined);
const udpStats: UDPSocketStats = udp.stats();
udp.connect(53);
udp.addMembership('239.1.2.3', undefined);
void [sent, udpStats.dropped, udp.address.port];
// @ts-expect-error a datagram protocol needs datagramReceived
reactor.listenUDP({ port: 0 }, {});
// @ts-expect-error a misspelt option
reactor.listenUDP({ port: 0, reuseport: true }, datagrams);
// @ts-expect-error rinfo.family is 'IPv4' or 'IPv6'
const family: 'unix' = ({} as RemoteInfo).family;
// @ts-expect-error internal
udp.id;
// @ts-expect-error internal
udp.protocol;
// @ts-expect-error internal
udp.received;
// @ts-expect-error private constructor
new UDPSocket();
// @ts-expect-error internal
reactor.dispatching;

// ---- timers ----
const call: DelayedCall = reactor.callLater(10, (who: string, n: number) => void [who, n], 'world', 1);
// @ts-expect-error the arguments must match the callback's parameters
reactor.callLater(10, (who: string) => void who, 42);
call.unref().ref().hasRef();

// ---- watchers ----
const watchOptions: WatchOptions = { readable: true, writable: undefined };
const watcher: Watcher = reactor.watch(0, watchOptions, (event: WatchEvent, self: Watcher) => {
  const hungUp: boolean = event.hangup;
  const failure: ReactorError | undefined = event.error;
  void [hungUp, failure, self.fd];
});
watcher.update({ writable: true });
const interest: WatchInterest = watcher.interest;
watcher.unref().ref().hasRef();
// @ts-expect-error readable is a boolean
reactor.watch(0, { readable: 1 }, () => {});
// @ts-expect-error a misspelt option
reactor.watch(0, { readble: true }, () => {});
// @ts-expect-error the interest is read-only
interest.readable = false;
// @ts-expect-error the fd is read-only
watcher.fd = 1;

// ---- stats and errors ----
const stats: ReactorStats = reactor.stats();
const opened: number = stats.open;
const error = new ReactorError('ERR_X', 'message');
const code: string = error.code;
void [running, notAuto, position, opened, code, family];

// ---- no internal member is in the declarations ----
declare const transport: Transport;
// @ts-expect-error internal
reactor.native;
// @ts-expect-error internal
reactor.checkOpen();
// @ts-expect-error internal
reactor.released;
// @ts-expect-error internal
reactor.timerCancel;
// @ts-expect-error internal
transport.id;
// @ts-expect-error internal
transport.protocol;
// @ts-expect-error internal
transport.abortWith;
// @ts-expect-error internal
transport.lost;
// @ts-expect-error private
transport.host;
// @ts-expect-error internal
listener.id;
// @ts-expect-error internal
listener.factory;
// @ts-expect-error internal
listener.writeLimits;
// @ts-expect-error internal
listener.stopped();
// @ts-expect-error internal
call.id;
// @ts-expect-error internal
call.fire();
// @ts-expect-error internal
watcher.id;
// @ts-expect-error internal
watcher.report(1, 0);
// @ts-expect-error internal
reactor.forgetWatcher;
// Only the reactor makes these.
// @ts-expect-error private constructor
new Listener();
// @ts-expect-error private constructor
new Transport();
// @ts-expect-error private constructor
new DelayedCall();
// @ts-expect-error private constructor
new Watcher();
// @ts-expect-error internal
Transport.create;
// The package has one entry point: nothing else is importable.
// @ts-expect-error not exported
import('native-reactor/dist/native.js');
