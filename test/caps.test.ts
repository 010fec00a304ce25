// Connection caps: maxConnections with a FIFO parking queue (limit, timeout,
// overflow policy), maxConnectionsPerPeer, abandoned parked clients, and the
// listener.connections / listener.queued getters and reactor.stats() counters.
//
// Clients and server share one reactor. A client's connectTCP resolves once
// the kernel completed the handshake, whether or not the server accepted it,
// so clients connected one after another arrive in a known order. Waiting for
// native state that raises no event (a connection parked, a parked client
// discarded) polls reactor.stats() / listener getters from callLater ticks,
// bounded in count.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Listener, type ListenTCPOptions, type Protocol, type ReactorError, type Transport } from '../src/index.js';
import { Collector, closeQuietly, codeOf, deferred, newReactor, patterned, tmpSocketPath, type Deferred } from './helpers.js';

const HOST = '127.0.0.1';

/** A client's message: a 4-byte index (little-endian), then `payloadLength` patterned bytes. */
function messageFor(index: number, payloadLength: number): Buffer {
  const message = Buffer.alloc(4 + payloadLength);
  message.writeUInt32LE(index, 0);
  patterned(payloadLength, index * 1_000_003).copy(message, 4);
  return message;
}

/** Polls `cond` every 10 ms on the reactor's own timers, at most `ticks` times. */
async function until(reactor: Reactor, cond: () => boolean, ticks = 300): Promise<boolean> {
  for (let i = 0; i < ticks && !cond(); i++) {
    await new Promise<void>((resolve) => reactor.callLater(10, resolve));
  }
  return cond();
}

interface Served {
  transport: Transport;
  /** Bytes the server received on this connection (copied). */
  bytes: Collector;
  lost: Deferred<ReactorError | undefined>;
  /** The client's index (first 4 bytes), once they arrived. */
  index(): number | undefined;
}

/**
 * The server side: records service order, counts open connections (and the
 * most ever open at once), echoes if asked, and closes a connection once it
 * received `closeAfter` bytes — at once if released, else when release()d.
 */
class Server {
  factoryCalls = 0;
  open = 0;
  maxOpen = 0;
  released = true;
  readonly served: Served[] = [];
  readonly #held: Transport[] = [];
  #waiters: { n: number; d: Deferred<Served> }[] = [];

  constructor(private readonly options: { echo?: boolean; closeAfter?: number } = {}) {}

  factory = (): Protocol => {
    this.factoryCalls++;
    let entry: Served | undefined;
    let done = false;
    return {
      connectionMade: (transport) => {
        this.open++;
        this.maxOpen = Math.max(this.maxOpen, this.open);
        const bytes = new Collector();
        entry = {
          transport,
          bytes,
          lost: deferred<ReactorError | undefined>(),
          index: () => (bytes.length >= 4 ? bytes.bytes().readUInt32LE(0) : undefined),
        };
        this.served.push(entry);
        const n = this.served.length;
        this.#waiters = this.#waiters.filter(({ n: want, d }) => {
          if (n <= want) return true;
          d.resolve(this.served[want]!);
          return false;
        });
      },
      dataReceived: (data, transport) => {
        entry!.bytes.dataReceived(Buffer.from(data));
        if (this.options.echo !== false) transport.write(data);
        const closeAfter = this.options.closeAfter;
        if (closeAfter !== undefined && !done && entry!.bytes.length >= closeAfter) {
          done = true;
          if (this.released) transport.close();
          else this.#held.push(transport);
        }
      },
      connectionLost: (reason) => {
        this.open--;
        entry!.bytes.connectionLost(reason);
        entry!.lost.resolve(reason);
      },
    };
  };

  /** Resolves with the n-th served connection (0-based) once it was made. */
  servedAt(n: number): Promise<Served> {
    const entry = this.served[n];
    if (entry !== undefined) return Promise.resolve(entry);
    const d = deferred<Served>();
    this.#waiters.push({ n, d });
    return d.promise;
  }

  /** From now on connections close once complete; those already complete close now. */
  release(): void {
    this.released = true;
    for (const transport of this.#held.splice(0)) if (transport.state === 'open') transport.close();
  }
}

interface Client {
  index: number;
  transport: Transport;
  collector: Collector;
  message: Buffer;
  /** performance.now() just before connectTCP. */
  start: number;
}

/** Connects, then at once writes the client's message (index + payload). */
async function connectClient(reactor: Reactor, port: number, index: number, payloadLength = 0): Promise<Client> {
  const collector = new Collector();
  const start = performance.now();
  const transport = await reactor.connectTCP({ host: HOST, port }, collector);
  const message = messageFor(index, payloadLength);
  transport.write(message);
  return { index, transport, collector, message, start };
}

interface Outcome {
  /** connectTCP resolved (false: it rejected, `code` says why). */
  connected: boolean;
  code: string | undefined;
  data: Buffer;
  /** From just before connectTCP to connectionLost (or the rejection). */
  ms: number;
}

/**
 * A client expected to be turned away: connects, optionally writes `request`,
 * and resolves with how it ended. A reset racing the handshake may reject
 * connectTCP itself instead of reaching connectionLost; both are reported.
 */
async function attempt(reactor: Reactor, port: number, request?: Buffer | string): Promise<Outcome> {
  const collector = new Collector();
  const start = performance.now();
  try {
    const transport = await reactor.connectTCP({ host: HOST, port }, collector);
    if (request !== undefined && transport.state === 'open') transport.write(request);
  } catch (error) {
    return { connected: false, code: (error as { code?: string }).code, data: Buffer.alloc(0), ms: performance.now() - start };
  }
  const reason = await collector.lost.promise;
  return { connected: true, code: reason?.code, data: collector.bytes(), ms: performance.now() - start };
}

/** Waits for the echo of the client's first message, then writes `text` and resolves with its echo. */
async function roundTrip(client: Client, text: string): Promise<string> {
  expect((await client.collector.received(client.message.length)).subarray(0, client.message.length).equals(client.message)).toBe(true);
  const before = client.collector.length;
  client.transport.write(text);
  const all = await client.collector.received(before + Buffer.byteLength(text));
  return all.subarray(before).toString();
}

const CLEAN_OR_RESET = [undefined, 'ECONNRESET'];

/** Every client got its own message back and a clean close, and every served connection ended. */
async function expectAllEchoedAndClosed(clients: Client[], server: Server): Promise<void> {
  const results = await Promise.all(
    clients.map(async (c) => {
      const reason = await c.collector.lost.promise;
      return { i: c.index, intact: c.collector.bytes().equals(c.message), reason: reason?.code };
    }),
  );
  expect(results.filter((r) => !r.intact || r.reason !== undefined)).toEqual([]);
  await Promise.all(server.served.map((s) => s.lost.promise));
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  function listen(options: Omit<ListenTCPOptions, 'port' | 'host'>, server: Server): Listener {
    return reactor.listenTCP({ port: 0, host: HOST, ...options }, server.factory);
  }

  it('50 clients at maxConnections 10: all echoed intact, served in arrival order, never more than 10 open', async () => {
    const CLIENTS = 50;
    const PAYLOAD = 1000;
    const server = new Server({ closeAfter: 4 + PAYLOAD });
    server.released = false; // hold the first ten until all fifty are there
    const listener = listen({ maxConnections: 10 }, server);
    const port = listener.address.port;

    const clients: Client[] = [];
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(reactor, port, i, PAYLOAD));

    // All fifty arrived: ten served, forty parked.
    expect(await until(reactor, () => reactor.stats().queued === CLIENTS - 10)).toBe(true);
    expect(listener.queued).toBe(CLIENTS - 10);
    expect(listener.connections).toBe(10);
    expect(server.factoryCalls).toBe(10);
    expect(reactor.stats().accepted).toBe(CLIENTS);

    server.release();
    await expectAllEchoedAndClosed(clients, server);

    expect(server.served.map((s) => s.index())).toEqual(Array.from({ length: CLIENTS }, (_, i) => i));
    expect(server.factoryCalls).toBe(CLIENTS);
    expect(server.maxOpen).toBeLessThanOrEqual(10);
    expect(server.maxOpen).toBe(10);
    const stats = reactor.stats();
    expect(stats.accepted).toBe(CLIENTS);
    expect(stats.rejected).toBe(0);
    expect(stats.queued).toBe(0);
    expect(listener.queued).toBe(0);
    expect(listener.connections).toBe(0);
    listener.close();
  });

  it("queue.mode 'backlog': over the cap nothing is accepted; the waiting clients are served in arrival order as slots free", async () => {
    const CLIENTS = 20;
    const PAYLOAD = 100;
    const server = new Server({ closeAfter: 4 + PAYLOAD });
    server.released = false;
    const listener = listen({ maxConnections: 5, queue: { mode: 'backlog' } }, server);
    const port = listener.address.port;

    const clients: Client[] = [];
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(reactor, port, i, PAYLOAD));
    expect(await until(reactor, () => server.served.length === 5)).toBe(true);
    // The other fifteen are still in the kernel's backlog: not accepted, not parked.
    await until(reactor, () => reactor.stats().accepted > 5, 10);
    expect(reactor.stats().accepted).toBe(5);
    expect(reactor.stats().queued).toBe(0);
    expect(listener.queued).toBe(0);
    expect(listener.connections).toBe(5);

    server.release();
    await expectAllEchoedAndClosed(clients, server);
    expect(server.served.map((s) => s.index())).toEqual(Array.from({ length: CLIENTS }, (_, i) => i));
    expect(server.maxOpen).toBe(5);
    expect(reactor.stats().accepted).toBe(CLIENTS);
    expect(reactor.stats().rejected).toBe(0);
  });

  it('256 KiB sent while parked reach the server intact and in order once it is served', async () => {
    const SIZE = 256 * 1024;
    const server = new Server();
    const listener = listen({ maxConnections: 1 }, server);
    const port = listener.address.port;

    const a = await connectClient(reactor, port, 0);
    const servedA = await server.servedAt(0);
    const b = await connectClient(reactor, port, 1, SIZE);
    expect(await until(reactor, () => listener.queued === 1)).toBe(true);
    // Let the kernel take what it will while b is parked; b is still not served.
    await until(reactor, () => b.transport.bufferedAmount === 0, 20);
    expect(listener.queued).toBe(1);
    expect(server.factoryCalls).toBe(1);
    expect(server.served.length).toBe(1);

    servedA.transport.close();
    const servedB = await server.servedAt(1);
    const received = await servedB.bytes.received(b.message.length);
    expect(received.length).toBe(b.message.length);
    expect(received.equals(b.message)).toBe(true);
    // And the echo back is intact too.
    expect((await b.collector.received(b.message.length)).equals(b.message)).toBe(true);
    expect(await a.collector.lost.promise).toBeUndefined();
    expect(listener.queued).toBe(0);
    expect(reactor.stats().rejected).toBe(0);
    listener.close();
  });

  it("queue.limit 2 at maxConnections 1: two parked, the next two rejected ('close'), then the parked ones served in order", async () => {
    const server = new Server();
    const listener = listen({ maxConnections: 1, queue: { limit: 2 } }, server);
    const port = listener.address.port;

    const a = await connectClient(reactor, port, 0);
    const servedA = await server.servedAt(0);
    const b = await connectClient(reactor, port, 1);
    const c = await connectClient(reactor, port, 2);
    expect(await until(reactor, () => listener.queued === 2)).toBe(true);

    const d = await attempt(reactor, port);
    const e = await attempt(reactor, port);
    for (const outcome of [d, e]) {
      expect(CLEAN_OR_RESET).toContain(outcome.code);
      expect(outcome.data.length).toBe(0);
    }
    expect(reactor.stats().rejected).toBe(2);
    expect(listener.queued).toBe(2);
    expect(listener.connections).toBe(1);
    expect(server.factoryCalls).toBe(1);

    // Free the slot: b, then c.
    servedA.transport.close();
    const servedB = await server.servedAt(1);
    expect(await roundTrip(b, 'b here')).toBe('b here');
    expect(listener.queued).toBe(1);
    servedB.transport.close();
    await server.servedAt(2);
    expect(await roundTrip(c, 'c here')).toBe('c here');
    expect(server.served.map((s) => s.index())).toEqual([0, 1, 2]);
    expect(server.factoryCalls).toBe(3);
    expect(await a.collector.lost.promise).toBeUndefined();
    expect(await b.collector.lost.promise).toBeUndefined();
    const stats = reactor.stats();
    expect(stats.rejected).toBe(2);
    expect(stats.queued).toBe(0);
    expect(stats.accepted).toBe(5);
    listener.close();
  });

  it("overflow 'reset': a rejected client sees ECONNRESET", async () => {
    const server = new Server();
    const listener = listen({ maxConnections: 1, queue: { limit: 0, overflow: 'reset' } }, server);
    const port = listener.address.port;

    const a = await connectClient(reactor, port, 0);
    await server.servedAt(0);
    const b = await attempt(reactor, port);
    expect(b.code).toBe('ECONNRESET');
    expect(b.data.length).toBe(0);
    expect(reactor.stats().rejected).toBe(1);
    expect(listener.queued).toBe(0);
    expect(server.factoryCalls).toBe(1);
    expect(await roundTrip(a, 'a unaffected')).toBe('a unaffected');
    listener.close();
  });

  it('overflow bytes: a rejected client receives exactly those bytes, then a clean close, even after sending a request', async () => {
    const REPLY = 'HTTP/1.1 503 Service Unavailable\r\n\r\n';
    const REQUEST = 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n';
    const server = new Server();
    const listener = listen({ maxConnections: 1, queue: { limit: 1, overflow: REPLY } }, server);
    const port = listener.address.port;

    await connectClient(reactor, port, 0);
    await server.servedAt(0);

    // b parks, and its request reaches the server's socket while parked.
    const bCollector = new Collector();
    const bTransport = await reactor.connectTCP({ host: HOST, port }, bCollector);
    bTransport.write(REQUEST);
    expect(await until(reactor, () => listener.queued === 1)).toBe(true);
    expect(await until(reactor, () => bTransport.bufferedAmount === 0)).toBe(true);

    // The queue is full: c (no request) and d (request at once) are turned away with the bytes.
    const c = await attempt(reactor, port);
    expect({ code: c.code, data: c.data.toString() }).toEqual({ code: undefined, data: REPLY });
    const d = await attempt(reactor, port, REQUEST);
    expect({ code: d.code, data: d.data.toString() }).toEqual({ code: undefined, data: REPLY });
    expect(reactor.stats().rejected).toBe(2);

    // Closing the listener rejects b the same way.
    listener.close();
    const bReason = await bCollector.lost.promise;
    expect({ code: bReason?.code, data: bCollector.bytes().toString() }).toEqual({ code: undefined, data: REPLY });
    expect(reactor.stats().rejected).toBe(3);
    expect(server.factoryCalls).toBe(1);
  });

  it('queue.timeoutMs 200: a parked client is rejected after >= 200 ms; one served before its timeout is unaffected', async () => {
    const server = new Server();
    const listener = listen({ maxConnections: 1, queue: { timeoutMs: 200 } }, server);
    const port = listener.address.port;

    await connectClient(reactor, port, 0);
    const servedA = await server.servedAt(0);
    const b = await connectClient(reactor, port, 1);
    expect(await until(reactor, () => listener.queued === 1)).toBe(true);
    const cOutcome = attempt(reactor, port);
    expect(await until(reactor, () => listener.queued === 2)).toBe(true);

    // b is served well before its 200 ms are up; c stays parked behind it.
    servedA.transport.close();
    await server.servedAt(1);
    expect(listener.queued).toBe(1);

    const c = await cOutcome;
    expect(c.ms).toBeGreaterThanOrEqual(200);
    expect(c.ms).toBeLessThan(2000);
    expect(CLEAN_OR_RESET).toContain(c.code);
    expect(c.data.length).toBe(0);
    const stats = reactor.stats();
    expect(stats.queueTimeouts).toBe(1);
    expect(stats.rejected).toBe(1);
    expect(stats.queued).toBe(0);

    // b has been around for more than 200 ms and still works.
    expect(performance.now() - b.start).toBeGreaterThanOrEqual(200);
    expect(b.transport.state).toBe('open');
    expect(await roundTrip(b, 'still here')).toBe('still here');
    expect(server.factoryCalls).toBe(2);
    expect(reactor.stats().queueTimeouts).toBe(1);
    listener.close();
  });

  // How a parked client goes away: with nothing sent, or after its request.
  const leavers: { how: string; write: boolean; leave: (t: Transport) => void }[] = [
    { how: 'closes before sending anything (FIN)', write: false, leave: (t) => t.close() },
    { how: 'sends its request, then aborts (RST)', write: true, leave: (t) => t.abort() },
    { how: 'sends its request, then closes (FIN)', write: true, leave: (t) => t.close() },
  ];
  it.each(leavers)('a parked client that $how is discarded (abandoned); the next live parked client is served instead', async ({ write, leave }) => {
    const server = new Server();
    const listener = listen({ maxConnections: 1 }, server);
    const port = listener.address.port;

    await connectClient(reactor, port, 0);
    const servedA = await server.servedAt(0);
    const bCollector = new Collector();
    const bTransport = await reactor.connectTCP({ host: HOST, port }, bCollector);
    if (write) bTransport.write(messageFor(1, 0));
    const c = await connectClient(reactor, port, 2);
    expect(await until(reactor, () => listener.queued === 2)).toBe(true);

    leave(bTransport);
    await bCollector.lost.promise;
    // select has no peer-closed condition: a parked socket with bytes waiting
    // would stay readable, so it is not watched and its client's leaving is
    // only seen once it is served (documented in native/poller_select.cc).
    const noticed = !(write && backend === 'select');
    if (noticed) {
      expect(await until(reactor, () => reactor.stats().abandoned === 1), `stats().abandoned === 1 within 3 s (queued now ${listener.queued})`).toBe(true);
      expect(listener.queued).toBe(1);
      expect(reactor.stats().queued).toBe(1);
    }

    servedA.transport.close();
    if (!noticed) await (await server.servedAt(1)).lost.promise; // served, then gone at its first read
    const next = await server.servedAt(noticed ? 1 : 2);
    await next.bytes.received(4);
    expect(next.index()).toBe(2);
    expect(await roundTrip(c, 'c served')).toBe('c served');
    expect(server.factoryCalls).toBe(noticed ? 2 : 3);
    expect(listener.queued).toBe(0);
    const stats = reactor.stats();
    expect(stats.abandoned).toBe(noticed ? 1 : 0);
    expect(stats.rejected).toBe(0);
    expect(stats.accepted).toBe(3);
    listener.close();
  });

  it('maxConnectionsPerPeer 2: a third connection from the same address is rejected, another address is served, and a slot freed is reused', async () => {
    const server = new Server();
    const listener = listen({ maxConnectionsPerPeer: 2 }, server);
    const port = listener.address.port;

    const a = await connectClient(reactor, port, 0);
    const b = await connectClient(reactor, port, 1);
    const servedA = await server.servedAt(0);
    await server.servedAt(1);

    const c = await attempt(reactor, port);
    expect(CLEAN_OR_RESET).toContain(c.code);
    expect(c.data.length).toBe(0);
    expect(reactor.stats().rejected).toBe(1);
    expect(listener.queued).toBe(0); // not parked
    expect(server.factoryCalls).toBe(2);

    // Another peer address (127.0.0.2 is loopback too) has its own count.
    const other = await new Promise<{ echoed: string; remote: string | undefined }>((resolve, reject) => {
      const socket = net.connect({ port, host: HOST, localAddress: '127.0.0.2' });
      let text = '';
      socket.on('error', reject);
      socket.on('connect', () => socket.write('from .2'));
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.length >= 7) {
          resolve({ echoed: text, remote: server.served[2]?.transport.remoteAddress?.address });
          socket.destroy();
        }
      });
    });
    expect(other).toEqual({ echoed: 'from .2', remote: '127.0.0.2' });

    // a leaves: 127.0.0.1 has room for one more.
    a.transport.close();
    await servedA.lost.promise;
    const d = await connectClient(reactor, port, 3);
    expect(await roundTrip(d, 'd served')).toBe('d served');
    expect(await roundTrip(b, 'b still')).toBe('b still');
    expect(server.factoryCalls).toBe(4);
    expect(reactor.stats().rejected).toBe(1);
    listener.close();
  });

  it('listener.close() rejects parked connections with the overflow policy; the served one stays', async () => {
    const server = new Server();
    const listener = listen({ maxConnections: 1, queue: { overflow: 'reset' } }, server);
    const port = listener.address.port;
    expect(listener.connections).toBe(0);
    expect(listener.queued).toBe(0);

    const a = await connectClient(reactor, port, 0);
    await server.servedAt(0);
    const b = attempt(reactor, port);
    const c = attempt(reactor, port);
    expect(await until(reactor, () => listener.queued === 2)).toBe(true);
    expect(listener.connections).toBe(1);
    expect(reactor.stats().queued).toBe(2);

    listener.close();
    const outcomes = await Promise.all([b, c]);
    expect(outcomes.map((o) => o.code)).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(outcomes.map((o) => o.data.length)).toEqual([0, 0]);
    expect(listener.queued).toBe(0);
    const stats = reactor.stats();
    expect(stats.rejected).toBe(2);
    expect(stats.queued).toBe(0);
    expect(server.factoryCalls).toBe(1);
    expect(await roundTrip(a, 'a stays')).toBe('a stays');
  });

  it("listener.close() with default overflow 'close': parked clients get no data and a close", async () => {
    const server = new Server();
    const listener = listen({ maxConnections: 1 }, server);
    const port = listener.address.port;
    const a = await connectClient(reactor, port, 0);
    await server.servedAt(0);
    const b = attempt(reactor, port);
    expect(await until(reactor, () => listener.queued === 1)).toBe(true);
    listener.close();
    const outcome = await b;
    expect(CLEAN_OR_RESET).toContain(outcome.code);
    expect(outcome.data.length).toBe(0);
    expect(reactor.stats().rejected).toBe(1);
    expect(await roundTrip(a, 'a stays')).toBe('a stays');
  });

  it('bad cap and queue options throw with codes; good ones are accepted', () => {
    const factory = new Server().factory;
    const bad = (extra: Record<string, unknown>) =>
      codeOf(() => reactor.listenTCP({ port: 0, host: HOST, ...extra } as unknown as ListenTCPOptions, factory));
    expect(bad({ maxConnections: 0 })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ maxConnections: -1 })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ maxConnections: 1.5 })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ maxConnections: Number.NaN })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ maxConnections: 'x' })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ maxConnectionsPerPeer: 0 })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ maxConnectionsPerPeer: 'x' })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ queue: 'x' })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ queue: { limit: -1 } })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ queue: { limit: 1.5 } })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ queue: { limit: 'x' } })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ queue: { timeoutMs: -1 } })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ queue: { overflow: 42 } })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ queue: { mode: 'kernel' } })).toBe('ERR_INVALID_ARG_VALUE');
    expect(bad({ queue: { mode: 1 } })).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.listenUnix({ path: tmpSocketPath('caps'), maxConnections: 0 } as never, factory))).toBe('ERR_OUT_OF_RANGE');

    const good: Omit<ListenTCPOptions, 'port'>[] = [
      { maxConnections: 1 },
      { maxConnections: Number.POSITIVE_INFINITY },
      { maxConnectionsPerPeer: 3 },
      { maxConnections: 2, queue: { limit: 0 } },
      { maxConnections: 2, queue: { limit: 5, timeoutMs: 0, overflow: 'close' } },
      { maxConnections: 2, queue: { overflow: 'reset' } },
      { maxConnections: 2, queue: { overflow: 'HTTP/1.1 503 Service Unavailable\r\n\r\n' } },
      { maxConnections: 2, queue: { overflow: new Uint8Array([0x42, 0x59, 0x45]) } },
      { maxConnections: 2, queue: { mode: 'backlog' } },
      { maxConnections: 2, queue: { mode: 'park' } },
    ];
    for (const options of good) {
      let listener: Listener | undefined;
      expect(codeOf(() => (listener = reactor.listenTCP({ port: 0, host: HOST, ...options }, factory)))).toBeUndefined();
      listener?.close();
    }
  });
});
