// Writes of read bytes made while a batch is dispatched are corked and sent
// when the batch returns (src/write-cork.ts): what a user sees must not change.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol, type Transport } from '../src/index.js';
import { PausedReader } from './flow-helpers.js';
import { Collector, closeQuietly, connectionsFor, echoProtocol, newReactor, patterned } from './helpers.js';

const HOST = '127.0.0.1';

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  for (const finish of ['end', 'close'] as const) {
    it(`writes of read bytes keep their order against strings, writev and ${finish}() in one dataReceived`, async () => {
      const server: Protocol = {
        dataReceived(data, transport) {
          transport.write(data);
          transport.write('|');
          transport.writev([data, Buffer.from('!')]);
          transport.write(data.subarray(0, 1));
          transport[finish]();
        },
      };
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
      const client = new Collector();
      const transport = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
      transport.write('abc');
      expect(await client.lost.promise).toBeUndefined();
      expect(client.bytes().toString()).toBe('abc|abc!a');
    });
  }

  it('write() returns whether less than highWaterMark is queued, after every write of a batch', async () => {
    const high = 64 * 1024;
    const mismatches: string[] = [];
    let falses = 0;
    const server: Protocol = {
      dataReceived(data, transport) {
        // The reader never reads: the kernel's buffers (megabytes) fill, then the queue grows past the mark.
        for (let i = 0; i < 8192 && transport.bufferedAmount < 2 * high; i++) {
          const result = transport.write(data);
          const queued = transport.bufferedAmount;
          if (result !== queued < high) mismatches.push(`write ${i}: returned ${result} with ${queued} queued`);
          if (!result) falses++;
        }
        transport.close();
      },
    };
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
    const client = new PausedReader();
    const transport = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
    transport.write(patterned(4096));
    await expect.poll(() => falses, { timeout: 5000 }).toBeGreaterThan(0);
    expect(mismatches).toEqual([]);
    transport.abort();
  });

  it('writes corked in a batch that fill the queue past highWaterMark still arrive whole and in order', async () => {
    const chunk = patterned(16 * 1024, 7);
    const copies = 640; // 10 MiB: more than the kernel's buffers take while the reader is paused
    const results: boolean[] = [];
    const server: Protocol = {
      dataReceived(data, transport) {
        for (let i = 0; i < copies; i++) results.push(transport.write(data));
        transport.end();
      },
    };
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
    const client = new PausedReader();
    const transport = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
    transport.write(chunk);
    await expect.poll(() => results.length, { timeout: 5000 }).toBe(copies);
    // The queue only grows while nobody reads: once false, false to the end.
    const firstFalse = results.indexOf(false);
    expect(firstFalse).toBeGreaterThan(0);
    expect(results.slice(firstFalse).every((result) => !result)).toBe(true);
    transport.resume();
    const received = await client.received(chunk.length * copies);
    expect(received.equals(Buffer.concat(Array.from({ length: copies }, () => chunk)))).toBe(true);
    transport.close();
    await client.lost.promise;
  });

  it('a batch echoing to many connections sends each its own bytes intact', async () => {
    const count = connectionsFor(backend, 200);
    const size = 64 * 1024;
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
    const clients = Array.from({ length: count }, () => new Collector());
    const transports: Transport[] = await Promise.all(
      clients.map((client) => reactor.connectTCP({ host: HOST, port: listener.address.port }, client)),
    );
    const payloads = clients.map((_, i) => patterned(size, i * size));
    // In small pieces, all at once: each batch of the server holds many connections' data.
    for (let at = 0; at < size; at += 512) {
      transports.forEach((transport, i) => transport.write(payloads[i]!.subarray(at, at + 512)));
    }
    const echoed = await Promise.all(clients.map((client) => client.received(size)));
    echoed.forEach((bytes, i) => expect(bytes.equals(payloads[i]!), `connection ${i}`).toBe(true));
    for (const transport of transports) transport.close();
    await Promise.all(clients.map((client) => client.lost.promise));
  });
});
