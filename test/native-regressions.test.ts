// Regressions in the native layer, each with the way it was seen:
//   1. a client's bytes and its reset in one io_uring batch: the bytes reached
//      dataReceived after the connection was released (write EBADF);
//   2. worker.terminate() while a worker loads the addon or runs new Reactor()
//      aborted the whole process (a node-addon-api C++ exception, rc 134);
//   3. a callLater(0) that reschedules itself kept libuv in its timer phase
//      (re-armed with 0 ms from inside it): no I/O, no setTimeout, ever;
//   4. reactors nobody closed were never collected (a strong reference to the
//      JavaScript Reactor from native code) and ran the process out of fds,
//      and then new Reactor() said ERR_REACTOR_BACKEND_UNAVAILABLE, not EMFILE.
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Reactor, type ReactorError, type Transport } from '../src/index.js';
import { closeQuietly, connectionsFor, deferred, newReactor, runProcess, type ProcessResult } from './helpers.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;


describe.each(Reactor.backends)('%s backend', (backend) => {
  it('bytes followed at once by a reset reach an echo server before ECONNRESET, which never sees EBADF', async () => {
    const errors: unknown[] = [];
    const reactor = newReactor(backend, { onError: (error) => errors.push(error) });
    try {
      const total = 3000;
      const concurrency = connectionsFor(backend, 8);
      let made = 0;
      const lost: string[] = [];
      const allLost = deferred();
      // What dataReceived saw: each write must find an open transport, and
      // 16 bytes always fit (a write that reaches a released connection
      // throws EBADF, or returns false where writes are refused quietly).
      let writesOnOpen = 0;
      let writesOnOther = 0;
      let writesRefused = 0;
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        connectionMade: () => void made++,
        dataReceived(data: Buffer, transport: Transport) {
          if (transport.state === 'open') writesOnOpen++;
          else writesOnOther++;
          if (!transport.write(data)) writesRefused++;
        },
        connectionLost(reason: ReactorError | undefined) {
          lost.push(reason?.code ?? 'clean');
          if (lost.length === total) allLost.resolve();
        },
      }));
      const port = listener.address.port;
      const payload = Buffer.alloc(16, 0x61);
      const client = () =>
        new Promise<void>((resolve) => {
          const socket: Socket = connect({ port, host: '127.0.0.1' }, () => {
            socket.write(payload);
            socket.resetAndDestroy();
          });
          socket.on('error', () => {});
          socket.on('close', () => resolve());
        });
      let started = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (started < total) {
            started++;
            await client();
          }
        }),
      );
      await allLost.promise;
      listener.close();
      // Every client reset its connection: never a clean close.
      const notReset: Record<string, number> = {};
      for (const code of lost) if (code !== 'ECONNRESET') notReset[code] = (notReset[code] ?? 0) + 1;
      const first = errors.length ? String(errors[0]) : '';
      expect({ errors: errors.length, first, writesOnOther, writesRefused, notReset }).toEqual({
        errors: 0,
        first: '',
        writesOnOther: 0,
        writesRefused: 0,
        notReset: {},
      });
      expect(made).toBe(total);
      expect(writesOnOpen).toBeGreaterThan(0);
    } finally {
      closeQuietly(reactor);
    }
  }, 60_000);

  it('terminating workers while they load the addon and make reactors never aborts the process', async () => {
    const result = await runProcess(process.execPath, [fixture('regress-terminate-parent.mjs'), backend, '25', '4'], 60_000);
    expect({ status: result.code, signal: result.signal, stdout: result.stdout.trim(), stderr: result.stderr }).toEqual({
      status: 0,
      signal: null,
      stdout: 'terminate ok 25',
      stderr: '',
    });
  }, 70_000);

  it('a callLater(0) that reschedules itself forever lets setTimeout and I/O run', async () => {
    const result = await runProcess(process.execPath, [fixture('regress-calllater-zero.mjs'), backend], 15_000);
    expect({ status: result.code, signal: result.signal, stderr: result.stderr }).toEqual({
      status: 0,
      signal: null,
      stderr: '',
    });
    const match = /^calllater ok timeout=(\d+)ms echo=(\d+)ms ticks=(\d+)$/.exec(result.stdout.trim());
    expect(match, result.stdout).not.toBeNull();
    const [, timedOut, echoed, ticks] = match!.map(Number);
    // Node's own setTimeout(0) chains let both through within a few ms.
    expect(timedOut).toBeLessThan(1000);
    expect(echoed).toBeLessThan(1000);
    expect(ticks).toBeGreaterThan(0);
  }, 20_000);

  describe.runIf(process.platform === 'linux')('reactors nobody closes', () => {
    const limits = fixture('regress-reactor-limits.mjs');
    const shell = (limit: number, args: string[]) =>
      runProcess('bash', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, ...args], 60_000);
    const json = (result: ProcessResult): unknown => {
      expect({ status: result.code, signal: result.signal, stderr: result.stderr }).toEqual({
        status: 0,
        signal: null,
        stderr: '',
      });
      return JSON.parse(result.stdout.trim());
    };

    it('15,000 dropped reactors are collected as they go: no EMFILE under ulimit -n 2048', async () => {
      // select must keep even its own pipes below FD_SETSIZE, so it collects
      // at each yield; the others rely on the collector alone.
      const args = backend === 'select' ? ['--expose-gc', limits, 'drop', backend, '15000', 'gc'] : [limits, 'drop', backend, '15000'];
      const result = json(await shell(2048, args)) as { error: string | null; maxFds: number };
      expect(result.error).toBeNull();
      expect(result.maxFds).toBeLessThan(1800);
    }, 70_000);

    it('a dropped reactor with an open listener keeps serving; dropped idle ones release their fds', async () => {
      const result = json(await runProcess(process.execPath, ['--expose-gc', limits, 'listener', backend], 30_000));
      expect(result).toEqual({ idleCollected: true, echoed: 'ping' });
    }, 40_000);

    it('new Reactor() with every descriptor taken throws a ReactorError with code EMFILE', async () => {
      const result = json(await shell(256, [limits, 'exhaust', backend]));
      expect(result).toEqual({ code: 'EMFILE', name: 'ReactorError', held: true });
    }, 70_000);
  });
});
