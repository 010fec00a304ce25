// reactor.stats(): after a known amount of work the counters say exactly
// that. The server and its clients live on two reactors, so each reactor's
// figures describe one side only.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Transport } from '../src/index.js';
import { Collector, closeQuietly, codeOf, deferred, newReactor } from './helpers.js';

const HOST = '127.0.0.1';
const TRAILER = Buffer.from('<bye>');

type Stats = ReturnType<Reactor['stats']>;
const KEYS = [
  'open',
  'queued',
  'accepted',
  'rejected',
  'queueTimeouts',
  'abandoned',
  'reaped',
  'idleTimeouts',
  'bytesIn',
  'bytesOut',
  'loopIterations',
  'batches',
  'records',
  'maxBatch',
  'emfile',
] as const;

/** The admission and idle counters, which stay 0 without caps and timeouts. */
function untouched(s: Stats) {
  return {
    queued: s.queued,
    rejected: s.rejected,
    queueTimeouts: s.queueTimeouts,
    abandoned: s.abandoned,
    reaped: s.reaped,
    idleTimeouts: s.idleTimeouts,
    emfile: s.emfile,
  };
}
const UNTOUCHED = { queued: 0, rejected: 0, queueTimeouts: 0, abandoned: 0, reaped: 0, idleTimeouts: 0, emfile: 0 };

describe.each(Reactor.backends)('%s backend', (backend) => {
  let server: Reactor;
  let clients: Reactor;
  beforeEach(() => {
    server = newReactor(backend);
    clients = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(clients);
    closeQuietly(server);
  });

  it('a fresh reactor reports every counter, all zero, as non-negative integers', () => {
    const s = server.stats();
    for (const key of KEYS) {
      expect(typeof s[key], key).toBe('number');
      expect(Number.isInteger(s[key]) && s[key] >= 0, `${key} = ${s[key]}`).toBe(true);
    }
    expect({ ...untouched(s), open: s.open, accepted: s.accepted, bytesIn: s.bytesIn, bytesOut: s.bytesOut, batches: s.batches, records: s.records, maxBatch: s.maxBatch }).toEqual({
      ...UNTOUCHED,
      open: 0,
      accepted: 0,
      bytesIn: 0,
      bytesOut: 0,
      batches: 0,
      records: 0,
      maxBatch: 0,
    });
  });

  it('counts accepted and open connections, and the exact bytes read and written', { timeout: 20_000 }, async () => {
    const N = 24;
    let serverRead = 0;
    let serverWritten = 0;
    let made = 0;
    let lost = 0;
    const allMade = deferred<void>();
    const allLost = deferred<void>();
    const listener = server.listenTCP({ port: 0, host: HOST }, () => ({
      connectionMade() {
        if (++made === N) allMade.resolve();
      },
      dataReceived(data: Buffer, t: Transport) {
        serverRead += data.length;
        t.write(data);
        serverWritten += data.length;
      },
      readConnectionLost(t: Transport) {
        t.end(TRAILER);
        serverWritten += TRAILER.length;
      },
      connectionLost() {
        if (++lost === N) allLost.resolve();
      },
    }));
    const port = listener.address.port;

    // Hold N connections open.
    const conns = await Promise.all(
      Array.from({ length: N }, async () => {
        const client = new Collector();
        const transport = await clients.connectTCP({ host: HOST, port }, client);
        return { client, transport };
      }),
    );
    await allMade.promise;
    const held = server.stats();
    expect(held.accepted).toBe(N);
    expect(held.open).toBe(N);
    expect(held.bytesIn).toBe(0);
    expect(held.bytesOut).toBe(0);
    expect(untouched(held)).toEqual(UNTOUCHED);
    const clientHeld = clients.stats();
    expect(clientHeld.open).toBe(N); // connected transports count as open
    expect(clientHeld.accepted).toBe(0);

    // Each client sends its own amount (one of them 3 MiB, to queue), then ends;
    // the server echoes it, adds a trailer and ends too.
    const sizes = conns.map((_, i) => (i === 0 ? 3 * 1024 * 1024 : 1 + ((i * 7919) % 40_000)));
    const payloads = sizes.map((size) => randomBytes(size));
    conns.forEach(({ transport }, i) => {
      transport.write(payloads[i]!);
      transport.end();
    });
    const reasons = await Promise.all(conns.map(({ client }) => client.lost.promise));
    expect(reasons.every((r) => r === undefined)).toBe(true);
    conns.forEach(({ client }, i) => {
      expect(client.bytes().equals(Buffer.concat([payloads[i]!, TRAILER])), `client ${i}`).toBe(true);
    });
    await allLost.promise;

    const total = sizes.reduce((a, b) => a + b, 0);
    expect(serverRead).toBe(total);
    expect(serverWritten).toBe(total + N * TRAILER.length);

    const s = server.stats();
    expect(s.accepted).toBe(N);
    expect(s.open).toBe(0);
    expect(s.bytesIn).toBe(serverRead);
    expect(s.bytesOut).toBe(serverWritten);
    expect(untouched(s)).toEqual(UNTOUCHED);
    expect(s.batches).toBeGreaterThanOrEqual(1);
    expect(s.records).toBeGreaterThanOrEqual(s.batches);
    expect(s.records).toBeGreaterThanOrEqual(N); // at least one record per accepted connection
    expect(s.maxBatch).toBeGreaterThanOrEqual(1);
    expect(s.maxBatch).toBeLessThanOrEqual(s.records);
    expect(s.loopIterations).toBeGreaterThanOrEqual(1);

    // The client side mirrors it.
    const c = clients.stats();
    expect(c.open).toBe(0);
    expect(c.accepted).toBe(0);
    expect(c.bytesOut).toBe(total);
    expect(c.bytesIn).toBe(total + N * TRAILER.length);
    expect(untouched(c)).toEqual(UNTOUCHED);
  });

  it('open drops as connections close, one by one', async () => {
    const listener = server.listenTCP({ port: 0, host: HOST }, () => ({ dataReceived() {} }));
    const conns = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const client = new Collector();
        return { client, transport: await clients.connectTCP({ host: HOST, port: listener.address.port }, client) };
      }),
    );
    expect(clients.stats().open).toBe(3);
    for (let i = 0; i < conns.length; i++) {
      conns[i]!.transport.close();
      await conns[i]!.client.lost.promise;
      expect(clients.stats().open).toBe(conns.length - 1 - i);
    }
  });

  it('timer runs are counted: batches, records and loop iterations grow by at least one per run', async () => {
    const RUNS = 5;
    const before = server.stats();
    const done = deferred<void>();
    let runs = 0;
    const step = () => {
      if (++runs === RUNS) done.resolve();
      else server.callLater(2, step);
    };
    server.callLater(2, step);
    await done.promise;
    const after = server.stats();
    expect(after.batches - before.batches).toBeGreaterThanOrEqual(RUNS);
    expect(after.records - before.records).toBeGreaterThanOrEqual(RUNS);
    expect(after.loopIterations - before.loopIterations).toBeGreaterThanOrEqual(RUNS);
    expect(after.maxBatch).toBeGreaterThanOrEqual(1);
    expect(after.open).toBe(0);
    expect(after.accepted).toBe(0);
  });

  it('stats() after reactor.close() throws ERR_REACTOR_CLOSED', () => {
    server.close();
    expect(codeOf(() => server.stats())).toBe('ERR_REACTOR_CLOSED');
  });
});
