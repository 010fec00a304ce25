// The benchmark harness's own logic: options, figures, ratios, histograms.
import { describe, expect, it } from 'vitest';
import { parseBenchArgs, SERVER_NAMES, UsageError } from '../bench/lib/args.mjs';
import { table } from '../bench/lib/report.mjs';
import { scenarioNames, scenarios } from '../bench/lib/scenarios.mjs';
import { cpuMicrosPer, encodeHistogram, mergeHistograms, newHistogram, percentiles, ratio, summarize, withRatios } from '../bench/lib/stats.mjs';

const names = scenarioNames(false);

describe('bench options', () => {
  it('defaults to every server and scenario, a full run', () => {
    const options = parseBenchArgs([], names);
    expect(options.servers).toEqual(SERVER_NAMES);
    expect(options.scenarios).toEqual(names);
    expect(options).toMatchObject({ quick: false, json: false, backend: 'auto', results: 'bench/results', rounds: 3 });
    expect(options.duration).toBeGreaterThan(parseBenchArgs(['--quick'], names).duration);
  });

  it('parses lists, numbers and flags', () => {
    const options = parseBenchArgs(
      ['--json', '--servers', 'c,reactor', '--scenarios', names[0]!, '--duration', '2.5', '--rounds', '4', '--backend', 'epoll'],
      names,
    );
    expect(options).toMatchObject({ json: true, servers: ['c', 'reactor'], scenarios: [names[0]], duration: 2.5, rounds: 4, backend: 'epoll' });
  });

  it.each([
    [['--servers', 'nginx']],
    [['--servers', '']],
    [['--scenarios', 'nope']],
    [['--duration', '0']],
    [['--duration', 'fast']],
    [['--rounds', '1.5']],
    [['--warmup', '-1']],
    [['--frobnicate']],
  ])('rejects %j with a usage error', (argv) => {
    expect(() => parseBenchArgs(argv, names)).toThrow(UsageError);
  });
});

describe('bench scenarios', () => {
  it('have unique names and a quick variant that holds fewer connections', () => {
    expect(new Set(names).size).toBe(names.length);
    const most = (list: { conns: number }[]) => Math.max(...list.map((s) => s.conns));
    expect(most(scenarios(true))).toBeLessThan(most(scenarios(false)));
    expect(scenarios(false).map((s) => s.kind)).toEqual(expect.arrayContaining(['echo', 'idle', 'churn']));
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
});
