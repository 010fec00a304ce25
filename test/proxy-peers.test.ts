// PROXY protocol listeners behind the real proxies, on every backend: nginx's
// stream module (`proxy_protocol on`: v1) and HAProxy (`send-proxy`: v1,
// `send-proxy-v2` with a TLV), each started here on free ports with its own
// configuration in a temp directory and stopped at the end. A node client
// goes through each; the server answers with the address it sees, which must
// be the client's (its own port), not the proxy's.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type HTTPRequest, type HTTPResponse, Reactor } from '../src/index.js';
import { closeQuietly, deferred, newReactor } from './helpers.js';
import { GET, rawExchange } from './http-helpers.js';

const NGINX = '/usr/sbin/nginx';
const NGINX_STREAM = '/usr/lib/nginx/modules/ngx_stream_module.so';
const HAPROXY = '/usr/sbin/haproxy';
const haveNginx = existsSync(NGINX) && existsSync(NGINX_STREAM);
const haveHaproxy = existsSync(HAPROXY);
// The proxies are not instrumented: under npm run test:asan the sanitizer
// runtime preloaded for node must not be preloaded into them.
const NO_PRELOAD = { ...process.env, LD_PRELOAD: '' };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once the proxy on `port` forwards: a client connects (each try an
 * event: a refusal or a connect) and the proxy's own connection reaches the
 * upstream sink, which drops it. Only then does the client leave, so a probe
 * never turns into a connection that reaches a test's listener later (a
 * loaded machine may have the proxy accept it seconds after).
 */
async function forwarding(port: number, sink: UpstreamSink, child: ChildProcess, output: () => string, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  const late = () => new Error(`not forwarding from ${port} within ${limitMs} ms: ${output()}`);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before listening: ${output()}`);
    const arrival = sink.next();
    const socket = connect({ port, host: '127.0.0.1' });
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (connected) {
      const timer = setTimeout(() => sink.fail(late()), Math.max(0, limitMs - (Date.now() - started)));
      try {
        await arrival;
      } finally {
        clearTimeout(timer);
        socket.destroy();
      }
      return;
    }
    if (Date.now() - started > limitMs) throw late();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Listens on the upstream port while the proxies start: each connection it gets settles next(). */
interface UpstreamSink {
  next(): Promise<void>;
  fail(error: Error): void;
  close(): Promise<void>;
}

function upstreamSink(port: number): Promise<UpstreamSink> {
  let waiting = deferred();
  const server = createServer((socket) => {
    socket.destroy();
    waiting.resolve();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        next: () => (waiting = deferred()).promise,
        fail: (error) => waiting.reject(error),
        close: () => new Promise((done) => server.close(() => done())),
      }),
    );
  });
}

interface Peer {
  child: ChildProcess;
  dir: string;
  output: () => string;
}

function start(argv: string[], dir: string): Peer {
  const child = spawn(argv[0]!, argv.slice(1), { env: NO_PRELOAD, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { child, dir, output: () => output };
}

/** SIGTERM, SIGKILL if it has not exited within 3 s; then its directory goes. */
async function stop(peer: Peer | undefined): Promise<void> {
  if (peer === undefined) return;
  const { child } = peer;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(peer.dir, { recursive: true, force: true });
}

// The reactor's listener (one backend at a time) takes this port; the proxies
// forward to it.
let upstream = 0;
let nginxPort = 0;
let haproxyV1Port = 0;
let haproxyV2Port = 0;
let nginx: Peer | undefined;
let haproxy: Peer | undefined;

beforeAll(async () => {
  upstream = await freePort();
  const sink = await upstreamSink(upstream);
  if (haveNginx) {
    nginxPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'nr-proxy-nginx-'));
    writeFileSync(
      join(dir, 'nginx.conf'),
      `load_module ${NGINX_STREAM};
worker_processes 1;
events { worker_connections 64; }
stream {
  server { listen 127.0.0.1:${nginxPort}; proxy_pass 127.0.0.1:${upstream}; proxy_protocol on; }
}
`,
    );
    nginx = start([NGINX, '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; master_process off; pid ${join(dir, 'nginx.pid')}; error_log stderr;`], dir);
    await forwarding(nginxPort, sink, nginx.child, nginx.output);
  }
  if (haveHaproxy) {
    haproxyV1Port = await freePort();
    haproxyV2Port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'nr-proxy-haproxy-'));
    writeFileSync(
      join(dir, 'haproxy.cfg'),
      `global
  maxconn 64
defaults
  mode tcp
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend v1
  bind 127.0.0.1:${haproxyV1Port}
  default_backend send_v1
frontend v2
  bind 127.0.0.1:${haproxyV2Port}
  unique-id-format %{+X}o%ci:%cp
  default_backend send_v2
backend send_v1
  server s 127.0.0.1:${upstream} send-proxy
backend send_v2
  server s 127.0.0.1:${upstream} send-proxy-v2 proxy-v2-options unique-id
`,
    );
    haproxy = start([HAPROXY, '-f', join(dir, 'haproxy.cfg'), '-db'], dir);
    for (const port of [haproxyV1Port, haproxyV2Port]) await forwarding(port, sink, haproxy.child, haproxy.output);
  }
  await sink.close();
}, 30_000);

afterAll(async () => {
  await Promise.all([stop(nginx), stop(haproxy)]);
}, 15_000);

describe.each(Reactor.backends)('%s backend: behind real proxies', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
    // Answers with the client's address as the request saw it, and the proxy's.
    reactor.listenHTTP({ port: upstream, host: '127.0.0.1', proxyProtocol: true }, (request: HTTPRequest, response: HTTPResponse) => {
      const remote = request.remoteAddress!;
      const proxy = request.proxyAddress!;
      response.end(`${remote.family} ${remote.address} ${remote.port} via ${proxy.address} ${proxy.port}`);
    });
  });
  afterEach(() => closeQuietly(reactor));

  // Two requests through the proxy; each answer must name that client's own port.
  async function throughProxy(port: number): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const reply = await rawExchange(port, [GET('/', 'Connection: close\r\n')]);
      const body = reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4);
      expect(reply.text).toMatch(/^HTTP\/1\.1 200 /);
      const [family, address, clientPort, , proxyAddress, proxyPort] = body.split(' ');
      expect({ family, address, port: Number(clientPort) }).toEqual({ family: 'IPv4', address: '127.0.0.1', port: reply.socket.localPort });
      expect(proxyAddress).toBe('127.0.0.1');
      expect(Number(proxyPort)).not.toBe(reply.socket.localPort);
      reply.socket.destroy();
    }
  }

  it.runIf(haveNginx)("nginx's stream module (proxy_protocol on, v1): the request sees the client's address and port", async () => {
    await throughProxy(nginxPort);
    expect(reactor.stats().proxyHeaders).toBe(2);
  });

  it.runIf(haveHaproxy)('HAProxy send-proxy (v1): the request sees the client', async () => {
    await throughProxy(haproxyV1Port);
    expect(reactor.stats().proxyHeaders).toBe(2);
  });

  it.runIf(haveHaproxy)('HAProxy send-proxy-v2 with a unique-id TLV: the request sees the client', async () => {
    await throughProxy(haproxyV2Port);
    expect(reactor.stats().proxyHeaders).toBe(2);
    expect(reactor.stats().proxyMalformed + reactor.stats().proxyMissing).toBe(0);
  });
});
