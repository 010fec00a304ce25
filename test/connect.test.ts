// Connect timeouts and cancellation: connectTCP/connectUnix({ timeoutMs,
// signal }). A connect that never completes is made on loopback by filling a
// listener's accept queue: the kernel then drops further SYNs, and the
// client's connect waits on its retransmissions.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, ReactorError, type Listener } from '../src/index.js';
import { Collector, closeQuietly, codeOf, deferred, echoProtocol, hasFdDirectory, newReactor, openFds, rejectionCode } from './helpers.js';

const HOST = '127.0.0.1';

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let server: Reactor;
  const sockets: net.Socket[] = [];
  beforeEach(() => {
    reactor = newReactor(backend);
    server = newReactor(backend);
  });
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
    closeQuietly(reactor);
    closeQuietly(server);
  });

  /**
   * A listener whose accept queue is full: one connection served (the cap),
   * the backlog (1 + 1 on Linux) taken by node:net clients that did connect.
   * A further connect gets no SYN-ACK.
   */
  async function fullListener(): Promise<Listener> {
    const served = deferred();
    const listener = server.listenTCP({ port: 0, host: HOST, backlog: 1, maxConnections: 1, queue: { mode: 'backlog' } }, () => {
      served.resolve();
      return echoProtocol();
    });
    const connect = () =>
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(listener.address.port, HOST, () => resolve());
        socket.on('error', reject);
        sockets.push(socket);
      });
    await connect();
    await served.promise;
    // Completed by the kernel, waiting in the accept queue.
    await connect();
    await connect();
    return listener;
  }

  it('a connect that is not answered within timeoutMs rejects with ETIMEDOUT and frees its descriptor', async () => {
    const listener = await fullListener();
    const before = openFds();
    const started = performance.now();
    const client = new Collector();
    const error = (await reactor.connectTCP({ host: HOST, port: listener.address.port, timeoutMs: 200 }, client).catch((e: unknown) => e)) as ReactorError;
    const took = performance.now() - started;
    expect(error).toBeInstanceOf(ReactorError);
    expect(error.code).toBe('ETIMEDOUT');
    expect(error.syscall).toBe('connect');
    expect(error.port).toBe(listener.address.port);
    expect(took).toBeGreaterThanOrEqual(199);
    expect(took).toBeLessThan(900); // the first SYN retransmission is 1 s away
    expect(client.lostCalls).toBe(0); // never connected: no protocol calls
    if (hasFdDirectory) expect(openFds()).toBe(before);
    expect(reactor.stats().open).toBe(0);
  });

  it('aborting the signal cancels a pending connect with ABORT_ERR (the reason as cause) and frees its descriptor', async () => {
    const listener = await fullListener();
    const before = openFds();
    const controller = new AbortController();
    const pending = reactor.connectTCP({ host: HOST, port: listener.address.port, signal: controller.signal }, new Collector());
    const why = new Error('user gave up');
    reactor.callLater(50, () => controller.abort(why));
    const error = (await pending.catch((e: unknown) => e)) as ReactorError;
    expect(error).toBeInstanceOf(ReactorError);
    expect(error.code).toBe('ABORT_ERR');
    expect(error.cause).toBe(why);
    if (hasFdDirectory) expect(openFds()).toBe(before);
  });

  it('an aborted signal rejects at once without dialling; one aborted after the connect changes nothing', async () => {
    const listener = server.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
    const port = listener.address.port;
    expect(await rejectionCode(reactor.connectTCP({ host: HOST, port, signal: AbortSignal.abort() }, new Collector()))).toBe('ABORT_ERR');
    expect(await rejectionCode(reactor.connectUnix({ path: '/nonexistent', signal: AbortSignal.abort() }, new Collector()))).toBe('ABORT_ERR');
    expect(server.stats().accepted).toBe(0);

    const controller = new AbortController();
    const client = new Collector();
    const t = await reactor.connectTCP({ host: HOST, port, signal: controller.signal, timeoutMs: 50 }, client);
    controller.abort();
    t.write('still here');
    expect((await client.received(10)).toString()).toBe('still here');
    // The timeout's timer was cancelled at the connect: nothing fires later.
    await new Promise<void>((resolve) => reactor.callLater(100, resolve));
    expect(t.state).toBe('open');
    expect(client.lostCalls).toBe(0);
  });

  it('a connect that succeeds in time is not affected by timeoutMs', async () => {
    const listener = server.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
    const client = new Collector();
    const t = await reactor.connectTCP({ host: HOST, port: listener.address.port, timeoutMs: 10_000 }, client);
    expect(t.state).toBe('open');
    t.close();
    expect(await client.lost.promise).toBeUndefined();
  });

  it('bad timeoutMs and signal values throw; reactor.close() rejects a pending connect that has a timeout', async () => {
    const port = 1;
    expect(await rejectionCode(reactor.connectTCP({ port, host: HOST, timeoutMs: -1 }, new Collector()))).toBe('ERR_OUT_OF_RANGE');
    expect(await rejectionCode(reactor.connectTCP({ port, host: HOST, timeoutMs: '5' as never }, new Collector()))).toBe('ERR_INVALID_ARG_TYPE');
    expect(await rejectionCode(reactor.connectTCP({ port, host: HOST, signal: {} as never }, new Collector()))).toBe('ERR_INVALID_ARG_TYPE');
    expect(await rejectionCode(reactor.connectTCP({ port, host: HOST, timeout: 5 } as never, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
    const listener = await fullListener();
    const pending = reactor.connectTCP({ host: HOST, port: listener.address.port, timeoutMs: 5_000 }, new Collector());
    reactor.callLater(20, () => reactor.close());
    expect(await rejectionCode(pending)).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => reactor.stats())).toBe('ERR_REACTOR_CLOSED');
  });
});
