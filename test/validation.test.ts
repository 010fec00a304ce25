// Mistakes are caught where they are made: misspelt options and protocol
// members, bytes that are not bytes, NUL bytes, bad encodings, calls on a
// closing transport — each a ReactorError with a code, and nothing changed.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, ReactorError, type Protocol, type Transport } from '../src/index.js';
import { Collector, ServerCounter, closeQuietly, codeOf, deferred, echoProtocol, newReactor, rejectionCode, tmpSocketPath } from './helpers.js';

/** The error fn throws (fails the test if it does not throw a ReactorError). */
function thrown(fn: () => unknown): ReactorError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ReactorError);
    return error as ReactorError;
  }
  throw new Error('expected a throw');
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  const loose = () => reactor as unknown as Record<string, (...args: unknown[]) => unknown>;
  const listen = (options: object) => reactor.listenTCP({ port: 0, host: '127.0.0.1', ...options }, () => echoProtocol());

  describe('unknown option keys are rejected, naming the key and the likely one', () => {
    it.each([
      ['idleTimeout', 'idleTimeoutMs'],
      ['maxConnection', 'maxConnections'],
      ['maxconnections', 'maxConnections'],
      ['highWatermark', 'highWaterMark'],
      ['reuseport', 'reusePort'],
    ])('listenTCP({ %s }) suggests %s', (key, suggestion) => {
      const error = thrown(() => listen({ [key]: 1 }));
      expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
      expect(error.message).toContain(`"options.${key}"`);
      expect(error.message).toContain(`did you mean "${suggestion}"`);
      expect(reactor.stats().open).toBe(0);
    });

    it('a key with no near name lists the known ones', () => {
      const error = thrown(() => loose().listenTCP!({ port: 0, address: '127.0.0.1' }, () => echoProtocol()));
      expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
      expect(error.message).toContain('"options.address"');
      expect(error.message).toContain('host');
    });

    it('queue, reactor, connect, shutdown, setIdleTimeout and setWriteBuffer options too', async () => {
      expect(thrown(() => listen({ maxConnections: 1, queue: { limt: 5 } })).message).toContain('did you mean "limit"');
      expect(thrown(() => new Reactor({ backnd: 'epoll' } as never)).message).toContain('did you mean "backend"');
      expect(codeOf(() => reactor.listenUnix({ path: tmpSocketPath('v'), idleTimeout: 5 } as never, () => echoProtocol()))).toBe(
        'ERR_INVALID_ARG_VALUE',
      );
      const listener = listen({});
      const port = listener.address.port;
      expect(await rejectionCode(reactor.connectTCP({ port, hots: '127.0.0.1' } as never, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
      expect(await rejectionCode(reactor.connectUnix({ path: '/x', timeout: 1 } as never, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
      const t = await reactor.connectTCP({ port, host: '127.0.0.1' }, new Collector());
      expect(codeOf(() => t.setIdleTimeout(100, { resetOnWrites: true } as never))).toBe('ERR_INVALID_ARG_VALUE');
      expect(codeOf(() => t.setWriteBuffer({ highWater: 10 } as never))).toBe('ERR_INVALID_ARG_VALUE');
      expect(codeOf(() => reactor.shutdown({ timeout: 5 } as never))).toBe('ERR_INVALID_ARG_VALUE');
      expect(reactor.closed).toBe(false); // the bad shutdown() changed nothing
      expect(t.state).toBe('open');
    });

    it("queue.overflow: a lone word ('rst') is taken for a misspelt policy; a reply or a Buffer is bytes", () => {
      expect(thrown(() => listen({ maxConnections: 1, queue: { overflow: 'rst' } })).code).toBe('ERR_INVALID_ARG_VALUE');
      expect(thrown(() => listen({ maxConnections: 1, queue: { overflow: 'Close' } })).code).toBe('ERR_INVALID_ARG_VALUE');
      expect(listen({ maxConnections: 1, queue: { overflow: 'HTTP/1.1 503 Service Unavailable\r\n\r\n' } }).listening).toBe(true);
      expect(listen({ maxConnections: 1, queue: { overflow: Buffer.from('rst') } }).listening).toBe(true);
    });
  });

  describe('protocol members', () => {
    it('a near miss of a protocol method is rejected when connecting, before anything is dialled', async () => {
      const port = listen({}).address.port;
      const typo = { dataReceived() {}, connectionLots() {} } as Protocol;
      const error = (await reactor.connectTCP({ port, host: '127.0.0.1' }, typo).catch((e: unknown) => e)) as ReactorError;
      expect(error.code).toBe('ERR_INVALID_ARG_VALUE');
      expect(error.message).toContain('did you mean "connectionLost"');
      expect(reactor.stats().open).toBe(0);
      const swapped = { dataRecieved() {}, dataReceived() {} } as Protocol;
      expect(await rejectionCode(reactor.connectTCP({ port, host: '127.0.0.1' }, swapped))).toBe('ERR_INVALID_ARG_VALUE');
      const notBoolean = { dataReceived() {}, keepsData: 'no' } as unknown as Protocol;
      expect(await rejectionCode(reactor.connectTCP({ port, host: '127.0.0.1' }, notBoolean))).toBe('ERR_INVALID_ARG_TYPE');
      const keepData = { dataReceived() {}, keepData: false } as unknown as Protocol;
      expect(await rejectionCode(reactor.connectTCP({ port, host: '127.0.0.1' }, keepData))).toBe('ERR_INVALID_ARG_VALUE');
    });

    it('a class whose method is misspelt on its prototype is caught too; fields with other names are fine', async () => {
      class Chat {
        readonly history: string[] = [];
        dataReceived(): void {}
        readConnectionLst(): void {}
      }
      class Fine {
        readonly connection = 1;
        readonly buffered: Buffer[] = [];
        dataReceived(): void {}
        connectionLost(): void {}
      }
      const port = listen({}).address.port;
      expect(await rejectionCode(reactor.connectTCP({ port, host: '127.0.0.1' }, new Chat()))).toBe('ERR_INVALID_ARG_VALUE');
      const t = await reactor.connectTCP({ port, host: '127.0.0.1' }, new Fine());
      expect(t.state).toBe('open');
    });

    it("a factory's misspelt protocol reaches onError with the code and the connection is refused", async () => {
      const errors: unknown[] = [];
      const r = newReactor(backend, { onError: (error) => errors.push(error) });
      try {
        const listener = r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived() {}, conectionMade() {} }) as Protocol);
        const client = new Collector();
        await r.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, client);
        await client.lost.promise;
        expect(errors.map((e) => (e as ReactorError).code)).toEqual(['ERR_INVALID_ARG_VALUE']);
      } finally {
        closeQuietly(r);
      }
    });
  });

  describe('bytes, encodings and strings', () => {
    let t: Transport;
    let server: ServerCounter;
    let client: Collector;
    beforeEach(async () => {
      server = new ServerCounter(echoProtocol());
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, server.factory);
      client = new Collector();
      t = await reactor.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, client);
    });

    it('an object that only inherits from Uint8Array, a sparse writev and a bad encoding throw; nothing is sent', async () => {
      const fake = Object.create(Uint8Array.prototype) as Uint8Array;
      expect(codeOf(() => t.write(fake))).toBe('ERR_INVALID_ARG_TYPE');
      // eslint-disable-next-line no-sparse-arrays
      const sparse = [Buffer.from('a'), , Buffer.from('b')] as Buffer[];
      expect(codeOf(() => t.writev(sparse))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => t.write('x', 'bogus' as BufferEncoding))).toBe('ERR_UNKNOWN_ENCODING');
      expect(codeOf(() => t.end('x', 'bogus' as BufferEncoding))).toBe('ERR_UNKNOWN_ENCODING');
      expect(t.writable).toBe(true);
      // The first bytes that arrive are the ones sent after the mistakes.
      t.write('ok');
      expect((await client.received(2)).toString()).toBe('ok');
    });

    it('any ArrayBufferView is sent as its bytes (DataView, Float32Array, a subarray)', async () => {
      const floats = new Float32Array([1.5, -2]);
      const backing = Buffer.from('__abc__');
      t.write(new DataView(backing.buffer, backing.byteOffset + 2, 3));
      t.write(floats);
      t.writev([backing.subarray(0, 2), new Uint16Array([0x4141])]);
      const expected = Buffer.concat([Buffer.from('abc'), Buffer.from(floats.buffer), Buffer.from('__AA')]);
      expect((await client.received(expected.length)).equals(expected)).toBe(true);
    });

    it('a NUL byte in a path or host is rejected, not cut short', async () => {
      const path = tmpSocketPath('nul');
      expect(codeOf(() => reactor.listenUnix({ path: `${path}\0tail` }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_VALUE');
      expect(codeOf(() => reactor.listenTCP({ port: 0, host: '127.0.0.1\0' }, () => echoProtocol()))).toBe('ERR_INVALID_ARG_VALUE');
      expect(await rejectionCode(reactor.connectUnix({ path: `${path}\0` }, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
      expect(await rejectionCode(reactor.connectTCP({ port: 1, host: 'localhost\0x' }, new Collector()))).toBe('ERR_INVALID_ARG_VALUE');
    });
  });

  it("pause(), resume() and setIdleTimeout() on a closing transport throw ERR_SOCKET_CLOSED", async () => {
    const listener = listen({});
    const c = new Collector();
    const t = await reactor.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, c);
    t.write(Buffer.alloc(8 * 1024 * 1024)); // stays queued: close() has to flush
    t.close();
    expect(t.state).toBe('closing');
    expect(codeOf(() => t.pause())).toBe('ERR_SOCKET_CLOSED');
    expect(codeOf(() => t.resume())).toBe('ERR_SOCKET_CLOSED');
    expect(codeOf(() => t.setIdleTimeout(100))).toBe('ERR_SOCKET_CLOSED');
    expect(await c.lost.promise).toBeUndefined();
  });

  it('reactor.close() inside a factory: the protocol gets neither connectionMade nor connectionLost', async () => {
    const calls: string[] = [];
    const factoryRan = deferred();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => {
      reactor.close();
      factoryRan.resolve();
      return {
        connectionMade: () => void calls.push('made'),
        dataReceived() {},
        connectionLost: () => void calls.push('lost'),
      };
    });
    const clients = newReactor(backend);
    try {
      const c = new Collector();
      await clients.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, c);
      await factoryRan.promise;
      await c.lost.promise;
      await new Promise((resolve) => setImmediate(resolve)); // any nextTick'd connectionLost has run
      expect(calls).toEqual([]);
    } finally {
      clients.close();
    }
  });

  it('a protocol method that throws aborts its connection with ERR_CALLBACK_THREW, the error as cause', async () => {
    const errors: unknown[] = [];
    const r = newReactor(backend, { onError: (error) => errors.push(error) });
    try {
      const boom = new Error('boom');
      const lost = deferred<ReactorError | undefined>();
      const listener = r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        dataReceived() {
          throw boom;
        },
        connectionLost: (reason) => lost.resolve(reason),
      }));
      const c = new Collector();
      const t = await r.connectTCP({ port: listener.address.port, host: '127.0.0.1' }, c);
      t.write('x');
      const reason = await lost.promise;
      expect(reason?.code).toBe('ERR_CALLBACK_THREW');
      expect(reason?.cause).toBe(boom);
      expect(errors).toEqual([boom]);
    } finally {
      closeQuietly(r);
    }
  });
});
