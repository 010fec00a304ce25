// Bun as a peer in the bench, end to end: its Bun.listen echo server gives
// every byte back in order, also past what the socket takes at once; the
// harness runs it through the TCP scenarios, or, where Bun is not installed,
// prints why and reports it as not run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, expect, it } from 'vitest';
import { findBun } from '../bench/lib/bun.mjs';
import { patterned, runProcess } from './helpers.js';

const bun = findBun();

type Figures = {
  errors: number;
  units: number;
  rssPerConn?: number;
  cap?: { served: number; dropped: number; clients: number };
  reaping?: { count: number; conns: number };
};
type Report = { machine: string; scenarios: { name: string; servers: Record<string, Figures>; skipped: Record<string, string> }[] };

let server: ChildProcess | undefined;
let results: string | undefined;
afterEach(() => {
  server?.kill('SIGKILL');
  server = undefined;
  if (results) rmSync(results, { recursive: true, force: true });
  results = undefined;
});

/** Starts bun-echo.mjs; resolves with its port once it prints "listening PORT". */
function startBunEcho(path: string): Promise<number> {
  server = spawn(path, ['bench/servers/bun-echo.mjs', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const started = server;
  return new Promise((resolve, reject) => {
    createInterface({ input: started.stdout! }).on('line', (line) => {
      const match = /^listening (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
    started.on('exit', (code) => reject(new Error(`bun-echo exited with ${code}`)));
  });
}

it('Bun echoes 32 MiB back intact and in order while the client does not read at first', { timeout: 30_000 }, async () => {
  if (bun.missing !== undefined) return void expect(bun.missing).toMatch(/^Bun/); // not installed: nothing to run
  const port = await startBunEcho(bun.path);
  const sent = patterned(32 * 1024 * 1024, 7);
  const chunks: Buffer[] = [];
  let received = 0;
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    socket.pause(); // the echo backs up into Bun's socket until this reads
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      received += data.length;
      if (received >= sent.length) socket.end();
    });
    socket.on('close', () => resolve());
    // Bun has read all of it once the write completes: far more than the
    // kernel's buffers hold came back while nothing was read.
    socket.write(sent, () => socket.resume());
  });
  expect(received).toBe(sent.length);
  expect(Buffer.concat(chunks).equals(sent)).toBe(true);
});

it('the harness runs Bun through the TCP scenarios without errors, or says it is not installed', { timeout: 90_000 }, async () => {
  results = mkdtempSync(join(tmpdir(), 'bench-bun-'));
  const tcp = ['echo-100x64', 'echo-50x16k', 'churn-50', 'idle-1k', 'idle-storm-1k', 'cap-50at10'];
  const scenarios = [...tcp, 'udp-echo-32x64-w4'].join(',');
  const argv = ['bench/run.mjs', '--quick', '--json', '--servers', 'bun', '--scenarios', scenarios, '--duration', '0.3', '--warmup', '0.1'];
  const run = await runProcess(process.execPath, [...argv, '--results', results], 85_000);
  expect(run.code, run.stderr).toBe(0);
  const report: Report = JSON.parse(run.stdout);
  const byName = Object.fromEntries(report.scenarios.map((s) => [s.name, s]));
  expect(byName['udp-echo-32x64-w4']!.skipped.bun).toMatch(/TCP/);
  if (bun.missing !== undefined) {
    expect(run.stderr).toContain(`skipping Bun (TCP): ${bun.missing}`);
    for (const name of tcp) expect(byName[name]!.skipped.bun).toBe(bun.missing);
    return;
  }
  expect(report.machine).toContain(`Bun ${bun.version}`);
  for (const name of tcp) {
    const figures = byName[name]!.servers.bun!;
    expect(figures.errors, name).toBe(0);
    expect(figures.units, name).toBeGreaterThan(0);
  }
  expect(byName['idle-1k']!.servers.bun!.rssPerConn).toBeGreaterThan(0);
  // socket.timeout() ends every idle connection (late: it ticks every 4 s).
  const reaping = byName['idle-storm-1k']!.servers.bun!.reaping!;
  expect(reaping.count).toBe(reaping.conns);
  // Over the cap Bun.listen has no queue: the clients past 10 at once are dropped.
  const cap = byName['cap-50at10']!.servers.bun!.cap!;
  expect(cap.served + cap.dropped).toBe(cap.clients);
  expect(cap.dropped).toBeGreaterThan(0);
});

it('a $BUN that does not run: the harness prints why and runs the other servers', { timeout: 60_000 }, async () => {
  results = mkdtempSync(join(tmpdir(), 'bench-bun-'));
  const broken = join(results, 'no-such-bun');
  const argv = ['bench/run.mjs', '--quick', '--json', '--servers', 'bun,net', '--scenarios', 'echo-100x64', '--duration', '0.3', '--warmup', '0.1'];
  const run = await runProcess(process.execPath, [...argv, '--results', results], 55_000, { BUN: broken });
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr).toMatch(new RegExp(`skipping Bun \\(TCP\\): Bun from \\$BUN \\(${broken.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')}\\) does not run`));
  const [scenario] = (JSON.parse(run.stdout) as Report).scenarios;
  expect(scenario!.skipped.bun).toContain('does not run');
  expect(Object.keys(scenario!.servers)).toEqual(['net']);
  expect(scenario!.servers.net!.errors).toBe(0);
});
