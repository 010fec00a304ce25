// The streams bridge under node:http: curl and fetch as clients, keep-alive,
// large bodies both ways, backpressure, a client's reset, and the reactor's
// idle reaping and connection cap still at work underneath. Loopback only;
// every wait is an event, bounded by within().
import { randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStreamServer, Reactor, type ReactorError, type TransportStream } from '../src/index.js';
import { closeQuietly, codeOf, deferred, newReactor } from './helpers.js';
import { collect, curl, HOST, serveHttp, sha256, within } from './stream-bridge-helpers.js';

const hello = (_req: unknown, res: { end(body: string): void }) => res.end('hello world');

/** A raw HTTP/1.1 client on node:net: sends `request`, resolves with everything it got until the server closed or `until` matched. */
function rawClient(port: number): { socket: net.Socket; received: () => string; connected: Promise<void> } {
  const socket = net.connect(port, HOST);
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('latin1')));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => text, connected };
}

describe.each(Reactor.backends)('streams bridge, node:http (%s)', (backend) => {
  let reactor: Reactor;
  let scratch: string;

  beforeEach(() => {
    reactor = newReactor(backend);
    scratch = join(tmpdir(), `stream-bridge-${process.pid}-${randomBytes(4).toString('hex')}`);
  });
  afterEach(() => {
    closeQuietly(reactor);
    rmSync(scratch, { force: true });
    rmSync(`${scratch}.out`, { force: true });
  });

  it('serves curl several requests on one keep-alive connection', async () => {
    let requests = 0;
    const peers: string[] = [];
    const { port, streams } = await serveHttp(reactor, (req, res) => {
      requests++;
      const { remoteAddress, remoteFamily, localPort } = req.socket;
      peers.push(`${remoteAddress} ${remoteFamily} ${localPort}`);
      res.end(`hello ${req.url}`);
    });
    const body = await curl([`http://${HOST}:${port}/a`, `http://${HOST}:${port}/b`, `http://${HOST}:${port}/c`]);
    expect(body.toString()).toBe('hello /ahello /bhello /c');
    expect(requests).toBe(3);
    expect(streams).toHaveLength(1);
    expect(peers).toEqual(Array(3).fill(`${HOST} IPv4 ${port}`));
    expect(streams[0]!.remotePort).toBeGreaterThan(0); // remembered once asked, as node:net does
  });

  it('streams a large body both ways with curl, bytes intact', async () => {
    const upload = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(scratch, upload);
    let received = '';
    const { port, streams } = await serveHttp(reactor, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        res.write(chunk); // echoed as it arrives: chunked, streamed
      });
      req.on('end', () => {
        received = sha256(Buffer.concat(chunks));
        res.end();
      });
    });
    await curl(['--data-binary', `@${scratch}`, '-H', 'Content-Type: application/octet-stream', '-o', `${scratch}.out`, `http://${HOST}:${port}/echo`]);
    expect(received).toBe(sha256(upload));
    expect(sha256(readFileSync(`${scratch}.out`))).toBe(sha256(upload));
    expect(streams[0]!.bytesRead).toBeGreaterThan(upload.length);
    expect(streams[0]!.bytesWritten).toBeGreaterThan(upload.length);
  });

  it("answers Node's fetch", async () => {
    const { port } = await serveHttp(reactor, hello);
    const replies = await within(
      Promise.all([1, 2, 3].map(async () => (await fetch(`http://${HOST}:${port}/`, { headers: { connection: 'close' } })).text())),
      10_000,
      'fetch',
    );
    expect(replies).toEqual(['hello world', 'hello world', 'hello world']);
  });

  it('keeps memory bounded for a slow reader and loses nothing (server writing)', async () => {
    const total = 8 * 1024 * 1024;
    const chunk = randomBytes(64 * 1024);
    let maxHeld = 0;
    let waits = 0;
    const { port, streams } = await serveHttp(reactor, (_req, res) => {
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          const more = res.write(chunk);
          const stream = streams[0]!;
          maxHeld = Math.max(maxHeld, stream.writableLength + stream.transport.bufferedAmount);
          if (!more) {
            waits++;
            return void res.once('drain', pump);
          }
        }
        res.end();
      };
      pump();
    });
    const client = rawClient(port);
    await client.connected;
    const bytes: Buffer[] = [];
    let length = 0;
    const done = deferred<void>();
    client.socket.removeAllListeners('data');
    // Reads one chunk per turn of the event loop: far slower than the server writes.
    client.socket.on('data', (data: Buffer) => {
      bytes.push(data);
      length += data.length;
      client.socket.pause();
      setImmediate(() => client.socket.resume());
    });
    client.socket.on('end', () => done.resolve());
    client.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await within(done.promise, 15_000, 'the whole body');
    const response = Buffer.concat(bytes);
    const bodyAt = response.indexOf('\r\n\r\n') + 4;
    expect(length).toBeGreaterThan(total);
    // Chunked: the body holds the 64 KiB chunks in order, each intact.
    const body = dechunk(response.subarray(bodyAt));
    expect(body.length).toBe(total);
    for (let at = 0; at < total; at += chunk.length) expect(body.subarray(at, at + chunk.length).equals(chunk)).toBe(true);
    expect(waits).toBeGreaterThan(0); // write() said "wait for 'drain'"
    // Held by the server: the transport's high-water mark plus the stream's own, plus one chunk.
    expect(maxHeld).toBeLessThanOrEqual(64 * 1024 + 16 * 1024 + 2 * chunk.length);
  });

  it('pauses reading when the request is not consumed, and resumes it (client writing)', async () => {
    const upload = randomBytes(4 * 1024 * 1024);
    writeFileSync(scratch, upload);
    const sawPaused = deferred<void>();
    const { port, streams } = await serveHttp(reactor, (req, res) => {
      // Not read until the bridge has stopped reading the socket.
      req.pause();
      const check = (): void => {
        if (streams[0]!.transport.isPaused) sawPaused.resolve();
        else setImmediate(check);
      };
      check();
      void sawPaused.promise.then(async () => {
        const body = await collect(req);
        res.end(sha256(body));
      });
    });
    const reply = await curl(['--data-binary', `@${scratch}`, `http://${HOST}:${port}/up`]);
    expect(reply.toString()).toBe(sha256(upload));
  });

  it("reports a client's reset as ECONNRESET, then 'close'", async () => {
    const connected = deferred<void>();
    const events: string[] = [];
    const closed = deferred<void>();
    const { port, server } = await serveHttp(reactor, hello);
    server.on('connection', (stream) => {
      stream.on('error', (error: ReactorError) => events.push(`error ${error.code}`));
      stream.on('close', () => {
        events.push('close');
        closed.resolve();
      });
      connected.resolve();
    });
    const client = rawClient(port);
    await client.connected;
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n'); // half a request
    await within(connected.promise, 5_000, 'accepted');
    client.socket.resetAndDestroy();
    await within(closed.promise, 5_000, 'the server-side close');
    expect(events).toEqual(['error ECONNRESET', 'close']);
    const count = deferred<number>();
    server.getConnections((_error, n) => count.resolve(n));
    expect(await count.promise).toBe(0);
  });

  it('still reaps idle connections under node:http (listener idleTimeoutMs)', async () => {
    const { port } = await serveHttp(reactor, hello, { idleTimeoutMs: 100 });
    const client = rawClient(port);
    await client.connected;
    const started = Date.now();
    const ended = new Promise<void>((resolve) => client.socket.once('close', () => resolve()));
    client.socket.on('error', () => undefined);
    await within(ended, 5_000, 'the idle connection closed by the server');
    expect(Date.now() - started).toBeGreaterThanOrEqual(99);
    expect(reactor.stats().idleTimeouts).toBeGreaterThanOrEqual(1);
  });

  it("emits node:net's 'timeout' for setTimeout() on the reactor's idle timer, and leaves the connection open", async () => {
    // Without node:http, whose 'timeout' listener destroys the socket.
    const timedOut = deferred<TransportStream>();
    const server = createStreamServer(reactor, { idleTimeoutMs: 60_000 }, (stream) => stream.setTimeout(50, () => timedOut.resolve(stream)));
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const client = rawClient(server.address()!.port);
    await client.connected;
    const stream = await within(timedOut.promise, 5_000, "'timeout'");
    expect(stream.timeout).toBe(50);
    expect(stream.readyState).toBe('open');
    stream.setTimeout(0);
    expect(stream.timeout).toBeUndefined();
    stream.end('still here');
    await within(new Promise((resolve) => client.socket.once('end', resolve)), 5_000, 'the end');
    expect(client.received()).toBe('still here');
    client.socket.destroy();
  });

  it("closes a keep-alive connection after node:http's keepAliveTimeout (plus node's 1 s buffer)", async () => {
    const { port, http: httpServer } = await serveHttp(reactor, hello);
    httpServer.keepAliveTimeout = 150;
    const client = rawClient(port);
    await client.connected;
    const closed = new Promise<void>((resolve) => client.socket.once('close', () => resolve()));
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(closed, 5_000, 'the keep-alive connection closed after keepAliveTimeout');
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*hello world$/);
  });

  it('keeps clients over maxConnections waiting, then serves them, bytes intact', async () => {
    const order: string[] = [];
    const { port } = await serveHttp(reactor, (req, res) => res.end(`hello ${req.url}`), { maxConnections: 1 });
    const first = rawClient(port);
    await first.connected;
    const firstAnswered = deferred<void>();
    first.socket.on('data', () => firstAnswered.resolve());
    first.socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(firstAnswered.promise, 5_000, 'the first answer');
    const second = rawClient(port);
    await second.connected;
    const secondAnswered = new Promise<void>((resolve) =>
      second.socket.on('data', () => {
        if (second.received().includes('hello /second')) resolve();
      }),
    );
    second.socket.write('GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    void secondAnswered.then(() => order.push('second answered'));
    // The first client's answer proves the server is live; the second waits for its slot.
    first.socket.end(() => order.push('first ended'));
    await within(secondAnswered, 5_000, 'the queued client served');
    expect(order).toEqual(['first ended', 'second answered']);
    second.socket.destroy();
  });

  it('refuses bad arguments with codes, and reports a port in use as an error event', async () => {
    const { server, port } = await serveHttp(reactor, hello);
    expect(codeOf(() => createStreamServer(reactor, { idleTimeout: 5 } as never))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => createStreamServer({} as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => server.listen(0))).toBe('ERR_SERVER_ALREADY_LISTEN');
    expect(codeOf(() => (server.maxConnections = 3))).toBe('ERR_SERVER_ALREADY_LISTEN');
    const other = createStreamServer(reactor);
    expect(codeOf(() => other.listen(70000))).toBe('ERR_SOCKET_BAD_PORT');
    expect(codeOf(() => other.listen({ port: 0, hots: HOST } as never))).toBe('ERR_INVALID_ARG_VALUE');
    const inUse = new Promise<string>((resolve) => other.once('error', (error: ReactorError) => resolve(error.code)));
    other.listen(port, HOST);
    expect(await inUse).toBe('EADDRINUSE');
    const notRunning = new Promise<string | undefined>((resolve) => other.close((error) => resolve((error as ReactorError | undefined)?.code)));
    expect(await notRunning).toBe('ERR_SERVER_NOT_RUNNING');
    const stream = deferred<TransportStream>();
    server.once('connection', (s) => stream.resolve(s));
    const client = rawClient(port);
    await client.connected;
    const s = await within(stream.promise, 5_000, 'accepted');
    expect(codeOf(() => s.setTimeout('5' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => s.setTimeout(-1))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => s.setNoDelay(1 as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => s.setKeepAlive(true, Number.NaN))).toBe('ERR_OUT_OF_RANGE');
    expect(s.connecting).toBe(false);
    expect(s.readyState).toBe('open');
    client.socket.destroy();
  });

  it("reactor.close() closes every stream: 'close' without an 'error'", async () => {
    const accepted = deferred<TransportStream>();
    const server = createStreamServer(reactor, (stream) => accepted.resolve(stream));
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const client = rawClient(server.address()!.port);
    await client.connected;
    const stream = await within(accepted.promise, 5_000, 'accepted');
    const events: string[] = [];
    stream.on('error', (error: ReactorError) => events.push(`error ${error.code}`));
    const closed = new Promise<void>((resolve) => stream.on('close', resolve));
    const clientClosed = new Promise<void>((resolve) => client.socket.on('close', () => resolve()));
    client.socket.on('error', () => undefined);
    reactor.close();
    await within(closed, 5_000, "the stream's close");
    await within(clientClosed, 5_000, "the client's close");
    expect(events).toEqual([]);
    expect(stream.readyState).toBe('closed');
  });

  it("closes: 'close' once every connection is gone", async () => {
    const { server, port, streams } = await serveHttp(reactor, hello);
    const client = rawClient(port);
    await client.connected;
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const answered = new Promise<void>((resolve) => client.socket.on('data', () => resolve()));
    await within(answered, 5_000, 'the answer');
    const events: string[] = [];
    const closed = new Promise<void>((resolve) =>
      server.close(() => {
        events.push('server closed');
        resolve();
      }),
    );
    expect(server.listening).toBe(false);
    expect(server.address()).toBeNull();
    streams[0]!.on('close', () => events.push('connection closed'));
    client.socket.end();
    await within(closed, 5_000, 'the server close');
    expect(events).toEqual(['connection closed', 'server closed']);
  });
});

/** The body of a chunked HTTP/1.1 response. */
function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const line = data.indexOf('\r\n', at);
    const size = Number.parseInt(data.subarray(at, line).toString('latin1'), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(data.subarray(line + 2, line + 2 + size));
    at = line + 2 + size + 2;
  }
}
