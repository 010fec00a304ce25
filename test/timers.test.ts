import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { closeQuietly, codeOf, deferred, newReactor } from './helpers.js';

/**
 * Blocks the thread for `ms`: used only to make several timers due at the same
 * time, so they are delivered in one batch (not to wait for an event).
 */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('fires in deadline order, not in the order set', async () => {
    const fired: number[] = [];
    const done = deferred();
    reactor.callLater(30, () => {
      fired.push(30);
      done.resolve();
    });
    reactor.callLater(10, () => fired.push(10));
    reactor.callLater(20, () => fired.push(20));
    await done.promise;
    expect(fired).toEqual([10, 20, 30]);
  });

  it('an unref()ed call still runs, in order, while something else keeps the process alive', async () => {
    const fired: string[] = [];
    const done = deferred();
    const quiet = reactor.callLater(10, () => fired.push('unref')).unref();
    expect(quiet.hasRef()).toBe(false);
    expect(quiet.active).toBe(true);
    reactor.callLater(20, () => {
      fired.push('ref');
      done.resolve();
    });
    await done.promise;
    expect(fired).toEqual(['unref', 'ref']);
    expect(quiet.active).toBe(false);
  });

  it('calls with equal delays fire in the order they were set', async () => {
    const fired: number[] = [];
    const done = deferred();
    for (let i = 0; i < 20; i++) reactor.callLater(5, () => fired.push(i));
    reactor.callLater(5, () => done.resolve());
    await done.promise;
    expect(fired).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('fires no earlier than asked', async () => {
    const start = performance.now();
    const done = deferred<number>();
    reactor.callLater(25, () => done.resolve(performance.now()));
    // 1 ms slack for the millisecond clock's rounding.
    expect((await done.promise) - start).toBeGreaterThanOrEqual(24);
  });

  it('passes arguments through', async () => {
    const done = deferred<unknown[]>();
    const object = { k: 1 };
    reactor.callLater(1, (a: number, b: string, c: { k: number }, d: undefined) => done.resolve([a, b, c, d]), 42, 'x', object, undefined);
    const args = await done.promise;
    expect(args).toEqual([42, 'x', object, undefined]);
    expect(args[2]).toBe(object);
  });

  it('cancel() returns true once, then false, and the call never runs', async () => {
    let cancelledRan = false;
    const call = reactor.callLater(5, () => {
      cancelledRan = true;
    });
    const later = deferred();
    reactor.callLater(30, () => later.resolve());
    expect(call.active).toBe(true);
    expect(call.cancel()).toBe(true);
    expect(call.active).toBe(false);
    expect(call.cancel()).toBe(false);
    await later.promise; // a later timer fired, so the cancelled one had its chance
    expect(cancelledRan).toBe(false);
  });

  it('active flips to false when the call runs; cancel() afterwards returns false', async () => {
    const done = deferred<boolean>();
    const call = reactor.callLater(1, () => done.resolve(call.active));
    expect(call.active).toBe(true);
    expect(await done.promise).toBe(false); // already inactive inside its own callback
    expect(call.active).toBe(false);
    expect(call.cancel()).toBe(false);
  });

  it('reset() moves a call later and earlier: the observed order changes', async () => {
    const fired: string[] = [];
    const done = deferred();
    const a = reactor.callLater(10, () => fired.push('a'));
    reactor.callLater(40, () => fired.push('b'));
    const c = reactor.callLater(200, () => fired.push('c'));
    reactor.callLater(120, () => {
      fired.push('end');
      done.resolve();
    });
    a.reset(80); // a: 10 -> 80, now after b
    c.reset(60); // c: 200 -> 60, now before a and before end
    expect(a.active).toBe(true);
    await done.promise;
    expect(fired).toEqual(['b', 'c', 'a', 'end']);
  });

  it('reset() on a call that ran or was cancelled throws ERR_TIMER_NOT_ACTIVE', async () => {
    const done = deferred();
    const ran = reactor.callLater(1, () => done.resolve());
    await done.promise;
    expect(codeOf(() => ran.reset(10))).toBe('ERR_TIMER_NOT_ACTIVE');
    const cancelled = reactor.callLater(1000, () => {});
    cancelled.cancel();
    expect(codeOf(() => cancelled.reset(10))).toBe('ERR_TIMER_NOT_ACTIVE');
  });

  it('bad arguments throw ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE', () => {
    const anyReactor = reactor as unknown as { callLater(ms: unknown, fn: unknown): unknown };
    expect(codeOf(() => anyReactor.callLater('10', () => {}))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => anyReactor.callLater(10, 'not a function'))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => anyReactor.callLater(10, undefined))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.callLater(-1, () => {}))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.callLater(Number.NaN, () => {}))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.callLater(Number.POSITIVE_INFINITY, () => {}))).toBe('ERR_OUT_OF_RANGE');
    const call = reactor.callLater(1000, () => {});
    expect(codeOf(() => call.reset(-5))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => (call as unknown as { reset(ms: unknown): void }).reset('5'))).toBe('ERR_INVALID_ARG_TYPE');
    expect(call.active).toBe(true);
    call.cancel();
  });

  it('a callback may cancel a sibling due in the same batch: the sibling never runs', async () => {
    const fired: string[] = [];
    const done = deferred();
    let b: ReturnType<Reactor['callLater']> | undefined;
    reactor.callLater(5, () => {
      fired.push('a');
      expect(b!.cancel()).toBe(true);
    });
    b = reactor.callLater(5, () => fired.push('b'));
    reactor.callLater(5, () => fired.push('c'));
    reactor.callLater(40, () => done.resolve());
    spin(20); // all three are due when the loop next runs timers
    await done.promise;
    expect(fired).toEqual(['a', 'c']);
  });

  // A callback that sets a new call must not lose a sibling due in the same batch.
  it('a callback that sets a new call does not stop a sibling due in the same batch', async () => {
    const fired: string[] = [];
    const done = deferred();
    reactor.callLater(5, () => {
      fired.push('a');
      reactor.callLater(30, () => {
        fired.push('new');
        done.resolve();
      });
    });
    const b = reactor.callLater(5, () => fired.push('b'));
    spin(20);
    await done.promise;
    expect(fired).toEqual(['a', 'b', 'new']);
    expect(b.active).toBe(false);
  });

  it('reset() from a sibling callback in the same batch postpones the call', async () => {
    const start = performance.now();
    const bFired = deferred<number>();
    let b: ReturnType<Reactor['callLater']> | undefined;
    reactor.callLater(5, () => b!.reset(150));
    b = reactor.callLater(5, () => bFired.resolve(performance.now()));
    spin(20);
    const at = await bFired.promise;
    // Reset at ~20 ms to 150 ms from then: it must not run in the same batch.
    expect(at - start).toBeGreaterThanOrEqual(150);
  });

  it('many timers: 2,000 random delays fire in deadline order', async () => {
    const fired: number[] = [];
    const done = deferred();
    // Setting 2,000 calls takes a while, so each deadline is known to lie in
    // [earliest, latest]: "now" (read before and after callLater) + delay.
    const earliest: number[] = [];
    const latest: number[] = [];
    const count = 2000;
    let left = count;
    for (let i = 0; i < count; i++) {
      const delay = (i * 7919) % 60;
      earliest.push(performance.now() + delay);
      reactor.callLater(delay, () => {
        fired.push(i);
        if (--left === 0) done.resolve();
      });
      latest.push(performance.now() + delay);
    }
    await done.promise;
    expect(fired.length).toBe(count);
    expect(new Set(fired).size).toBe(count);
    // No call runs before one whose deadline was surely earlier (1 ms for the clock's rounding).
    const outOfOrder: number[] = [];
    let maxEarliest = -Infinity;
    for (const id of fired) {
      if (latest[id]! < maxEarliest - 1) outOfOrder.push(id);
      maxEarliest = Math.max(maxEarliest, earliest[id]!);
    }
    expect(outOfOrder).toEqual([]);
  });

  it('reactor.close() cancels pending calls: they never run and become inactive', async () => {
    let ran = false;
    const call = reactor.callLater(10, () => {
      ran = true;
    });
    reactor.close();
    expect(call.active).toBe(false);
    expect(call.cancel()).toBe(false);
    // A second reactor's later timer proves the first one's time has passed.
    const other = newReactor(backend);
    const done = deferred();
    other.callLater(40, () => done.resolve());
    await done.promise;
    other.close();
    expect(ran).toBe(false);
  });

  it('a throwing timer callback reaches onError and later timers still run', async () => {
    const errors: unknown[] = [];
    const r = newReactor(backend, { onError: (e) => errors.push(e) });
    try {
      const boom = new Error('boom');
      const done = deferred();
      r.callLater(1, () => {
        throw boom;
      });
      r.callLater(10, () => done.resolve());
      await done.promise;
      expect(errors).toEqual([boom]);
    } finally {
      r.close();
    }
  });
});
