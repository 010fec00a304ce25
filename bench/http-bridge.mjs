#!/usr/bin/env node
// node:http over the streams bridge (examples/http-bridge.mjs) against plain
// node:http (bench/servers/node-http.mjs): server CPU per request under
// `wrk -t1 -c100` keep-alive on an 11-byte reply. Each server is its own
// process pinned to CPU 0, wrk to CPU 1; rounds alternate the order so drift
// of the machine hits both alike. The figure is the server's CPU time over
// the measured run divided by the requests wrk completed.
//   node bench/http-bridge.mjs [--seconds 10] [--rounds 3]
// The bridge runs on $NATIVE_REACTOR_BACKEND, else the platform's default.
import { execFileSync, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { cpuNanos, pinned, stopChild } from './lib/proc.mjs';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, rounds: { type: 'string', default: '3' } },
  strict: true,
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
if (!(Number.isInteger(seconds) && seconds > 0 && Number.isInteger(rounds) && rounds > 0)) {
  process.stderr.write('--seconds and --rounds take whole numbers above 0\n');
  process.exit(2);
}

const SERVERS = {
  'node:http': ['bench/servers/node-http.mjs'],
  'node:http over the bridge': ['examples/http-bridge.mjs', '--port', '0'],
};

function start(args) {
  const [command, ...rest] = pinned([process.execPath, ...args], 0);
  const child = spawn(command, rest, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^listening (\d+)/.exec(line);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}) before listening`)));
  });
}

/** wrk's completed requests and errors for one run. */
function wrk(port, runSeconds) {
  const [command, ...args] = pinned(['wrk', '-t1', '-c100', `-d${runSeconds}s`, `http://127.0.0.1:${port}/`], 1);
  const out = execFileSync(command, args, { encoding: 'utf8' });
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? 'none';
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { requests, errors, non2xx };
}

async function measure(name) {
  const { child, port } = await start(SERVERS[name]);
  try {
    wrk(port, 1); // warm up: JIT, connection set-up
    const before = cpuNanos(child.pid);
    const { requests, errors, non2xx } = wrk(port, seconds);
    const cpu = cpuNanos(child.pid) - before;
    if (non2xx > 0) throw new Error(`${name}: ${non2xx} responses were not 2xx`);
    return { name, requests, perSecond: requests / seconds, usPerRequest: cpu / requests / 1000, errors };
  } finally {
    await stopChild(child);
  }
}

const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const names = Object.keys(SERVERS);
const results = Object.fromEntries(names.map((name) => [name, []]));
process.stdout.write(`load before: ${loadavg().map((n) => n.toFixed(2)).join(' ')}\n`);
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    const result = await measure(name);
    results[name].push(result);
    process.stdout.write(
      `round ${round + 1} ${name}: ${result.perSecond.toFixed(0)} req/s, ${result.usPerRequest.toFixed(2)} µs CPU/request (socket errors: ${result.errors})\n`,
    );
  }
}
const baseline = median(results['node:http'].map((r) => r.usPerRequest));
process.stdout.write(`\n| server | req/s (median) | server CPU µs/request (median) | vs node:http |\n|---|---|---|---|\n`);
for (const name of names) {
  const us = median(results[name].map((r) => r.usPerRequest));
  const rps = median(results[name].map((r) => r.perSecond));
  process.stdout.write(`| ${name} | ${rps.toFixed(0)} | ${us.toFixed(2)} | ${(us / baseline).toFixed(2)}x |\n`);
}
process.stdout.write(`load after: ${loadavg().map((n) => n.toFixed(2)).join(' ')}\n`);
