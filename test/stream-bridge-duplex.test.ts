// TransportStream as a Duplex of its own, without node:http: half-close per
// allowHalfOpen, cork/uncork, write() and 'drain' following the transport,
// destroy() versus destroy(error), and no descriptor left behind.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStreamServer, Reactor, type StreamServerOptions, type TransportStream } from '../src/index.js';
import { closeQuietly, deferred, newReactor, openFds, patterned } from './helpers.js';
import { curl, HOST, serveHttp, within } from './stream-bridge-helpers.js';

interface Pair {
  stream: TransportStream;
  client: net.Socket;
  received: () => Buffer;
  clientEnded: Promise<void>;
  clientClosed: Promise<boolean>;
}

describe.each(Reactor.backends)('TransportStream (%s)', (backend) => {
  let reactor: Reactor;

  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  /** A server stream and the node:net client connected to it. */
  async function pair(options: StreamServerOptions = {}): Promise<Pair> {
    const accepted = deferred<TransportStream>();
    const server = createStreamServer(reactor, options, (stream) => accepted.resolve(stream));
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const client = net.connect(server.address()!.port, HOST);
    const chunks: Buffer[] = [];
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.on('error', () => undefined);
    const clientEnded = new Promise<void>((resolve) => client.once('end', resolve));
    const clientClosed = new Promise<boolean>((resolve) => client.once('close', resolve));
    const stream = await within(accepted.promise, 5_000, 'accepted');
    return { stream, client, received: () => Buffer.concat(chunks), clientEnded, clientClosed };
  }

  it('ends its side when the peer ends (allowHalfOpen false), after what it was still writing', async () => {
    const { stream, client, received, clientEnded } = await pair({ allowHalfOpen: false });
    stream.on('data', (data: Buffer) => stream.write(data)); // an echo
    const closed = new Promise((resolve) => stream.once('close', resolve));
    client.end('last words');
    await within(clientEnded, 5_000, "the server's end");
    expect(received().toString()).toBe('last words');
    await within(closed, 5_000, "the stream's close");
    expect(stream.readyState).toBe('closed');
  });

  it('keeps writing after the peer ended (allowHalfOpen, the default)', async () => {
    const { stream, client, received, clientEnded } = await pair();
    const ended = new Promise((resolve) => stream.once('end', resolve));
    stream.resume();
    client.end();
    await within(ended, 5_000, "the stream's 'end'");
    expect(stream.writable).toBe(true);
    expect(stream.readyState).toBe('writeOnly');
    stream.end('after your end');
    await within(clientEnded, 5_000, "the server's end");
    expect(received().toString()).toBe('after your end');
  });

  it('sends corked writes in order on uncork', async () => {
    const { stream, client, received, clientEnded } = await pair();
    stream.cork();
    for (let i = 0; i < 100; i++) stream.write(`${i},`);
    expect(received().length).toBe(0);
    stream.uncork();
    stream.end();
    await within(clientEnded, 5_000, "the server's end");
    expect(received().toString()).toBe(Array.from({ length: 100 }, (_, i) => `${i},`).join(''));
    expect(stream.bytesWritten).toBe(received().length);
    client.destroy();
  });

  it("returns false from write() while the peer does not read, and emits 'drain' once it does, bytes intact", async () => {
    const { stream, client, received } = await pair();
    client.pause();
    const chunk = patterned(256 * 1024);
    let written = 0;
    while (stream.write(chunk)) written += chunk.length;
    written += chunk.length;
    expect(written).toBeLessThan(64 * 1024 * 1024); // pushed back long before that
    const drained = new Promise((resolve) => stream.once('drain', resolve));
    client.resume();
    await within(drained, 10_000, "'drain'");
    stream.end();
    await within(new Promise((resolve) => client.once('end', resolve)), 10_000, "the server's end");
    const bytes = received();
    expect(bytes.length).toBe(written);
    for (let at = 0; at < written; at += chunk.length) expect(bytes.subarray(at, at + chunk.length).equals(chunk)).toBe(true);
  });

  it('destroy(error) resets the connection; destroy() closes it with a FIN', async () => {
    const first = await pair();
    first.stream.on('error', () => undefined);
    first.stream.destroy(new Error('gone'));
    const firstError = new Promise<string | undefined>((resolve) => first.client.once('error', (error: NodeJS.ErrnoException) => resolve(error.code)));
    expect(await within(firstError, 5_000, "the client's error")).toBe('ECONNRESET');

    const second = await pair();
    second.stream.destroy();
    await within(second.clientEnded, 5_000, "the client's end (a FIN)");
    expect(await within(second.clientClosed, 5_000, "the client's close")).toBe(false); // no error
  });

  it('leaves no descriptor behind after many HTTP connections', async () => {
    const before = openFds();
    const { port, server } = await serveHttp(reactor, (_req, res) => res.end('hello world'));
    const urls = Array.from({ length: 20 }, () => `http://${HOST}:${port}/`);
    for (let i = 0; i < 3; i++) {
      const out = await curl(['--header', 'Connection: close', ...urls.flatMap((url) => ['--next', url])]);
      expect(out.toString()).toBe('hello world'.repeat(20));
    }
    // 'close' comes once the listener and every connection are closed.
    await within(new Promise((resolve) => server.close(resolve)), 5_000, "the server's close");
    expect(openFds()).toBe(before);
  });
});
