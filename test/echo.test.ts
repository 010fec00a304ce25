import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol, type ReactorError, type Transport } from '../src/index.js';
import { Collector, ServerCounter, closeQuietly, deferred, echoProtocol, newReactor } from './helpers.js';

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('echoes bytes intact over TCP/IPv4', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol());
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    expect(transport.state).toBe('open');
    const payload = randomBytes(100_000);
    transport.write(payload);
    const echoed = await client.received(payload.length);
    expect(echoed.length).toBe(payload.length);
    expect(echoed.equals(payload)).toBe(true);
    transport.close();
    expect(await client.lost.promise).toBeUndefined();
    listener.close();
  });

  it('echoes bytes intact over IPv6 ::1', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '::1' }, () => echoProtocol());
    expect(listener.address.family).toBe('IPv6');
    expect(listener.address.address).toBe('::1');
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '::1', port: listener.address.port }, client);
    expect(transport.remoteAddress).toEqual({ address: '::1', port: listener.address.port, family: 'IPv6' });
    const payload = randomBytes(20_000);
    transport.write(payload);
    expect((await client.received(payload.length)).equals(payload)).toBe(true);
    transport.close();
    await client.lost.promise;
  });

  it('default host listens dual-stack: reachable over 127.0.0.1 and ::1', async () => {
    const listener = reactor.listenTCP({ port: 0 }, () => echoProtocol());
    const port = listener.address.port;
    for (const host of ['127.0.0.1', '::1']) {
      const client = new Collector();
      const transport = await reactor.connectTCP({ host, port }, client);
      transport.write(`hello ${host}`);
      expect((await client.received(6 + host.length)).toString()).toBe(`hello ${host}`);
      transport.close();
      await client.lost.promise;
    }
  });

  it('ipv6Only refuses IPv4 connections', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '::', ipv6Only: true }, () => echoProtocol());
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '::1', port: listener.address.port }, client);
    transport.close();
    await expect(reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, new Collector())).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('writev keeps chunk order, strings and buffers mixed, including more chunks than IOV_MAX', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol());
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    const chunks: (Buffer | string)[] = [];
    for (let i = 0; i < 3000; i++) {
      chunks.push(i % 3 === 0 ? `<${i}>` : Buffer.from(`[${i}:${'x'.repeat(i % 17)}]`));
    }
    const expected = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
    transport.writev(chunks.slice(0, 3)); // a small one
    transport.writev(chunks.slice(3)); // > IOV_MAX (1024) chunks
    const echoed = await client.received(expected.length);
    expect(echoed.toString()).toBe(expected.toString());
    transport.close();
    await client.lost.promise;
  });

  it('string writes honour their encoding', async () => {
    const server = new Collector();
    const serverDone = deferred<Buffer>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      dataReceived: (data) => server.dataReceived(data),
      readConnectionLost: (t: Transport) => {
        serverDone.resolve(server.bytes());
        t.end();
      },
    }));
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    transport.write('héllo ✓'); // utf8 by default
    transport.write('68657821', 'hex');
    transport.write('YmFzZTY0', 'base64');
    transport.write('caf\u00e9', 'latin1');
    transport.write('ab', 'utf16le');
    transport.end(' end', 'ascii');
    const expected = Buffer.concat([
      Buffer.from('héllo ✓', 'utf8'),
      Buffer.from('hex!'),
      Buffer.from('base64'),
      Buffer.from([0x63, 0x61, 0x66, 0xe9]),
      Buffer.from([0x61, 0x00, 0x62, 0x00]),
      Buffer.from(' end'),
    ]);
    expect((await serverDone.promise).equals(expected)).toBe(true);
    expect(await client.lost.promise).toBeUndefined();
  });

  it('end() half-closes: the server echoes everything, then both sides close cleanly', async () => {
    const counter = new ServerCounter(echoProtocol(true));
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, counter.factory);
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    const payload = randomBytes(300_000);
    transport.write(payload.subarray(0, 100_000));
    transport.end(payload.subarray(100_000));
    expect(transport.writable).toBe(false);
    const reason = await client.lost.promise;
    expect(reason).toBeUndefined();
    // Every byte arrived before connectionLost, and connectionLost ran once.
    expect(client.lengthAtLoss).toBe(payload.length);
    expect(client.bytes().equals(payload)).toBe(true);
    expect(client.lostCalls).toBe(1);
    expect(transport.state).toBe('closed');
    await counter.lostAtLeast(1);
    expect(counter.reasons).toEqual([undefined]);
  });

  it('a protocol without readConnectionLost is closed once the peer ends (after its queued bytes are sent)', async () => {
    const counter = new ServerCounter(echoProtocol(false));
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, counter.factory);
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    const payload = randomBytes(200_000);
    transport.end(payload);
    await counter.lostAtLeast(1);
    expect(counter.reasons).toEqual([undefined]);
    expect(counter.transports[0]!.state).toBe('closed');
    expect(await client.lost.promise).toBeUndefined();
    expect(client.bytes().equals(payload)).toBe(true);
  });

  it('a protocol with readConnectionLost keeps the connection open for writing after the peer ends', async () => {
    const serverEnded = deferred<Transport>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      dataReceived() {},
      readConnectionLost: (t: Transport) => serverEnded.resolve(t),
    }));
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    transport.end();
    const server = await serverEnded.promise;
    expect(server.state).toBe('open');
    server.write('after your end');
    server.end('!');
    expect(await client.lost.promise).toBeUndefined();
    expect(client.bytes().toString()).toBe('after your end!');
  });

  it('a factory returning null refuses the connection', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => null);
    const client = new Collector();
    await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    expect(await client.lost.promise).toBeUndefined();
    expect(client.length).toBe(0);
  });

  it('listener.address reports the ephemeral port bound for port 0', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol());
    expect(listener.listening).toBe(true);
    expect(listener.address.family).toBe('IPv4');
    expect(listener.address.address).toBe('127.0.0.1');
    expect(Number.isInteger(listener.address.port)).toBe(true);
    expect(listener.address.port).toBeGreaterThan(0);
    const other = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => echoProtocol());
    expect(other.address.port).not.toBe(listener.address.port);
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, new Collector());
    expect(transport.remoteAddress?.port).toBe(listener.address.port);
    listener.close();
    expect(listener.listening).toBe(false);
  });

  it('localAddress and remoteAddress of the two ends mirror each other, and stay readable after close', async () => {
    const serverSide = deferred<Transport>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, (t) => {
      serverSide.resolve(t);
      return echoProtocol();
    });
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: 'localhost', port: listener.address.port }, client);
    const server = await serverSide.promise;
    expect(transport.localAddress).toEqual(server.remoteAddress);
    expect(transport.remoteAddress).toEqual(server.localAddress);
    expect(transport.remoteAddress).toEqual({ address: '127.0.0.1', port: listener.address.port, family: 'IPv4' });
    expect(transport.localAddress?.port).toBeGreaterThan(0);
    const local = transport.localAddress;
    transport.close();
    await client.lost.promise;
    expect(transport.localAddress).toEqual(local);
  });

  it('a server can write from connectionMade and the client sees it first', async () => {
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      connectionMade: (t: Transport) => t.write('welcome\n'),
      dataReceived: (data: Buffer, t: Transport) => t.write(data),
    }));
    const client = new Collector();
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
    transport.write('ping');
    expect((await client.received(12)).toString()).toBe('welcome\nping');
    transport.close();
    await client.lost.promise;
  });

  it('connectionLost runs exactly once per connection, after the last dataReceived', async () => {
    const events: string[] = [];
    const lost = deferred<ReactorError | undefined>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      dataReceived: (data: Buffer, t: Transport) => {
        t.write(data);
        t.close();
      },
    }));
    const protocol: Protocol = {
      connectionMade: () => events.push('made'),
      dataReceived: () => events.push('data'),
      connectionLost: (reason) => {
        events.push('lost');
        lost.resolve(reason);
      },
    };
    const transport = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, protocol);
    transport.write('x');
    expect(await lost.promise).toBeUndefined();
    expect(events).toEqual(['made', 'data', 'lost']);
  });
});
