import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol, type Transport } from '../src/index.js';
import { closeQuietly, deferred, newReactor, patterned } from './helpers.js';

const SIZE = 4 * 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

/** A server protocol that keeps every Buffer it is given, without copying. */
function keeper(onDone: (kept: Buffer[], digests: string[]) => void, collect = false): Protocol {
  const kept: Buffer[] = [];
  const digests: string[] = [];
  return {
    dataReceived(data) {
      kept.push(data);
      // Remember what each view held when it arrived, to compare at the end.
      digests.push(createHash('sha1').update(data).digest('hex'));
      if (collect && kept.length % 16 === 0) gc!();
    },
    readConnectionLost(t: Transport) {
      onDone(kept, digests);
      t.end();
    },
  };
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  async function stream(payload: Buffer, chunk: number, collect = false) {
    const result = deferred<{ kept: Buffer[]; digests: string[] }>();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => keeper((kept, digests) => result.resolve({ kept, digests }), collect));
    const lost = deferred();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, {
      dataReceived() {},
      connectionLost: () => lost.resolve(),
    });
    for (let at = 0; at < payload.length; at += chunk) t.write(payload.subarray(at, at + chunk));
    t.end();
    const out = await result.promise;
    await lost.promise;
    return out;
  }

  it('Buffers kept from dataReceived (no copy) stay intact across many slab renewals', { timeout: 20_000 }, async () => {
    const payload = patterned(SIZE, 0x1234);
    const { kept, digests } = await stream(payload, 8 * 1024 + 3);
    const joined = Buffer.concat(kept);
    expect(joined.length).toBe(SIZE);
    expect(joined.equals(payload)).toBe(true);
    // No view changed after it was delivered.
    expect(kept.map((b) => createHash('sha1').update(b).digest('hex'))).toEqual(digests);
    // The transfer really spanned several read slabs (4 MiB through 1 MiB slabs).
    expect(new Set(kept.map((b) => b.buffer)).size).toBeGreaterThanOrEqual(4);
  });

  it('kept Buffers survive garbage collections during the transfer', { timeout: 20_000 }, async () => {
    expect(typeof gc).toBe('function'); // vitest.config.ts runs the forks with --expose-gc
    const payload = randomBytes(SIZE);
    const { kept, digests } = await stream(payload, 64 * 1024, true);
    gc!();
    // Fill memory that a wrongly freed slab could be reused for.
    const noise = Array.from({ length: 16 }, () => Buffer.alloc(1024 * 1024, 0xee));
    expect(noise.length).toBe(16);
    expect(Buffer.concat(kept).equals(payload)).toBe(true);
    expect(kept.map((b) => createHash('sha1').update(b).digest('hex'))).toEqual(digests);
  });

  it('two interleaved streams sharing the slabs each keep their own bytes', { timeout: 20_000 }, async () => {
    const a = patterned(2 * 1024 * 1024, 1);
    const b = patterned(2 * 1024 * 1024, 0x80000000);
    const [ra, rb] = await Promise.all([stream(a, 5000), stream(b, 7000)]);
    expect(Buffer.concat(ra.kept).equals(a)).toBe(true);
    expect(Buffer.concat(rb.kept).equals(b)).toBe(true);
  });

  it('keepsData: false reuses read memory, yet every byte arrives right and kept-data protocols are unaffected', { timeout: 20_000 }, async () => {
    // A transient protocol hashes each chunk as it arrives and keeps nothing.
    const payload = patterned(SIZE, 0x5151);
    const hash = createHash('sha1');
    const views = new Set<ArrayBufferLike>();
    let offsets = 0;
    const seen = new Set<number>();
    const done = deferred();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
      keepsData: false,
      dataReceived(data: Buffer) {
        hash.update(data);
        views.add(data.buffer);
        offsets++;
        seen.add(data.byteOffset);
      },
      readConnectionLost(t: Transport) {
        done.resolve();
        t.end();
      },
    }));
    const lost = deferred();
    const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, {
      dataReceived() {},
      connectionLost: () => lost.resolve(),
    });
    for (let at = 0; at < payload.length; at += 8192) t.write(payload.subarray(at, at + 8192));
    t.end();
    await done.promise;
    await lost.promise;
    expect(hash.digest('hex')).toBe(createHash('sha1').update(payload).digest('hex'));
    // 4 MiB went through without a fresh slab per MiB: read offsets repeat.
    expect(seen.size).toBeLessThan(offsets);
    expect(views.size).toBeLessThan(4);
  });
});
