import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Transport } from '../src/index.js';
import { Collector, ServerCounter, closeQuietly, deferred, hasFdDirectory, newReactor, openFds, tmpSocketPath } from './helpers.js';

const CYCLES = 5000;
const WAVE = 100;

/** Two turns of the event loop: enough for libuv's close callbacks to run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe.runIf(hasFdDirectory)('descriptor accounting (needs /dev/fd: Linux, macOS)', () => {
  describe.each(Reactor.backends)('%s backend', (backend) => {
    let reactor: Reactor;
    beforeEach(() => {
      reactor = newReactor(backend);
    });
    afterEach(() => closeQuietly(reactor));

    /**
     * One connect/close cycle, closed in one of four ways: client close(),
     * server close(), client abort(), client end() against a half-closing server.
     */
    async function cycle(port: number, i: number, serverSides: Map<number, Transport>): Promise<void> {
      const client = new Collector();
      const t = await reactor.connectTCP({ host: '127.0.0.1', port }, client);
      const tag = Buffer.alloc(4);
      tag.writeUInt32LE(i);
      t.write(tag);
      await client.received(4); // the server accepted and answered
      switch (i % 4) {
        case 0:
          t.close();
          break;
        case 1:
          serverSides.get(i)!.close();
          break;
        case 2:
          t.abort();
          break;
        case 3:
          t.end();
          break;
      }
      await client.lost.promise;
    }

    it(`no descriptor leaks after ${CYCLES} connect/close cycles`, { timeout: 30_000 }, async () => {
      const serverSides = new Map<number, Transport>();
      const counter = new ServerCounter({
        dataReceived(data, t) {
          serverSides.set(data.readUInt32LE(0), t);
          t.write(data);
        },
        readConnectionLost(t) {
          t.end();
        },
      });
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1', backlog: 1024 }, counter.factory);
      const port = listener.address.port;

      // Warm up once so lazily opened descriptors (if any) exist before counting.
      await Promise.all(Array.from({ length: 8 }, (_, i) => cycle(port, i, serverSides)));
      await counter.lostAtLeast(8);
      await settle();
      const before = openFds();

      let done = 8;
      while (done < CYCLES + 8) {
        const wave = Array.from({ length: WAVE }, (_, k) => cycle(port, done + k, serverSides));
        await Promise.all(wave);
        done += WAVE;
        await counter.lostAtLeast(done);
        serverSides.clear();
      }
      await settle();
      expect(counter.made).toBe(CYCLES + 8);
      expect(counter.lost).toBe(CYCLES + 8);
      expect(openFds()).toBe(before);
    });

    it('refused connects leak no descriptors', async () => {
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived() {} }));
      const port = listener.address.port;
      listener.close();
      await settle();
      const before = openFds();
      for (let wave = 0; wave < 5; wave++) {
        const codes = await Promise.all(
          Array.from({ length: 100 }, () =>
            reactor.connectTCP({ host: '127.0.0.1', port }, new Collector()).then(
              () => 'connected',
              (e: { code?: string }) => e.code,
            ),
          ),
        );
        expect(new Set(codes)).toEqual(new Set(['ECONNREFUSED']));
      }
      await settle();
      expect(openFds()).toBe(before);
    });

    it('listener.close() releases the listening descriptor (TCP and Unix)', async () => {
      await settle();
      const before = openFds();
      const listeners = Array.from({ length: 50 }, (_, i) =>
        i % 2 ? reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived() {} })) : reactor.listenUnix({ path: tmpSocketPath('fd') }, () => ({ dataReceived() {} })),
      );
      expect(openFds()).toBe(before + 50);
      for (const l of listeners) l.close();
      await settle();
      expect(openFds()).toBe(before);
    });

    it('connections still open when reactor.close() runs are all released', async () => {
      await settle();
      const withoutR2 = openFds();
      const r2 = newReactor(backend);
      const own = openFds() - withoutR2; // the backend's fds: epoll's one, poll/select's pipes
      try {
        let accepted = 0;
        const allAccepted = deferred();
        const l2 = r2.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
          connectionMade: () => {
            if (++accepted === 200) allAccepted.resolve();
          },
          dataReceived() {},
        }));
        await settle();
        const before = openFds();
        const lost = Array.from({ length: 200 }, () => deferred());
        await Promise.all(lost.map((d) => reactor.connectTCP({ host: '127.0.0.1', port: l2.address.port }, { dataReceived() {}, connectionLost: () => d.resolve() })));
        await allAccepted.promise;
        expect(openFds()).toBe(before + 400); // both ends of 200 connections
        r2.close();
        await Promise.all(lost.map((d) => d.promise)); // our clients saw the closes
        await settle();
        // All 400 sockets are gone, and so are r2's listener and backend fds.
        expect(openFds()).toBe(before - 1 - own);
      } finally {
        closeQuietly(r2);
      }
    });

    it('reactor.close() releases the reactor\'s own descriptors, even while the Reactor is still referenced', async () => {
      await settle();
      const before = openFds();
      const kept: Reactor[] = [];
      for (let i = 0; i < 50; i++) {
        const r = newReactor(backend);
        r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived() {} }));
        r.close();
        kept.push(r);
      }
      await settle();
      expect(kept.every((r) => r.closed)).toBe(true);
      expect(openFds()).toBe(before);
    });
  });
});

