// The boundary between the binding and TypeScript. configureListener() takes
// a named object; one with a field missing or mistyped is refused with a
// coded error, not a crash, and changes nothing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol } from '../src/index.js';
import { parseListenerConfig } from '../src/limits.js';
import { NO_LIMIT, type NativeListenerConfig } from '../src/native.js';
import { Collector, closeQuietly, newReactor, ServerCounter } from './helpers.js';

const HOST = '127.0.0.1';

describe.each(Reactor.backends)('%s backend: configureListener() with a bad config', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  // What listenTCP({ maxConnections: 1, queue: { limit: 0 } }) configures: a
  // second client at once is rejected with a graceful close.
  const capOfOne: NativeListenerConfig = parseListenerConfig({ maxConnections: 1, queue: { limit: 0 } }, true).native;
  const fields = Object.keys(capOfOne) as (keyof NativeListenerConfig)[];
  const configure = (id: number, config: unknown) => reactor.native.configureListener(id, config as NativeListenerConfig);

  /** The error configure() throws (fails the test if none). */
  function thrown(id: number, config: unknown): { name: string; code?: string; message: string } {
    try {
      configure(id, config);
    } catch (error) {
      return error as { name: string; code?: string; message: string };
    }
    throw new Error('the config was accepted');
  }

  it('a config that is no object, a field missing or of another type: a TypeError ERR_INVALID_ARG_TYPE naming it', () => {
    const { id } = reactor.listenTCP({ host: HOST, port: 0 }, () => null);
    for (const config of [undefined, null, 5, 'config']) {
      expect(thrown(id, config)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"config" must be an object') });
    }
    expect(fields.length).toBe(13);
    for (const field of fields) {
      const missing: Record<string, unknown> = { ...capOfOne };
      delete missing[field];
      expect(thrown(id, missing)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining(`"config.${field}"`) });
      const mistyped = { ...capOfOne, [field]: typeof capOfOne[field] === 'number' ? '1' : 1 };
      expect(thrown(id, mistyped)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining(`"config.${field}"`) });
    }
    expect(thrown(id, { ...capOfOne, overflowBytes: new Uint16Array(2) }).message).toContain('"config.overflowBytes" must be a Uint8Array');
  });

  it('a count that is no u32 (negative, fractional, NaN, 2^32): a RangeError ERR_OUT_OF_RANGE naming it', () => {
    const { id } = reactor.listenTCP({ host: HOST, port: 0 }, () => null);
    for (const value of [-1, 1.5, NaN, NO_LIMIT + 1]) {
      expect(thrown(id, { ...capOfOne, queueLimit: value })).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"config.queueLimit"') });
    }
  });

  it("a getter's throw reaches the caller as it is", () => {
    const { id } = reactor.listenTCP({ host: HOST, port: 0 }, () => null);
    const fault = new Error('from a getter');
    const config = { ...capOfOne };
    Object.defineProperty(config, 'idleGraceMs', {
      get: () => {
        throw fault;
      },
    });
    expect(() => configure(id, config)).toThrow(fault);
  });

  it('a refused config changes nothing; the same config whole then applies', async () => {
    const server = new ServerCounter();
    const listener = reactor.listenTCP({ host: HOST, port: 0, maxConnections: 1, queue: { limit: 0 } }, server.factory);
    const { port } = listener.address;
    const noCap = { ...capOfOne, maxConnections: NO_LIMIT, queueLimit: 1024 };
    const { lowWaterMark: _, ...noCapLacking } = noCap;
    expect(() => configure(listener.id, noCapLacking)).toThrow(/"config.lowWaterMark"/);

    const connect = async (protocol: Protocol) => reactor.connectTCP({ host: HOST, port }, protocol);
    const first = new Collector();
    await connect(first);
    await first.made.promise;
    const second = new Collector();
    await connect(second);
    // Still capped at one with no queue: the second is closed unserved.
    expect(await second.lost.promise).toBeUndefined();
    expect(server.made).toBe(1);
    expect(reactor.stats().rejected).toBe(1);

    expect(configure(listener.id, noCap)).toBe(0);
    const third = new Collector();
    (await connect(third)).write('served');
    expect((await third.received(6)).toString()).toBe('served');
    expect(server.made).toBe(2);
  });
});
