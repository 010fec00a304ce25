// reactor.shutdown({ timeoutMs }): listeners close at once, open connections
// are asked to finish (protocol.shutdownRequested, else close(): flush then
// close), whatever is still open at the timeout is aborted, then the reactor
// is closed and the promise resolves with { closed, aborted }. The clients
// live on a second reactor, which the shutdown does not touch.
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol, type ReactorError, type Transport } from '../src/index.js';
import { Collector, closeQuietly, codeOf, deferred, newReactor, rejectionCode } from './helpers.js';

const HOST = '127.0.0.1';
const MiB = 1024 * 1024;
/** The clocks count whole milliseconds: allow one for rounding. */
const SLACK = 1;
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Rejects when `promise` has not settled within `ms` (a bound, not a wait). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** The code fn throws or its promise rejects with (undefined if it succeeds). */
function failureCode(fn: () => unknown): Promise<string | undefined> {
  return rejectionCode((async () => fn())());
}

/** A Collector that pauses reading as soon as it is connected, and notes when it was lost. */
class PausedCollector extends Collector {
  lostAt = Number.NaN;

  override connectionMade(transport: Transport): void {
    transport.pause();
    super.connectionMade(transport);
  }

  override connectionLost(reason: ReactorError | undefined): void {
    this.lostAt = performance.now();
    super.connectionLost(reason);
  }
}

/** One server-side connection, named by the first byte its client sent. */
interface ServerConn {
  transport: Transport;
  tag: string;
  lostCalls: number;
  reason: ReactorError | undefined;
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let clients: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
    clients = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(clients);
    closeQuietly(reactor);
  });

  it('closes an idle connection at once, flushes a busy one, aborts a stuck one at the timeout', { timeout: 20_000 }, async () => {
    const TIMEOUT = 500;
    const busyPayload = randomBytes(4 * MiB);
    // More than the socket buffers of a client that never reads can take
    // (below the default 16 MiB maxWriteBuffer).
    const stuckPayload = randomBytes(12 * MiB);
    const conns = new Map<string, ServerConn>();
    const allTagged = deferred<void>();
    const listener = reactor.listenTCP({ port: 0, host: HOST }, (transport) => {
      const conn: ServerConn = { transport, tag: '', lostCalls: 0, reason: undefined };
      return {
        dataReceived(data: Buffer, t: Transport) {
          if (conn.tag !== '') return;
          conn.tag = data.toString('latin1', 0, 1);
          conns.set(conn.tag, conn);
          if (conn.tag === 'b') t.write(busyPayload);
          if (conn.tag === 's') t.write(stuckPayload);
          if (conns.size === 3) allTagged.resolve();
        },
        connectionLost(reason: ReactorError | undefined) {
          conn.lostCalls++;
          conn.reason = reason;
        },
      };
    });
    const port = listener.address.port;

    const idle = new Collector();
    const busy = new PausedCollector();
    const stuck = new PausedCollector();
    const idleT = await clients.connectTCP({ host: HOST, port }, idle);
    const busyT = await clients.connectTCP({ host: HOST, port }, busy);
    const stuckT = await clients.connectTCP({ host: HOST, port }, stuck);
    idleT.write('i');
    busyT.write('b');
    stuckT.write('s');
    await allTagged.promise;
    // The premise: bytes are still queued on the server for the stuck client.
    expect(conns.get('s')!.transport.bufferedAmount).toBeGreaterThan(0);

    let timerRan = false;
    const timer = reactor.callLater(10_000, () => {
      timerRan = true;
    });

    const start = performance.now();
    const idleLost = idle.lost.promise.then((reason) => ({ reason, at: performance.now() - start }));
    let resolvedAt = Number.NaN;
    const done = reactor.shutdown({ timeoutMs: TIMEOUT }).then((result) => {
      resolvedAt = performance.now() - start;
      return result;
    });
    clients.callLater(100, () => busyT.resume());

    // The idle one is closed at once, cleanly.
    const idleResult = await within(idleLost, 2000, 'the idle client being closed');
    expect(idleResult.reason).toBeUndefined();
    expect(idleResult.at).toBeLessThan(250);

    // The listener no longer accepts, already during the shutdown.
    expect(await rejectionCode(clients.connectTCP({ host: HOST, port }, new Collector()))).toBe('ECONNREFUSED');

    // The busy one gets all 4 MiB intact, then a clean close, before the timeout.
    expect(await within(busy.lost.promise, 3000, 'the busy client being closed')).toBeUndefined();
    expect(busy.lengthAtLoss).toBe(busyPayload.length);
    expect(sha(busy.bytes())).toBe(sha(busyPayload));
    expect(busy.lostAt - start).toBeGreaterThanOrEqual(100 - SLACK);
    expect(busy.lostAt - start).toBeLessThan(TIMEOUT);

    const result = await within(done, 5000, 'shutdown()');
    expect(result).toEqual({ closed: 2, aborted: 1 });
    expect(resolvedAt).toBeGreaterThanOrEqual(TIMEOUT - SLACK);
    expect(resolvedAt).toBeLessThan(TIMEOUT + 1000);
    expect(reactor.closed).toBe(true);
    expect(listener.listening).toBe(false);

    // Every server-side connectionLost ran, once, by the time the promise resolved.
    expect(Object.fromEntries([...conns.values()].map((c) => [c.tag, c.lostCalls]))).toEqual({ i: 1, b: 1, s: 1 });
    expect(conns.get('i')!.reason).toBeUndefined();
    expect(conns.get('b')!.reason).toBeUndefined();
    expect(conns.get('s')!.reason?.code).toBe('ERR_SHUTDOWN_TIMEOUT');

    // The stuck one was reset: it sees ECONNRESET once it reads again.
    if (stuckT.state !== 'closed') stuckT.resume();
    const stuckReason = await within(stuck.lost.promise, 3000, 'the stuck client seeing the reset');
    expect(stuckReason?.code).toBe('ECONNRESET');
    expect(stuck.length).toBeLessThan(stuckPayload.length);

    // Timers were cancelled; the port stays closed.
    expect(timer.active).toBe(false);
    expect(timerRan).toBe(false);
    expect(await rejectionCode(clients.connectTCP({ host: HOST, port }, new Collector()))).toBe('ECONNREFUSED');
  });

  it('shutdownRequested is called instead of close(); the protocol finishes its work and the promise waits for it', async () => {
    let requests = 0;
    let stateAtRequest: string | undefined;
    let closeStarted = Number.NaN;
    let serverLost = 0;
    let serverReason: ReactorError | undefined;
    const serverMade = deferred<void>();
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => {
      const protocol: Protocol = {
        connectionMade: () => serverMade.resolve(),
        shutdownRequested(t: Transport) {
          requests++;
          stateAtRequest = t.state;
          t.write('bye'); // the client answers 'ack' when it is ready
        },
        dataReceived(data: Buffer, t: Transport) {
          if (data.toString() !== 'ack') return;
          t.write(' final');
          closeStarted = performance.now();
          t.close();
        },
        connectionLost(reason) {
          serverLost++;
          serverReason = reason;
        },
      };
      return protocol;
    });
    const client = new Collector();
    const transport = await clients.connectTCP({ host: HOST, port: listener.address.port }, client);
    await serverMade.promise; // the server side exists before the shutdown
    expect(reactor.stats().open).toBe(1);

    const start = performance.now();
    const done = reactor.shutdown({ timeoutMs: 5000 });
    expect(reactor.shutdown(), 'shutdown() again while it runs (documented: the same promise)').toBe(done);
    expect(await within(client.received(3), 2000, "the protocol's goodbye")).toEqual(Buffer.from('bye'));
    expect(requests).toBe(1);
    expect(stateAtRequest).toBe('open');
    // The client takes its time to answer.
    clients.callLater(150, () => transport.write('ack'));

    const result = await within(done, 5000, 'shutdown()');
    const elapsed = performance.now() - start;
    expect(result).toEqual({ closed: 1, aborted: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(150 - SLACK);
    expect(elapsed).toBeLessThan(2000); // not the 5 s timeout
    expect(closeStarted - start).toBeGreaterThanOrEqual(150 - SLACK); // it closed itself, after the ack
    expect(requests).toBe(1);
    expect(serverLost).toBe(1);
    expect(serverReason).toBeUndefined();
    expect(reactor.closed).toBe(true);

    expect(await within(client.lost.promise, 2000, 'the client close')).toBeUndefined();
    expect(client.bytes().toString()).toBe('bye final');
  });

  it('with nothing open, shutdown() resolves at once; afterwards it and every other call throw ERR_REACTOR_CLOSED', async () => {
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => null);
    const port = listener.address.port;
    const start = performance.now();
    const result = await within(reactor.shutdown(), 2000, 'shutdown() with nothing open');
    expect(result).toEqual({ closed: 0, aborted: 0 });
    expect(performance.now() - start).toBeLessThan(200); // not the 15 s default timeout
    expect(reactor.closed).toBe(true);
    expect(listener.listening).toBe(false);
    expect(await rejectionCode(clients.connectTCP({ host: HOST, port }, new Collector()))).toBe('ECONNREFUSED');

    // Soft: every call is checked even when one of them fails.
    expect.soft(await failureCode(() => reactor.shutdown()), 'a second shutdown()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(await failureCode(() => reactor.shutdown({ timeoutMs: 10 })), 'a third shutdown()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(codeOf(() => reactor.close()), 'close()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(codeOf(() => reactor.callLater(1, () => {})), 'callLater()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(codeOf(() => reactor.listenTCP({ port: 0, host: HOST }, () => null)), 'listenTCP()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(codeOf(() => reactor.stats()), 'stats()').toBe('ERR_REACTOR_CLOSED');
    expect.soft(await rejectionCode(reactor.connectTCP({ host: HOST, port }, new Collector())), 'connectTCP()').toBe('ERR_REACTOR_CLOSED');
  });

  it('a reactor with only timers shuts down at once and cancels them', async () => {
    let ran = false;
    const call = reactor.callLater(10_000, () => {
      ran = true;
    });
    const start = performance.now();
    expect(await within(reactor.shutdown({ timeoutMs: 1000 }), 2000, 'shutdown()')).toEqual({ closed: 0, aborted: 0 });
    expect(performance.now() - start).toBeLessThan(200);
    expect(call.active).toBe(false);
    expect(ran).toBe(false);
  });

  it('bad shutdown options throw with codes and leave the reactor open', async () => {
    const loose = reactor as unknown as { shutdown(options?: unknown): Promise<unknown> };
    expect(await failureCode(() => loose.shutdown({ timeoutMs: -1 }))).toBe('ERR_OUT_OF_RANGE');
    expect(await failureCode(() => loose.shutdown({ timeoutMs: Number.NaN }))).toBe('ERR_OUT_OF_RANGE');
    expect(await failureCode(() => loose.shutdown({ timeoutMs: 'x' }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(await failureCode(() => loose.shutdown('x'))).toBe('ERR_INVALID_ARG_TYPE');
    expect(reactor.closed).toBe(false);
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => null);
    expect(listener.listening).toBe(true);
  });
});
