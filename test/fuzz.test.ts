// A seeded misuse fuzzer (issue 9): random sequences of public API calls —
// every method, valid and invalid arguments, calls from inside protocol,
// factory, producer and timer callbacks, close/abort/shutdown at any point —
// on every backend. The generator and the checks are in test/fuzz-model.ts;
// each backend's run is a child process (test/fixtures/fuzz-child.mjs), so a
// native crash or a hang shows as that child's exit, with its seed.
//
// Seeds: a fixed list plus one random seed per run, or FUZZ_SEED=1,2,3 to
// replay. FUZZ_BACKEND=poll limits the run to one backend; FUZZ_STEPS and
// FUZZ_MS change the calls per seed and the wall-clock cap per seed.
//   FUZZ_SEED=123 FUZZ_BACKEND=epoll npx vitest run test/fuzz.test.ts
//   FUZZ_TRACE=1 node test/fixtures/fuzz-child.mjs epoll 123 1500 1500   # every call on stderr
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import type { SeedResult, Violation } from './fuzz-model.js';

const child = fileURLToPath(new URL('./fixtures/fuzz-child.mjs', import.meta.url));

const FIXED_SEEDS = [1, 2];
const seeds = process.env.FUZZ_SEED
  ? process.env.FUZZ_SEED.split(',').map((s) => Number(s) >>> 0)
  : [...FIXED_SEEDS, randomInt(1, 2 ** 32 - 1)];
const steps = Number(process.env.FUZZ_STEPS ?? 1500);
const wallMs = Number(process.env.FUZZ_MS ?? 1200);
const backends = process.env.FUZZ_BACKEND ? Reactor.backends.filter((b) => b === process.env.FUZZ_BACKEND) : Reactor.backends;

// Per seed: the calls (wallMs) plus winding down (bounded waits of up to ~5 s
// when something hangs); then the process must exit by itself.
const childLimitMs = seeds.length * (wallMs + 6000) + 5000;
const EXIT_GRACE_MS = 3000;

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed after printing its result: something kept the process alive. */
  lingered: boolean;
  timedOut: boolean;
}

function runChild(backend: string, seedList: number[], env: NodeJS.ProcessEnv = {}): Promise<ChildRun> {
  const proc = spawn(process.execPath, [child, backend, seedList.join(','), String(steps), String(wallMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  let lingered = false;
  let timedOut = false;
  let exitTimer: NodeJS.Timeout | undefined;
  const limit = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, childLimitMs);
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (exitTimer === undefined && stdout.includes('\nresult ')) {
      exitTimer = setTimeout(() => {
        lingered = true;
        proc.kill('SIGKILL');
      }, EXIT_GRACE_MS);
    }
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 4_000_000) stderr = stderr.slice(-1_000_000);
  });
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(limit);
      clearTimeout(exitTimer);
      resolve({ code, signal, stdout, stderr, lingered, timedOut });
    });
  });
}

function replay(backend: string, seed: number): string {
  return `FUZZ_SEED=${seed} FUZZ_BACKEND=${backend} npx vitest run test/fuzz.test.ts`;
}

/** The first occurrence of each kind of violation, with every seed that hit it. */
function merge(results: SeedResult[]): (Violation & { seeds: number[] })[] {
  const byKey = new Map<string, Violation & { seeds: number[] }>();
  for (const result of results) {
    for (const v of result.violations) {
      const seen = byKey.get(v.key);
      if (seen === undefined) byKey.set(v.key, { ...v, seeds: [v.seed] });
      else {
        seen.count += v.count;
        if (!seen.seeds.includes(v.seed)) seen.seeds.push(v.seed);
      }
    }
  }
  return [...byKey.values()];
}

function describeViolation(backend: string, v: Violation & { seeds: number[] }): string {
  const also = v.seeds.length > 1 ? `; seeds ${v.seeds.join(', ')}` : '';
  return [
    `[${backend} seed ${v.seed} step ${v.step}] ${v.kind}: ${v.op}: ${v.detail} (${v.count}x${also})`,
    `  replay: ${replay(backend, v.seed)}`,
    `  last calls:`,
    ...v.trace.slice(-12).map((line) => `    ${line}`),
  ].join('\n');
}

describe.each(backends)('%s backend', (backend) => {
  it(`survives random misuse (seeds ${seeds.join(', ')})`, { timeout: childLimitMs + EXIT_GRACE_MS + 15_000 }, async () => {
    const run = await runChild(backend, seeds);
    const problems: string[] = [];
    const resultLine = run.stdout.split('\n').find((line) => line.startsWith('result '));
    if (resultLine === undefined) {
      // A crash or a hang: name the seed it happened in and show its last calls,
      // replayed with a trace (timing may differ, so it may not happen again).
      const started = run.stdout.split('\n').filter((line) => line.startsWith('seed-start '));
      const seed = Number(started.at(-1)?.slice('seed-start '.length) ?? seeds[0]);
      const how = run.timedOut ? `hung (killed after ${childLimitMs} ms)` : `exited with code ${run.code}, signal ${run.signal}`;
      const traced = await runChild(backend, [seed], { FUZZ_TRACE: '1' });
      const tail = traced.stderr.trimEnd().split('\n').slice(-30).join('\n    ');
      problems.push(
        `[${backend} seed ${seed}] the fuzz child ${how}\n  replay: ${replay(backend, seed)}\n` +
          `  stderr: ${run.stderr.trimEnd().split('\n').slice(-15).join('\n    ')}\n` +
          `  traced replay (${traced.signal ?? traced.code}) ended with:\n    ${tail}`,
      );
    } else {
      const result = JSON.parse(resultLine.slice('result '.length)) as { seeds: SeedResult[] };
      for (const v of merge(result.seeds)) problems.push(describeViolation(backend, v));
      if (run.lingered) problems.push(`[${backend} seeds ${seeds.join(',')}] the child did not exit by itself within ${EXIT_GRACE_MS} ms of finishing: a handle was left alive\n  replay: ${replay(backend, seeds[0]!)}`);
      else if (run.code !== 0) problems.push(`[${backend}] the child exited with code ${run.code} (signal ${run.signal}) after finishing\n  stderr: ${run.stderr.slice(-2000)}`);
      const calls = result.seeds.reduce((n, s) => n + s.calls, 0);
      expect(calls, 'the fuzzer made hardly any calls').toBeGreaterThan(seeds.length * 100);
    }
    const shown = problems.slice(0, 60).join('\n\n') + (problems.length > 60 ? `\n\n... and ${problems.length - 60} more` : '');
    expect(problems.length, `${problems.length} violation(s) on ${backend}, seeds ${seeds.join(', ')}:\n\n${shown}\n`).toBe(0);
  });
});
