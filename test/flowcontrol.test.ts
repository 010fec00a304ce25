// Flow control (issue 4): pause()/resume(), write watermarks and writeDrained,
// producers, maxWriteBuffer, half-close, and validation of the new options.
// Every wait is a promise settled from a protocol callback; reactor.callLater
// only schedules a step (a resume, a check that nothing happened meanwhile).
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type ListenTCPOptions, type Protocol, type ReactorError, type Transport } from '../src/index.js';
import { Collector, closeQuietly, codeOf, deferred, echoProtocol, newReactor, patterned, tmpSocketPath } from './helpers.js';
import {
  DEFAULT_HIGH,
  DEFAULT_LOW,
  DrainWatcher,
  HOST,
  KiB,
  MiB,
  NetCollector,
  PausedReader,
  after,
  listenNet,
  sha,
  writeChunks,
  writeRepeatedly,
  type WriteRun,
} from './flow-helpers.js';

/** The native side reads at most this much per read (one Data record). */
const ONE_READ = 64 * KiB;

const payloads = new Map<string, Buffer>();
/** patterned(size, seed), built once per file. */
function payload(size: number, seed = 0): Buffer {
  const key = `${size}:${seed}`;
  let buffer = payloads.get(key);
  if (buffer === undefined) payloads.set(key, (buffer = patterned(size, seed)));
  return buffer;
}

const RANGE_CODES = ['ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'];

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  const sockets: net.Socket[] = [];
  const servers: net.Server[] = [];
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(async () => {
    closeQuietly(reactor);
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  /** A server (DrainWatcher) and our client that stopped reading as soon as it connected. */
  async function pausedClientPair(options: Omit<ListenTCPOptions, 'port' | 'host'> = {}) {
    const server = new DrainWatcher();
    const listener = reactor.listenTCP({ port: 0, host: HOST, ...options }, () => server);
    const client = new PausedReader();
    const clientT = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
    const serverT = await server.made.promise;
    return { listener, server, serverT, client, clientT };
  }

  /**
   * The writer writes `chunk`-sized pieces to a reader that does not read
   * until write() returns false, then two more; checks what write() said
   * against `high`; lets the reader resume (from a timer) and checks that
   * writeDrained ran once the queue was <= `low`, and that every byte arrived.
   */
  async function backpressure(args: {
    writer: Transport;
    watcher: DrainWatcher;
    resumeReader(): void;
    readerReceived(n: number): Promise<Buffer>;
    high: number;
    low: number;
    chunk: number;
  }): Promise<{ run: WriteRun; total: number }> {
    const { writer, watcher, high, low, chunk } = args;
    const data = payload(48 * MiB, 3);
    // The kernel takes a few MiB first; 40 MiB is plenty to reach any mark here.
    const run = writeChunks(writer, data, chunk, { maxBytes: 40 * MiB, stop: (r) => !r.ok });
    expect(run.records.filter((r) => r.threw !== undefined)).toEqual([]);
    expect(run.records.at(-1)?.ok).toBe(false); // the reader does not read: the mark is reached
    // write() is true below the mark and false at or above it, every time.
    expect(run.records.filter((r) => r.ok !== r.buffered < high)).toEqual([]);
    const first = run.records.at(-1)!;
    expect(first.buffered).toBeGreaterThanOrEqual(high);
    expect(first.buffered).toBeLessThan(high + chunk);
    const more = writeChunks(writer, data, chunk, { from: run.written, maxBytes: 2 * chunk });
    expect(more.records.map((r) => r.ok)).toEqual([false, false]);
    const total = run.written + more.written;
    // Nothing drains while the reader is paused, so writeDrained does not run.
    let before = { queued: -1, drains: -1 };
    await after(reactor, 30, () => {
      before = { queued: writer.bufferedAmount, drains: watcher.drains.length };
      args.resumeReader();
    });
    expect(before.drains).toBe(0);
    expect(before.queued).toBeGreaterThan(low);
    await watcher.drained.promise;
    expect(watcher.drains.length).toBe(1);
    expect(watcher.drains[0]).toBeLessThanOrEqual(low);
    const got = await args.readerReceived(total);
    expect(got.length).toBe(total);
    expect(sha(got)).toBe(sha(data.subarray(0, total)));
    return { run, total };
  }

  describe('pause() and resume()', () => {
    it('pause() inside dataReceived holds delivery until a timer resumes; 16 MiB arrive intact, in order', async () => {
      const SIZE = 16 * MiB;
      const data = payload(SIZE, 1);
      const chunks: Buffer[] = [];
      let length = 0;
      let paused = false;
      let callsWhilePaused = 0;
      const pausedAt = deferred<Transport>();
      const all = deferred<void>();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        dataReceived(chunk: Buffer, t: Transport) {
          if (paused) callsWhilePaused++;
          chunks.push(chunk);
          length += chunk.length;
          if (chunks.length === 1) {
            t.pause();
            paused = true;
            pausedAt.resolve(t);
          }
          if (length >= SIZE) all.resolve();
        },
      }));
      const client = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      client.write(data.subarray(0, 1000));
      const server = await pausedAt.promise;
      expect(server.isPaused).toBe(true);
      const lengthAtPause = length;
      // The client writes everything else while the server is paused.
      expect(client.write(data.subarray(lengthAtPause))).toBe(false);
      let atResume = { clientQueued: -1, serverLength: -1, calls: -1 };
      await after(reactor, 100, () => {
        atResume = { clientQueued: client.bufferedAmount, serverLength: length, calls: callsWhilePaused };
        paused = false;
        server.resume();
      });
      expect(server.isPaused).toBe(false);
      // Nothing was delivered while paused ...
      expect(atResume.calls).toBe(0);
      expect(atResume.serverLength).toBe(lengthAtPause);
      // ... and the kernel pushed back: the client still had bytes queued.
      expect(atResume.clientQueued).toBeGreaterThan(0);
      await all.promise;
      expect(length).toBe(SIZE);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      client.close();
    });

    it('pausing after every chunk and resuming from callLater(0) loses and reorders nothing (16 MiB)', async () => {
      const SIZE = 16 * MiB;
      const data = payload(SIZE, 2);
      const chunks: Buffer[] = [];
      let length = 0;
      let paused = false;
      let callsWhilePaused = 0;
      let cycles = 0;
      const all = deferred<void>();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        dataReceived(chunk: Buffer, t: Transport) {
          if (paused) callsWhilePaused++;
          chunks.push(chunk);
          length += chunk.length;
          if (length >= SIZE) {
            all.resolve();
            return;
          }
          t.pause();
          paused = true;
          cycles++;
          reactor.callLater(0, () => {
            paused = false;
            if (t.state !== 'closed') t.resume();
          });
        },
      }));
      const client = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      for (let at = 0; at < SIZE; at += MiB) client.write(data.subarray(at, at + MiB));
      await all.promise;
      expect(callsWhilePaused).toBe(0);
      expect(cycles).toBe(chunks.length - 1); // one pause per chunk but the last
      expect(cycles).toBeGreaterThan(16);
      expect(length).toBe(SIZE);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      client.close();
    });

    it('isPaused follows pause()/resume(); pausing twice is harmless and one resume() restarts reading', async () => {
      const server = new Collector();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
      const client = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      const s = await server.made.promise;
      expect(s.isPaused).toBe(false);
      expect(client.isPaused).toBe(false);
      s.pause();
      expect(s.isPaused).toBe(true);
      expect(() => s.pause()).not.toThrow();
      expect(s.isPaused).toBe(true);
      client.write('one');
      let whilePaused = -1;
      await after(reactor, 50, () => {
        whilePaused = server.length;
        s.resume();
      });
      expect(whilePaused).toBe(0);
      expect(s.isPaused).toBe(false);
      expect((await server.received(3)).toString()).toBe('one');
      // pause() then resume() in the same tick leaves reading on.
      s.pause();
      s.resume();
      expect(s.isPaused).toBe(false);
      client.write('two');
      expect((await server.received(6)).toString()).toBe('onetwo');
      // resume() on a transport that reads is harmless.
      expect(() => s.resume()).not.toThrow();
      expect(s.isPaused).toBe(false);
      // The client side pauses and resumes too.
      client.pause();
      expect(client.isPaused).toBe(true);
      client.resume();
      expect(client.isPaused).toBe(false);
      client.write('three');
      expect((await server.received(11)).toString()).toBe('onetwothree');
      client.close();
      expect(await server.lost.promise).toBeUndefined();
    });

    it('pause() and resume() on a closed transport throw ERR_SOCKET_CLOSED', async () => {
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
      const closed = new Collector();
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, closed);
      t.close();
      expect(await closed.lost.promise).toBeUndefined();
      expect(t.state).toBe('closed');
      expect(codeOf(() => t.pause())).toBe('ERR_SOCKET_CLOSED');
      expect(codeOf(() => t.resume())).toBe('ERR_SOCKET_CLOSED');
      const aborted = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      aborted.pause();
      aborted.abort();
      expect(codeOf(() => aborted.resume())).toBe('ERR_SOCKET_CLOSED');
      expect(codeOf(() => aborted.pause())).toBe('ERR_SOCKET_CLOSED');
    });

    it('a paused server sees the peer end only after every byte sent before it (1 MiB then FIN)', async () => {
      const SIZE = MiB;
      const data = payload(SIZE, 4);
      const chunks: Buffer[] = [];
      let length = 0;
      let paused = false;
      let eventsWhilePaused = 0;
      let lengthAtEof = -1;
      const pausedAt = deferred<Transport>();
      const lost = deferred<ReactorError | undefined>();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        dataReceived(chunk: Buffer, t: Transport) {
          if (paused) eventsWhilePaused++;
          chunks.push(chunk);
          length += chunk.length;
          if (chunks.length === 1) {
            t.pause();
            paused = true;
            pausedAt.resolve(t);
          }
        },
        readConnectionLost(t: Transport) {
          if (paused) eventsWhilePaused++;
          lengthAtEof = length;
          t.end('done');
        },
        connectionLost: (reason: ReactorError | undefined) => lost.resolve(reason),
      }));
      const client = new Collector();
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
      t.write(data.subarray(0, 100));
      const server = await pausedAt.promise;
      t.end(data.subarray(length));
      await after(reactor, 30, () => {
        paused = false;
        server.resume();
      });
      expect(await lost.promise).toBeUndefined();
      expect(eventsWhilePaused).toBe(0);
      expect(lengthAtEof).toBe(SIZE);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect(await client.lost.promise).toBeUndefined();
      expect(client.bytes().toString()).toBe('done');
    });
  });

  describe('write backpressure and writeDrained', () => {
    it('defaults: write() is false from 64 KiB queued; writeDrained runs once at <= 16 KiB after the reader resumes', async () => {
      const { server, serverT, client, clientT } = await pausedClientPair();
      await backpressure({
        writer: serverT,
        watcher: server,
        resumeReader: () => clientT.resume(),
        readerReceived: (n) => client.received(n),
        high: DEFAULT_HIGH,
        low: DEFAULT_LOW,
        chunk: 16 * KiB,
      });
      // A round trip later it still ran only once.
      clientT.write('ping');
      expect((await server.received(4)).toString()).toBe('ping');
      expect(server.drains.length).toBe(1);
      // Writes below the mark never trigger writeDrained.
      expect(serverT.write('small')).toBe(true);
      await client.received(client.length + 5);
      clientT.write('pong');
      await server.received(8);
      expect(server.drains.length).toBe(1);
    });

    it('listener highWaterMark/lowWaterMark options set the marks of accepted transports', async () => {
      const high = 256 * KiB;
      const low = 32 * KiB;
      const { server, serverT, client, clientT } = await pausedClientPair({ highWaterMark: high, lowWaterMark: low });
      const { run } = await backpressure({
        writer: serverT,
        watcher: server,
        resumeReader: () => clientT.resume(),
        readerReceived: (n) => client.received(n),
        high,
        low,
        chunk: 16 * KiB,
      });
      // Above the default mark, write() still said true.
      expect(run.records.some((r) => r.ok && r.buffered >= DEFAULT_HIGH)).toBe(true);
      clientT.write('ping');
      await server.received(4);
      expect(server.drains.length).toBe(1);
    });

    it('setWriteBuffer() on one accepted transport leaves its siblings at the listener marks', async () => {
      const high = 256 * KiB;
      const servers = [new DrainWatcher(), new DrainWatcher()];
      let accepted = 0;
      const listener = reactor.listenTCP({ port: 0, host: HOST, highWaterMark: high }, () => servers[accepted++]!);
      for (let i = 0; i < 2; i++) await reactor.connectTCP({ host: HOST, port: listener.address.port }, new PausedReader());
      const [changed, sibling] = await Promise.all(servers.map((server) => server.made.promise));
      changed.setWriteBuffer({ highWaterMark: MiB });
      const data = payload(40 * MiB, 4);
      const untilRefused = (t: Transport) => writeChunks(t, data, 16 * KiB, { stop: (r) => !r.ok }).records.at(-1)!;
      const siblingStop = untilRefused(sibling);
      expect(siblingStop.ok).toBe(false);
      expect(siblingStop.buffered).toBeGreaterThanOrEqual(high);
      expect(siblingStop.buffered).toBeLessThan(high + 16 * KiB);
      expect(untilRefused(changed).buffered).toBeGreaterThanOrEqual(MiB);
      expect([changed.highWaterMark, sibling.highWaterMark]).toEqual([MiB, high]);
    });

    it('transport.setWriteBuffer() sets the marks; the reader is a paused node:net socket', async () => {
      const high = MiB;
      const low = 256 * KiB;
      const server = new DrainWatcher();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
      const socket = net.connect({ host: HOST, port: listener.address.port });
      sockets.push(socket);
      socket.pause();
      const reader = new NetCollector(socket);
      const serverT = await server.made.promise;
      serverT.setWriteBuffer({ highWaterMark: high, lowWaterMark: low });
      const { run } = await backpressure({
        writer: serverT,
        watcher: server,
        resumeReader: () => socket.resume(),
        readerReceived: (n) => reader.received(n),
        high,
        low,
        chunk: 64 * KiB,
      });
      expect(run.records.some((r) => r.ok && r.buffered >= DEFAULT_HIGH)).toBe(true);
      socket.write('ping');
      await server.received(4);
      expect(server.drains.length).toBe(1);
    });

    it('setWriteBuffer() on our client transport applies to its writes too', async () => {
      const high = 512 * KiB;
      const low = 128 * KiB;
      const server = new PausedReader(); // the server is the reader that does not read
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => server);
      const client = new DrainWatcher();
      const clientT = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
      const serverT = await server.made.promise;
      clientT.setWriteBuffer({ highWaterMark: high, lowWaterMark: low });
      const { run } = await backpressure({
        writer: clientT,
        watcher: client,
        resumeReader: () => serverT.resume(),
        readerReceived: (n) => server.received(n),
        high,
        low,
        chunk: 32 * KiB,
      });
      expect(run.records.some((r) => r.ok && r.buffered >= DEFAULT_HIGH)).toBe(true);
    });
  });

  describe('producers', () => {
    it('a proxy registering its downstream as producer of its upstream stays bounded; 16 MiB arrive intact', async () => {
      const SIZE = 16 * MiB;
      const data = payload(SIZE, 5);
      // B: the upstream server, a slow reader. Paused for 100 ms after its first
      // chunk, then it pauses for a timer tick after every 8th chunk.
      const bChunks: Buffer[] = [];
      let bLength = 0;
      let bReads = 0;
      const bDone = deferred<void>();
      const listenerB = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        dataReceived(chunk: Buffer, t: Transport) {
          bChunks.push(chunk);
          bLength += chunk.length;
          if (bLength >= SIZE) {
            bDone.resolve();
            return;
          }
          bReads++;
          const delay = bReads === 1 ? 100 : bReads % 8 === 0 ? 1 : -1;
          if (delay < 0) return;
          t.pause();
          reactor.callLater(delay, () => {
            if (t.state !== 'closed') t.resume();
          });
        },
      }));
      // A: the proxy. It holds the downstream until its upstream is connected.
      const stats = {
        maxUpstream: 0,
        largestChunk: 0,
        sawPaused: false,
        dataWhilePaused: 0,
        overMarkNotPaused: 0,
        chunks: 0,
      };
      const proxyReady = deferred<{ down: Transport; up: Transport }>();
      let upstream: Transport | undefined;
      const listenerA = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        connectionMade(down: Transport) {
          down.pause();
          reactor.connectTCP({ host: HOST, port: listenerB.address.port }, { dataReceived() {} }).then((up) => {
            upstream = up;
            up.registerProducer(down);
            down.resume();
            proxyReady.resolve({ down, up });
          }, proxyReady.reject);
        },
        dataReceived(chunk: Buffer, down: Transport) {
          stats.chunks++;
          if (down.isPaused) stats.dataWhilePaused++;
          stats.largestChunk = Math.max(stats.largestChunk, chunk.length);
          upstream!.write(chunk);
          const queued = upstream!.bufferedAmount;
          stats.maxUpstream = Math.max(stats.maxUpstream, queued);
          if (down.isPaused) stats.sawPaused = true;
          else if (queued >= DEFAULT_HIGH) stats.overMarkNotPaused++;
        },
        readConnectionLost() {
          upstream?.end();
        },
      }));
      // C: our client sends everything at once.
      const c = await reactor.connectTCP({ host: HOST, port: listenerA.address.port }, new Collector());
      const { down, up } = await proxyReady.promise;
      c.write(data);
      c.end();
      await bDone.promise;
      expect(bLength).toBe(SIZE);
      expect(Buffer.concat(bChunks).equals(data)).toBe(true);
      // The downstream was paused by the upstream's queue, and resumed once it drained.
      expect(stats.sawPaused).toBe(true);
      expect(stats.overMarkNotPaused).toBe(0);
      expect(stats.dataWhilePaused).toBe(0);
      expect(stats.maxUpstream).toBeLessThanOrEqual(DEFAULT_HIGH + ONE_READ + stats.largestChunk);
      expect(up.bufferedAmount).toBe(0);
      expect(down.isPaused).toBe(false);
    });

    it('registerProducer twice throws ERR_PRODUCER_REGISTERED; unregisterProducer() detaches the producer', async () => {
      const { server, serverT, client, clientT } = await pausedClientPair();
      const calls: string[] = [];
      const producer = (name: string) => ({
        pause: () => void calls.push(`${name}.pause`),
        resume: () => void calls.push(`${name}.resume`),
      });
      serverT.registerProducer(producer('one'));
      expect(codeOf(() => serverT.registerProducer(producer('two')))).toBe('ERR_PRODUCER_REGISTERED');
      serverT.unregisterProducer();
      serverT.registerProducer(producer('three'));
      const piece = payload(16 * KiB, 6);
      const run = writeRepeatedly(serverT, piece, 40 * 64, (r) => !r.ok);
      expect(run.records.at(-1)?.ok).toBe(false);
      // Queue at the mark: the registered producer (only it) was told to pause.
      expect(calls.length).toBeGreaterThan(0);
      expect(calls.every((c) => c === 'three.pause')).toBe(true);
      await after(reactor, 20, () => clientT.resume());
      await server.drained.promise;
      await client.received(run.written);
      expect(new Set(calls)).toEqual(new Set(['three.pause', 'three.resume']));
      expect(calls.at(-1)).toBe('three.resume');
      // Unregistered, it is not called again when the queue crosses the mark.
      const before = calls.length;
      serverT.unregisterProducer();
      clientT.pause();
      const again = writeRepeatedly(serverT, piece, 48 * 64, (r) => !r.ok);
      expect(again.records.at(-1)?.ok).toBe(false);
      await after(reactor, 20, () => clientT.resume());
      await client.received(run.written + again.written);
      expect(calls.length).toBe(before);
    });
  });

  describe('maxWriteBuffer', () => {
    /** Checks a run of writes into a reader that never reads, with maxWriteBuffer `max`. */
    function expectAbortedAtMax(run: WriteRun, max: number, chunk: number, attempted: number): void {
      expect(run.records.filter((r) => r.threw !== undefined)).toEqual([]);
      const crossing = run.records.findIndex((r) => r.state === 'closed');
      // Aborted before everything was written, by the write that crossed ...
      expect(crossing).toBeGreaterThan(0);
      expect(crossing).toBe(run.records.length - 1);
      expect(run.written).toBeLessThan(attempted);
      // ... which returned false rather than throwing ...
      expect(run.records[crossing]!.ok).toBe(false);
      // ... and not earlier than needed.
      expect(run.records[crossing - 1]!.buffered).toBeGreaterThan(max - chunk);
      // The queue never held more than max.
      expect(Math.max(...run.records.map((r) => r.buffered))).toBeLessThanOrEqual(max);
    }

    it('listener maxWriteBuffer: a write that would queue more than it aborts with ERR_WRITE_BUFFER_FULL', async () => {
      const max = MiB;
      const chunk = 64 * KiB;
      const { server, serverT } = await pausedClientPair({ maxWriteBuffer: max });
      const attempted = 64 * MiB;
      const run = writeRepeatedly(serverT, payload(chunk, 8), attempted / chunk);
      expectAbortedAtMax(run, max, chunk, attempted);
      expect(serverT.state).toBe('closed');
      expect(serverT.bufferedAmount).toBe(0);
      const reason = await server.lost.promise;
      expect(reason?.code).toBe('ERR_WRITE_BUFFER_FULL');
      expect(server.lostCalls).toBe(1);
      expect(serverT.write('late')).toBe(false); // closed: refused, nothing thrown
      expect(server.lostCalls).toBe(1);
    });

    it('64 MiB into a node:net peer that never reads, maxWriteBuffer 4 MiB via setWriteBuffer: never more than 4 MiB queued', async () => {
      const max = 4 * MiB;
      const chunk = 256 * KiB;
      const server = net.createServer({ pauseOnConnect: true }, (socket) => {
        sockets.push(socket);
        socket.on('error', () => {});
      });
      servers.push(server);
      const port = await listenNet(server);
      const client = new Collector();
      const t = await reactor.connectTCP({ host: HOST, port }, client);
      t.setWriteBuffer({ maxWriteBuffer: max });
      const attempted = 64 * MiB;
      const run = writeRepeatedly(t, payload(chunk, 9), attempted / chunk);
      expectAbortedAtMax(run, max, chunk, attempted);
      expect(t.state).toBe('closed');
      const reason = await client.lost.promise;
      expect(reason?.code).toBe('ERR_WRITE_BUFFER_FULL');
      expect(client.lostCalls).toBe(1);
    });

    it('maxWriteBuffer applies to writev() as well', async () => {
      const max = MiB;
      const { server, serverT } = await pausedClientPair({ maxWriteBuffer: max });
      const piece = payload(32 * KiB, 10);
      let threw: unknown;
      let maxQueued = 0;
      let crossing: boolean | undefined;
      const closed = (): boolean => serverT.state === 'closed';
      try {
        for (let i = 0; i < 2048 && !closed(); i++) {
          const ok = serverT.writev([piece, piece]);
          if (closed()) crossing = ok;
          else maxQueued = Math.max(maxQueued, serverT.bufferedAmount);
        }
      } catch (error) {
        threw = error;
      }
      expect(threw).toBeUndefined();
      expect(crossing).toBe(false);
      expect(maxQueued).toBeLessThanOrEqual(max);
      expect((await server.lost.promise)?.code).toBe('ERR_WRITE_BUFFER_FULL');
    });
  });

  describe('half-close', () => {
    it('the server ends first; the client keeps writing 1 MiB and the server keeps reading it', async () => {
      const SIZE = MiB;
      const data = payload(SIZE, 11);
      const HALF = SIZE / 2;
      const server = new Collector();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => ({
        connectionMade: (t: Transport) => t.end('bye'),
        dataReceived: (chunk: Buffer) => server.dataReceived(chunk),
        connectionLost: (reason: ReactorError | undefined) => server.connectionLost(reason),
      }));
      const client = new Collector();
      let eofs = 0;
      let stateAtEof = '';
      const clientProtocol: Protocol = {
        dataReceived: (chunk) => client.dataReceived(chunk),
        readConnectionLost(t) {
          eofs++;
          stateAtEof = t.state;
          t.write(data.subarray(HALF));
          t.end();
        },
        connectionLost: (reason) => client.connectionLost(reason),
      };
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, clientProtocol);
      t.write(data.subarray(0, HALF));
      expect(await server.lost.promise).toBeUndefined();
      expect(server.lengthAtLoss).toBe(SIZE);
      expect(server.bytes().equals(data)).toBe(true);
      expect(await client.lost.promise).toBeUndefined();
      expect(client.bytes().toString()).toBe('bye');
      expect(eofs).toBe(1);
      expect(stateAtEof).toBe('open');
    });

    it('the client ends first; the server (readConnectionLost) writes a 1 MiB reply following writeDrained, then ends', async () => {
      const REPLY = payload(MiB, 12);
      const request = deferred<string>();
      const serverLost = deferred<ReactorError | undefined>();
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => {
        let at = 0;
        let got = '';
        const pump = (t: Transport) => {
          while (at < REPLY.length) {
            const piece = REPLY.subarray(at, at + 64 * KiB);
            at += piece.length;
            if (!t.write(piece)) return; // writeDrained continues
          }
          t.end();
        };
        return {
          dataReceived: (chunk: Buffer) => void (got += chunk.toString()),
          readConnectionLost(t: Transport) {
            request.resolve(got);
            pump(t);
          },
          writeDrained: (t: Transport) => pump(t),
          connectionLost: (reason: ReactorError | undefined) => serverLost.resolve(reason),
        };
      });
      // The client reads the first chunk, then pauses for 20 ms so the reply backs up.
      const client = new Collector();
      let first = true;
      const clientProtocol: Protocol = {
        dataReceived(chunk, t) {
          client.dataReceived(chunk);
          if (!first) return;
          first = false;
          t.pause();
          reactor.callLater(20, () => {
            if (t.state !== 'closed') t.resume();
          });
        },
        connectionLost: (reason) => client.connectionLost(reason),
      };
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, clientProtocol);
      t.end('GET /big');
      expect(await request.promise).toBe('GET /big');
      expect(await client.lost.promise).toBeUndefined();
      expect(client.lengthAtLoss).toBe(REPLY.length);
      expect(client.bytes().equals(REPLY)).toBe(true);
      expect(await serverLost.promise).toBeUndefined();
    });
  });

  describe('validation', () => {
    const bad: [string, Record<string, unknown>, string[]][] = [
      ['negative highWaterMark', { highWaterMark: -1 }, ['ERR_OUT_OF_RANGE']],
      ['fractional highWaterMark', { highWaterMark: 1.5 }, ['ERR_OUT_OF_RANGE']],
      ['NaN highWaterMark', { highWaterMark: Number.NaN }, ['ERR_OUT_OF_RANGE']],
      ['string highWaterMark', { highWaterMark: '65536' }, ['ERR_INVALID_ARG_TYPE']],
      ['negative lowWaterMark', { lowWaterMark: -1 }, ['ERR_OUT_OF_RANGE']],
      ['fractional lowWaterMark', { lowWaterMark: 0.5 }, ['ERR_OUT_OF_RANGE']],
      ['negative maxWriteBuffer', { maxWriteBuffer: -5 }, ['ERR_OUT_OF_RANGE']],
      ['fractional maxWriteBuffer', { maxWriteBuffer: MiB + 0.5 }, ['ERR_OUT_OF_RANGE']],
      ['lowWaterMark above highWaterMark', { highWaterMark: 1000, lowWaterMark: 2000 }, RANGE_CODES],
      ['maxWriteBuffer below highWaterMark', { highWaterMark: MiB, lowWaterMark: KiB, maxWriteBuffer: 512 * KiB }, RANGE_CODES],
    ];

    it.each(bad)('listenTCP: %s throws', (_name, options, codes) => {
      expect(codes).toContain(codeOf(() => reactor.listenTCP({ port: 0, host: HOST, ...options } as never, () => echoProtocol())));
    });

    it.each(bad)('setWriteBuffer: %s throws', async (_name, options, codes) => {
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      expect(codes).toContain(codeOf(() => t.setWriteBuffer(options as never)));
    });

    it('against the defaults: lowWaterMark alone above 64 KiB, or maxWriteBuffer alone below it, throws', async () => {
      const low = { lowWaterMark: DEFAULT_HIGH + 1 };
      const max = { maxWriteBuffer: DEFAULT_HIGH - 1 };
      expect(RANGE_CODES).toContain(codeOf(() => reactor.listenTCP({ port: 0, host: HOST, ...low }, () => echoProtocol())));
      expect(RANGE_CODES).toContain(codeOf(() => reactor.listenTCP({ port: 0, host: HOST, ...max }, () => echoProtocol())));
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      expect(RANGE_CODES).toContain(codeOf(() => t.setWriteBuffer(low)));
      expect(RANGE_CODES).toContain(codeOf(() => t.setWriteBuffer(max)));
    });

    it('valid edge values are accepted: low == high, max == high', async () => {
      const options = { highWaterMark: 128 * KiB, lowWaterMark: 128 * KiB, maxWriteBuffer: 128 * KiB };
      const listener = reactor.listenTCP({ port: 0, host: HOST, ...options }, () => echoProtocol());
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, new Collector());
      expect(() => t.setWriteBuffer(options)).not.toThrow();
      expect(() => t.setWriteBuffer({})).not.toThrow();
    });

    it('a rejected listenTCP binds nothing: the same port can be listened on right after', () => {
      const probe = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
      const port = probe.address.port;
      probe.close();
      expect(codeOf(() => reactor.listenTCP({ port, host: HOST, highWaterMark: -1 }, () => echoProtocol()))).toBe('ERR_OUT_OF_RANGE');
      const listener = reactor.listenTCP({ port, host: HOST }, () => echoProtocol());
      expect(listener.address.port).toBe(port);
    });

    it('listenUnix validates the watermark options too', () => {
      const path = tmpSocketPath('flow');
      expect(codeOf(() => reactor.listenUnix({ path, highWaterMark: -1 } as never, () => echoProtocol()))).toBe('ERR_OUT_OF_RANGE');
      expect(RANGE_CODES).toContain(codeOf(() => reactor.listenUnix({ path, highWaterMark: 10, lowWaterMark: 20 } as never, () => echoProtocol())));
      expect(existsSync(path)).toBe(false); // nothing was bound
    });

    it('setWriteBuffer and registerProducer reject non-objects', async () => {
      const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
      const client = new Collector();
      const t = await reactor.connectTCP({ host: HOST, port: listener.address.port }, client);
      expect(codeOf(() => t.setWriteBuffer(null as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => t.setWriteBuffer(42 as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => t.registerProducer(null as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE']).toContain(codeOf(() => t.registerProducer({ pause() {} } as never)));
      // Nothing was registered by the rejected calls.
      expect(() => t.registerProducer({ pause() {}, resume() {} })).not.toThrow();
    });
  });
});
