// The native HTTP/1.1 server (reactor.listenHTTP) end to end, on every
// backend: fetch and curl, keep-alive, pipelining, HTTP/1.0, HEAD, Expect,
// bodies both ways, and the client going away. Limits and smuggling are in
// http-server-limits.test.ts.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type HTTPRequest, type HTTPResponse } from '../src/index.js';
import { alive, closeQuietly, codeOf, deferred, newReactor, patterned, runProcess } from './helpers.js';
import { completeResponses, eventually, GET, rawExchange, statuses } from './http-helpers.js';

const hello = (_req: HTTPRequest, res: HTTPResponse) => res.end('hello world');
// curl and ab are not instrumented: under npm run test:asan the sanitizer
// runtime preloaded for node would be preloaded into them too (curl hangs).
const NO_PRELOAD = { LD_PRELOAD: '' };

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('answers fetch with hello world, twice over one keep-alive connection', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, hello);
    const url = `http://127.0.0.1:${server.address.port}/any/path?x=1`;
    for (let i = 0; i < 2; i++) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-length')).toBe('11');
      expect(response.headers.get('date')).toMatch(/GMT$/);
      expect(await response.text()).toBe('hello world');
    }
    expect(reactor.stats().httpRequests).toBe(2);
  });

  it('sends a string body intact whatever its length and characters (UTF-8 across the copy buffer)', async () => {
    // 254 ASCII bytes then a 3-byte character: the first copy's 256 bytes end inside it.
    const bodies = ['a'.repeat(254) + '€', 'b'.repeat(255) + 'é', '€'.repeat(300), 'x'.repeat(256), ''];
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => res.end(bodies[Number(req.url.slice(1))]));
    for (let i = 0; i < bodies.length; i++) {
      const response = await fetch(`http://127.0.0.1:${server.address.port}/${i}`);
      expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(bodies[i]!)));
      expect(await response.text()).toBe(bodies[i]);
    }
  });

  it('serves curl, reusing the connection for two URLs', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => res.end(`${req.method} ${req.url}`));
    const base = `http://127.0.0.1:${server.address.port}`;
    const result = await runProcess('curl', ['-s', '--max-time', '5', `${base}/a`, `${base}/b?c=d`], 10_000, NO_PRELOAD);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('GET /aGET /b?c=d');
    expect(reactor.stats().accepted).toBe(1);
  });

  it('gives the handler method, url, version and headers (lower-cased, repeats joined)', async () => {
    const seen = deferred<{ method: string; url: string; version: string; headers: Record<string, unknown>; raw: string[] }>();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => {
      seen.resolve({ method: req.method, url: req.url, version: req.httpVersion, headers: { ...req.headers }, raw: req.rawHeaders });
      res.end();
    });
    await rawExchange(server.address.port, ['PATCH /p?q HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nContent-Length: 0\r\n\r\n'], (t) => t.includes('\r\n\r\n'));
    const got = await seen.promise;
    expect(got.method).toBe('PATCH');
    expect(got.url).toBe('/p?q');
    expect(got.version).toBe('1.1');
    expect(got.headers).toEqual({ host: 'h', 'x-a': '1, 2', 'set-cookie': ['a', 'b'], 'content-length': '0' });
    expect(got.raw).toEqual(['Host', 'h', 'X-A', '1', 'x-a', '2', 'Set-Cookie', 'a', 'Set-Cookie', 'b', 'Content-Length', '0']);
  });

  it('answers pipelined requests in order, one at a time, even when the first answers last', async () => {
    const pending: HTTPResponse[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const answer = () => {
        inFlight--;
        res.end(req.url);
      };
      if (req.url === '/slow') {
        pending.push(res);
        setImmediate(answer);
      } else answer();
    });
    const paths = ['/slow', '/2', '/3', '/4'];
    const reply = await rawExchange(server.address.port, [paths.map((p) => GET(p)).join('')], (t) => completeResponses(t) === 4);
    reply.socket.destroy();
    const bodies = reply.text.split('\r\n\r\n').slice(1).map((part) => part.split('HTTP/1.1')[0]);
    expect(bodies).toEqual(paths);
    expect(maxInFlight).toBe(1);
  });

  it('closes after the response for HTTP/1.0 and for Connection: close; keeps HTTP/1.0 keep-alive open', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, hello);
    const port = server.address.port;
    const old = await rawExchange(port, ['GET / HTTP/1.0\r\n\r\n']);
    expect(old.closed).toBe(true);
    expect(old.text).toMatch(/^HTTP\/1\.0 200 OK\r\n/);
    expect(old.text).toContain('Connection: close\r\n');
    expect(old.text.endsWith('hello world')).toBe(true);

    const close = await rawExchange(port, [GET('/', 'Connection: close\r\n') + GET('/never')]);
    expect(close.closed).toBe(true);
    expect(statuses(close.text)).toEqual([200]);

    const kept = await rawExchange(port, ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'], (t) => completeResponses(t) === 1);
    expect(kept.text).toContain('Connection: keep-alive\r\n');
    expect(kept.closed).toBe(false);
    kept.socket.destroy();
  });

  it('ends an HTTP/1.0 body of unknown length by closing (no chunks)', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => {
      res.write('one '); // goes out at the batch's end: the length is not known then
      setImmediate(() => res.end('two'));
    });
    const reply = await rawExchange(server.address.port, ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n']);
    expect(reply.closed).toBe(true);
    expect(reply.text).not.toMatch(/transfer-encoding/i);
    expect(reply.text.endsWith('\r\n\r\none two')).toBe(true);
  });

  it('sends no body for HEAD, with the length a GET would have', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, hello);
    const reply = await rawExchange(server.address.port, ['HEAD / HTTP/1.1\r\nHost: t\r\n\r\n' + GET('/after')], (t) => statuses(t).length === 2 && t.endsWith('hello world'));
    reply.socket.destroy();
    const [head, rest] = [reply.text.slice(0, reply.text.indexOf('\r\n\r\n') + 4), reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4)];
    expect(head).toContain('Content-Length: 11\r\n');
    expect(rest).toMatch(/^HTTP\/1\.1 200 OK\r\n/); // the next response follows at once: no body between
  });

  it('answers Expect: 100-continue before the body is sent', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, async (req, res) => res.end(`got ${(await req.body()).toString()}`));
    const port = server.address.port;
    const first = await rawExchange(port, ['POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'], (t) => t.includes('\r\n\r\n'));
    expect(first.text).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    const done = deferred<string>();
    let text = '';
    first.socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.endsWith('got hello')) done.resolve(text);
    });
    first.socket.write('hello');
    expect(await done.promise).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    first.socket.destroy();
  });

  it('streams a 2 MiB Content-Length body to a handler that pauses and resumes, bytes intact', async () => {
    const body = patterned(2 * 1024 * 1024);
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', maxBodyBytes: 4 * 1024 * 1024 }, (req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let pauses = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (pauses < 5) {
          pauses++;
          req.pause();
          setImmediate(() => req.resume());
        }
      });
      req.on('end', () => res.end(`${bytes} ${hash.digest('hex')} ${pauses}`));
    });
    const response = await fetch(`http://127.0.0.1:${server.address.port}/`, { method: 'POST', body: new Uint8Array(body) });
    const [bytes, digest, pauses] = (await response.text()).split(' ');
    expect(Number(bytes)).toBe(body.length);
    expect(digest).toBe(createHash('sha256').update(body).digest('hex'));
    expect(Number(pauses)).toBe(5);
  });

  it('decodes a chunked request body split at every kind of point', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, async (req, res) => res.end((await req.body()).toString()));
    const head = 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n';
    const chunked = '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n';
    const parts = [head.slice(0, 10), head.slice(10), ...chunked.split('')];
    const reply = await rawExchange(server.address.port, parts, (t) => t.endsWith('hello world'));
    reply.socket.destroy();
    expect(statuses(reply.text)).toEqual([200]);
  });

  it('corks the writes of one batch: write, write, end go out as one Content-Length response', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => {
      expect(res.write('hello')).toBe(true);
      expect(res.headersSent).toBe(true);
      res.write(Buffer.from(' '));
      res.end('world');
    });
    const reply = await rawExchange(server.address.port, [GET()], (t) => t.endsWith('hello world'));
    reply.socket.destroy();
    expect(reply.text).toContain('Content-Length: 11\r\n');
    expect(reply.text).not.toMatch(/transfer-encoding/i);
  });

  it('writes a chunked response with backpressure: write() false, then drain, every byte in order', async () => {
    const piece = patterned(64 * 1024);
    const pieces = 64; // 4 MiB
    let falses = 0;
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => {
      let sent = 0;
      const pump = () => {
        while (sent < pieces) {
          sent++;
          if (!res.write(piece)) {
            falses++;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const body = await new Promise<Buffer>((resolve, reject) => {
      httpRequest({ port: server.address.port, host: '127.0.0.1', agent: new Agent() }, (res) => {
        expect(res.headers['transfer-encoding']).toBe('chunked');
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      })
        .on('error', reject)
        .end();
    });
    expect(body.length).toBe(piece.length * pieces);
    for (let i = 0; i < pieces; i++) expect(body.subarray(i * piece.length, (i + 1) * piece.length).equals(piece)).toBe(true);
    expect(falses).toBeGreaterThan(0);
  });

  it('tells a long-poll handler when its client goes away: aborted, signal, close', async () => {
    const told = deferred<{ aborted: boolean; signal: boolean; closed: boolean; code: string }>();
    const arrived = deferred();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => {
      let closed = false;
      res.on('close', () => (closed = true));
      req.signal.addEventListener('abort', () =>
        told.resolve({ aborted: req.aborted, signal: req.signal.aborted, closed, code: (req.signal.reason as { code: string }).code }),
      );
      arrived.resolve();
    });
    const client = connect({ port: server.address.port, host: '127.0.0.1' }, () => client.write(GET('/poll')));
    await arrived.promise;
    client.destroy();
    expect(await told.promise).toEqual({ aborted: true, signal: true, closed: true, code: 'ECONNRESET' });
  });

  it('answers 3,000 pipelined requests sent at once (more than it holds unread) in order', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => res.end(req.url));
    const count = 3000;
    const requests = Array.from({ length: count }, (_, i) => GET(`/${i}`)).join('');
    expect(requests.length).toBeGreaterThan(64 * 1024);
    const reply = await rawExchange(server.address.port, [requests], (t) => t.endsWith(`\r\n\r\n/${count - 1}`));
    reply.socket.destroy();
    const bodies = [...reply.text.matchAll(/\r\n\r\n(\/\d+)/g)].map((m) => m[1]);
    expect(bodies).toEqual(Array.from({ length: count }, (_, i) => `/${i}`));
  });

  it('closes after a response that ends before its request body was read (the body is not waited for)', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => {
      res.statusCode = 403;
      res.end('no');
    });
    const reply = await rawExchange(server.address.port, ['POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n', 'x'.repeat(1000)]);
    expect(reply.closed).toBe(true);
    expect(statuses(reply.text)).toEqual([403]);
    expect(reply.text).toContain('Connection: close\r\n');
  });

  it('answers an Upgrade request like any other, then closes (upgrades are not served)', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (req, res) => {
      res.statusCode = 426;
      res.end(req.headers.upgrade as string);
    });
    const reply = await rawExchange(server.address.port, [GET('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n') + 'not http at all']);
    expect(reply.closed).toBe(true);
    expect(statuses(reply.text)).toEqual([426]);
    expect(reply.text.endsWith('websocket')).toBe(true);
  });

  it('close() closes the keep-alive connections waiting between requests at once', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, hello);
    const idle = await rawExchange(server.address.port, [GET()], (t) => t.endsWith('hello world'));
    const closed = new Promise<void>((resolve) => idle.socket.once('close', () => resolve()));
    server.close();
    await closed;
    await eventually(() => reactor.stats().open === 0, 'the idle connection closed');
  });

  it('after close(), finishes the response in progress, then closes its connection; accepts no more', async () => {
    const held = deferred<HTTPResponse>();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => held.resolve(res));
    const port = server.address.port;
    const reply = rawExchange(port, [GET()]);
    const res = await held.promise;
    server.close();
    res.end('late');
    const done = await reply;
    expect(done.closed).toBe(true);
    expect(done.text.endsWith('late')).toBe(true);
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });

  it('closes an idle keep-alive connection after keepAliveTimeoutMs, counted as reaped', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', keepAliveTimeoutMs: 150 }, hello);
    const started = Date.now();
    const reply = await rawExchange(server.address.port, [GET()]);
    expect(reply.closed).toBe(true);
    expect(statuses(reply.text)).toEqual([200]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(reactor.stats().reaped).toBe(1);
  });

  it('answers 500 when the handler throws before responding, and reports the error', async () => {
    const errors: unknown[] = [];
    reactor.close();
    reactor = newReactor(backend, { onError: (error) => errors.push(error) });
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, () => {
      throw new Error('boom');
    });
    const response = await fetch(`http://127.0.0.1:${server.address.port}/`);
    expect(response.status).toBe(500);
    expect((errors[0] as Error).message).toBe('boom');
  });

  it('drives the server with ab -k (apache2-utils, installed by .ci/run): every request answered', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, hello);
    const result = await runProcess('ab', ['-q', '-k', '-n', '2000', '-c', '20', `http://127.0.0.1:${server.address.port}/`], 15_000, NO_PRELOAD);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Complete requests:\s+2000/);
    expect(result.stdout).toMatch(/Failed requests:\s+0/);
    expect(result.stdout).toMatch(/Keep-Alive requests:\s+2000/);
  });
});

describe('listenHTTP arguments', () => {
  const reactor = new Reactor();
  afterAll(() => closeQuietly(reactor));

  it('refuses unknown options with a did-you-mean, and bad values with a code', () => {
    const bad = (options: object) => codeOf(() => reactor.listenHTTP({ port: 0, host: '127.0.0.1', ...options } as never, hello));
    expect(bad({ maxHeaderSize: 10 })).toBe('ERR_INVALID_ARG_VALUE');
    expect(() => reactor.listenHTTP({ port: 0, keepAliveTimeout: 5 } as never, hello)).toThrow(/did you mean "keepAliveTimeoutMs"/);
    expect(bad({ idleTimeoutMs: 5 })).toBe('ERR_INVALID_ARG_VALUE'); // keepAliveTimeoutMs is the HTTP name
    expect(bad({ maxHeaderBytes: '1k' })).toBe('ERR_INVALID_ARG_TYPE');
    expect(bad({ maxBodyBytes: -1 })).toBe('ERR_OUT_OF_RANGE');
    expect(bad({ headersTimeoutMs: -5 })).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.listenHTTP({ port: 0 }, 'nope' as never))).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('refuses bad response headers and headers after sending', async () => {
    const codes = deferred<(string | undefined)[]>();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_req, res) => {
      const found = [
        codeOf(() => res.setHeader('Bad Name', 'x')),
        codeOf(() => res.setHeader('X-Split', 'a\r\nInjected: 1')),
        codeOf(() => res.writeHead(42)),
      ];
      res.write('x');
      found.push(codeOf(() => res.setHeader('X-Late', '1')));
      res.end();
      codes.resolve(found);
    });
    const response = await fetch(`http://127.0.0.1:${server.address.port}/`);
    expect(await response.text()).toBe('x');
    expect(response.headers.get('injected')).toBeNull();
    expect(await codes.promise).toEqual(['ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR', 'ERR_HTTP_INVALID_STATUS_CODE', 'ERR_HTTP_HEADERS_SENT']);
    server.close();
  });
});

describe('examples/http-native.mjs', () => {
  /**
   * Starts the example; resolves with its port and process once it prints
   * "listening PORT"; `output()` is all it printed so far.
   */
  function startExample(args: string[]): Promise<{ port: number; child: ChildProcess; output: () => string }> {
    const child = spawn(process.execPath, ['examples/http-native.mjs', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const match = /^listening (\d+)\n/.exec(out);
        if (match) resolve({ port: Number(match[1]), child, output: () => out });
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before listening`)));
    });
  }

  async function stop(child: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    return exited;
  }

  it.each(Reactor.backends)('answers any path with 200 hello world on %s, and stops on SIGTERM', async (backend) => {
    const { port, child } = await startExample(['--backend', backend, '--idle-timeout-ms', '5000', '--max-connections', '100']);
    const response = await fetch(`http://127.0.0.1:${port}/some/where?q=1`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('hello world');
    expect(await stop(child)).toBe(0);
  });

  // Its workers are read from /proc.
  it.runIf(process.platform === 'linux')('serves from two worker processes sharing the port, replaces them on SIGHUP, drains them on SIGTERM', async () => {
    const { port, child, output } = await startExample(['--workers', '2']);
    const workers = () => readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ').map(Number);
    const serves = async () => {
      const bodies = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text())));
      expect(bodies).toEqual(Array(10).fill('hello world'));
    };
    await serves();
    const before = workers();
    expect(before).toHaveLength(2);
    child.kill('SIGHUP');
    await eventually(() => /worker 1 restarted/.test(output()), 'both workers restarted', 10_000);
    await eventually(() => before.every((pid) => !workers().includes(pid)), 'the old workers gone', 10_000);
    expect(workers()).toHaveLength(2);
    await serves();
    const after = workers();
    expect(await stop(child)).toBe(0);
    expect(after.filter((pid) => alive(pid))).toEqual([]);
  });

  it('refuses a bad option with status 2', async () => {
    const result = await runProcess(process.execPath, ['examples/http-native.mjs', '--max-connections', '0'], 10_000);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--max-connections must be a whole number from 1/);
  });
});
