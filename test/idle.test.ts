// Idle timeouts: listener defaults (idleTimeoutMs, idleResetOnWrite,
// idleGraceMs), per-transport setIdleTimeout, the protocol's
// timeoutConnection hook, and what both ends see. Clients live on a second
// reactor so the server reactor's stats() count only the server side.
// Nothing sleeps: waits are promises settled from protocol callbacks, actions
// are scheduled with callLater, and setTimeout appears only as a time bound.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol, type ReactorError, type Transport } from '../src/index.js';
import { closeQuietly, codeOf, connectionsFor, deferred, hasUnixSockets, newReactor, tmpSocketPath } from './helpers.js';

const HOST = '127.0.0.1';
/** The clocks count whole milliseconds: allow one for rounding. */
const SLACK = 1;

/** Rejects when `promise` has not settled within `ms` (a bound, not a wait). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/**
 * A client end that records when it saw the server's end: the FIN
 * (readConnectionLost) or, failing that, connectionLost. With `closeOnFin`
 * it closes on the FIN; without, it keeps the connection open (never closes).
 */
class EndWatcher implements Protocol {
  /** Before connectTCP was called: surely before any idle clock of this connection started. */
  connectStart = Number.NaN;
  sentAt = Number.NaN;
  madeAt = Number.NaN;
  /** First sign of the server's end (FIN or close). */
  endAt = Number.NaN;
  finAt = Number.NaN;
  lostAt = Number.NaN;
  finSeen = false;
  length = 0;
  lostCalls = 0;
  reason: ReactorError | undefined;
  transport: Transport | undefined;
  readonly made = deferred<Transport>();
  readonly lost = deferred<ReactorError | undefined>();
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  constructor(
    private readonly closeOnFin: boolean,
    private readonly onEnd?: () => void,
    private readonly onMade?: (transport: Transport) => void,
  ) {}

  connectionMade(transport: Transport): void {
    this.madeAt = performance.now();
    this.transport = transport;
    this.onMade?.(transport);
    this.made.resolve(transport);
  }

  dataReceived(data: Buffer): void {
    this.length += data.length;
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      if (this.length >= this.#waiters[i]!.n) this.#waiters.splice(i, 1)[0]!.resolve();
    }
  }

  readConnectionLost(transport: Transport): void {
    this.finAt = performance.now();
    this.finSeen = true;
    this.#ended(this.finAt);
    if (this.closeOnFin) transport.close();
  }

  connectionLost(reason: ReactorError | undefined): void {
    this.lostAt = performance.now();
    this.lostCalls++;
    this.reason = reason;
    this.#ended(this.lostAt);
    this.lost.resolve(reason);
  }

  received(n: number): Promise<void> {
    if (this.length >= n) return Promise.resolve();
    const d = deferred<void>();
    this.#waiters.push({ n, resolve: () => d.resolve() });
    return d.promise;
  }

  #ended(at: number): void {
    if (!Number.isNaN(this.endAt)) return;
    this.endAt = at;
    this.onEnd?.();
  }
}

/** Connects `watcher` over TCP, noting the time first. */
function connect(reactor: Reactor, port: number, watcher: EndWatcher): Promise<Transport> {
  watcher.connectStart = performance.now();
  return reactor.connectTCP({ host: HOST, port }, watcher);
}

/** One server-side connection as IdleServer saw it. */
interface ServerConn {
  transport: Transport;
  /** The first byte received, as a character ('' until then). */
  tag: string;
  madeAt: number;
  lostAt: number;
  lostCalls: number;
  reason: ReactorError | undefined;
  received: number;
}

/**
 * Server protocols that log every connection. `extra` adds or wraps protocol
 * methods per connection (timeoutConnection, connectionMade, ...).
 */
class IdleServer {
  readonly conns: ServerConn[] = [];
  lost = 0;
  #targets: { n: number; resolve: () => void }[] = [];
  /** Connections that sent data, by their tag. */
  readonly #tagged = new Map<string, number>();
  #tagTargets: { tag: string; n: number; resolve: () => void }[] = [];

  constructor(private readonly extra: (conn: ServerConn) => Partial<Protocol> = () => ({})) {}

  factory = (transport: Transport): Protocol => {
    const conn: ServerConn = {
      transport,
      tag: '',
      madeAt: Number.NaN,
      lostAt: Number.NaN,
      lostCalls: 0,
      reason: undefined,
      received: 0,
    };
    this.conns.push(conn);
    const extra = this.extra(conn);
    return {
      ...extra,
      connectionMade: (t) => {
        conn.madeAt = performance.now();
        extra.connectionMade?.(t);
      },
      dataReceived: (data, t) => {
        if (conn.tag === '' && data.length > 0) this.#tag(conn, String.fromCharCode(data[0]!));
        conn.received += data.length;
        extra.dataReceived?.(data, t);
      },
      connectionLost: (reason, t) => {
        conn.lostAt = performance.now();
        conn.lostCalls++;
        conn.reason = reason;
        this.lost++;
        extra.connectionLost?.(reason, t);
        this.#targets = this.#targets.filter(({ n, resolve }) => {
          if (this.lost < n) return true;
          resolve();
          return false;
        });
      },
    };
  };

  lostAtLeast(n: number): Promise<void> {
    if (this.lost >= n) return Promise.resolve();
    const d = deferred<void>();
    this.#targets.push({ n, resolve: () => d.resolve() });
    return d.promise;
  }

  /** Resolves once at least n connections sent `tag` as their first byte. */
  taggedAtLeast(tag: string, n: number): Promise<void> {
    if ((this.#tagged.get(tag) ?? 0) >= n) return Promise.resolve();
    const d = deferred<void>();
    this.#tagTargets.push({ tag, n, resolve: () => d.resolve() });
    return d.promise;
  }

  #tag(conn: ServerConn, tag: string): void {
    conn.tag = tag;
    const count = (this.#tagged.get(tag) ?? 0) + 1;
    this.#tagged.set(tag, count);
    this.#tagTargets = this.#tagTargets.filter((target) => {
      if (target.tag !== tag || count < target.n) return true;
      target.resolve();
      return false;
    });
  }

  tagged(tag: string): ServerConn[] {
    return this.conns.filter((c) => c.tag === tag);
  }
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let clients: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
    clients = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(clients);
    closeQuietly(reactor);
  });

  /** A server-side writer: one byte every 100 ms while the transport is open. */
  function writeEvery100ms(t: Transport): void {
    const tick = () => {
      if (t.state !== 'open') return;
      try {
        t.write('.');
      } catch {
        return; // ended by the reactor (idle): stop writing
      }
      reactor.callLater(100, tick);
    };
    reactor.callLater(100, tick);
  }

  const COUNT = connectionsFor(backend, 5000);
  it(`reaps ${COUNT} idle connections 1.0-1.5 s after their last byte and spares one that keeps talking`, { timeout: 20_000 }, async () => {
    const IN_FLIGHT = 256;
    const IDLE = 1000;
    const server = new IdleServer();
    const listener = reactor.listenTCP({ port: 0, host: HOST, backlog: 4096, idleTimeoutMs: IDLE }, server.factory);
    const port = listener.address.port;

    // The talker: one byte every 200 ms for 2.5 s.
    const talker = new EndWatcher(true);
    const talkerT = await clients.connectTCP({ host: HOST, port }, talker);
    talkerT.write('k');
    const talkStart = performance.now();
    let talks = 1;
    let lastTalkAt = talkStart;
    const talked = deferred<void>();
    const talk = () => {
      if (talkerT.state !== 'open' || performance.now() - talkStart >= 2500) {
        talked.resolve();
        return;
      }
      talkerT.write('k');
      lastTalkAt = performance.now();
      talks++;
      clients.callLater(200, talk);
    };
    clients.callLater(200, talk);

    // The idle ones: connect with IN_FLIGHT connects at a time, send one byte each.
    const idle: EndWatcher[] = [];
    let ended = 0;
    const allEnded = deferred<void>();
    const onEnd = () => {
      if (++ended === COUNT) allEnded.resolve();
    };
    let next = 0;
    const worker = async () => {
      while (next < COUNT) {
        const i = next++;
        // At most IN_FLIGHT connections the server has not read from yet: the
        // clients must not run ahead of the server's accepts, or the backlog,
        // not the idle clock, would decide when the last byte is read.
        if (i >= IN_FLIGHT) await server.taggedAtLeast('i', i + 1 - IN_FLIGHT);
        const watcher = new EndWatcher(true, onEnd);
        idle.push(watcher);
        const t = await clients.connectTCP({ host: HOST, port }, watcher);
        t.write('i');
        watcher.sentAt = performance.now();
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    expect(idle.length).toBe(COUNT);

    await within(allEnded.promise, 10_000, `clients that saw the server's end (${ended} of ${COUNT})`);
    await within(server.lostAtLeast(COUNT), 5_000, `server connectionLost calls (${server.lost} of ${COUNT})`);
    await talked.promise;

    // Every idle one was ended 1.0-1.5 s after its last byte, gracefully (FIN first).
    const delays = idle.map((w) => w.endAt - w.sentAt);
    const min = Math.min(...delays);
    const max = Math.max(...delays);
    const early = delays.filter((d) => !(d >= IDLE - SLACK)).length;
    const late = delays.filter((d) => !(d <= 1500)).length;
    expect({ early, late }, `reap delays after the last byte: min ${min.toFixed(1)} ms, max ${max.toFixed(1)} ms`).toEqual({
      early: 0,
      late: 0,
    });
    expect(idle.filter((w) => !w.finSeen).length, 'clients whose first sign of the end was not a FIN').toBe(0);
    expect(idle.filter((w) => w.reason !== undefined).length, 'clients closed with an error').toBe(0);

    // Server side: exactly the idle ones were lost, each with ERR_IDLE_TIMEOUT.
    const idleSide = server.tagged('i');
    expect(idleSide.length).toBe(COUNT);
    const codes = new Map<string, number>();
    for (const c of idleSide) {
      const code = c.reason?.code ?? 'clean';
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ ERR_IDLE_TIMEOUT: COUNT });
    expect(server.lost).toBe(COUNT);

    // The talker is still open at both ends after more than two idle periods
    // (how many times it talked depends on how late its timers ran).
    expect(lastTalkAt - talkStart).toBeGreaterThanOrEqual(2 * IDLE);
    expect(talkerT.state).toBe('open');
    expect(talker.finSeen).toBe(false);
    expect(talker.lostCalls).toBe(0);
    const talkerSide = server.tagged('k');
    expect(talkerSide.length).toBe(1);
    expect(talkerSide[0]!.transport.state).toBe('open');
    expect(talkerSide[0]!.received).toBe(talks);

    const stats = reactor.stats();
    expect(stats.reaped).toBe(COUNT);
    expect(stats.idleTimeouts).toBeGreaterThanOrEqual(COUNT);
    expect(stats.open).toBe(1);

    talkerT.close();
    expect(await talker.lost.promise).toBeUndefined();
    await server.lostAtLeast(COUNT + 1);
    expect(talkerSide[0]!.reason).toBeUndefined();
  });

  it('after the graceful end, a peer that never closes is aborted after idleGraceMs; one that closes on the FIN is not waited for', async () => {
    const IDLE = 300;
    const GRACE = 300;
    const server = new IdleServer();
    const listener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE, idleGraceMs: GRACE }, server.factory);
    const port = listener.address.port;

    const stubborn = new EndWatcher(false); // keeps its end open after the FIN
    const polite = new EndWatcher(true); // closes on the FIN
    const stubbornT = await clients.connectTCP({ host: HOST, port }, stubborn);
    const politeT = await clients.connectTCP({ host: HOST, port }, polite);
    stubbornT.write('S');
    stubborn.sentAt = performance.now();
    politeT.write('P');
    polite.sentAt = performance.now();

    const politeReason = await within(polite.lost.promise, 3000, 'the polite client closing');
    await within(server.lostAtLeast(2), 3000, 'server connectionLost calls');
    // select reports no error condition on a socket it is not asked to read
    // or write (and after the FIN nothing is read): its client learns of the
    // reset at its next write.
    if (backend === 'select' && stubbornT.state !== 'closed') stubbornT.write('?');
    const stubbornReason = await within(stubborn.lost.promise, 3000, 'the stubborn client being aborted');

    // The polite one: FIN after the idle timeout, closed cleanly, before the grace ran out.
    expect(polite.finSeen).toBe(true);
    expect(polite.finAt - polite.sentAt).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(polite.finAt - polite.sentAt).toBeLessThan(IDLE + GRACE);
    expect(politeReason).toBeUndefined();
    const [politeSide] = server.tagged('P');
    expect(politeSide?.reason?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(politeSide!.lostAt - polite.sentAt).toBeLessThan(IDLE + GRACE);

    // The stubborn one: FIN after the idle timeout, then a reset (or close) after the grace.
    expect(stubborn.finSeen).toBe(true);
    expect(stubborn.finAt - stubborn.sentAt).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(stubborn.finAt - stubborn.sentAt).toBeLessThan(IDLE + GRACE);
    expect(stubborn.lostAt - stubborn.sentAt).toBeGreaterThanOrEqual(IDLE + GRACE - SLACK);
    expect(stubborn.lostAt - stubborn.sentAt).toBeLessThan(IDLE + GRACE + 700);
    // A reset that finds the socket in CLOSE_WAIT (FIN already received) is
    // reported by Linux as EPIPE, elsewhere as ECONNRESET.
    expect([undefined, 'ECONNRESET', 'EPIPE']).toContain(stubbornReason?.code);
    const [stubbornSide] = server.tagged('S');
    expect(stubbornSide?.reason?.code).toBe('ERR_IDLE_GRACE_EXPIRED');
    expect(stubbornSide!.lostAt - stubborn.sentAt).toBeGreaterThanOrEqual(IDLE + GRACE - SLACK);

    expect(reactor.stats().reaped).toBe(2);
    expect(reactor.stats().idleTimeouts).toBe(2);
    expect(reactor.stats().open).toBe(0);
  });

  it('a timeoutConnection that does nothing keeps the connection: called once per period, and it still echoes', async () => {
    const IDLE = 300;
    const calls: number[] = [];
    const third = deferred<void>();
    const server = new IdleServer(() => ({
      timeoutConnection() {
        calls.push(performance.now());
        if (calls.length === 3) third.resolve();
      },
      dataReceived(data, t) {
        t.write(data);
      },
    }));
    const listener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE }, server.factory);
    const client = new EndWatcher(true);
    const transport = await connect(clients, listener.address.port, client);

    await within(third.promise, 3000, `the third timeoutConnection call (got ${calls.length})`);
    // Three full periods before the third call.
    expect(calls[0]! - client.connectStart).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(calls[2]! - client.connectStart).toBeGreaterThanOrEqual(3 * IDLE - SLACK);
    // One call per period: the next period starts when one ends, natively, a
    // moment before the protocol is called (hence a few ms of tolerance).
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(IDLE - 10);
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(IDLE - 10);
    // At least two calls within three periods (plus scheduling slack).
    expect(calls[1]! - server.conns[0]!.madeAt).toBeLessThan(3 * IDLE + 200);

    // Still open at both ends, and it still works.
    expect(transport.state).toBe('open');
    expect(server.conns[0]!.transport.state).toBe('open');
    expect(client.finSeen).toBe(false);
    transport.write('ping');
    await within(client.received(4), 2000, 'the echo');
    expect(client.length).toBe(4);
    expect(client.lostCalls).toBe(0);

    const stats = reactor.stats();
    expect(stats.reaped).toBe(0);
    expect(stats.idleTimeouts).toBeGreaterThanOrEqual(3);
    expect(stats.idleTimeouts).toBe(calls.length);

    transport.close();
    expect(await client.lost.promise).toBeUndefined();
  });

  it('a timeoutConnection that closes the transport: both ends see a clean close', async () => {
    const IDLE = 200;
    let timeouts = 0;
    const server = new IdleServer(() => ({
      timeoutConnection(t) {
        timeouts++;
        t.close();
      },
    }));
    const listener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE }, server.factory);
    const client = new EndWatcher(true);
    await connect(clients, listener.address.port, client);

    expect(await within(client.lost.promise, 3000, 'the client close')).toBeUndefined();
    await within(server.lostAtLeast(1), 3000, 'the server close');
    const conn = server.conns[0]!;
    expect(timeouts).toBe(1);
    expect(conn.reason).toBeUndefined();
    expect(conn.lostCalls).toBe(1);
    expect(client.finAt - client.connectStart).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(client.finSeen).toBe(true);
    expect(reactor.stats().reaped).toBe(0);
    expect(reactor.stats().idleTimeouts).toBe(1);
  });

  it('setIdleTimeout on a client transport reaps it without any listener timeout', async () => {
    const IDLE = 200;
    const server = new IdleServer(); // no readConnectionLost: closes when the client ends
    const listener = reactor.listenTCP({ port: 0, host: HOST }, server.factory);
    const client = new EndWatcher(true, undefined, (t) => t.setIdleTimeout(IDLE));
    await connect(clients, listener.address.port, client);

    const reason = await within(client.lost.promise, 3000, 'the client being reaped');
    expect(reason?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(client.lostAt - client.connectStart).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(client.lostAt - client.madeAt).toBeLessThan(IDLE + 500);
    await within(server.lostAtLeast(1), 3000, 'the server close');
    expect(server.conns[0]!.reason).toBeUndefined(); // from the server's side, the client simply ended
    expect(clients.stats().reaped).toBe(1);
    expect(reactor.stats().reaped).toBe(0);
  });

  it('setIdleTimeout on a server transport overrides the listener default, shorter or longer', async () => {
    // Listener says 5 s, the connection 200 ms.
    const shorter = new IdleServer(() => ({ connectionMade: (t) => t.setIdleTimeout(200) }));
    const shortListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: 5000 }, shorter.factory);
    // Listener says 200 ms, the connection 1 s.
    const longer = new IdleServer(() => ({ connectionMade: (t) => t.setIdleTimeout(1000) }));
    const longListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: 200 }, longer.factory);

    const a = new EndWatcher(true);
    const b = new EndWatcher(true);
    await connect(clients, shortListener.address.port, a);
    await connect(clients, longListener.address.port, b);

    await within(a.lost.promise, 3000, 'the 200 ms connection');
    await within(shorter.lostAtLeast(1), 3000, 'its server side');
    expect(a.finSeen).toBe(true);
    const aSide = shorter.conns[0]!;
    expect(a.endAt - a.connectStart).toBeGreaterThanOrEqual(200 - SLACK);
    expect(a.endAt - aSide.madeAt).toBeLessThan(700);
    expect(aSide.reason?.code).toBe('ERR_IDLE_TIMEOUT');

    await within(b.lost.promise, 3000, 'the 1 s connection');
    await within(longer.lostAtLeast(1), 3000, 'its server side');
    expect(b.finSeen).toBe(true);
    const bSide = longer.conns[0]!;
    expect(b.endAt - b.connectStart).toBeGreaterThanOrEqual(1000 - SLACK);
    expect(b.endAt - bSide.madeAt).toBeLessThan(1500);
    expect(bSide.reason?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(reactor.stats().reaped).toBe(2);
  });

  it('setIdleTimeout(0) disables the listener default: the connection stays open past several periods', async () => {
    const IDLE = 200;
    const disabled = new IdleServer(() => ({ connectionMade: (t) => t.setIdleTimeout(0) }));
    const control = new IdleServer();
    const disabledListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE }, disabled.factory);
    const controlListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE }, control.factory);
    const kept = new EndWatcher(true);
    const reaped = new EndWatcher(true);
    const keptT = await clients.connectTCP({ host: HOST, port: disabledListener.address.port }, kept);
    await clients.connectTCP({ host: HOST, port: controlListener.address.port }, reaped);

    // Five periods later.
    const checked = deferred<void>();
    clients.callLater(5 * IDLE, () => checked.resolve());
    await checked.promise;

    expect(reaped.finSeen).toBe(true); // the listener's timeout is in force
    expect(keptT.state).toBe('open');
    expect(kept.finSeen).toBe(false);
    expect(kept.lostCalls).toBe(0);
    expect(disabled.conns[0]!.transport.state).toBe('open');
    expect(disabled.lost).toBe(0);
    expect(reactor.stats().reaped).toBe(1);

    keptT.close();
    expect(await kept.lost.promise).toBeUndefined();
    await disabled.lostAtLeast(1);
    expect(disabled.conns[0]!.reason).toBeUndefined();
  });

  it('resetOnWrite: a server that only writes keeps its connection with it, and is reaped without it', async () => {
    const IDLE = 300;
    const writer = () => ({ connectionMade: (t: Transport) => writeEvery100ms(t) });
    // Listener option true.
    const onWrite = new IdleServer(writer);
    const onWriteListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE, idleResetOnWrite: true }, onWrite.factory);
    // Default: false.
    const readsOnly = new IdleServer(writer);
    const readsOnlyListener = reactor.listenTCP({ port: 0, host: HOST, idleTimeoutMs: IDLE }, readsOnly.factory);
    // Per transport: setIdleTimeout(ms, { resetOnWrite: true }) without a listener default.
    const perTransport = new IdleServer(() => ({
      connectionMade: (t: Transport) => {
        t.setIdleTimeout(IDLE, { resetOnWrite: true });
        writeEvery100ms(t);
      },
    }));
    const perTransportListener = reactor.listenTCP({ port: 0, host: HOST }, perTransport.factory);

    const a = new EndWatcher(true);
    const b = new EndWatcher(true);
    const c = new EndWatcher(true);
    const aT = await connect(clients, onWriteListener.address.port, a);
    await connect(clients, readsOnlyListener.address.port, b);
    const cT = await connect(clients, perTransportListener.address.port, c);

    // Four periods later.
    const checked = deferred<void>();
    clients.callLater(4 * IDLE, () => checked.resolve());
    await checked.promise;

    // Reset on write: open, and the bytes kept coming.
    for (const [name, watcher, t, server] of [
      ['idleResetOnWrite: true', a, aT, onWrite],
      ['setIdleTimeout(ms, { resetOnWrite: true })', c, cT, perTransport],
    ] as const) {
      expect(watcher.finSeen, name).toBe(false);
      expect(watcher.lostCalls, name).toBe(0);
      expect(t.state, name).toBe('open');
      expect(server.conns[0]!.transport.state, name).toBe('open');
      expect(watcher.length, name).toBeGreaterThanOrEqual(6);
    }
    // Reads only: reaped after one period although it was writing.
    expect(b.finSeen).toBe(true);
    const bSide = readsOnly.conns[0]!;
    expect(b.finAt - b.connectStart).toBeGreaterThanOrEqual(IDLE - SLACK);
    expect(b.finAt - bSide.madeAt).toBeLessThan(IDLE + 400);
    expect(b.length).toBeGreaterThanOrEqual(1); // it did receive writes before the end
    await within(readsOnly.lostAtLeast(1), 2000, 'the reaped server side');
    expect(bSide.reason?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(reactor.stats().reaped).toBe(1);

    aT.close();
    cT.close();
    expect(await a.lost.promise).toBeUndefined();
    expect(await c.lost.promise).toBeUndefined();
  });

  it.runIf(hasUnixSockets)('idleTimeoutMs applies to Unix socket listeners too', async () => {
    const server = new IdleServer();
    const listener = reactor.listenUnix({ path: tmpSocketPath('idle'), idleTimeoutMs: 200 }, server.factory);
    const client = new EndWatcher(true);
    client.connectStart = performance.now();
    await clients.connectUnix({ path: listener.address.address }, client);
    await within(client.lost.promise, 3000, 'the reaped Unix connection');
    await within(server.lostAtLeast(1), 3000, 'its server side');
    expect(client.finSeen).toBe(true);
    expect(client.endAt - client.connectStart).toBeGreaterThanOrEqual(200 - SLACK);
    expect(server.conns[0]!.reason?.code).toBe('ERR_IDLE_TIMEOUT');
    listener.close();
  });

  it('bad idle options and setIdleTimeout arguments throw with codes; setIdleTimeout on a closed transport throws ERR_SOCKET_CLOSED', async () => {
    const listen = (extra: Record<string, unknown>) => () =>
      reactor.listenTCP({ port: 0, host: HOST, ...extra } as Parameters<Reactor['listenTCP']>[0], () => null);
    expect(codeOf(listen({ idleTimeoutMs: -1 }))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(listen({ idleTimeoutMs: Number.NaN }))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(listen({ idleTimeoutMs: 'x' }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(listen({ idleGraceMs: -1 }))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(listen({ idleGraceMs: 'x' }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(listen({ idleResetOnWrite: 'yes' }))).toBe('ERR_INVALID_ARG_TYPE');
    const unix = () =>
      reactor.listenUnix({ path: tmpSocketPath('idle-bad'), idleTimeoutMs: -1 } as Parameters<Reactor['listenUnix']>[0], () => null);
    expect(codeOf(unix)).toBe('ERR_OUT_OF_RANGE');

    const server = new IdleServer();
    const listener = reactor.listenTCP({ port: 0, host: HOST }, server.factory);
    const client = new EndWatcher(true);
    const t = await clients.connectTCP({ host: HOST, port: listener.address.port }, client);
    const loose = t as unknown as { setIdleTimeout(ms: unknown, options?: unknown): void };
    expect(codeOf(() => loose.setIdleTimeout(-1))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => loose.setIdleTimeout(Number.NaN))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => loose.setIdleTimeout('x'))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.setIdleTimeout(100, { resetOnWrite: 1 }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => loose.setIdleTimeout(100, 'x'))).toBe('ERR_INVALID_ARG_TYPE');
    // None of the bad calls changed anything: still open, a valid call works.
    expect(t.state).toBe('open');
    expect(codeOf(() => t.setIdleTimeout(0))).toBeUndefined();

    t.close();
    expect(await client.lost.promise).toBeUndefined();
    expect(codeOf(() => t.setIdleTimeout(100))).toBe('ERR_SOCKET_CLOSED');
    clients.close();
    expect(codeOf(() => t.setIdleTimeout(100))).toBe('ERR_REACTOR_CLOSED');
  });
});
