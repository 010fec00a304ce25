import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BACKEND_NAMES, Reactor, ReactorError, type Protocol, type ReactorError as ReactorErrorType, type Transport } from '../src/index.js';
import { Collector, ServerCounter, closeQuietly, codeOf, deferred, echoProtocol, newReactor, rejectionCode, tmpSocketPath } from './helpers.js';

type Loose = {
  listenTCP(options: unknown, factory: unknown): unknown;
  connectTCP(options: unknown, protocol: unknown): Promise<unknown>;
};

describe.each(Reactor.backends)('%s backend', (backend) => {
  describe('construction', () => {
    it('an unknown backend name throws ERR_INVALID_ARG_VALUE', () => {
      expect(codeOf(() => new Reactor({ backend: 'nope' as never }))).toBe('ERR_INVALID_ARG_VALUE');
      expect(codeOf(() => new Reactor({ backend: 'EPOLL' as never }))).toBe('ERR_INVALID_ARG_VALUE');
    });

    it('a known backend this machine lacks throws ERR_REACTOR_BACKEND_UNAVAILABLE', () => {
      const missing = BACKEND_NAMES.filter((name) => name !== 'auto' && !Reactor.backends.includes(name));
      for (const name of missing) expect(codeOf(() => new Reactor({ backend: name }))).toBe('ERR_REACTOR_BACKEND_UNAVAILABLE');
      expect(missing.length + Reactor.backends.length).toBe(BACKEND_NAMES.length - 1);
    });

    it('reactor.backend names the backend in use; auto picks the first available', () => {
      const r = newReactor(backend);
      const auto = newReactor('auto');
      try {
        expect(r.backend).toBe(backend);
        expect(auto.backend).toBe(Reactor.backends[0]);
      } finally {
        r.close();
        auto.close();
      }
    });

    it('bad options throw ERR_INVALID_ARG_TYPE', () => {
      expect(codeOf(() => new Reactor(null as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => new Reactor({ onError: 'x' as never }))).toBe('ERR_INVALID_ARG_TYPE');
    });

    it('errors are ReactorError instances with a code', () => {
      try {
        new Reactor({ backend: 'nope' as never });
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(ReactorError);
        expect(error).toBeInstanceOf(Error);
        expect((error as ReactorErrorType).code).toBe('ERR_INVALID_ARG_VALUE');
      }
    });
  });

  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  const echoServer = () => reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol());

  async function connectedPair(protocol: Protocol = new Collector()) {
    const serverSide = deferred<Transport>();
    const serverLost = deferred<ReactorErrorType | undefined>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      connectionMade: (t: Transport) => serverSide.resolve(t),
      dataReceived: (d: Buffer, t: Transport) => t.write(d),
      connectionLost: (reason: ReactorErrorType | undefined) => serverLost.resolve(reason),
    }));
    const client = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, protocol);
    const server = await serverSide.promise;
    return { listener, client, server, serverLost: serverLost.promise };
  }

  it('connecting to a closed port rejects with ECONNREFUSED', async () => {
    const listener = echoServer();
    const port = listener.address.port;
    listener.close();
    const error = await reactor.connectTCP({ host: '127.0.0.1', port }, new Collector()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReactorError);
    expect(error).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1', port });
  });

  it('listening on a port in use throws EADDRINUSE', () => {
    const listener = echoServer();
    let error: unknown;
    try {
      reactor.listenTCP({ port: listener.address.port, host: '127.0.0.1' }, () => echoProtocol());
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'EADDRINUSE', syscall: 'listen', port: listener.address.port });
    // The failed attempt left the first listener working.
    expect(listener.listening).toBe(true);
  });

  it('a port held by node:net is EADDRINUSE too', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      expect(codeOf(() => reactor.listenTCP({ port, host: '127.0.0.1' }, () => echoProtocol()))).toBe('EADDRINUSE');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reusePort: true lets two listeners bind one port and both serve', async () => {
    const a = new ServerCounter();
    const b = new ServerCounter();
    const first = reactor.listenTCP({ port: 0, host: '127.0.0.1', reusePort: true }, a.factory);
    const port = first.address.port;
    const second = reactor.listenTCP({ port, host: '127.0.0.1', reusePort: true }, b.factory);
    expect(second.address.port).toBe(port);
    const n = 40;
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const client = new Collector();
        const t = await reactor.connectTCP({ host: '127.0.0.1', port }, client);
        t.write(`#${i}`);
        expect((await client.received(`#${i}`.length)).toString()).toBe(`#${i}`);
        t.close();
        await client.lost.promise;
      }),
    );
    expect(a.made + b.made).toBe(n);
    // Without reusePort on the newcomer, the port is taken.
    expect(codeOf(() => reactor.listenTCP({ port, host: '127.0.0.1' }, () => echoProtocol()))).toBe('EADDRINUSE');
  });

  it('a write to a transport that is not writable returns false, throws nothing and is reported on that transport', async () => {
    const listener = echoServer();
    const c1 = new Collector();
    const t1 = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, c1);
    expect(t1.writable).toBe(true);
    t1.close();
    expect(t1.writable).toBe(false);
    expect(t1.write('x')).toBe(false);
    expect(t1.writev(['x'])).toBe(false);
    expect(t1.end('x')).toBeUndefined();
    const c2 = new Collector();
    const t2 = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, c2);
    t2.end();
    expect(t2.writable).toBe(false);
    expect(t2.state).toBe('open'); // still reading
    expect(t2.write('x')).toBe(false);
    expect(t2.state).toBe('closed');
    // A close that was clean stays clean; the ended one is the write's error.
    expect(await c1.lost.promise).toBeUndefined();
    expect((await c2.lost.promise)?.code).toBe('ERR_STREAM_WRITE_AFTER_END');
    expect([c1.lostCalls, c2.lostCalls]).toEqual([1, 1]);
    // And still nothing thrown after connectionLost.
    expect(t1.write('x')).toBe(false);
    expect(t2.writev([Buffer.from('x')])).toBe(false);
  });

  it("a broadcast from A's dataReceived to a peer B that ended never harms A; B gets ERR_STREAM_WRITE_AFTER_END", async () => {
    const peers: Transport[] = [];
    const serverLost = new Map<string, string>();
    const serverBLost = deferred();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      connectionMade(t) {
        peers.push(t);
      },
      dataReceived(data, from) {
        if (data.toString() === 'bye') {
          from.end();
          return;
        }
        for (const peer of peers) peer.write(data); // B ended: refused, reported on B
      },
      connectionLost(reason, t) {
        serverLost.set(peers.indexOf(t) === 0 ? 'A' : 'B', reason?.code ?? 'clean');
        if (peers.indexOf(t) === 1) serverBLost.resolve();
      },
    }));
    const port = listener.address.port;
    const a = new Collector();
    const ta = await reactor.connectTCP({ host: '127.0.0.1', port }, a);
    // B keeps its side open after the server's end: the server's B stays ended, not closed.
    const bEnded = deferred();
    const b = new Collector();
    const tb = await reactor.connectTCP({ host: '127.0.0.1', port }, Object.assign(b, { readConnectionLost: () => bEnded.resolve() }));
    ta.write('hi');
    await a.received(2);
    tb.write('bye');
    await bEnded.promise;
    ta.write('again');
    await a.received(7);
    expect(a.bytes().toString()).toBe('hiagain');
    await serverBLost.promise;
    expect(serverLost.get('B')).toBe('ERR_STREAM_WRITE_AFTER_END');
    expect(serverLost.has('A')).toBe(false);
    expect(ta.state).toBe('open');
    // (select cannot see a reset after the peer's FIN until it writes: B's client is not asserted on.)
  });

  it('a peer that ends makes its transport close by itself: a broadcast to it meanwhile never throws', async () => {
    const peers = new Set<Transport>();
    const errors: unknown[] = [];
    const r = newReactor(backend, { onError: (error) => errors.push(error) });
    try {
      const listener = r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        connectionMade: (t) => void peers.add(t),
        dataReceived(data) {
          for (const peer of peers) peer.write(data);
        },
        connectionLost: (_reason, t) => void peers.delete(t),
      }));
      const port = listener.address.port;
      const sockets = await Promise.all(
        [0, 1, 2].map(
          () =>
            new Promise<net.Socket>((resolve) => {
              const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
              socket.on('error', () => {});
            }),
        ),
      );
      // One peer ends while the others keep talking: every write to it is refused quietly.
      sockets[2]!.end();
      const heard = deferred();
      let bytes = 0;
      sockets[0]!.on('data', (d) => {
        bytes += d.length;
        if (bytes >= 300) heard.resolve();
      });
      for (let i = 0; i < 30; i++) sockets[1]!.write('0123456789');
      await heard.promise;
      expect(errors).toEqual([]);
      for (const socket of sockets) socket.destroy();
    } finally {
      closeQuietly(r);
    }
  });

  it('bad write arguments throw ERR_INVALID_ARG_TYPE', async () => {
    const listener = echoServer();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, new Collector());
    const loose = t as unknown as { write(d: unknown): boolean; writev(d: unknown): boolean };
    expect(codeOf(() => loose.write(42))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.write(null))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.writev('abc'))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.writev(['ok', 7]))).toBe('ERR_INVALID_ARG_TYPE');
    expect(t.state).toBe('open');
  });

  it('close() and abort() again do nothing; connectionLost runs once, with the first reason', async () => {
    const listener = echoServer();
    const c = new Collector();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, c);
    t.write(Buffer.alloc(4 * 1024 * 1024)); // some of it stays queued: close() flushes
    t.close();
    expect(t.state).toBe('closing');
    t.close();
    t.end();
    expect(await c.lost.promise).toBeUndefined();
    t.close();
    t.abort();
    expect(c.lostCalls).toBe(1);
  });

  it("a local abort() gives connectionLost ERR_CONNECTION_ABORTED, and the peer ECONNRESET", async () => {
    const server = new ServerCounter(echoProtocol());
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, server.factory);
    const c = new Collector();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, c);
    t.write('x');
    await c.received(1);
    t.abort();
    expect((await c.lost.promise)?.code).toBe('ERR_CONNECTION_ABORTED');
    await server.lostAtLeast(1);
    expect(server.reasons.map((r) => r?.code)).toEqual(['ECONNRESET']);
  });

  it('a second listener.close() throws ERR_SERVER_NOT_RUNNING', () => {
    const listener = echoServer();
    listener.close();
    expect(codeOf(() => listener.close())).toBe('ERR_SERVER_NOT_RUNNING');
  });

  it('reactor.close() twice, and every call after it, throw ERR_REACTOR_CLOSED', async () => {
    const listener = echoServer();
    const c = new Collector();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, c);
    const call = reactor.callLater(1000, () => {});
    reactor.close();
    expect(reactor.closed).toBe(true);
    expect(codeOf(() => reactor.close())).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol()))).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => reactor.listenUnix({ path: tmpSocketPath('closed') }, () => echoProtocol()))).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => reactor.callLater(1, () => {}))).toBe('ERR_REACTOR_CLOSED');
    expect(await rejectionCode(reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, new Collector()))).toBe('ERR_REACTOR_CLOSED');
    expect(await rejectionCode(reactor.connectUnix({ path: tmpSocketPath('closed') }, new Collector()))).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => t.write('x'))).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => t.close())).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => listener.close())).toBe('ERR_REACTOR_CLOSED');
    expect(listener.listening).toBe(false);
    expect(call.active).toBe(false);
    expect((await c.lost.promise)?.code).toBe('ERR_REACTOR_CLOSED');
  });

  it.each([-1, 70000, 1.5, '80', Number.NaN, null])('bad port %s throws ERR_SOCKET_BAD_PORT', async (port) => {
    const loose = reactor as unknown as Loose;
    expect(codeOf(() => loose.listenTCP({ port, host: '127.0.0.1' }, () => echoProtocol()))).toBe('ERR_SOCKET_BAD_PORT');
    expect(await rejectionCode(loose.connectTCP({ port, host: '127.0.0.1' }, new Collector()))).toBe('ERR_SOCKET_BAD_PORT');
  });

  it('a bad host throws ERR_INVALID_ARG_VALUE', async () => {
    expect(codeOf(() => reactor.listenTCP({ port: 0, host: 'not-an-address' }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenTCP({ port: 0, host: '' }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenTCP({ port: 0, host: '127.0.0.1.5' }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_VALUE');
    expect(await rejectionCode(reactor.connectTCP({ port: 80, host: '' }, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
    const loose = reactor as unknown as Loose;
    expect(codeOf(() => loose.listenTCP({ port: 0, host: 127 }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('a protocol without dataReceived, or a missing factory, throws ERR_INVALID_ARG_TYPE', async () => {
    const listener = echoServer();
    const loose = reactor as unknown as Loose;
    expect(await rejectionCode(loose.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, {}))).toBe('ERR_INVALID_ARG_TYPE');
    expect(await rejectionCode(loose.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, null))).toBe('ERR_INVALID_ARG_TYPE');
    expect(await rejectionCode(loose.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, { dataReceived: 1 }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.listenTCP({ port: 0, host: '127.0.0.1' }, undefined))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.listenTCP(null, () => echoProtocol()))).toBe('ERR_INVALID_ARG_TYPE');
  });

  it("the peer's abort() gives the other side connectionLost with ECONNRESET", async () => {
    const client = new Collector();
    const { client: t, serverLost } = await connectedPair(client);
    t.write('hello');
    await client.received(5); // the server has surely accepted and echoed
    t.abort();
    expect(t.state).toBe('closed');
    const reason = await serverLost;
    expect(reason).toBeInstanceOf(ReactorError);
    expect(reason?.code).toBe('ECONNRESET');
    // The aborting side hears of it once too.
    await client.lost.promise;
    expect(client.lostCalls).toBe(1);
  });

  it('a server-side abort() resets the client', async () => {
    const client = new Collector();
    const { server } = await connectedPair(client);
    server.abort();
    expect((await client.lost.promise)?.code).toBe('ECONNRESET');
  });

  it('reactor.close() gives every open transport connectionLost with ERR_REACTOR_CLOSED', async () => {
    const client = new Collector();
    const { serverLost, client: t } = await connectedPair(client);
    t.write(Buffer.alloc(1000));
    reactor.close();
    const [c, s] = await Promise.all([client.lost.promise, serverLost]);
    expect(c?.code).toBe('ERR_REACTOR_CLOSED');
    expect(s?.code).toBe('ERR_REACTOR_CLOSED');
    expect(t.state).toBe('closed');
    expect(client.lostCalls).toBe(1);
  });

  it('reactor.close() from inside dataReceived stops the reactor cleanly', async () => {
    const lost: (string | undefined)[] = [];
    const allLost = deferred();
    const track = (reason: ReactorErrorType | undefined) => {
      lost.push(reason?.code);
      if (lost.length === 4) allLost.resolve();
    };
    let accepted = 0;
    const bothAccepted = deferred();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      connectionMade: () => {
        if (++accepted === 2) bothAccepted.resolve();
      },
      dataReceived: () => reactor.close(),
      connectionLost: track,
    }));
    const port = listener.address.port;
    const t1 = await reactor.connectTCP({ host: '127.0.0.1', port }, { dataReceived() {}, connectionLost: track });
    await reactor.connectTCP({ host: '127.0.0.1', port }, { dataReceived() {}, connectionLost: track });
    await bothAccepted.promise;
    t1.write('stop');
    await allLost.promise;
    // Two clients and two server transports, each told once.
    expect(lost).toEqual(Array(4).fill('ERR_REACTOR_CLOSED'));
    expect(reactor.closed).toBe(true);
  });

  // Several connections accepted in one batch; the first one's connectionMade
  // closes the reactor. The rest of the batch must not throw.
  it('reactor.close() from connectionMade with more accepts pending in the batch raises nothing', async () => {
    const errors: unknown[] = [];
    const onUncaught = (error: unknown) => errors.push(error);
    process.on('uncaughtException', onUncaught);
    const sockets: net.Socket[] = [];
    try {
      const closedFromCallback = deferred();
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        connectionMade: () => {
          if (!reactor.closed) {
            reactor.close();
            closedFromCallback.resolve();
          }
        },
        dataReceived() {},
      }));
      const allClosed: Promise<void>[] = [];
      // Issued in one tick: the kernel completes them all before the reactor accepts.
      for (let i = 0; i < 20; i++) {
        const s = net.connect(listener.address.port, '127.0.0.1');
        s.on('error', () => {});
        allClosed.push(new Promise((resolve) => s.on('close', () => resolve())));
        sockets.push(s);
      }
      await closedFromCallback.promise;
      await Promise.all(allClosed); // every client socket was closed (or reset) by the reactor
      await new Promise((resolve) => setImmediate(resolve)); // let any deferred throw surface
      expect(errors).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const s of sockets) s.destroy();
    }
  });

  it('a throwing protocol method reaches onError, its connection is aborted, others keep working', async () => {
    const errors: unknown[] = [];
    const r = newReactor(backend, { onError: (e) => errors.push(e) });
    try {
      const boom = new Error('boom');
      const counter = new ServerCounter({
        dataReceived(data, t) {
          if (data.toString() === 'boom') throw boom;
          t.write(data);
        },
      });
      const listener = r.listenTCP({ port: 0, host: '127.0.0.1' }, counter.factory);
      const port = listener.address.port;
      const bad = new Collector();
      const good = new Collector();
      const tBad = await r.connectTCP({ host: '127.0.0.1', port }, bad);
      const tGood = await r.connectTCP({ host: '127.0.0.1', port }, good);
      tBad.write('boom');
      expect((await bad.lost.promise)?.code).toBe('ECONNRESET');
      expect(errors).toEqual([boom]);
      tGood.write('still here');
      expect((await good.received(10)).toString()).toBe('still here');
      expect(good.lostCalls).toBe(0);
      // A connection accepted later works as well.
      const late = new Collector();
      const tLate = await r.connectTCP({ host: '127.0.0.1', port }, late);
      tLate.write('late');
      expect((await late.received(4)).toString()).toBe('late');
      expect(errors).toHaveLength(1);
    } finally {
      r.close();
    }
  });

  it('a factory returning a protocol without dataReceived reaches onError and the connection is refused', async () => {
    const errors: unknown[] = [];
    const r = newReactor(backend, { onError: (e) => errors.push(e) });
    try {
      const listener = r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({}) as unknown as Protocol);
      const client = new Collector();
      // The refusal may reach the client before or after its connect completes.
      const connected = await r.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client).then(
        () => true,
        (error: { code?: string }) => {
          expect(error.code).toBe('ECONNRESET');
          return false;
        },
      );
      if (connected) expect([undefined, 'ECONNRESET']).toContain((await client.lost.promise)?.code);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    } finally {
      r.close();
    }
  });

  it('writing on after the peer closed ends in connectionLost with EPIPE or ECONNRESET', async () => {
    const lost = deferred<ReactorErrorType | undefined>();
    let writes = 0;
    const pump = (t: Transport) => {
      if (t.state !== 'open') return;
      t.write(Buffer.alloc(16 * 1024));
      writes++;
      if (writes < 5000) reactor.callLater(1, pump, t);
    };
    const protocol: Protocol = {
      dataReceived() {},
      // The peer closed: keep writing into the dead connection.
      readConnectionLost: (t) => pump(t),
      connectionLost: (reason) => lost.resolve(reason),
    };
    const { server } = await connectedPair(protocol);
    server.close();
    const reason = await lost.promise;
    expect(['EPIPE', 'ECONNRESET']).toContain(reason?.code);
    expect(writes).toBeLessThan(5000);
  });
});
