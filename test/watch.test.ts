// reactor.watch(): descriptors the caller owns — FIFOs opened with node:fs,
// Unix sockets made by node:net, a child's stdin — on every backend. Waiting
// "a few turns of the loop" is itself event-driven: a clock watcher on a
// writable FIFO runs at every turn (level-triggered).
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type ReactorError, type WatchEvent } from '../src/index.js';
import { closeQuietly, codeOf, deferred, hasFdDirectory, newReactor, openFds, tmpSocketPath } from './helpers.js';

const posix = process.platform !== 'win32';
const fixture = fileURLToPath(new URL('./fixtures/child-watch.mjs', import.meta.url));
let fifos = 0;

/** Both ends of a fresh FIFO, non-blocking; its path is gone already. */
function fifo(): { reader: number; writer: number } {
  const path = join(tmpdir(), `native-reactor-watch-${process.pid}-${fifos++}`);
  execFileSync('mkfifo', [path]);
  try {
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    return { reader, writer };
  } finally {
    unlinkSync(path);
  }
}

/** Everything read from a non-blocking fd now (until EAGAIN or the end). */
function drain(fd: number): { text: string; ended: boolean } {
  const buffer = Buffer.alloc(65536);
  let text = '';
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return { text, ended: false };
      throw error;
    }
    if (n === 0) return { text, ended: true };
    text += buffer.toString('latin1', 0, n);
  }
}

/** Collects a watcher's events; next() waits for one that passes a test. */
class Events {
  readonly list: WatchEvent[] = [];
  #waiters: { test: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];
  readonly callback = (event: WatchEvent): void => {
    this.list.push(event);
    this.#waiters = this.#waiters.filter((w) => !(w.test(event) && (w.resolve(event), true)));
  };
  next(test: (e: WatchEvent) => boolean = () => true): Promise<WatchEvent> {
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }
}

/** Resolves after `n` turns of the reactor's loop. */
function turns(reactor: Reactor, n: number, opened: number[]): Promise<void> {
  const { reader, writer } = fifo();
  opened.push(reader, writer);
  const done = deferred();
  let seen = 0;
  reactor.watch(writer, { writable: true }, (_event, clock) => {
    if (++seen < n) return;
    clock.close();
    done.resolve();
  });
  return done.promise;
}

/** A connected pair of Unix sockets made by node:net; node reads neither (paused). */
async function unixPair(): Promise<{ client: net.Socket; server: net.Socket; close(): Promise<void> }> {
  const path = tmpSocketPath('watch');
  const accepted = deferred<net.Socket>();
  const listener = net.createServer((socket) => {
    socket.pause();
    accepted.resolve(socket);
  });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const client = net.connect(path);
  client.pause();
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const server = await accepted.promise;
  return {
    client,
    server,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise((resolve) => listener.close(resolve));
    },
  };
}

/** `n` turns of Node's loop (three are enough for libuv's close callbacks to run). */
async function settled(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** How often the reactor woke up over 20 turns of Node's loop: about 20 if it spins. */
async function wakeUps(reactor: Reactor): Promise<number> {
  await settled(); // what is under way (io_uring's cancellations) completes
  const before = reactor.stats().loopIterations;
  await settled(20);
  return reactor.stats().loopIterations - before;
}

function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

describe.skipIf(!posix).each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let errors: unknown[];
  let opened: number[];
  const hangups = backend !== 'select'; // select has no hang-up or error condition of its own

  beforeEach(() => {
    errors = [];
    opened = [];
    reactor = newReactor(backend, { onError: (error) => errors.push(error) });
  });
  afterEach(() => {
    closeQuietly(reactor);
    for (const fd of opened) {
      try {
        closeSync(fd);
      } catch {
        // closed by the test itself
      }
    }
  });

  function openFifo(): { reader: number; writer: number } {
    const pair = fifo();
    opened.push(pair.reader, pair.writer);
    return pair;
  }

  it('a FIFO: readable after a write, again while unread (level-triggered), the bytes left to the caller', async () => {
    const { reader, writer } = openFifo();
    const events = new Events();
    const watcher = reactor.watch(reader, { readable: true }, events.callback);
    expect(watcher.fd).toBe(reader);
    expect(watcher.interest).toEqual({ readable: true, writable: false });
    expect(watcher.closed).toBe(false);
    writeSync(writer, 'hello');
    const first = await events.next();
    expect(first).toEqual({ readable: true, writable: false, hangup: false, error: undefined });
    await events.next(); // not read: reported again
    expect(drain(reader)).toEqual({ text: 'hello', ended: false }); // the reactor read nothing
    await turns(reactor, 3, opened);
    const count = events.list.length;
    await turns(reactor, 3, opened);
    expect(events.list.length).toBe(count); // drained: quiet
    watcher.close();
    expect(watcher.closed).toBe(true);
  });

  it('close() stops watching and leaves the descriptor open, usable and unchanged', async () => {
    const { reader, writer } = openFifo();
    const events = new Events();
    const watcher = reactor.watch(reader, { readable: true }, events.callback);
    writeSync(writer, 'one');
    await events.next();
    watcher.close();
    watcher.close(); // again: nothing
    expect(watcher.closed).toBe(true);
    writeSync(writer, 'two');
    await turns(reactor, 3, opened);
    expect(events.list.length).toBe(1);
    expect(fstatSync(reader).isFIFO()).toBe(true);
    expect(drain(reader).text).toBe('onetwo');
    // Watched again by a new watcher: the descriptor is free.
    const again = new Events();
    reactor.watch(reader, { readable: true }, again.callback);
    writeSync(writer, 'three');
    expect((await again.next()).readable).toBe(true);
  });

  it('update() switches interest on a Unix socket made by node:net; both false stops it', async () => {
    const pair = await unixPair();
    try {
      const fd = fdOf(pair.client);
      const events = new Events();
      const watcher = reactor.watch(fd, { writable: true }, events.callback);
      expect(await events.next()).toMatchObject({ writable: true, readable: false });
      watcher.update({ writable: false, readable: true });
      expect(watcher.interest).toEqual({ readable: true, writable: false });
      await turns(reactor, 2, opened);
      const before = events.list.length;
      pair.server.write('ping');
      expect(await events.next()).toEqual({ readable: true, writable: false, hangup: false, error: undefined });
      expect(events.list.slice(before).every((e) => !e.writable)).toBe(true);
      watcher.update({ readable: false }); // stopped, still open
      expect(watcher.closed).toBe(false);
      const stopped = events.list.length;
      await turns(reactor, 3, opened);
      expect(events.list.length).toBe(stopped);
      watcher.update({ readable: true });
      await events.next((e) => e.readable);
      expect(drain(fd).text).toBe('ping');
      watcher.close();
    } finally {
      await pair.close();
    }
  });

  it('the writer going away: a hang-up, reported once, again after update(); the rest is there to read', async () => {
    const { reader, writer } = openFifo();
    const events = new Events();
    const watcher = reactor.watch(reader, { readable: true }, events.callback);
    writeSync(writer, 'last words');
    closeSync(writer);
    opened.splice(opened.indexOf(writer), 1);
    if (!hangups) {
      // select: the end reads as readable, level-triggered.
      await events.next((e) => e.readable);
      expect(drain(reader)).toEqual({ text: 'last words', ended: true });
      return;
    }
    const event = await events.next();
    expect(event).toEqual({ readable: true, writable: false, hangup: true, error: undefined });
    await turns(reactor, 3, opened);
    expect(events.list.length).toBe(1); // ignored, not repeated ...
    expect(await wakeUps(reactor)).toBeLessThan(5); // ... and the loop does not spin on it
    expect(drain(reader)).toEqual({ text: 'last words', ended: true });
    watcher.update({});
    expect((await events.next()).hangup).toBe(true);
    await turns(reactor, 3, opened);
    expect(events.list.length).toBe(2);
  });

  it('a socket reset: an error with the socket\'s code (ECONNRESET)', async () => {
    const accepted = deferred<net.Socket>();
    const tcp = net.createServer((socket) => accepted.resolve(socket));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const client = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
    client.pause();
    client.on('error', () => {});
    try {
      await new Promise<void>((resolve) => client.once('connect', resolve));
      const events = new Events();
      const watcher = reactor.watch(fdOf(client), { readable: true }, events.callback);
      (await accepted.promise).resetAndDestroy();
      if (!hangups) {
        expect((await events.next()).readable).toBe(true);
        return;
      }
      const event = await events.next((e) => e.error !== undefined);
      expect(event.error!.code).toBe('ECONNRESET');
      expect(event.error!.syscall).toBe('watch');
      expect(event.error!.errno).toBeLessThan(0);
      expect(watcher.closed).toBe(false); // stopped until update(), not closed
      await turns(reactor, 3, opened);
      expect(events.list.length).toBe(1);
      expect(await wakeUps(reactor)).toBeLessThan(5);
      watcher.close();
    } finally {
      client.destroy();
      await new Promise((resolve) => tcp.close(resolve));
    }
  });

  it('a descriptor closed behind the watcher\'s back: EBADF where the backend sees it, else at update()', async () => {
    const { reader } = openFifo();
    const events = new Events();
    const watcher = reactor.watch(reader, { readable: true }, events.callback);
    closeSync(reader);
    opened.splice(opened.indexOf(reader), 1);
    if (backend === 'epoll' || backend === 'kqueue') {
      // Dropped by the kernel without a word.
      await turns(reactor, 3, opened);
      expect(events.list.length).toBe(0);
      expect(codeOf(() => watcher.update({ writable: true }))).toBe('EBADF');
    } else {
      const event = await events.next();
      expect(event.error?.code).toBe('EBADF');
      expect(event.error?.message).toContain(`fd ${reader}`);
    }
    expect(watcher.closed).toBe(true);
    expect(codeOf(() => watcher.update({}))).toBe('ERR_WATCHER_CLOSED');
  });

  it('its number reused by the reactor\'s own listener: the watcher gets EBADF and the listener works', async () => {
    const { reader } = openFifo();
    const events = new Events();
    const watcher = reactor.watch(reader, { readable: true }, events.callback);
    closeSync(reader); // the caller's error ...
    opened.splice(opened.indexOf(reader), 1);
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived: (data, t) => t.write(data) }));
    expect(fstatSync(reader).isSocket()).toBe(true); // ... and the listener has its number
    const event = await events.next();
    expect(event.error?.code).toBe('EBADF');
    expect(watcher.closed).toBe(true);
    const client = net.connect(listener.address.port, '127.0.0.1');
    const echoed = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
    client.write('through the reused number');
    expect(await echoed).toBe('through the reused number');
    client.destroy();
  });

  it('validates its arguments, with codes', () => {
    const { reader, writer } = openFifo();
    const noop = (): void => {};
    expect(codeOf(() => reactor.watch('3' as unknown as number, { readable: true }, noop))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.watch(-1, { readable: true }, noop))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.watch(1.5, { readable: true }, noop))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.watch(reader, null as unknown as object, noop))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.watch(reader, { readable: 1 as unknown as boolean }, noop))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.watch(reader, {}, noop))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.watch(reader, { readable: true }, 'cb' as unknown as () => void))).toBe('ERR_INVALID_ARG_TYPE');
    let misspelt: ReactorError | undefined;
    try {
      reactor.watch(reader, { readble: true } as object, noop);
    } catch (error) {
      misspelt = error as ReactorError;
    }
    expect(misspelt?.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(misspelt?.message).toContain('did you mean "readable"');

    // The system's refusals, each with the fd in its message.
    const closed = openSync('/dev/null', 'r');
    closeSync(closed);
    expect(codeOf(() => reactor.watch(closed, { readable: true }, noop))).toBe('EBADF');
    const watcher = reactor.watch(reader, { readable: true }, noop);
    expect(codeOf(() => reactor.watch(reader, { writable: true }, noop))).toBe('EEXIST');
    expect(codeOf(() => reactor.adoptConnection(reader, { dataReceived: noop }))).toBe('EEXIST');
    expect(codeOf(() => watcher.update({ writable: 'yes' as unknown as boolean }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => watcher.update({ writeable: true } as object))).toBe('ERR_INVALID_ARG_VALUE');
    expect(watcher.interest).toEqual({ readable: true, writable: false }); // unchanged
    watcher.close();
    expect(codeOf(() => watcher.update({ readable: true }))).toBe('ERR_WATCHER_CLOSED');
    expect(codeOf(() => watcher.close())).toBeUndefined();

    // A closed reactor: its watchers are closed, and calls throw ERR_REACTOR_CLOSED.
    const open = reactor.watch(writer, { writable: true }, noop);
    reactor.close();
    expect(open.closed).toBe(true);
    expect(codeOf(() => open.update({}))).toBe('ERR_REACTOR_CLOSED');
    expect(codeOf(() => open.close())).toBeUndefined();
    expect(codeOf(() => reactor.watch(reader, { readable: true }, noop))).toBe('ERR_REACTOR_CLOSED');
  });

  it('a callback that throws closes its watcher (not the fd) and goes to onError', async () => {
    const { reader, writer } = openFifo();
    const thrown = new Error('callback failed');
    let calls = 0;
    const watcher = reactor.watch(reader, { readable: true }, () => {
      calls++;
      throw thrown;
    });
    writeSync(writer, 'x');
    await turns(reactor, 3, opened);
    expect(calls).toBe(1); // not called again though the byte is still unread
    expect(watcher.closed).toBe(true);
    expect(errors).toEqual([thrown]);
    expect(drain(reader).text).toBe('x');
  });

  it.runIf(hasFdDirectory)('leaks no descriptor over 200 watch/close cycles', async () => {
    const { reader, writer } = openFifo();
    await settled(); // what earlier tests closed is gone
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const events = new Events();
      const watcher = reactor.watch(i % 2 ? reader : writer, i % 2 ? { readable: true } : { writable: true }, events.callback);
      if (i % 2) writeSync(writer, 'y');
      await events.next();
      if (i % 2) drain(reader);
      watcher.close();
    }
    await settled();
    expect(openFds()).toBe(before);
  });

  it('an open watcher keeps the process alive unless unref()\'d', async () => {
    for (const mode of ['ref', 'unref']) {
      const child = spawn(process.execPath, [fixture, backend, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin.on('error', () => {}); // a child that exited too early: the test fails below
      let stdout = '';
      let stderr = '';
      const watching = deferred();
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('watching\n')) watching.resolve();
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await Promise.race([watching.promise, exited]);
      // Still running: only the watcher can be holding it.
      if (mode === 'ref') child.stdin.write('x\n');
      const code = await exited;
      clearTimeout(timer);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toBe(mode === 'ref' ? 'watching\ngot x\n' : 'watching\n');
    }
  });
});

describe.skipIf(posix)('on Windows', () => {
  it('watch() is unavailable', () => {
    const reactor = new Reactor();
    try {
      expect(codeOf(() => reactor.watch(0, { readable: true }, () => {}))).toBe('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM');
    } finally {
      reactor.close();
    }
  });
});
