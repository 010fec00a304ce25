// PROXY protocol listeners (the `proxyProtocol` option) on every backend,
// with raw v1 and v2 headers written by a test client: the client's address
// reported, the header never seen by the application and the bytes after it
// intact (in the header's packet, or split from it anywhere); missing,
// malformed, oversized, late and cut-short headers closed and counted, with
// nothing leaked. Real proxies (nginx, HAProxy) are in proxy-peers.test.ts.
import { createServer as createHttpServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Address, createStreamServer, type HTTPRequest, type HTTPResponse, type Listener, type Protocol, Reactor, type ReactorStats, type Transport } from '../src/index.js';
import { closeQuietly, codeOf, type Deferred, deferred, echoProtocol, hasFdDirectory, hasUnixSockets, newReactor, openFds, patterned, tmpSocketPath } from './helpers.js';
import { eventually, GET, rawExchange } from './http-helpers.js';

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: version/command byte, family/protocol byte, address block (and TLVs). */
function v2(versionCommand: number, familyProtocol: number, block: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = familyProtocol;
  fixed.writeUInt16BE(block.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, block]);
}

function inetBlock(source: number[], sourcePort: number, destination: number[], destinationPort: number): Buffer {
  const block = Buffer.alloc(12);
  block.set(source, 0);
  block.set(destination, 4);
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(destinationPort, 10);
  return block;
}

function inet6Block(source: string, sourcePort: number, destination: string, destinationPort: number): Buffer {
  const block = Buffer.alloc(36);
  block.set(ipv6Bytes(source), 0);
  block.set(ipv6Bytes(destination), 16);
  block.writeUInt16BE(sourcePort, 32);
  block.writeUInt16BE(destinationPort, 34);
  return block;
}

/** Bytes of a full (uncompressed) IPv6 address written as 8 groups. */
function ipv6Bytes(full: string): Buffer {
  return Buffer.from(full.split(':').map((group) => group.padStart(4, '0')).join(''), 'hex');
}

function unixBlock(source: string, destination: string): Buffer {
  const block = Buffer.alloc(216);
  block.write(source, 0, 'latin1');
  block.write(destination, 108, 'latin1');
  return block;
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** What a server connection saw when made. */
interface Seen {
  transport: Transport;
  remote: Address | undefined;
  proxy: Address | undefined;
}

/** An echo server that records each connection's addresses as connectionMade saw them. */
function recordingEcho(): { seen: Seen[]; made: Deferred<Seen>; factory: () => Protocol } {
  const seen: Seen[] = [];
  const made = deferred<Seen>();
  const factory = (): Protocol => ({
    ...echoProtocol(),
    connectionMade(transport) {
      const entry = { transport, remote: transport.remoteAddress, proxy: transport.proxyAddress };
      seen.push(entry);
      made.resolve(entry);
    },
  });
  return { seen, made, factory };
}

/** A client socket with everything it received and a promise of its close. */
interface RawClient {
  socket: Socket;
  received(): Buffer;
  receivedAtLeast(n: number): Promise<Buffer>;
  closed: Promise<void>;
}

function rawClient(target: { port: number } | { path: string }): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = 'port' in target ? connect({ port: target.port, host: '127.0.0.1' }) : connect({ path: target.path });
    const chunks: Buffer[] = [];
    let length = 0;
    let waiters: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
    const closed = deferred();
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      length += data.length;
      waiters = waiters.filter((w) => {
        if (length < w.n) return true;
        w.resolve(Buffer.concat(chunks));
        return false;
      });
    });
    socket.on('error', () => {}); // a reset shows as the close below
    socket.on('close', () => {
      for (const w of waiters) w.reject(new Error(`closed after ${length} bytes`));
      closed.resolve();
    });
    socket.on('end', () => socket.end());
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        receivedAtLeast: (n) =>
          length >= n ? Promise.resolve(Buffer.concat(chunks)) : new Promise((res, rej) => waiters.push({ n, resolve: res, reject: rej })),
        closed: closed.promise,
      }),
    );
    socket.once('error', reject);
  });
}

const PROXY_COUNTERS = ['proxyHeaders', 'proxyMissing', 'proxyMalformed', 'proxyTooLarge', 'proxyTimeouts', 'proxyAbandoned'] as const;

function proxyStats(stats: ReactorStats): Record<string, number> {
  return Object.fromEntries(PROXY_COUNTERS.map((key) => [key, stats[key]]));
}

describe.each(Reactor.backends)('%s backend: PROXY protocol listeners', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  const listen = (factory: () => Protocol, extra: Record<string, unknown> = {}): Listener =>
    reactor.listenTCP({ port: 0, host: '127.0.0.1', proxyProtocol: true, ...extra }, factory);

  it('v1 TCP4: the client is the remote address, the proxy is proxyAddress, and 256 KiB after the header in its packet come back intact', async () => {
    const { made, factory } = recordingEcho();
    const listener = listen(factory);
    const client = await rawClient({ port: listener.address.port });
    const payload = patterned(256 * 1024, 7);
    client.socket.write(Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n'), payload]));
    const seen = await made.promise;
    expect(seen.remote).toEqual({ address: '203.0.113.7', port: 40000, family: 'IPv4' });
    expect(seen.proxy).toEqual({ address: '127.0.0.1', port: client.socket.localPort, family: 'IPv4' });
    const echoed = await client.receivedAtLeast(payload.length);
    expect(echoed.equals(payload)).toBe(true);
    expect(seen.transport.localAddress).toEqual({ address: '127.0.0.1', port: listener.address.port, family: 'IPv4' });
    client.socket.destroy();
    expect(proxyStats(reactor.stats())).toEqual({ ...proxyStats(zeroStats()), proxyHeaders: 1 });
  });

  it('v2 TCP6 with TLVs, split at every kind of place across writes: the bytes after it arrive intact and first', async () => {
    const header = v2(0x21, 0x21, Buffer.concat([inet6Block('2001:db8:0:0:0:0:0:42', 51000, '2001:db8:0:0:0:0:0:1', 80), tlv(0x05, Buffer.alloc(100, 'u')), tlv(0x02, Buffer.from('example.com'))]));
    const payload = Buffer.from('first bytes of the application, after the header');
    const stream = Buffer.concat([header, payload]);
    // Inside the signature, at the fixed part's end, inside the addresses, inside the TLVs, at the header's end, inside the payload.
    for (const splits of [[5], [16], [16 + 20], [16 + 36 + 50], [header.length], [header.length + 3], [1, 13, 17, 60, header.length - 1]]) {
      const { made, factory } = recordingEcho();
      const listener = listen(factory);
      const before = reactor.stats().bytesIn;
      const client = await rawClient({ port: listener.address.port });
      let from = 0;
      for (const at of [...splits, stream.length]) {
        client.socket.write(stream.subarray(from, at));
        from = at;
        // The server has taken this piece before the next is written: a real split.
        if (at < header.length) await eventually(() => reactor.stats().bytesIn - before >= at, `the server read ${at} bytes`);
      }
      const seen = await made.promise;
      expect(seen.remote).toEqual({ address: '2001:db8::42', port: 51000, family: 'IPv6' });
      expect((await client.receivedAtLeast(payload.length)).equals(payload)).toBe(true);
      client.socket.destroy();
      listener.close();
    }
  });

  it('v2 TCP4 and v1 TCP6 give the client; v2 LOCAL, v2 AF_UNSPEC and v1 UNKNOWN keep the socket peer', async () => {
    const cases: [Buffer, { address: string; port: number; family: string } | 'socket'][] = [
      [v2(0x21, 0x11, inetBlock([192, 0, 2, 9], 1234, [10, 0, 0, 1], 8080)), { address: '192.0.2.9', port: 1234, family: 'IPv4' }],
      [Buffer.from('PROXY TCP6 2001:DB8::9 ::1 65535 1\r\n'), { address: '2001:db8::9', port: 65535, family: 'IPv6' }],
      [v2(0x20, 0x00, Buffer.alloc(0)), 'socket'],
      [v2(0x20, 0x11, inetBlock([192, 0, 2, 9], 1234, [10, 0, 0, 1], 8080)), 'socket'],
      [v2(0x21, 0x00, Buffer.alloc(0)), 'socket'],
      [Buffer.from('PROXY UNKNOWN\r\n'), 'socket'],
    ];
    for (const [header, expected] of cases) {
      const { made, factory } = recordingEcho();
      const listener = listen(factory);
      const client = await rawClient({ port: listener.address.port });
      client.socket.write(Buffer.concat([header, Buffer.from('ping')]));
      const seen = await made.promise;
      const socketPeer = { address: '127.0.0.1', port: client.socket.localPort, family: 'IPv4' };
      expect(seen.remote).toEqual(expected === 'socket' ? socketPeer : expected);
      expect(seen.proxy).toEqual(socketPeer);
      expect((await client.receivedAtLeast(4)).toString()).toBe('ping');
      client.socket.destroy();
      listener.close();
    }
    expect(reactor.stats().proxyHeaders).toBe(cases.length);
  });

  it('a connection without a header, or with a bad one, is closed and counted by reason; the application never sees it', async () => {
    let made = 0;
    const listener = listen(() => ({ ...echoProtocol(), connectionMade: () => void made++ }));
    const bad: [string, Buffer][] = [
      ['proxyMissing', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')],
      ['proxyMissing', Buffer.from('\x16\x03\x01\x00\x05hello', 'latin1')],
      ['proxyMalformed', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n')],
      ['proxyMalformed', Buffer.from('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n')],
      ['proxyMalformed', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')],
      ['proxyMalformed', v2(0x31, 0x11, inetBlock([1, 2, 3, 4], 1, [5, 6, 7, 8], 2))],
      ['proxyMalformed', v2(0x23, 0x11, inetBlock([1, 2, 3, 4], 1, [5, 6, 7, 8], 2))],
      ['proxyMalformed', v2(0x21, 0x51, inetBlock([1, 2, 3, 4], 1, [5, 6, 7, 8], 2))],
      ['proxyMalformed', v2(0x21, 0x21, Buffer.alloc(20))],
      ['proxyTooLarge', Buffer.from(`PROXY UNKNOWN ${'f'.repeat(120)}\r\n`)],
      ['proxyTooLarge', v2(0x21, 0x11, Buffer.concat([inetBlock([1, 2, 3, 4], 1, [5, 6, 7, 8], 2), tlv(0x04, Buffer.alloc(5000))]))],
    ];
    const expected = proxyStats(zeroStats());
    for (const [counter, bytes] of bad) {
      const client = await rawClient({ port: listener.address.port });
      client.socket.write(bytes);
      await client.closed;
      expected[counter]!++;
      expect(client.received().length).toBe(0);
    }
    expect(proxyStats(reactor.stats())).toEqual(expected);
    expect(made).toBe(0);
    expect(reactor.stats().open).toBe(0);
    expect(listener.connections).toBe(0);
  });

  it('a header not complete within proxyHeaderTimeoutMs is closed and counted; one cut short by the client too', async () => {
    const listener = listen(() => echoProtocol(), { proxyHeaderTimeoutMs: 50 });
    const late = await rawClient({ port: listener.address.port });
    late.socket.write('PROXY TCP4 1.2.3.4 5.6.');
    await late.closed;
    expect(reactor.stats().proxyTimeouts).toBe(1);
    const silent = await rawClient({ port: listener.address.port });
    await silent.closed;
    expect(reactor.stats().proxyTimeouts).toBe(2);

    const cut = await rawClient({ port: listener.address.port });
    cut.socket.end(v2(0x21, 0x11, inetBlock([1, 2, 3, 4], 1, [5, 6, 7, 8], 2)).subarray(0, 20));
    await cut.closed;
    await eventually(() => reactor.stats().proxyAbandoned === 1, 'the cut-short header counted');
    expect(reactor.stats().proxyTimeouts).toBe(2);
  });

  it('closing the listener closes the connections still awaiting their header (counted as rejected)', async () => {
    let made = 0;
    const listener = listen(() => ({ ...echoProtocol(), connectionMade: () => void made++ }), { proxyHeaderTimeoutMs: 0 });
    const client = await rawClient({ port: listener.address.port });
    const partial = 'PROXY TCP4 192.0.2.1 ';
    client.socket.write(partial);
    await eventually(() => reactor.stats().bytesIn === partial.length, 'the partial header read');
    listener.close();
    await client.closed;
    expect(reactor.stats().rejected).toBe(1);
    expect(made).toBe(0);
  });

  it.runIf(hasFdDirectory)('refused and timed-out connections leak no descriptor, slot or place under maxConnections', async () => {
    const { made, factory } = recordingEcho();
    const listener = listen(factory, { maxConnections: 1, queue: { limit: 0 }, proxyHeaderTimeoutMs: 30 });
    const fds = openFds();
    for (let i = 0; i < 30; i++) {
      const client = await rawClient({ port: listener.address.port });
      if (i % 3 === 0) client.socket.write('GET / HTTP/1.1\r\n\r\n');
      else if (i % 3 === 1) client.socket.write('PROXY TCP4 1.2.3.4');
      else client.socket.end('PROX');
      await client.closed;
    }
    await eventually(() => PROXY_COUNTERS.slice(1).reduce((sum, key) => sum + reactor.stats()[key], 0) === 30, 'all 30 counted');
    expect(openFds()).toBe(fds);
    // The one place under the cap is still free.
    const good = await rawClient({ port: listener.address.port });
    good.socket.write('PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\nok');
    expect((await made.promise).remote?.address).toBe('192.0.2.1');
    expect((await good.receivedAtLeast(2)).toString()).toBe('ok');
    expect(listener.connections).toBe(1);
    good.socket.destroy();
  });

  it('maxConnectionsPerPeer counts the clients the headers name, not the proxy', async () => {
    const { seen, factory } = recordingEcho();
    const listener = listen(factory, { maxConnectionsPerPeer: 1 });
    const clients: RawClient[] = [];
    for (const source of ['192.0.2.1', '192.0.2.2', '192.0.2.1']) {
      const client = await rawClient({ port: listener.address.port });
      client.socket.write(`PROXY TCP4 ${source} 192.0.2.100 5000 80\r\nhi`);
      clients.push(client);
    }
    await clients[2]!.closed; // the second from 192.0.2.1: over its cap
    for (const client of clients.slice(0, 2)) expect((await client.receivedAtLeast(2)).toString()).toBe('hi');
    expect(seen.map((s) => s.remote?.address)).toEqual(['192.0.2.1', '192.0.2.2']);
    expect(reactor.stats().rejected).toBe(1);
    for (const client of clients) client.socket.destroy();
  });

  it('a connection parked over maxConnections keeps the bytes after its header until it is served', async () => {
    const { seen, factory } = recordingEcho();
    const listener = listen(factory, { maxConnections: 1 });
    const first = await rawClient({ port: listener.address.port });
    first.socket.write('PROXY TCP4 192.0.2.1 192.0.2.100 1 80\r\none');
    await first.receivedAtLeast(3);
    const second = await rawClient({ port: listener.address.port });
    const payload = patterned(100_000, 3);
    second.socket.write(Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.2 192.0.2.100 2 80\r\n'), payload]));
    await eventually(() => listener.queued === 1, 'the second parked');
    first.socket.destroy();
    expect((await second.receivedAtLeast(payload.length)).equals(payload)).toBe(true);
    expect(seen.map((s) => s.remote?.address)).toEqual(['192.0.2.1', '192.0.2.2']);
    second.socket.destroy();
  });

  it.runIf(hasUnixSockets)('a Unix listener takes v1 and v2 headers (AF_UNIX and TCP clients)', async () => {
    const path = tmpSocketPath('proxy');
    const { seen, factory } = recordingEcho();
    reactor.listenUnix({ path, proxyProtocol: true }, factory);
    const cases: [Buffer, unknown][] = [
      [v2(0x21, 0x31, unixBlock('/run/client.sock', '/run/server.sock')), { address: '/run/client.sock', port: 0, family: 'unix' }],
      [Buffer.from('PROXY TCP4 192.0.2.5 192.0.2.6 7 8\r\n'), { address: '192.0.2.5', port: 7, family: 'IPv4' }],
    ];
    for (const [header, expected] of cases) {
      const client = await rawClient({ path });
      client.socket.write(Buffer.concat([header, Buffer.from('unix')]));
      expect((await client.receivedAtLeast(4)).toString()).toBe('unix');
      expect(seen.at(-1)!.remote).toEqual(expected);
      expect(seen.at(-1)!.proxy?.family).toBe('unix');
      client.socket.destroy();
    }
  });

  it('the native HTTP server: request.remoteAddress is the client, proxyAddress the proxy; the request after the header is parsed intact', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', proxyProtocol: true }, (request: HTTPRequest, response: HTTPResponse) => {
      const remote = request.remoteAddress!;
      response.end(`${remote.address} ${remote.port} ${request.proxyAddress?.address} ${request.url}`);
    });
    const header = v2(0x21, 0x11, inetBlock([198, 51, 100, 23], 33333, [127, 0, 0, 1], server.address.port));
    const reply = await rawExchange(server.address.port, [Buffer.concat([header, Buffer.from(GET('/a?b=1', 'Connection: close\r\n'))])]);
    expect(reply.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply.text.endsWith('198.51.100.23 33333 127.0.0.1 /a?b=1')).toBe(true);
    const missing = await rawExchange(server.address.port, [GET('/')]);
    expect(missing.text).toBe('');
    expect(reactor.stats().proxyMissing).toBe(1);
    expect(reactor.stats().httpRequests).toBe(1);
  });

  it("node:http over the streams bridge: the socket's remoteAddress and remotePort are the client's", async () => {
    const app = createHttpServer((request, response) => response.end(`${request.socket.remoteAddress} ${request.socket.remotePort}`));
    const server = createStreamServer(reactor, { proxyProtocol: true }, (stream) => app.emit('connection', stream));
    const listening = deferred();
    server.listen(0, '127.0.0.1', () => listening.resolve());
    await listening.promise;
    const { port } = server.address() as { port: number };
    const reply = await rawExchange(port, [`PROXY TCP6 2001:db8::7 2001:db8::1 4711 80\r\n${GET('/', 'Connection: close\r\n')}`]);
    expect(reply.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply.text.endsWith('\r\n\r\n2001:db8::7 4711')).toBe(true);
    server.close();
  });

  it('without proxyProtocol, a PROXY line is the application\'s data and proxyAddress is undefined', async () => {
    const { made, factory } = recordingEcho();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, factory);
    const client = await rawClient({ port: listener.address.port });
    const line = 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n';
    client.socket.write(line);
    const seen = await made.promise;
    expect((await client.receivedAtLeast(line.length)).toString()).toBe(line);
    expect(seen.proxy).toBeUndefined();
    expect(seen.remote?.port).toBe(client.socket.localPort);
    client.socket.destroy();
  });

  it('options are validated like every other', () => {
    const factory = () => echoProtocol();
    expect(codeOf(() => reactor.listenTCP({ port: 0, proxyProtocol: 'yes' as never }, factory))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.listenTCP({ port: 0, proxyHeaderTimeoutMs: 100 }, factory))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenTCP({ port: 0, proxyProtocol: true, proxyHeaderTimeoutMs: -1 }, factory))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.listenTCP({ port: 0, proxyprotocol: true } as never, factory))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenHTTP({ port: 0, proxyProtocol: 1 as never }, () => {}))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.adoptListener(0, factory, { proxyHeaderTimeoutMs: 5 }))).toMatch(/^ERR_INVALID_ARG_VALUE$|^ERR_FEATURE_UNAVAILABLE_ON_PLATFORM$/);
  });
});

function zeroStats(): ReactorStats {
  return Object.fromEntries(PROXY_COUNTERS.map((key) => [key, 0])) as unknown as ReactorStats;
}
