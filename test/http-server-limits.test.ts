// The native HTTP server's limits and request-smuggling rules, on every
// backend: each refused request is answered natively with its status (no
// handler call), its connection closed, counted in stats(), and nothing
// leaked (connections, descriptors).
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { closeQuietly, hasFdDirectory, newReactor, openFds } from './helpers.js';
import { eventually, GET, rawExchange, statuses } from './http-helpers.js';

const refusals: [string, string, number][] = [
  ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400],
  ['a Content-Length that is no number', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\nabc', 400],
  ['a header name with a space before the colon', 'GET / HTTP/1.1\r\nHost : t\r\n\r\n', 400],
  ['a control character in a header value', 'GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n', 400],
  ['obs-fold (a continuation line)', 'GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n', 400],
  ['a bad character in the method', 'G(T / HTTP/1.1\r\nHost: t\r\n\r\n', 400],
  ['chunked not last', 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
  ['HTTP/2.0 on an HTTP/1 connection', 'GET / HTTP/2.0\r\nHost: t\r\n\r\n', 505],
  ['a head over maxHeaderBytes', `GET / HTTP/1.1\r\nHost: t\r\nX: ${'a'.repeat(2000)}\r\n\r\n`, 431],
  ['a declared body over maxBodyBytes', 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n', 413],
  ['a chunked body over maxBodyBytes', `POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n${'a'.repeat(4096)}\r\n0\r\n\r\n`, 413],
];

/** Sends `first` on connecting, then `slowly` a byte every 50 ms; what came back once the server closed. */
function trickle(port: number, first: string, slowly: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    let at = 0;
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(first));
    const timer = setInterval(() => {
      if (at < slowly.length && socket.writable) socket.write(slowly[at++]!);
    }, 50);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve(text);
    });
  });
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it.each(refusals)('refuses %s natively with its status and closes', async (_what, bytes, status) => {
    let calls = 0;
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', maxHeaderBytes: 1024, maxBodyBytes: 1000 }, (req, res) => {
      calls++;
      req.on('data', () => undefined);
      req.on('end', () => res.end('handled'));
    });
    const reply = await rawExchange(server.address.port, [bytes]);
    expect(reply.closed).toBe(true);
    expect(statuses(reply.text)).toEqual([status]);
    expect(reply.text).toContain('Connection: close\r\n');
    const stats = reactor.stats();
    expect(stats.httpRefused).toBe(1);
    // A chunked body over the limit is found after its head went to the handler.
    expect(calls).toBe(bytes.includes('1000\r\n') ? 1 : 0);
    // The server lingers until the client closes its side too.
    await eventually(() => reactor.stats().open === 0, 'the refused connection closed');
  });

  it('refuses a head that stops coming with 408 after headersTimeoutMs, and one that trickles in too', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', headersTimeoutMs: 200 }, (_req, res) => res.end('x'));
    const port = server.address.port;
    const started = Date.now();
    const stalled = await rawExchange(port, ['GET / HTTP/1.1\r\nHost: t\r\n']);
    expect(stalled.closed).toBe(true);
    expect(statuses(stalled.text)).toEqual([408]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);

    // A byte every 50 ms keeps the connection's idle clock going, not its head's.
    const trickled = await trickle(port, '', 'GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ' + 'a'.repeat(200));
    expect(statuses(trickled)).toEqual([408]);
    expect(reactor.stats().httpRefused).toBe(2);
    await eventually(() => reactor.stats().open === 0, 'the refused connections closed');
  });

  it('refuses a body that stops coming, or trickles in, with 408 after requestTimeoutMs; a long response is not timed', async () => {
    let bodies = 0;
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', requestTimeoutMs: 300 }, (req, res) => {
      if (req.method === 'GET') {
        // A long-poll: its answer takes longer than the request timeout.
        setTimeout(() => res.end('late'), 500);
        return;
      }
      req.on('data', () => undefined);
      req.on('end', () => {
        bodies++;
        res.end('got it');
      });
    });
    const port = server.address.port;
    const started = Date.now();
    const stalled = await rawExchange(port, ['POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc']);
    expect(stalled.closed).toBe(true);
    expect(statuses(stalled.text)).toEqual([408]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);

    // A byte every 50 ms keeps the connection's idle clock going, not the request's.
    const trickled = await trickle(port, 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n', 'x'.repeat(100));
    expect(statuses(trickled)).toEqual([408]);
    expect(bodies).toBe(0);
    expect(reactor.stats().httpRefused).toBe(2);

    const answered = await rawExchange(port, ['GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n']);
    expect(statuses(answered.text)).toEqual([200]);
    expect(answered.text.endsWith('late')).toBe(true);
    const posted = await rawExchange(port, ['POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc']);
    expect(statuses(posted.text)).toEqual([200]);
    expect(bodies).toBe(1);
    expect(reactor.stats().httpRefused).toBe(2);
    await eventually(() => reactor.stats().open === 0, 'the connections closed');
  });

  it('leaks no descriptor over 200 refused and 200 served connections', async () => {
    if (!hasFdDirectory) return;
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', maxHeaderBytes: 256 }, (_req, res) => res.end('ok'));
    const port = server.address.port;
    const warm = await rawExchange(port, [GET('/', 'Connection: close\r\n')]);
    expect(statuses(warm.text)).toEqual([200]);
    const before = openFds();
    for (let round = 0; round < 20; round++) {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          rawExchange(port, [i % 2 ? GET('/', 'Connection: close\r\n') : `GET / HTTP/1.1\r\nX: ${'b'.repeat(400)}\r\n\r\n`]),
        ),
      );
      for (let i = 0; i < replies.length; i++) {
        expect(statuses(replies[i]!.text)).toEqual([i % 2 ? 200 : 431]);
        replies[i]!.socket.destroy();
      }
    }
    expect(reactor.stats().httpRefused).toBe(200);
    await eventually(() => reactor.stats().open === 0, 'every connection closed');
    expect(openFds()).toBeLessThanOrEqual(before);
  });
});
