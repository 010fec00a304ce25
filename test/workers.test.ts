// runWorkers(): worker processes sharing one port through the primary's
// SO_REUSEPORT sockets, on every backend (the workers run the backend under
// test: test/fixtures/workers-http.mjs). Connections spread over the workers;
// a killed worker is replaced while its connections wait in its backlog; a
// graceful restart under a hammering client fails no request; stats are
// summed; every worker started is gone at the end.
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Reactor, runWorkers, WorkerContext, workerContext, type RunWorkersOptions, type WorkerExit, type Workers } from '../src/index.js';
import { alive, closeQuietly, codeOf, newReactor, rejectionCode } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/workers-http.mjs', import.meta.url));
const BRIDGE_EXAMPLE = fileURLToPath(new URL('../examples/http-bridge.mjs', import.meta.url));
const REQUEST_TIMEOUT_MS = 5_000;

/** GET / → the body ("<pid> <slot>"); throws on any failure or a status other than 200. */
function get(port: number, agent: Agent | false): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, timeout: REQUEST_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('latin1');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        if (response.statusCode === 200) resolve(body);
        else reject(new Error(`status ${response.statusCode}`));
      });
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface Hammered {
  ok: number;
  failures: string[];
  pids: Set<string>;
}

/**
 * `clients` loops of requests, one after another each, until `until` settles:
 * a new connection per request (agent false) or keep-alive ones.
 */
async function hammer(port: number, keepAlive: boolean, until: Promise<unknown>, clients = 16): Promise<Hammered> {
  const result: Hammered = { ok: 0, failures: [], pids: new Set() };
  const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: clients }) : false;
  let done = false;
  void until.finally(() => (done = true)).catch(() => {});
  const loop = async () => {
    while (!done) {
      try {
        result.pids.add((await get(port, agent)).split(' ')[0]!);
        result.ok++;
      } catch (error) {
        // Keep-alive too: a draining worker answers with Connection: close, never closing under a request.
        result.failures.push(`${(error as { code?: string }).code ?? ''} ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  if (agent) agent.destroy();
  return result;
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let workers: Workers | undefined;
  const started = new Set<number>();

  function start(options: Partial<RunWorkersOptions> = {}, delayMs = 0): Workers {
    workers = runWorkers({
      script: FIXTURE,
      args: [backend, String(delayMs)],
      execArgv: [],
      workers: 2,
      listen: { port: 0, host: '127.0.0.1' },
      restartDelayMs: 50,
      drainTimeoutMs: 5_000,
      ...options,
    });
    workers.on('restart', ({ pid }: { pid: number }) => started.add(pid));
    void workers.ready.then(() => workers!.pids.forEach((pid) => started.add(pid)), () => {});
    return workers;
  }

  afterEach(async () => {
    await workers?.close();
    workers = undefined;
    // Every worker ever started has exited: no stray processes.
    expect([...started].filter(alive)).toEqual([]);
    started.clear();
  });

  it('spreads new connections over the workers, all on one port', async () => {
    const w = start();
    await w.ready;
    const pids = new Set<string>();
    for (let i = 0; i < 64 && pids.size < 2; i++) pids.add((await get(w.port, false)).split(' ')[0]!);
    expect([...pids].sort()).toEqual(w.pids.map(String).sort());
  });

  it('replaces a worker killed with SIGKILL; connections meanwhile wait in its backlog and are all served', async () => {
    const w = start({ restartDelayMs: 200 });
    await w.ready;
    const [victim, survivor] = w.pids as [number, number];
    const exits: WorkerExit[] = [];
    w.on('exit', (exit: WorkerExit) => exits.push(exit));
    const restarted = new Promise<{ pid: number; previousPid: number; reason: string }>((resolve) => w.once('restart', resolve));
    process.kill(victim, 'SIGKILL');
    // Half the connections hash to the dead worker's socket: they queue until its replacement accepts.
    const during = await hammer(w.port, false, restarted);
    const restart = await restarted;
    expect(restart).toMatchObject({ previousPid: victim, reason: 'crash' });
    expect(exits).toEqual([expect.objectContaining({ pid: victim, signal: 'SIGKILL', expected: false })]);
    expect(during.failures).toEqual([]);
    expect(during.ok).toBeGreaterThan(0);
    expect(w.pids).toEqual([restart.pid, survivor]);
    const pids = new Set<string>();
    for (let i = 0; i < 64 && pids.size < 2; i++) pids.add((await get(w.port, false)).split(' ')[0]!);
    expect(pids).toEqual(new Set([String(restart.pid), String(survivor)]));
  });

  it('backs off restarting a worker that keeps dying, and says why in exit events', async () => {
    const w = start({ restartDelayMs: 100 });
    await w.ready;
    const slot = 0;
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const restarted = new Promise<{ pid: number }>((resolve) => w.once('restart', resolve));
      process.kill(w.pids[slot]!, 'SIGKILL');
      const t0 = performance.now();
      await restarted;
      times.push(performance.now() - t0);
    }
    // 100, 200, 400 ms before each restart (plus the start-up time).
    expect(times[0]).toBeGreaterThanOrEqual(95);
    expect(times[1]).toBeGreaterThanOrEqual(195);
    expect(times[2]).toBeGreaterThanOrEqual(395);
  });

  for (const keepAlive of [false, true]) {
    it(`restarts gracefully under a hammering client (${keepAlive ? 'keep-alive' : 'a new connection per request'}): no request fails`, async () => {
      const w = start({}, 20); // each response takes 20 ms: requests are in progress when a worker drains
      await w.ready;
      const before = new Set(w.pids.map(String));
      const restart = new Promise<void>((resolve, reject) => setTimeout(() => w.restart().then(resolve, reject), 200));
      const result = await hammer(w.port, keepAlive, restart);
      await restart;
      expect(result.failures).toEqual([]);
      const after = new Set(w.pids.map(String));
      expect([...after].some((pid) => before.has(pid))).toBe(false);
      // Both generations answered.
      expect([...result.pids].some((pid) => before.has(pid))).toBe(true);
      expect([...result.pids].some((pid) => after.has(pid))).toBe(true);
      expect(result.ok).toBeGreaterThan(20);
    });
  }

  it('restarts the bridge example’s workers (node:http over StreamServer) under a keep-alive hammering client: no request fails', async () => {
    const w = start({ script: BRIDGE_EXAMPLE, args: ['--backend', backend] });
    await w.ready;
    const before = w.pids;
    const restart = new Promise<void>((resolve, reject) => setTimeout(() => w.restart().then(resolve, reject), 200));
    const result = await hammer(w.port, true, restart);
    await restart;
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(20);
    expect(w.pids.some((pid) => before.includes(pid))).toBe(false);
    expect(before.filter(alive)).toEqual([]);
  });

  it('sums the workers’ stats and lists each', async () => {
    const w = start();
    await w.ready;
    for (let i = 0; i < 20; i++) await get(w.port, false);
    const stats = await w.stats();
    expect(stats.workers.map(({ index, pid }) => ({ index, pid }))).toEqual(w.pids.map((pid, index) => ({ index, pid })));
    expect(stats.total.httpRequests).toBe(20);
    expect(stats.total.accepted).toBe(20);
    const perWorker = stats.workers.map((entry) => entry.stats.httpRequests as number);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(20);
    expect(stats.total.maxBatch).toBe(Math.max(...stats.workers.map((entry) => entry.stats.maxBatch as number)));
  });

  it('closes: every worker drains and exits, then the port refuses connections', async () => {
    const w = start();
    await w.ready;
    const pids = w.pids;
    await w.close();
    expect(pids.filter(alive)).toEqual([]);
    const refused = await new Promise<string | undefined>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: w.port });
      socket.on('connect', () => resolve(socket.destroy() && undefined));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code));
    });
    expect(refused).toBe('ECONNREFUSED');
    await expect(w.restart()).rejects.toMatchObject({ code: 'ERR_WORKERS_CLOSED' });
  });

  it('rejects ready when a worker dies before it is ready, and closes the rest', async () => {
    const w = start({ script: fileURLToPath(new URL('./fixtures/no-such-worker.mjs', import.meta.url)) });
    expect(await rejectionCode(w.ready)).toBe('ERR_WORKER_EXITED');
    await w.close();
  });

  it('refuses bad options with a code', () => {
    const good: RunWorkersOptions = { script: FIXTURE, listen: { port: 0 }, workers: 1 };
    const codes = (options: unknown) => codeOf(() => runWorkers(options as RunWorkersOptions));
    expect(codes(undefined)).toBe('ERR_INVALID_ARG_TYPE');
    expect(codes({ ...good, script: 1 })).toBe('ERR_INVALID_ARG_TYPE');
    expect(codes({ ...good, script: new URL('http://example.com/w.mjs') })).toBe('ERR_INVALID_ARG_VALUE');
    expect(codes({ ...good, workers: 0 })).toBe('ERR_OUT_OF_RANGE');
    expect(codes({ ...good, listen: undefined })).toBe('ERR_INVALID_ARG_TYPE');
    expect(codes({ ...good, listen: { port: 70000 } })).toBe('ERR_SOCKET_BAD_PORT');
    expect(codes({ ...good, listen: { port: 0, host: 'example.com' } })).toBe('ERR_INVALID_ARG_VALUE');
    expect(codes({ ...good, listen: { port: 0, reusePort: true } })).toBe('ERR_INVALID_ARG_VALUE');
    expect(codes({ ...good, args: ['a', 1] })).toBe('ERR_INVALID_ARG_TYPE');
    expect(codes({ ...good, env: { A: 1 } })).toBe('ERR_INVALID_ARG_TYPE');
    expect(codes({ ...good, restartDelayMs: -1 })).toBe('ERR_OUT_OF_RANGE');
    expect(codes({ ...good, drainTimeout: 5 })).toBe('ERR_INVALID_ARG_VALUE');
    let message = '';
    try {
      runWorkers({ ...good, drainTimeout: 5 } as unknown as RunWorkersOptions);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('did you mean "drainTimeoutMs"?');
  });

  it('fails with EADDRINUSE when the port is taken without SO_REUSEPORT', () => {
    const reactor = newReactor(backend);
    try {
      const taken = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => null);
      expect(codeOf(() => runWorkers({ script: FIXTURE, listen: { port: taken.address.port, host: '127.0.0.1' }, workers: 2 }))).toBe(
        'EADDRINUSE',
      );
    } finally {
      closeQuietly(reactor);
    }
  });

  it('gives no worker context to a process runWorkers did not start, and checks a worker’s handlers', () => {
    expect(workerContext()).toBeNull();
    const context = new WorkerContext(3, 0); // what a worker's workerContext() gives
    const drain = () => {};
    expect(codeOf(() => context.ready(undefined as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => context.ready({} as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => context.ready({ drain, stats: 1 } as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => context.ready({ drain, stat: () => ({}) } as never))).toBe('ERR_INVALID_ARG_VALUE');
  });
});
