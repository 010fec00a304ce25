// Out of descriptors on accept (EMFILE): a child echo server runs under a low
// descriptor limit (prlimit, else `ulimit -n`). The parent connects until the
// child's accept fails, keeps a few more clients waiting in the kernel
// backlog, checks the child does not spin while exhausted, then frees some
// descriptors and checks every waiting client is served.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Transport } from '../src/index.js';
import { Collector, closeQuietly, deferred, newReactor, type Deferred } from './helpers.js';

const HOST = '127.0.0.1';
/** The child's descriptor limit: node needs ~25 to start; the rest is for connections. */
const LIMIT = 64;
const fixture = fileURLToPath(new URL('./fixtures/child-emfile.mjs', import.meta.url));
const hasPrlimit = spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0;

type Stats = ReturnType<Reactor['stats']>;

interface Report {
  stats: Stats;
  cpu: { user: number; system: number };
  connections: number;
  fds: number;
}

/** The child process: its ready line, and `stats` queries answered one JSON line each. */
class ChildServer {
  port = 0;
  baseFds = 0;
  limit = 0;
  stderr = '';
  #stdout = '';
  #ready = deferred<void>();
  #waiters: Deferred<Report>[] = [];
  #exited = false;

  constructor(readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      this.#stdout += d.toString();
      for (let nl = this.#stdout.indexOf('\n'); nl >= 0; nl = this.#stdout.indexOf('\n')) {
        const line = this.#stdout.slice(0, nl);
        this.#stdout = this.#stdout.slice(nl + 1);
        this.#line(line);
      }
    });
    child.on('error', (error) => this.#fail(error));
    child.on('exit', (code, signal) => {
      this.#exited = true;
      this.#fail(new Error(`child exited (${code ?? signal}): ${this.stderr}`));
    });
  }

  static async start(backend: string): Promise<ChildServer> {
    const args = [process.execPath, fixture, backend];
    const child = hasPrlimit
      ? spawn('prlimit', [`--nofile=${LIMIT}:${LIMIT}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const server = new ChildServer(child);
    await server.#ready.promise;
    return server;
  }

  get running(): boolean {
    return !this.#exited;
  }

  query(): Promise<Report> {
    const d = deferred<Report>();
    this.#waiters.push(d);
    this.child.stdin!.write('stats\n');
    return d.promise;
  }

  stop(): void {
    if (!this.#exited) this.child.kill('SIGKILL');
  }

  #line(line: string): void {
    if (line.startsWith('ready ')) {
      const [, port, fds, limit] = line.split(' ');
      this.port = Number(port);
      this.baseFds = Number(fds);
      this.limit = Number(limit);
      this.#ready.resolve();
    } else if (line.startsWith('{')) {
      this.#waiters.shift()?.resolve(JSON.parse(line) as Report);
    }
  }

  #fail(error: unknown): void {
    this.#ready.reject(error);
    for (const d of this.#waiters.splice(0)) d.reject(error);
  }
}

interface Conn {
  i: number;
  transport: Transport;
  collector: Collector;
  ping: string;
}

const cpuMicros = (r: Report) => r.cpu.user + r.cpu.system;

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let child: ChildServer | undefined;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(reactor);
    child?.stop();
    child = undefined;
  });

  const pause = (ms: number) => new Promise<void>((resolve) => reactor.callLater(ms, resolve));

  it('out of descriptors: accept waits without spinning, and clients waiting in the backlog are served once descriptors free up', async () => {
    const server = await ChildServer.start(backend);
    child = server;
    expect(server.limit).toBe(LIMIT);
    const budget = LIMIT - server.baseFds;
    expect(budget, `child starts with ${server.baseFds} descriptors open`).toBeGreaterThan(8);

    const conns: Conn[] = [];
    const open = async (): Promise<void> => {
      const i = conns.length;
      const collector = new Collector();
      const transport = await reactor.connectTCP({ host: HOST, port: server.port }, collector);
      const ping = `ping ${i}\n`;
      transport.write(ping);
      conns.push({ i, transport, collector, ping });
    };
    const echoed = () => conns.filter((c) => c.collector.length > 0);

    // Connect until the child's accept fails with EMFILE.
    let report = await server.query();
    expect(report.stats.emfile).toBe(0);
    while (report.stats.emfile === 0 && conns.length < LIMIT + 40) {
      for (let k = 0; k < 8; k++) await open();
      report = await server.query();
    }
    for (let i = 0; i < 100 && report.stats.emfile === 0; i++) {
      await pause(10);
      report = await server.query();
    }
    expect(report.stats.emfile, `emfile after ${conns.length} connections (limit ${LIMIT})`).toBeGreaterThan(0);

    // A few more arrive while it is exhausted: they wait in the kernel backlog.
    for (let k = 0; k < 5; k++) await open();
    // Settle: every connection the child has open has echoed, the rest have not.
    for (let i = 0; i < 100; i++) {
      report = await server.query();
      if (echoed().length === report.stats.open && report.stats.open === report.stats.accepted) break;
      await pause(10);
    }
    const served = echoed();
    const waiting = conns.filter((c) => c.collector.length === 0);
    expect(served.length).toBe(report.stats.open);
    expect(served.length).toBeLessThan(LIMIT);
    expect(waiting.length).toBeGreaterThanOrEqual(5);
    expect(report.stats.accepted).toBe(served.length);

    // While exhausted the child does not spin: CPU over a 500 ms window.
    const before = await server.query();
    await pause(500);
    const after = await server.query();
    const cpu = cpuMicros(after) - cpuMicros(before);
    expect(cpu, `child CPU over 500 ms while out of descriptors: ${cpu} µs`).toBeLessThan(100_000);
    expect(after.stats.emfile - before.stats.emfile, 'accept retries in 500 ms').toBeLessThan(20);
    expect(after.stats.loopIterations - before.stats.loopIterations, 'wake-ups in 500 ms').toBeLessThan(100);
    expect(after.stats.open).toBe(served.length);
    expect(waiting.every((c) => c.transport.state === 'open' && c.collector.length === 0)).toBe(true);

    // Free descriptors: close more served connections than there are waiting ones.
    const freed = served.slice(0, waiting.length + 2);
    const start = performance.now();
    for (const c of freed) c.transport.close();
    const pings = await Promise.all(waiting.map((c) => c.collector.received(c.ping.length)));
    const elapsed = performance.now() - start;
    expect(pings.map((b) => b.toString())).toEqual(waiting.map((c) => c.ping));
    expect(elapsed, 'waiting clients served after descriptors freed (ms)').toBeLessThan(500);
    for (const c of freed) expect(await c.collector.lost.promise).toBeUndefined();

    // Each one served now works both ways.
    const again = await Promise.all(
      waiting.map(async (c) => {
        const text = `again ${c.i}\n`;
        c.transport.write(text);
        const all = await c.collector.received(c.ping.length + text.length);
        return all.subarray(c.ping.length).toString() === text;
      }),
    );
    expect(again.every(Boolean)).toBe(true);
    // The ones not closed are still served too.
    const kept = served.slice(freed.length);
    for (const c of kept) c.transport.write('still\n');
    await Promise.all(kept.map((c) => c.collector.received(c.ping.length + 6)));

    const final = await server.query();
    expect(final.stats.accepted).toBe(conns.length);
    expect(final.stats.rejected).toBe(0);
    expect(final.stats.emfile).toBeGreaterThan(0);
    expect(server.running).toBe(true);
    expect(server.stderr).toBe('');
  });
});
