// The UDP bench scenario end to end: the C load generator (bench/c/udp_load.c)
// against the C recvmmsg and node:dgram echo servers, and native-reactor's on
// every backend once it has listenUDP; and what the load generator counts as
// wrong, lost or late. recvmmsg, sendmmsg and epoll are Linux's: elsewhere the
// C programs do not build, and the harness says so instead of running them.
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { buildC, cBinary } from '../bench/lib/c-programs.mjs';
import { reactorHasUDP } from '../bench/lib/servers.mjs';
import { Reactor } from '../src/index.js';
import { runProcess } from './helpers.js';

const linux = process.platform === 'linux';
const loadProblem = buildC('udp_load');

type Figures = { errors: number; units: number; throughput: number; cpuPerUnit: number; latency: { p50: number | null }; datagrams: { sent: number } };
type Report = { scenarios: { name: string; labels: Record<string, string>; servers: Record<string, Figures>; skipped: Record<string, string> }[] };

let results: string | undefined;
afterEach(() => {
  if (results) rmSync(results, { recursive: true, force: true });
  results = undefined;
});

it('every server echoes datagrams that come back verified, or the report says why it did not run', { timeout: 60_000 }, async () => {
  results = mkdtempSync(join(tmpdir(), 'bench-udp-'));
  const argv = ['bench/run.mjs', '--scenarios', 'udp-echo-32x64-w4', '--quick', '--json', '--duration', '0.3', '--warmup', '0.1'];
  const run = await runProcess(process.execPath, [...argv, '--backend', 'all', '--results', results], 55_000);
  expect(run.code, run.stderr).toBe(0);
  const [scenario] = (JSON.parse(run.stdout) as Report).scenarios;
  const reactors = Reactor.backends.map((backend) => `reactor:${backend}`);
  expect(scenario!.labels).toMatchObject({ net: 'node:dgram', c: 'C recvmmsg', [reactors[0]!]: `native-reactor ${Reactor.backends[0]}` });
  if (linux) expect(loadProblem).toBeNull();
  if (loadProblem) {
    // Nothing ran: the report names the load generator's problem for every server.
    expect(scenario!.servers).toEqual({});
    for (const server of ['net', 'c', ...reactors]) expect(scenario!.skipped[server]).toMatch(/^no UDP load generator: .*udp_load\.c/);
    return;
  }
  const running = reactorHasUDP(Reactor) ? ['net', 'c', ...reactors] : ['net', 'c'];
  expect(Object.keys(scenario!.servers).sort()).toEqual(running.sort());
  for (const [server, figures] of Object.entries(scenario!.servers)) {
    expect(figures.errors, server).toBe(0);
    expect(figures.units, server).toBeGreaterThan(0);
    expect(figures.datagrams.sent, server).toBeGreaterThan(0);
    expect(figures.cpuPerUnit, server).toBeGreaterThan(0);
    expect(figures.latency.p50, server).toBeGreaterThan(0);
  }
  if (!reactorHasUDP(Reactor)) {
    for (const server of reactors) expect(scenario!.skipped[server]).toBe('this build of native-reactor has no listenUDP yet');
    expect(run.stderr).toContain('skipping native-reactor (UDP): this build of native-reactor has no listenUDP yet');
  }
});

/**
 * An echo server that misbehaves with the Nth datagram it receives: drops the
 * 3rd, corrupts the 5th, echoes the 10th twice, truncates the 15th and echoes
 * the 20th only after `lateMs`.
 */
function misbehavingServer(lateMs: number) {
  const socket = dgram.createSocket('udp4');
  let received = 0;
  socket.on('message', (data, peer) => {
    const echo = (bytes: Buffer) => socket.send(bytes, peer.port, peer.address);
    received++;
    if (received === 3) return;
    if (received === 5) data[data.length - 1]! ^= 0xff;
    if (received === 15) return echo(data.subarray(0, data.length - 1));
    if (received === 20) return void setTimeout(() => echo(data), lateMs);
    echo(data);
    if (received === 10) echo(data);
  });
  return new Promise<dgram.Socket>((resolve) => socket.bind(0, '127.0.0.1', () => resolve(socket)));
}

it('udp_load counts a wrong, short or repeated echo as an error, and replaces lost datagrams without stalling', { timeout: 20_000 }, async () => {
  if (!linux) return void expect(loadProblem).toMatch(/udp_load\.c/);
  expect(loadProblem).toBeNull();
  const lossTimeoutMs = 100;
  const server = await misbehavingServer(6 * lossTimeoutMs);
  try {
    const flags = ['--port', String(server.address().port), '--flows', '1', '--window', '1', '--size', '100'];
    const timing = ['--warmup', '0', '--duration', '1.5', '--loss-timeout-ms', String(lossTimeoutMs)];
    const run = await runProcess(cBinary('udp_load'), [...flags, ...timing], 15_000);
    expect(run.code, run.stderr).toBe(0);
    const events = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(events.map((e) => e.event)).toEqual(['measure-start', 'measure-end', 'result']);
    const result = events[2];
    // The corrupted, the repeated and the truncated echo.
    expect(result.errors).toBe(3);
    expect(run.stderr).toContain('echo with other bytes than were sent (sequence 5)');
    expect(run.stderr).toContain('a second echo of one datagram (sequence 10)');
    expect(run.stderr).toContain('echo of the wrong length');
    // Given up: the dropped, corrupted and truncated ones, never echoed
    // right, and the late one, echoed after that (stale). A datagram slowed
    // past the timeout by a busy machine adds one to both.
    expect(result.stale).toBeGreaterThanOrEqual(1);
    expect(result.losses - result.stale).toBe(3);
    // The flow went on after each: one datagram in flight, every echo answered.
    expect(result.units).toBeGreaterThan(100);
    expect(result.sent).toBeGreaterThanOrEqual(result.units);
    expect(result.latencyBuckets.reduce((n: number, [, count]: number[]) => n + count!, 0)).toBe(result.units);
  } finally {
    server.close();
  }
});

it('udp_load refuses bad options with a message and status 2', async () => {
  if (!linux) return void expect(loadProblem).toMatch(/udp_load\.c/);
  for (const [argv, message] of [
    [['--port', '7000', '--window', '0'], /--window must be a whole number from 1 to 4096, got "0"/],
    [['--port', '7000', '--size', '8'], /--size must be a whole number from 16/],
    [['--port', '7000', '--duration', 'soon'], /--duration must be seconds/],
    [['--flows', '2'], /--port is required/],
    [['--port', '7000', '--frobnicate', '1'], /unknown option/],
  ] as const) {
    const run = await runProcess(cBinary('udp_load'), [...argv], 5_000);
    expect(run.code, argv.join(' ')).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  }
});
