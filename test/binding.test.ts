// The boundary between the binding and TypeScript. A binary from another
// version, whose event records differ from what src/native.ts reads, is
// refused at load with ERR_NATIVE_MISMATCH naming each difference, not
// misread. configureListener() takes a named object; one with a field
// missing or mistyped is refused with a coded error, not a crash, and changes
// nothing. The layout check runs once per process, before any backend: its
// tests are not per backend.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol } from '../src/index.js';
import { parseListenerConfig } from '../src/limits.js';
import { checkRecordLayout, NO_LIMIT, type NativeListenerConfig, type RecordLayout } from '../src/native.js';
import { Collector, closeQuietly, newReactor, runProcess, ServerCounter } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/stale-binding.mjs', import.meta.url));
const HOST = '127.0.0.1';

/** The layout the built binary exports, as a fresh copy to alter. */
function realLayout(): RecordLayout {
  const binding = (createRequire(import.meta.url)('node-gyp-build') as (dir: string) => { recordLayout: RecordLayout })(root);
  return structuredClone(binding.recordLayout);
}

/** The error checkRecordLayout throws for `layout` (fails the test if none). */
function refusal(layout: RecordLayout | undefined): { code?: string; message: string } {
  try {
    checkRecordLayout(layout, 'stale.node');
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('the layout was accepted');
}

describe('the record layout is checked against the binary at load', () => {
  it('the built binary passes', () => {
    expect(() => checkRecordLayout(realLayout(), 'native_reactor.node')).not.toThrow();
  });

  it.each([
    ['a renumbered kind', (l: RecordLayout) => (l.kinds.data = 9), 'record kind "data" is 9 there, 3 here'],
    ['a kind it lacks', (l: RecordLayout) => delete l.kinds.idle, 'record kind "idle" (8) is missing there'],
    ['a kind this version does not handle', (l: RecordLayout) => (l.kinds.future = 99), 'record kind "future" (99) is not handled here'],
    ['a renumbered close reason', (l: RecordLayout) => (l.closeReasons.graceExpired = 3), 'close reason "graceExpired" is 3 there, 2 here'],
    ['six words a record', (l: RecordLayout) => (l.words = 6), 'records are 6 words there, 5 here'],
  ])('refuses %s with ERR_NATIVE_MISMATCH naming it', (_, change, named) => {
    const layout = realLayout();
    change(layout);
    const error = refusal(layout);
    expect(error.code).toBe('ERR_NATIVE_MISMATCH');
    expect(error.message).toContain('stale.node');
    expect(error.message).toContain(named);
  });

  it('names every difference at once, and refuses a binary with no layout at all', () => {
    const layout = realLayout();
    layout.kinds.eof = 2;
    layout.kinds.connected = 4;
    expect(refusal(layout).message).toMatch(/"connected" is 4 there, 2 here; .*"eof" is 2 there, 4 here/);
    expect(refusal(undefined)).toMatchObject({ code: 'ERR_NATIVE_MISMATCH', message: expect.stringContaining('exports no record layout') });
  });

  // Through Node's own loader: the altered binding is what src/native.ts gets.
  it.each([
    ['renumber-data', 'record kind "data" is 9 there, 3 here'],
    ['no-layout', 'exports no record layout'],
  ])('importing the package with a binding altered (%s) fails with ERR_NATIVE_MISMATCH', async (change, named) => {
    const result = await runProcess(process.execPath, [fixture, change], 20_000);
    const outcome = JSON.parse(result.stdout) as { code?: string; message?: string };
    expect(outcome.code).toBe('ERR_NATIVE_MISMATCH');
    expect(outcome.message).toContain('native_reactor.node');
    expect(outcome.message).toContain(named);
  });

  it('importing it with the binding intact through the same loader works', async () => {
    const result = await runProcess(process.execPath, [fixture, 'intact'], 20_000);
    expect(JSON.parse(result.stdout)).toEqual({ loaded: true });
  });
});

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
