// Adopted descriptors: reactor.adoptListener / adoptConnection on sockets made
// elsewhere, and systemdListenFds(). A node parent passes a socket to a child
// as fd 3, the way systemd's socket activation does (test/fixtures/child-adopt.mjs);
// error cases run in this process. POSIX only (Windows: the feature error).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, systemdListenFds, SD_LISTEN_FDS_START } from '../src/index.js';
import { closeQuietly, codeOf, echoProtocol, newReactor, patterned, tmpSocketPath } from './helpers.js';

const HOST = '127.0.0.1';
const posix = process.platform !== 'win32';
const fixture = fileURLToPath(new URL('./fixtures/child-adopt.mjs', import.meta.url));
const self = fileURLToPath(import.meta.url);

/** A child running child-adopt.mjs, its stdout split into lines. */
class Adopter {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';
  #waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];

  constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((w) => !(w.test(line) && (w.resolve(line), true)));
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
    void this.exited.then(() => {
      for (const w of this.#waiters) w.resolve(`exited: ${this.stderr}`);
      this.#waiters = [];
    });
  }

  /** The first line (already printed or to come) that passes `test`. */
  line(test: (line: string) => boolean): Promise<string> {
    const found = this.lines.find(test);
    if (found !== undefined) return Promise.resolve(found);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(`exited: ${this.stderr}`);
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }

  /** The next line starting with `prefix`, printed after this call. */
  next(prefix: string): Promise<string> {
    return new Promise((resolve) => this.#waiters.push({ test: (l) => l.startsWith(prefix), resolve }));
  }

  async ready(): Promise<Record<string, unknown>> {
    const line = await this.line((l) => l.startsWith('ready ') || l.startsWith('exited'));
    expect(line.startsWith('ready '), line).toBe(true);
    return JSON.parse(line.slice('ready '.length)) as Record<string, unknown>;
  }
}

const children: ChildProcess[] = [];

/** Starts the fixture with `socket` as its fd 3 and LISTEN_FDS=1. */
async function startAdopter(backend: string, mode: string, idleMs: number, socket: net.Server | net.Socket): Promise<Adopter> {
  // A net.Socket goes as a stream (node stops reading it here); a net.Server,
  // which spawn() cannot take, by its descriptor.
  const child = spawn(process.execPath, [fixture, backend, mode, String(idleMs)], {
    stdio: ['pipe', 'pipe', 'pipe', socket instanceof net.Socket ? socket : fdOf(socket)],
    env: { ...process.env, LISTEN_FDS: '1', EMULATE_LISTEN_PID: '1' },
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return new Adopter(child);
}

/** A loopback client with its bytes collected. */
class Client {
  readonly socket: net.Socket;
  readonly connected: Promise<void>;
  readonly ended: Promise<void>;
  received = Buffer.alloc(0);
  #waiters: { n: number; resolve: () => void }[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, HOST);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.ended = new Promise((resolve) => this.socket.once('end', resolve));
    this.socket.on('error', () => {});
    this.socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.#waiters = this.#waiters.filter((w) => !(this.received.length >= w.n && (w.resolve(), true)));
    });
  }

  /** Resolves once n bytes arrived (or the socket closed). */
  bytes(n: number): Promise<Buffer> {
    if (this.received.length >= n) return Promise.resolve(this.received);
    return new Promise((resolve) => {
      this.#waiters.push({ n, resolve: () => resolve(this.received) });
      this.socket.once('close', () => resolve(this.received));
    });
  }
}

function listening(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, resolve);
  });
}

/** A listening socket's descriptor (node keeps it on the handle; POSIX). */
function fdOf(handle: net.Server | net.Socket): number {
  return (handle as unknown as { _handle: { fd: number } })._handle.fd;
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.skipIf(!posix).each(Reactor.backends)('%s backend', (backend) => {
  it('a child adopts a listening socket passed as fd 3 (socket activation): echo, a cap of 2 with the third waiting, bytes intact', async () => {
    const server = net.createServer();
    await listening(server, { port: 0, host: HOST });
    const { port } = server.address() as net.AddressInfo;
    const adopter = await startAdopter(backend, 'listener', 60_000, server);
    await new Promise((resolve) => server.close(resolve)); // only the child accepts from here on
    const ready = await adopter.ready();
    expect(ready.fds).toEqual([SD_LISTEN_FDS_START]);
    expect(ready.unset).toBe(true);
    expect(ready.address).toEqual({ address: HOST, port, family: 'IPv4' });

    const a = new Client(port);
    const b = new Client(port);
    a.socket.write('from a');
    b.socket.write('from b');
    expect((await a.bytes(6)).toString()).toBe('from a');
    expect((await b.bytes(6)).toString()).toBe('from b');
    await adopter.line((l) => l === 'made 2');

    // The third is parked: accepted, not read, until a served one closes.
    const c = new Client(port);
    await c.connected;
    const payload = patterned(200_000, 7);
    c.socket.write(payload);
    let counts = '';
    for (let i = 0; i < 500 && counts !== 'counts 2 1'; i++) {
      const answer = adopter.next('counts');
      adopter.child.stdin!.write('counts\n');
      counts = await answer;
    }
    expect(counts).toBe('counts 2 1');
    expect(c.received.length).toBe(0);
    expect(adopter.lines).not.toContain('made 3');

    a.socket.end();
    expect((await c.bytes(payload.length)).equals(payload)).toBe(true);
    await adopter.line((l) => l === 'made 3');
    b.socket.write(' again');
    expect((await b.bytes(12)).toString()).toBe('from b again');

    b.socket.end();
    c.socket.end();
    await adopter.line((l) => l.startsWith('lost 3'));
    adopter.child.stdin!.end(); // "exit now"
    expect(await adopter.exited).toBe(0);
    expect(adopter.lines).toContain('stats 0 3');
    expect(adopter.stderr).toBe('');
  });

  it('idle connections of an adopted listener are reaped', async () => {
    const server = net.createServer();
    await listening(server, { port: 0, host: HOST });
    const { port } = server.address() as net.AddressInfo;
    const adopter = await startAdopter(backend, 'listener', 150, server);
    await new Promise((resolve) => server.close(resolve));
    await adopter.ready();
    const client = new Client(port);
    client.socket.write('x');
    expect((await client.bytes(1)).toString()).toBe('x');
    await client.ended; // then silent: the child ends it
    client.socket.end();
    expect(await adopter.line((l) => l.startsWith('lost 1'))).toBe('lost 1 ERR_IDLE_TIMEOUT');
    adopter.child.stdin!.end();
    expect(await adopter.exited).toBe(0);
    expect(adopter.lines).toContain('stats 1 1');
  });

  it('a child adopts a connected socket passed as fd 3 and echoes on it', async () => {
    const server = net.createServer();
    let serverSide!: net.Socket;
    const accepted = new Promise<void>((resolve) => {
      server.once('connection', (socket: net.Socket) => {
        serverSide = socket;
        resolve();
      });
    });
    await listening(server, { port: 0, host: HOST });
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect(port, HOST);
    await Promise.all([accepted, new Promise((resolve) => client.once('connect', resolve))]);
    const adopter = await startAdopter(backend, 'connection', 0, client);
    client.destroy(); // the child's copy is the connection now
    const ready = await adopter.ready();
    expect(ready.state).toBe('open');
    expect(ready.remote).toEqual({ address: HOST, port, family: 'IPv4' });
    await adopter.line((l) => l === 'made 1');

    const payload = patterned(300_000, 3);
    let echoed = Buffer.alloc(0);
    const back = new Promise<void>((resolve) => {
      serverSide.on('data', (d: Buffer) => {
        echoed = Buffer.concat([echoed, d]);
        if (echoed.length >= payload.length) resolve();
      });
    });
    serverSide.write(payload);
    await back;
    expect(echoed.equals(payload)).toBe(true);
    const ended = new Promise((resolve) => serverSide.once('end', resolve));
    serverSide.end(); // the child's transport closes in turn
    await ended;
    expect(await adopter.line((l) => l.startsWith('lost 1'))).toBe('lost 1 clean');
    adopter.child.stdin!.end();
    expect(await adopter.exited).toBe(0);
    server.close();
  });

  describe('refusals, in this process', () => {
    let reactor: Reactor;
    beforeEach(() => {
      reactor = newReactor(backend);
    });
    afterEach(() => closeQuietly(reactor));
    const factory = () => echoProtocol();

    it('rejects bad arguments before touching anything', () => {
      expect(codeOf(() => reactor.adoptListener(-1, factory))).toBe('ERR_OUT_OF_RANGE');
      expect(codeOf(() => reactor.adoptListener(1.5, factory))).toBe('ERR_OUT_OF_RANGE');
      expect(codeOf(() => reactor.adoptListener('3' as unknown as number, factory))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => reactor.adoptListener(3, undefined as unknown as () => undefined))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => reactor.adoptListener(3, factory, { maxConnection: 2 } as never))).toBe('ERR_INVALID_ARG_VALUE');
      expect(codeOf(() => reactor.adoptListener(3, factory, { maxConnections: 0 }))).toBe('ERR_OUT_OF_RANGE');
      expect(codeOf(() => reactor.adoptListener(3, factory, null as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(codeOf(() => reactor.adoptConnection(-1, echoProtocol()))).toBe('ERR_OUT_OF_RANGE');
      expect(codeOf(() => reactor.adoptConnection(3, {} as never))).toBe('ERR_INVALID_ARG_TYPE');
      expect(reactor.stats().open).toBe(0);
    });

    it('EBADF for a closed descriptor, ENOTSOCK for a file (which stays open: the caller still owns it)', () => {
      const closed = openSync(self, 'r');
      closeSync(closed);
      expect(codeOf(() => reactor.adoptListener(closed, factory))).toBe('EBADF');
      expect(codeOf(() => reactor.adoptConnection(closed, echoProtocol()))).toBe('EBADF');
      const file = openSync(self, 'r');
      try {
        expect(codeOf(() => reactor.adoptListener(file, factory))).toBe('ENOTSOCK');
        expect(codeOf(() => reactor.adoptConnection(file, echoProtocol()))).toBe('ENOTSOCK');
        expect(fstatSync(file).isFile()).toBe(true);
      } finally {
        closeSync(file);
      }
    });

    it('EINVAL for a listening socket given to adoptConnection and a connected one given to adoptListener; both keep working', async () => {
      const server = net.createServer((socket) => socket.pipe(socket));
      await listening(server, { port: 0, host: HOST });
      const { port } = server.address() as net.AddressInfo;
      const client = net.connect(port, HOST);
      await new Promise((resolve) => client.once('connect', resolve));
      try {
        let error: unknown;
        try {
          reactor.adoptConnection(fdOf(server), echoProtocol());
        } catch (e) {
          error = e;
        }
        expect(error).toMatchObject({ code: 'EINVAL', syscall: 'adoptConnection' });
        expect(codeOf(() => reactor.adoptListener(fdOf(client), factory))).toBe('EINVAL');
        // Neither was taken: the node:net server and client still talk.
        const echoed = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
        client.write('still mine');
        expect(await echoed).toBe('still mine');
      } finally {
        client.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('maxConnectionsPerPeer on an adopted Unix listener is refused and the socket left alone', async () => {
      const path = tmpSocketPath('adopt');
      const server = net.createServer();
      await listening(server, { path });
      try {
        const fd = fdOf(server);
        expect(codeOf(() => reactor.adoptListener(fd, factory, { maxConnectionsPerPeer: 1 }))).toBe('ERR_INVALID_ARG_VALUE');
        expect(fstatSync(fd).isSocket()).toBe(true);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('ERR_REACTOR_CLOSED once closed', () => {
      reactor.close();
      expect(codeOf(() => reactor.adoptListener(3, factory))).toBe('ERR_REACTOR_CLOSED');
      expect(codeOf(() => reactor.adoptConnection(3, echoProtocol()))).toBe('ERR_REACTOR_CLOSED');
    });
  });
});

describe.skipIf(posix)('on Windows', () => {
  it('adopting is unavailable', () => {
    const reactor = new Reactor();
    try {
      expect(codeOf(() => reactor.adoptListener(3, () => echoProtocol()))).toBe('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM');
      expect(codeOf(() => reactor.adoptConnection(3, echoProtocol()))).toBe('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM');
    } finally {
      reactor.close();
    }
  });
});

describe('systemdListenFds', () => {
  it('reads LISTEN_FDS from fd 3 when LISTEN_PID is this process', () => {
    expect(systemdListenFds({})).toEqual([]);
    expect(systemdListenFds({ LISTEN_PID: String(process.pid), LISTEN_FDS: '2' })).toEqual([3, 4]);
    expect(systemdListenFds({ LISTEN_PID: String(process.pid), LISTEN_FDS: '0' })).toEqual([]);
    expect(systemdListenFds({ LISTEN_FDS: '1' })).toEqual([]); // no LISTEN_PID: not for us
    expect(systemdListenFds({ LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '1' })).toEqual([]);
  });

  it('unset removes the variables, whoever they were for; the default keeps them', () => {
    const env: Record<string, string | undefined> = { LISTEN_PID: String(process.pid), LISTEN_FDS: '1', LISTEN_FDNAMES: 'web', OTHER: 'x' };
    expect(systemdListenFds(env)).toEqual([3]);
    expect(env.LISTEN_FDS).toBe('1');
    expect(systemdListenFds(env, { unset: true })).toEqual([3]);
    expect(env).toEqual({ OTHER: 'x' });
    const foreign: Record<string, string | undefined> = { LISTEN_PID: '1', LISTEN_FDS: '1' };
    expect(systemdListenFds(foreign, { unset: true })).toEqual([]);
    expect(foreign).toEqual({});
  });

  it('malformed values and unknown options throw', () => {
    expect(codeOf(() => systemdListenFds({ LISTEN_PID: 'me', LISTEN_FDS: '1' }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => systemdListenFds({ LISTEN_PID: String(process.pid), LISTEN_FDS: '-1' }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => systemdListenFds({}, { unsetEnv: true } as never))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => systemdListenFds({}, { unset: 1 } as never))).toBe('ERR_INVALID_ARG_TYPE');
  });
});
