import { existsSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Transport } from '../src/index.js';
import {
  Collector,
  ServerCounter,
  closeQuietly,
  codeOf,
  deferred,
  echoProtocol,
  hasUnixSockets,
  newReactor,
  rejectionCode,
  tmpSocketPath,
} from './helpers.js';

if (!hasUnixSockets) {
  // Windows: no AF_UNIX in this build; the calls say so with a code and leave nothing behind.
  describe.each(Reactor.backends)('%s backend without Unix sockets', (backend) => {
    it('listenUnix throws and connectUnix rejects with EAFNOSUPPORT', async () => {
      const reactor = newReactor(backend);
      try {
        const path = tmpSocketPath('none');
        expect(codeOf(() => reactor.listenUnix({ path }, () => echoProtocol()))).toBe('EAFNOSUPPORT');
        expect(existsSync(path)).toBe(false);
        expect(await rejectionCode(reactor.connectUnix({ path }, new Collector()))).toBe('EAFNOSUPPORT');
        expect(reactor.stats().open).toBe(0);
      } finally {
        reactor.close();
      }
    });
  });
}

describe.runIf(hasUnixSockets).each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  const paths: string[] = [];
  const fresh = (tag: string) => {
    const path = tmpSocketPath(tag);
    paths.push(path);
    return path;
  };
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(reactor);
    for (const path of paths.splice(0)) rmSync(path, { force: true });
  });

  it('echoes bytes intact over a Unix socket', async () => {
    const path = fresh('echo');
    const counter = new ServerCounter(echoProtocol(true));
    const listener = reactor.listenUnix({ path }, counter.factory);
    expect(listener.address).toEqual({ address: path, port: 0, family: 'unix' });
    expect(existsSync(path)).toBe(true);
    const client = new Collector();
    const transport = await reactor.connectUnix({ path }, client);
    expect(transport.remoteAddress).toEqual({ address: path, port: 0, family: 'unix' });
    const payload = randomBytes(3 * 1024 * 1024);
    transport.write(payload.subarray(0, 1000));
    transport.writev([payload.subarray(1000, 5000), payload.subarray(5000)]);
    transport.end();
    expect(await client.lost.promise).toBeUndefined();
    expect(client.bytes().equals(payload)).toBe(true);
    await counter.lostAtLeast(1);
    expect(counter.reasons).toEqual([undefined]);
    listener.close();
  });

  it('setNoDelay/setKeepAlive are accepted on Unix transports', async () => {
    const path = fresh('opts');
    reactor.listenUnix({ path }, () => echoProtocol());
    const client = new Collector();
    const transport = await reactor.connectUnix({ path }, client);
    expect(() => transport.setNoDelay(true)).not.toThrow();
    expect(() => transport.setKeepAlive(true, 1000)).not.toThrow();
    transport.write('still works');
    expect((await client.received(11)).toString()).toBe('still works');
  });

  it('node:net can talk to a reactor Unix listener', async () => {
    const path = fresh('net');
    reactor.listenUnix({ path }, () => echoProtocol(true));
    const got = deferred<Buffer>();
    const chunks: Buffer[] = [];
    const socket = net.connect(path);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => got.resolve(Buffer.concat(chunks)));
    socket.on('error', got.reject);
    socket.end('over a path');
    expect((await got.promise).toString()).toBe('over a path');
    socket.destroy();
  });

  it('the path is removed after listener.close(), and again after reactor.close()', () => {
    const a = fresh('rm-a');
    const b = fresh('rm-b');
    const la = reactor.listenUnix({ path: a }, () => echoProtocol());
    reactor.listenUnix({ path: b }, () => echoProtocol());
    expect(existsSync(a)).toBe(true);
    la.close();
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(true);
    reactor.close();
    expect(existsSync(b)).toBe(false);
  });

  it('the path can be listened on again after close', async () => {
    const path = fresh('again');
    reactor.listenUnix({ path }, () => echoProtocol()).close();
    reactor.listenUnix({ path }, () => echoProtocol());
    const client = new Collector();
    const t = await reactor.connectUnix({ path }, client);
    t.write('again');
    expect((await client.received(5)).toString()).toBe('again');
  });

  it('listening on an existing path throws EADDRINUSE (a live listener or a plain file)', () => {
    const path = fresh('inuse');
    const listener = reactor.listenUnix({ path }, () => echoProtocol());
    expect(codeOf(() => reactor.listenUnix({ path }, () => echoProtocol()))).toBe('EADDRINUSE');
    // The failed attempt must not remove the live listener's path.
    expect(existsSync(path)).toBe(true);
    expect(listener.listening).toBe(true);
    const file = fresh('file');
    writeFileSync(file, 'not a socket');
    expect(codeOf(() => reactor.listenUnix({ path: file }, () => echoProtocol()))).toBe('EADDRINUSE');
    expect(existsSync(file)).toBe(true);
  });

  it('connecting to a missing path rejects with ENOENT', async () => {
    expect(await rejectionCode(reactor.connectUnix({ path: fresh('missing') }, new Collector()))).toBe('ENOENT');
  });

  it('a path too long for sockaddr_un throws ENAMETOOLONG', () => {
    const path = fresh('x'.repeat(120));
    expect(codeOf(() => reactor.listenUnix({ path }, () => echoProtocol()))).toBe('ENAMETOOLONG');
  });

  it('server abort() on a Unix socket resets the client', async () => {
    const path = fresh('abort');
    const serverSide = deferred<Transport>();
    reactor.listenUnix({ path }, (t) => {
      serverSide.resolve(t);
      return echoProtocol();
    });
    const client = new Collector();
    await reactor.connectUnix({ path }, client);
    (await serverSide.promise).abort();
    // A Unix stream has no RST: the peer sees either a clean close or a reset.
    const reason = await client.lost.promise;
    expect([undefined, 'ECONNRESET']).toContain(reason?.code);
  });
});
