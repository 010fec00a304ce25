// The ws package over the streams bridge, unmodified: node:http's 'upgrade'
// hands ws a TransportStream; many messages and a large one are echoed in order.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { Reactor } from '../src/index.js';
import { closeQuietly, newReactor } from './helpers.js';
import { HOST, serveHttp, sha256, within } from './stream-bridge-helpers.js';

describe.each(Reactor.backends)('streams bridge, ws (%s)', (backend) => {
  let reactor: Reactor;

  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('echoes many messages and a large one, in order, bytes intact', async () => {
    const server = http.createServer();
    const wss = new WebSocketServer({ server });
    wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
    const { port } = await serveHttp(reactor, () => undefined, {}, server);

    const client = new WebSocket(`ws://${HOST}:${port}/`);
    await within(new Promise((resolve, reject) => client.once('open', resolve).once('error', reject)), 5_000, 'open');
    const count = 1000;
    const large = randomBytes(4 * 1024 * 1024);
    const received: string[] = [];
    let largeHash = '';
    const done = new Promise<void>((resolve) =>
      client.on('message', (data: Buffer, isBinary) => {
        if (isBinary) largeHash = sha256(data);
        else received.push(data.toString());
        if (received.length === count && largeHash !== '') resolve();
      }),
    );
    for (let i = 0; i < count / 2; i++) client.send(`message ${i}`);
    client.send(large);
    for (let i = count / 2; i < count; i++) client.send(`message ${i}`);
    await within(done, 15_000, 'the echoes');
    expect(received).toEqual(Array.from({ length: count }, (_, i) => `message ${i}`));
    expect(largeHash).toBe(sha256(large));

    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    client.close(1000);
    expect(await within(closed, 5_000, 'the close handshake')).toBe(1000);
    wss.close();
  });
});
