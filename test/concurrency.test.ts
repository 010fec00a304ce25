import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { Collector, ServerCounter, closeQuietly, connectionsFor, echoProtocol, newReactor } from './helpers.js';

describe.each(Reactor.backends)('%s backend', (backend) => {
  const CLIENTS = connectionsFor(backend, 1000);
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it(`${CLIENTS} concurrent clients each get their own bytes back`, { timeout: 20_000 }, async () => {
    const counter = new ServerCounter(echoProtocol());
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1', backlog: 2048 }, counter.factory);
    const port = listener.address.port;

    const results = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const client = new Collector();
        const transport = await reactor.connectTCP({ host: '127.0.0.1', port }, client);
        const payload = Buffer.concat([Buffer.from(`client ${i}:`), randomBytes(64 + (i % 200))]);
        transport.write(payload);
        const echoed = await client.received(payload.length);
        transport.close();
        const reason = await client.lost.promise;
        return { ok: echoed.equals(payload), reason, lostCalls: client.lostCalls };
      }),
    );

    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.every((r) => r.reason === undefined && r.lostCalls === 1)).toBe(true);
    await counter.lostAtLeast(CLIENTS);
    expect(counter.made).toBe(CLIENTS);
    expect(counter.lost).toBe(CLIENTS);
    expect(counter.reasons.every((r) => r === undefined)).toBe(true);
    listener.close();
  });

  it('interleaved writes from many clients never mix bytes between connections', { timeout: 20_000 }, async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol(true));
    const port = listener.address.port;
    const clients = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const client = new Collector();
        const transport = await reactor.connectTCP({ host: '127.0.0.1', port }, client);
        return { i, client, transport, sent: [] as Buffer[] };
      }),
    );
    // Round-robin: every client writes a chunk before any writes the next one.
    for (let round = 0; round < 40; round++) {
      for (const c of clients) {
        const chunk = Buffer.from(`<${c.i}:${round}:${'z'.repeat((c.i * 7 + round) % 900)}>`);
        c.sent.push(chunk);
        c.transport.write(chunk);
      }
    }
    for (const c of clients) c.transport.end();
    await Promise.all(clients.map((c) => c.client.lost.promise));
    for (const c of clients) expect(c.client.bytes().equals(Buffer.concat(c.sent))).toBe(true);
  });
});
