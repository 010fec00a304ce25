// The benchmark harness's own logic: options, figures, ratios, histograms;
// and the command lines of the servers it starts.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEchoArgs, UsageError as EchoUsageError } from '../examples/echo-server.mjs';
import { parseUdpEchoArgs } from '../bench/servers/reactor-udp-echo.mjs';
import { parseBenchArgs, SERVER_NAMES, UsageError, wholeNumber } from '../bench/lib/args.mjs';
import { findBun, locateBun } from '../bench/lib/bun.mjs';
import { cBinary } from '../bench/lib/c-programs.mjs';
import { loadCommand } from '../bench/lib/load.mjs';
import { layout, table } from '../bench/lib/report.mjs';
import { scenarioNames, scenarios, serversFor, transportOf } from '../bench/lib/scenarios.mjs';
import { reactorHasUDP, serverCommand, serverKeys, serverLabel } from '../bench/lib/servers.mjs';
import {
  capSummary,
  cpuMicrosPer,
  encodeBuckets,
  encodeHistogram,
  latenessSummary,
  mergeHistograms,
  newHistogram,
  percentiles,
  quantile,
  ratio,
  summarize,
  withRatios,
} from '../bench/lib/stats.mjs';

const names = scenarioNames(false);

describe('bench options', () => {
  it('defaults to every server and scenario, a full run', () => {
    const options = parseBenchArgs([], names);
    expect(options.servers).toEqual(SERVER_NAMES);
    expect(options.scenarios).toEqual(names);
    expect(options).toMatchObject({ quick: false, json: false, backends: ['auto'], results: 'bench/results', rounds: 3 });
    expect(options.duration).toBeGreaterThan(parseBenchArgs(['--quick'], names).duration);
  });

  it('parses lists, numbers and flags', () => {
    const options = parseBenchArgs(
      ['--json', '--servers', 'c,reactor', '--scenarios', names[0]!, '--duration', '2.5', '--rounds', '4', '--backend', 'epoll,io_uring'],
      names,
    );
    expect(options).toMatchObject({ json: true, servers: ['c', 'reactor'], scenarios: [names[0]], duration: 2.5, rounds: 4, backends: ['epoll', 'io_uring'] });
  });

  it.each([
    [['--servers', 'nginx']],
    [['--servers', '']],
    [['--scenarios', 'nope']],
    [['--duration', '0']],
    [['--duration', 'fast']],
    [['--rounds', '1.5']],
    [['--warmup', '-1']],
    [['--backend', 'epol']],
    [['--backend', '']],
    [['--frobnicate']],
  ])('rejects %j with a usage error', (argv) => {
    expect(() => parseBenchArgs(argv, names)).toThrow(UsageError);
  });
});

describe('bench scenarios', () => {
  it('have unique names and a quick variant that holds fewer connections', () => {
    expect(new Set(names).size).toBe(names.length);
    const most = (list: { conns?: number }[]) => Math.max(...list.map((s) => s.conns ?? 0));
    expect(most(scenarios(true))).toBeLessThan(most(scenarios(false)));
    expect(scenarios(false).map((s) => s.kind)).toEqual(expect.arrayContaining(['echo', 'idle', 'churn', 'idle-storm', 'cap', 'udp-echo']));
  });

  it('the idle storm reaps 10,000 (1,000 quick) after 1 s, on every server', () => {
    const storm = (quick: boolean) => scenarios(quick).find((s) => s.kind === 'idle-storm')!;
    expect(storm(false)).toMatchObject({ name: 'idle-storm-10k', conns: 10000, idleTimeoutMs: 1000, tolerance: 0.05 });
    expect(storm(true)).toMatchObject({ name: 'idle-storm-1k', conns: 1000 });
    expect(storm(false).server).toEqual({ idleTimeoutMs: 1000 });
    expect(serversFor(storm(false), SERVER_NAMES)).toEqual(SERVER_NAMES);
  });

  it('the UDP echo runs on every server but Bun (measured over TCP), named the same in both modes, within what a default receive buffer holds', () => {
    const udp = (quick: boolean) => scenarios(quick).find((s) => s.kind === 'udp-echo')!;
    expect(udp(false)).toMatchObject({ name: 'udp-echo-32x64-w4', transport: 'udp', flows: 32, size: 64, window: 4 });
    expect(udp(true).name).toBe(udp(false).name);
    // A default Linux receive buffer (208 KiB) holds 256 datagrams of 64 B: half that in flight at most.
    expect(udp(false).flows! * udp(false).window!).toBeLessThanOrEqual(128);
    expect(serversFor(udp(false), SERVER_NAMES)).toEqual(['reactor', 'net', 'c']);
    expect(udp(false).skip?.bun).toMatch(/TCP/);
    expect(transportOf(udp(false))).toBe('udp');
    expect(new Set(scenarios(false).filter((s) => s.kind !== 'udp-echo').map(transportOf))).toEqual(new Set(['tcp']));
  });

  it('a scenario runs only on the servers it does not skip', () => {
    expect(serversFor({ skip: { c: 'no such thing in C' } }, ['reactor', 'net', 'c'])).toEqual(['reactor', 'net']);
    expect(serversFor({}, ['c', 'net'])).toEqual(['c', 'net']);
  });

  it('the cap scenario runs 50 clients against a cap of 10 on every server, named the same in both modes', () => {
    const cap = (quick: boolean) => scenarios(quick).find((s) => s.kind === 'cap')!;
    expect(cap(false)).toMatchObject({ name: 'cap-50at10', conns: 50, size: 64, server: { maxConnections: 10 } });
    expect(cap(true).name).toBe('cap-50at10');
    expect(cap(true).bursts).toBeLessThan(cap(false).bursts!);
    expect(serversFor(cap(false), SERVER_NAMES)).toEqual(SERVER_NAMES);
    for (const server of SERVER_NAMES) expect(cap(false).policy?.[server as 'reactor']).toBeTruthy();
  });
});

describe('server command lines', () => {
  const flag = (argv: string[], name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);

  it('the throughput scenarios run native-reactor with no idle timeout and no cap, like the others', () => {
    const argv = serverCommand('reactor');
    expect(argv[1]).toMatch(/examples[/\\]echo-server\.mjs$/);
    expect(flag(argv, '--idle-timeout-ms')).toBe('0');
    expect(argv).not.toContain('--max-connections');
    expect(serverCommand('net').slice(2)).toEqual(['0']);
    expect(serverCommand('c').slice(1)).toEqual(['0']);
  });

  it('several backends become one native-reactor server each, named and started on its backend', () => {
    const keys = serverKeys(['reactor', 'c'], ['epoll', 'io_uring'], ['epoll', 'poll']);
    expect(keys).toEqual(['reactor:epoll', 'reactor:io_uring', 'c']);
    expect(keys.map((key: string) => serverLabel(key))).toEqual(['native-reactor epoll', 'native-reactor io_uring', 'C epoll']);
    expect(flag(serverCommand('reactor:io_uring'), '--backend')).toBe('io_uring');
    expect(flag(serverCommand('reactor'), '--backend')).toBe('auto');
    // 'all' is every backend available here; a single explicit one is named too.
    expect(serverKeys(['reactor', 'net'], ['all'], ['epoll', 'poll'])).toEqual(['reactor:epoll', 'reactor:poll', 'net']);
    expect(serverKeys(['reactor'], ['select'], ['epoll'])).toEqual(['reactor:select']);
    expect(serverKeys(['reactor', 'c'], ['auto'], ['epoll'])).toEqual(['reactor', 'c']);
    // The scenario's skip and policy tables are by kind of server.
    const capped = scenarios(false).find((s) => s.name === 'cap-50at10')!;
    expect(serversFor(capped, keys)).toEqual(keys);
  });

  it('pass the idle timeout and the cap to each server its own way', () => {
    const reactor = serverCommand('reactor', { idleTimeoutMs: 1000, maxConnections: 10 });
    expect(flag(reactor, '--idle-timeout-ms')).toBe('1000');
    expect(flag(reactor, '--max-connections')).toBe('10');
    const net = serverCommand('net', { idleTimeoutMs: 1000, maxConnections: 10 });
    expect(flag(net, '--idle-timeout-ms')).toBe('1000');
    expect(flag(net, '--max-connections')).toBe('10');
    expect(serverCommand('c', { maxConnections: 10 }).slice(1)).toEqual(['0', '10']);
    expect(serverCommand('c', { idleTimeoutMs: 1000 }).slice(1)).toEqual(['0', '0', '1000']);
    expect(serverCommand('c', { idleTimeoutMs: 1000, maxConnections: 10 }).slice(1)).toEqual(['0', '10', '1000']);
  });

  it('Bun runs bench/servers/bun-echo.mjs with the same flags as node:net, or says why it cannot', () => {
    const found = findBun();
    if (found.missing) {
      expect(() => serverCommand('bun')).toThrow(found.missing);
      return;
    }
    const argv = serverCommand('bun', { idleTimeoutMs: 1000, maxConnections: 10 });
    expect(argv[0]).toBe(found.path);
    expect(argv[1]).toMatch(/bench[/\\]servers[/\\]bun-echo\.mjs$/);
    expect(argv.slice(2)).toEqual(['0', '--idle-timeout-ms', '1000', '--max-connections', '10']);
    expect(serverCommand('bun').slice(2)).toEqual(['0']);
    expect(serverLabel('bun')).toBe('Bun');
  });

  it('UDP scenarios start the UDP echo servers, labelled node:dgram and C recvmmsg', () => {
    const reactor = serverCommand('reactor:io_uring', undefined, 'udp');
    expect(reactor[1]).toMatch(/bench[/\\]servers[/\\]reactor-udp-echo\.mjs$/);
    expect(reactor.slice(2)).toEqual(['--port', '0', '--backend', 'io_uring']);
    expect(flag(serverCommand('reactor', undefined, 'udp'), '--backend')).toBe('auto');
    const dgram = serverCommand('net', undefined, 'udp');
    expect(dgram[1]).toMatch(/bench[/\\]servers[/\\]dgram-echo\.mjs$/);
    expect(dgram.slice(2)).toEqual(['0']);
    expect(serverCommand('c', undefined, 'udp')).toEqual([cBinary('udp_echo'), '0']);
    expect(serverCommand('c')[0]).toBe(cBinary('echo_server'));
    expect(['reactor:epoll', 'net', 'c'].map((key) => serverLabel(key, 'udp'))).toEqual(['native-reactor epoll', 'node:dgram', 'C recvmmsg']);
    expect(['reactor', 'net', 'c'].map((key) => serverLabel(key))).toEqual(['native-reactor', 'node:net', 'C epoll']);
  });

  it('the load generator: bench/loadgen.mjs with the scenario as JSON over TCP, the C udp_load with flags over UDP', () => {
    const echo = { ...scenarios(false)[0]!, port: 7000, warmup: 0.3, duration: 2 };
    const tcp = loadCommand(echo);
    expect(tcp[0]).toBe(process.execPath);
    expect(tcp[1]).toMatch(/bench[/\\]loadgen\.mjs$/);
    expect(JSON.parse(tcp[2]!)).toEqual(echo);
    const udp = { ...scenarios(false).find((s) => s.kind === 'udp-echo')!, port: 7001, warmup: 0.3, duration: 1.5 };
    expect(loadCommand(udp)).toEqual([
      cBinary('udp_load'),
      ...['--port', '7001', '--flows', '32', '--window', '4', '--size', '64'],
      ...['--warmup', '0.3', '--duration', '1.5', '--loss-timeout-ms', String(udp.lossTimeoutMs)],
    ]);
  });

  it('the reactor runs UDP scenarios only where Reactor#listenUDP exists', () => {
    class WithUDP {
      listenUDP() {}
    }
    expect(reactorHasUDP(WithUDP)).toBe(true);
    expect(reactorHasUDP(class {})).toBe(false);
  });

  it('wholeNumber takes digits only, within range', () => {
    expect(wholeNumber('0', 'n')).toBe(0);
    expect(wholeNumber('1000', 'n', 1)).toBe(1000);
    for (const bad of ['', '-1', '1.5', '1e3', ' 7', 'ten', '2147483648', undefined]) {
      expect(() => wholeNumber(bad, 'n'), String(bad)).toThrow(UsageError);
    }
    expect(() => wholeNumber('0', 'max-connections', 1)).toThrow(/--max-connections must be a whole number from 1/);
  });
});

describe('finding Bun', () => {
  const exe = process.platform === 'win32' ? '.exe' : '';
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  /** An executable file at `path` (not a working Bun: locateBun does not run it). */
  const fakeBinary = (path: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '#!/bin/sh\nexit 1\n');
    chmodSync(path, 0o755);
    return path;
  };

  it('$BUN first, then bun on PATH, then the bun devDependency in node_modules', () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-bun-find-'));
    const onPath = fakeBinary(join(dir, 'bin', `bun${exe}`));
    const modules = join(dir, 'node_modules');
    const installed = fakeBinary(join(modules, 'bun', 'bin', 'bun.exe'));
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(locateBun({ BUN: '/opt/bun/bin/bun', PATH: join(dir, 'bin') }, modules)).toEqual({ path: '/opt/bun/bin/bun', via: '$BUN' });
    expect(locateBun({ PATH: [empty, join(dir, 'bin')].join(process.platform === 'win32' ? ';' : ':') }, modules)).toEqual({ path: onPath, via: 'PATH' });
    expect(locateBun({ PATH: empty }, modules)).toEqual({ path: installed, via: 'node_modules' });
    expect(locateBun({ PATH: empty }, empty)).toBeNull();
  });

  it('not found: a note saying where it looked', () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-bun-find-'));
    expect(findBun({ PATH: dir }, dir)).toEqual({ missing: expect.stringMatching(/^Bun not found \(\$BUN, bun on PATH, or .*bun devDependency/) });
  });

  it('a $BUN that does not run is not replaced by another Bun: the note names it', () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-bun-find-'));
    const broken = fakeBinary(join(dir, `bun${exe}`));
    const missing = join(dir, 'no-such-bun');
    expect(findBun({ BUN: missing, PATH: process.env.PATH })).toEqual({ missing: expect.stringContaining(`Bun from $BUN (${missing}) does not run`) });
    expect(findBun({ BUN: broken, PATH: process.env.PATH }).missing).toContain(`Bun from $BUN (${broken}) does not run`);
  });

  it('found via $BUN: its version, checked by running it', () => {
    const found = findBun();
    if (found.missing) return void expect(found.missing).toMatch(/^Bun/); // not installed here: the note, as the harness prints it
    expect(findBun({ BUN: found.path })).toEqual({ path: found.path, version: found.version });
    expect(found.version).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('examples/echo-server.mjs options', () => {
  it('defaults to a 15-minute idle timeout, no cap and no queue settings', () => {
    expect(parseEchoArgs([])).toEqual({ reactor: {}, listen: { port: 0, host: '127.0.0.1', idleTimeoutMs: 900000 } });
  });

  it('passes every option on as listener options', () => {
    const argv = ['--port', '7000', '--host', '::1', '--backend', 'epoll', '--idle-timeout-ms', '0', '--max-connections', '10', '--queue-limit', '0', '--queue-timeout-ms', '2500'];
    expect(parseEchoArgs(argv)).toEqual({
      reactor: { backend: 'epoll' },
      listen: { port: 7000, host: '::1', idleTimeoutMs: 0, maxConnections: 10, queue: { limit: 0, timeoutMs: 2500 } },
    });
    expect(parseEchoArgs(['--queue-timeout-ms', '5']).listen.queue).toEqual({ timeoutMs: 5 });
  });

  it.each([
    [['--idle-timeout-ms', 'soon'], /--idle-timeout-ms/],
    [['--idle-timeout-ms=-1'], /--idle-timeout-ms/],
    [['--max-connections', '0'], /--max-connections must be a whole number from 1/],
    [['--max-connections', '2.5'], /--max-connections/],
    [['--queue-limit', '-3'], /--queue-limit/],
    [['--queue-timeout-ms', '1e3'], /--queue-timeout-ms/],
    [['--port', '65536'], /--port/],
    [['--frobnicate'], /frobnicate/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseEchoArgs(argv)).toThrow(EchoUsageError);
    expect(() => parseEchoArgs(argv)).toThrow(message);
  });

  it('as a program, a bad number is a message on stderr and exit status 2', () => {
    const run = spawnSync(process.execPath, ['examples/echo-server.mjs', '--max-connections', 'lots'], { encoding: 'utf8', timeout: 10_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^echo-server: --max-connections must be a whole number/);
    expect(run.stdout).toBe('');
  });
});

describe('bench/servers/reactor-udp-echo.mjs options', () => {
  it('defaults to an ephemeral port on 127.0.0.1 and the default backend', () => {
    expect(parseUdpEchoArgs([])).toEqual({ reactor: {}, listen: { port: 0, host: '127.0.0.1' } });
    expect(parseUdpEchoArgs(['--port', '7000', '--host', '::1', '--backend', 'epoll'])).toEqual({
      reactor: { backend: 'epoll' },
      listen: { port: 7000, host: '::1' },
    });
  });

  it.each([[['--port', '65536']], [['--port', 'any']], [['--port']], [['--reuse-port']]])('rejects %j', (argv) => {
    expect(() => parseUdpEchoArgs(argv)).toThrow(UsageError);
  });
});

describe('bench/servers/dgram-echo.mjs', () => {
  it('a bad port is a message on stderr and exit status 2', () => {
    const run = spawnSync(process.execPath, ['bench/servers/dgram-echo.mjs', '99999'], { encoding: 'utf8', timeout: 10_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^dgram-echo: the port must be from 0 to 65535/);
  });
});

describe('bench figures', () => {
  it('ratio divides and refuses meaningless denominators', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(1, -5)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, undefined)).toBeNull();
    expect(ratio(Number.NaN, 2)).toBeNull();
  });

  it('CPU per unit is nanoseconds over units, in microseconds', () => {
    expect(cpuMicrosPer(5_000_000, 1000)).toBe(5);
    expect(cpuMicrosPer(5_000_000, 0)).toBeNull();
  });

  it('merging histograms keeps every value', () => {
    const a = newHistogram();
    const b = newHistogram();
    for (let i = 1; i <= 90; i++) a.recordValue(100);
    for (let i = 1; i <= 10; i++) b.recordValue(10_000);
    const merged = mergeHistograms([encodeHistogram(a), encodeHistogram(b)]);
    expect(merged.totalCount).toBe(100);
    const p = percentiles(merged);
    expect(p.p50).toBeCloseTo(100, -1);
    expect(p.p99).toBeGreaterThanOrEqual(9_990);
    expect(p.max).toBeGreaterThanOrEqual(9_990);
    expect(percentiles(newHistogram()).p50).toBeNull();
  });

  it('summarize adds rounds up and withRatios compares with C and node:net', () => {
    const h = newHistogram();
    h.recordValue(50);
    const round = (units: number, cpuNanos: number) => ({ units, seconds: 1, cpuNanos, errors: 0, histogram: encodeHistogram(h) });
    const servers = {
      reactor: summarize([round(1000, 5_500_000), round(1000, 5_500_000)]),
      net: summarize([round(1000, 8_000_000), round(1000, 8_000_000)]),
      c: summarize([round(1000, 5_000_000), round(1000, 5_000_000)]),
    };
    expect(servers.reactor).toMatchObject({ units: 2000, seconds: 2, throughput: 1000, errors: 0 });
    expect(servers.reactor.cpuPerUnit).toBeCloseTo(5.5);
    expect(servers.reactor.latency.p50).toBeCloseTo(50, -1);
    const compared = withRatios(servers);
    expect(compared.reactor.vsC.cpuPerUnit).toBeCloseTo(1.1);
    expect(compared.reactor.vsNet.cpuPerUnit).toBeCloseTo(0.6875);
    expect(compared.c.vsC.cpuPerUnit).toBe(1);
    expect(compared.reactor.vsC.p50).toBe(1);

    const text = table({ scenarios: [{ name: 'echo-x', kind: 'echo', servers: compared }] });
    expect(text).toContain('echo-x');
    expect(text).toContain('1.10×');
    expect(text).toContain('native-reactor');
  });

  it('quantile is nearest-rank over sorted values', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(quantile(values, 1)).toBe(100);
    expect(quantile(values, 0)).toBe(1);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNull();
  });

  it('lateness: percentiles and the share on time within +5% of the deadline', () => {
    // 95 on time (0 to 46.5 ms late, one 2 ms early), 5 late (60..100 ms).
    const lateness = [...Array.from({ length: 94 }, (_, i) => i / 2), -2, 60, 70, 80, 90, 100];
    const r = latenessSummary(lateness, 1000);
    expect(r).toMatchObject({ deadlineMs: 1000, limitMs: 50, count: 100, onTime: 95, max: 100, min: -2 });
    expect(r.onTimeShare).toBeCloseTo(0.95);
    expect(r.p50).toBe(24); // the 50th of 100: -2, then 0, 0.5, ... 24
    expect(r.p99).toBe(90);
    expect(latenessSummary([50], 1000).onTime).toBe(1); // exactly +5% is on time
    expect(latenessSummary([], 1000)).toMatchObject({ count: 0, p50: null, max: null, onTimeShare: null });
  });

  it('an idle storm summary: lateness of every round, CPU per storm and per reaped connection', () => {
    const storm = (lateness: number[], cpuNanos: number) => ({
      units: lateness.length, seconds: 0, cpuNanos, errors: 0, conns: lateness.length, deadlineMs: 1000, lateness,
      latenessFromEcho: lateness.map((v) => v - 1), openMs: 400, windowMs: 120,
    });
    const s = summarize([storm([1, 2, 3], 30e6), storm([4, 60], 10e6), { units: 0, seconds: 0, cpuNanos: 0, errors: 1 }]);
    expect(s).toMatchObject({ units: 5, errors: 1, throughput: null });
    expect(s.cpuPerUnit).toBeCloseTo(8000); // 40 ms over 5 connections
    expect(s.reaping).toMatchObject({ count: 5, conns: 5, storms: 2, onTime: 4, max: 60, openMs: 400, windowMs: 120 });
    expect(s.reaping!.cpuMsPerStorm).toBeCloseTo(20);
    expect(s.reaping!.fromEcho).toMatchObject({ count: 5, max: 59, min: 0 });
    expect(s.cap).toBeUndefined();
  });

  it('a cap summary: served, dropped and why, time until each burst was done', () => {
    const h = newHistogram();
    h.recordValue(2000);
    const round = (served: number, dropped: number, reasons: Record<string, number>, burstMs: number[]) => ({
      units: served, seconds: 0, cpuNanos: 0, errors: 0, clients: served + dropped, dropped, dropReasons: reasons, burstMs, histogram: encodeHistogram(h),
    });
    const rounds = [round(20, 80, { ECONNRESET: 70, EOF: 10 }, [10, 30]), round(30, 70, { ECONNRESET: 70 }, [20, 40])];
    expect(capSummary(rounds)).toEqual({
      clients: 200, served: 50, dropped: 150, dropReasons: { ECONNRESET: 140, EOF: 10 }, bursts: 4, allDoneMs: { p50: 20, max: 40 },
    });
    const s = summarize(rounds);
    expect(s.cap?.served).toBe(50);
    expect(s.latency.p50).toBeCloseTo(2000, -1);
    expect(s.reaping).toBeUndefined();
  });

  it('the report gives idle storms and caps tables of their own and names servers that did not run', () => {
    const storm = scenarios(false).find((s) => s.kind === 'idle-storm')!;
    const cap = scenarios(false).find((s) => s.kind === 'cap')!;
    const h = newHistogram();
    h.recordValue(5000);
    const reaped = summarize([{ units: 2, seconds: 0, cpuNanos: 4e6, systemCpuNanos: 1e6, errors: 0, conns: 2, deadlineMs: 1000, lateness: [3, 70], openMs: 500, windowMs: 90 }]);
    const capped = (served: number, dropped: number) =>
      summarize([{ units: served, seconds: 0, cpuNanos: 0, errors: 0, clients: 50, dropped, dropReasons: dropped ? { ECONNRESET: dropped } : {}, burstMs: [12], histogram: encodeHistogram(h) }]);
    const text = table({
      scenarios: [
        { ...storm, servers: withRatios({ reactor: reaped, net: reaped }), skipped: { c: 'the C server cannot' } },
        { ...cap, servers: withRatios({ reactor: capped(50, 0), net: capped(10, 40) }), skipped: {} },
      ],
    });
    const lines = text.split('\n');
    const row = (start: string) => lines.find((l) => l.startsWith(start))!;
    expect(text).not.toContain('throughput/s'); // no throughput scenario, no throughput table
    expect(row('idle-storm-10k  native-reactor')).toMatch(/2\/2 +3\.0 +70\.0 +70\.0 +50\.0% +4 +25% +2000\.00 +— +1\.00× +500 +0$/);
    expect(row('idle-storm-10k  C epoll')).toMatch(/not run: the C server cannot$/);
    expect(row('cap-50at10  native-reactor')).toMatch(/parks the rest \(FIFO\) +50\/50 +0 +12\.0 +12\.0 +5\.0 +5\.0 +0$/);
    expect(row('cap-50at10  node:net')).toMatch(/drops +10\/50 +40 .* ECONNRESET 40$/);
  });

  it("the C load generator's latency buckets become a histogram like the others", () => {
    const encoded = encodeBuckets([
      [100, 90],
      [2000, 10],
    ]);
    const merged = mergeHistograms([encoded!]);
    expect(merged.totalCount).toBe(100);
    expect(percentiles(merged).p50).toBeCloseTo(100, -1);
    expect(percentiles(merged).p99).toBeGreaterThanOrEqual(1990);
    expect(encodeBuckets([])).toBeNull();
    expect(encodeBuckets(undefined)).toBeNull();
  });

  it('a UDP scenario: packets per second and CPU per packet vs C, its servers named for UDP, losses shown', () => {
    const udp = scenarios(false).find((s) => s.kind === 'udp-echo')!;
    const round = (units: number, cpuNanos: number, losses: number, stale: number) => ({
      units, seconds: 1, cpuNanos, errors: 0, sent: units + losses, losses, stale, histogram: encodeBuckets([[400, units]]),
    });
    const servers = withRatios({
      net: summarize([round(50_000, 350e6, 0, 0), round(50_000, 350e6, 3, 1)]),
      c: summarize([round(100_000, 300e6, 0, 0), round(100_000, 300e6, 0, 0)]),
    });
    expect(servers.net).toMatchObject({ units: 100_000, throughput: 50_000, datagrams: { sent: 100_003, lost: 3, stale: 1 } });
    expect(servers.net.cpuPerUnit).toBeCloseTo(7);
    expect(servers.net.vsC.cpuPerUnit).toBeCloseTo(7 / 3);
    const text = table({ scenarios: [{ ...udp, servers, skipped: { reactor: 'no listenUDP' } }] });
    const lines = text.split('\n');
    const row = (start: string) => lines.filter((l) => l.startsWith(start));
    expect(row('udp-echo-32x64-w4  node:dgram')[0]).toMatch(/50,000 +7\.00 µs CPU\/pkt +2\.33× +1\.00× +\d+ +\d+ +\d+ +0$/);
    expect(row('udp-echo-32x64-w4  node:dgram')[1]).toMatch(/lost 3 of 100,003 datagrams \(0\.0%\), 1 of them echoed late$/);
    expect(row('udp-echo-32x64-w4  C recvmmsg')).toHaveLength(1); // no losses, no note
    expect(row('udp-echo-32x64-w4  native-reactor')[0]).toMatch(/not run: no listenUDP$/);
    expect(text).not.toContain('node:net');
  });

  it('layout aligns text left, figures right, and notes after the first two columns', () => {
    const text = layout(['a', 'bb', 'n'], [['xyz', 'q', '7'], ['x', 'qqq', '123'], { note: ['x', 'w', 'free text'] }]);
    expect(text.split('\n')).toEqual(['a    bb     n', '---  ---  ---', 'xyz  q      7', 'x    qqq  123', 'x    w    free text']);
  });
});
