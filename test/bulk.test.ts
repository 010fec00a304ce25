import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { Collector, closeQuietly, deferred, echoProtocol, newReactor } from './helpers.js';

const SIZE = 8 * 1024 * 1024;
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Reads slowly on purpose: after each chunk the socket pauses and resumes a
 * millisecond or two later, so the sender's queue has to absorb the backlog.
 */
function readSlowly(socket: net.Socket, onChunk: (chunk: Buffer) => void): void {
  socket.on('data', (chunk: Buffer) => {
    onChunk(chunk);
    socket.pause();
    setTimeout(() => socket.resume(), 2);
  });
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  const sockets: net.Socket[] = [];
  const servers: net.Server[] = [];
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(async () => {
    closeQuietly(reactor);
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('echoes 8 MiB each way intact to a slow node:net reader', { timeout: 20_000 }, async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol(true));
    const payload = randomBytes(SIZE);
    const received: Buffer[] = [];
    let length = 0;
    const done = deferred<void>();
    const socket = net.connect({ host: '127.0.0.1', port: listener.address.port });
    sockets.push(socket);
    socket.on('error', done.reject);
    socket.on('end', () => done.resolve());
    readSlowly(socket, (chunk) => {
      received.push(chunk);
      length += chunk.length;
    });
    // Several writes of uneven size, then end: the server ends once it has echoed all.
    for (let at = 0; at < SIZE; at += 1_000_003) socket.write(payload.subarray(at, Math.min(SIZE, at + 1_000_003)));
    socket.end();
    await done.promise;
    expect(length).toBe(SIZE);
    expect(sha(Buffer.concat(received))).toBe(sha(payload));
  });

  it('sends 8 MiB intact from our client to a slow node:net server', { timeout: 20_000 }, async () => {
    const got = deferred<Buffer>();
    const server = net.createServer((socket) => {
      sockets.push(socket);
      const chunks: Buffer[] = [];
      readSlowly(socket, (chunk) => chunks.push(chunk));
      socket.on('end', () => {
        got.resolve(Buffer.concat(chunks));
        socket.end();
      });
      socket.on('error', got.reject);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port }, client);
    const payload = randomBytes(SIZE);
    // The peer reads slowly: most of 8 MiB must be queued, and write says so.
    expect(transport.write(payload)).toBe(false);
    expect(transport.bufferedAmount).toBeGreaterThan(0);
    expect(transport.bufferedAmount).toBeLessThanOrEqual(SIZE);
    transport.end();
    const data = await got.promise;
    expect(data.length).toBe(SIZE);
    expect(sha(data)).toBe(sha(payload));
    expect(await client.lost.promise).toBeUndefined();
    expect(transport.bufferedAmount).toBe(0);
  });

  it('8 MiB between two reactor transports in many small writes stays in order', { timeout: 20_000 }, async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol(true));
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    const payload = randomBytes(SIZE);
    for (let at = 0; at < SIZE; at += 4093) transport.write(payload.subarray(at, at + 4093));
    transport.end();
    expect(await client.lost.promise).toBeUndefined();
    expect(client.length).toBe(SIZE);
    expect(sha(client.bytes())).toBe(sha(payload));
  });
});
