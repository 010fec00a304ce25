#!/usr/bin/env node
// `npm run bench:http`: the native HTTP server (examples/http-native.mjs)
// side by side with nginx (Debian's, 1 worker, started here with its own
// configuration), node:http and Bun.serve where installed, on a keep-alive
// "hello world": `wrk -t1 -cC` for D seconds per server and round, the server
// pinned to CPU 0, wrk to CPU 1, rounds alternating the order of servers.
// The figure is the server's CPU time per request (all threads), as a ratio
// to nginx's; requests per second are printed too. Then each server, having
// answered 10,000 requests, holds N idle keep-alive connections (each had one
// request answered) and its anonymous RSS growth per connection is read after
// a garbage collection (--cold-baseline: from a server that answered 200).
//   node bench/http.mjs [--duration 5] [--rounds 3] [--connections 100] [--idle 10000]
//                       [--servers nginx,node:http,bun,native] [--cold-baseline] [--json FILE]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bun } from './lib/bun.mjs';
import { collect, collecting } from './lib/collect.mjs';
import { cpuNanos, freePort, pinned, rssBytes, stopChild } from './lib/proc.mjs';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const NGINX = '/usr/sbin/nginx';
const START_TIMEOUT_MS = 10_000;
const SETTLE_MS = 300; // memory settles before it is read

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '100' },
    idle: { type: 'string', default: '10000' },
    'cold-baseline': { type: 'boolean', default: false },
    servers: { type: 'string', default: 'nginx,node:http,bun,native' },
    json: { type: 'string' },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const idleCount = Number(values.idle);
const coldBaseline = values['cold-baseline'];

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Each server: how to start it on a port (0: its choice, announced as
// "listening PORT"), and its kind for collecting garbage before a memory reading.
const SERVERS = {
  nginx: {
    label: 'nginx 1 worker',
    kind: 'c',
    available: () => existsSync(NGINX),
    async argv() {
      const dir = mkdtempSync(join(tmpdir(), 'nr-bench-nginx-'));
      const port = await freePort();
      const temp = (name) => `${name} ${join(dir, name)};`;
      writeFileSync(
        join(dir, 'nginx.conf'),
        `daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 30000;
error_log ${join(dir, 'error.log')}; pid ${join(dir, 'nginx.pid')};
events { worker_connections 25000; }
http {
  access_log off; keepalive_timeout 60s; keepalive_requests 100000000;
  ${temp('client_body_temp_path')} ${temp('proxy_temp_path')} ${temp('fastcgi_temp_path')} ${temp('uwsgi_temp_path')} ${temp('scgi_temp_path')}
  server { listen 127.0.0.1:${port}; location / { return 200 'hello world'; } }
}
`,
      );
      return { argv: [NGINX, '-p', dir, '-c', join(dir, 'nginx.conf')], port, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  'node:http': {
    label: 'node:http',
    kind: 'net',
    available: () => true,
    argv: async () => ({ argv: [process.execPath, here('./servers/node-http-hello.mjs')] }),
  },
  bun: {
    label: 'Bun.serve',
    kind: 'bun',
    available: () => bun() !== null,
    argv: async () => ({ argv: [bun().path, here('./servers/bun-http-hello.mjs')] }),
  },
  native: {
    label: 'native-reactor listenHTTP',
    kind: 'reactor',
    available: () => true,
    argv: async () => ({ argv: [process.execPath, here('../examples/http-native.mjs'), '--port', '0'] }),
  },
};

function waitForPort(port) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const attempt = () => {
      const socket = connect({ port, host: '127.0.0.1' }, () => {
        socket.destroy();
        resolve();
      });
      socket.on('error', () => {
        if (Date.now() - started > START_TIMEOUT_MS) reject(new Error(`nothing listens on ${port}`));
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

async function start(name, forIdle) {
  const server = SERVERS[name];
  const made = await server.argv();
  const argv = forIdle ? collecting(server.kind, made.argv) : made.argv;
  const [command, ...args] = pinned(argv, 0);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`${server.label} exited (${code}): ${stderr}`))));
  exited.catch(() => undefined);
  let port = made.port;
  if (port === undefined) {
    port = await Promise.race([
      exited,
      new Promise((resolve) => lines.on('line', (line) => /^listening (\d+)/.test(line) && resolve(Number(/^listening (\d+)/.exec(line)[1])))),
    ]);
  } else {
    await Promise.race([exited, waitForPort(port)]);
  }
  return {
    child,
    port,
    lines,
    async stop() {
      await stopChild(child);
      made.cleanup?.();
    },
  };
}

function wrk(port, seconds) {
  const [command, ...args] = pinned(['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`], 1);
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
  const out = result.stdout ?? '';
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)|Non-2xx.*: (\d+)/.exec(out)?.[0];
  return { requests, perSecond, errors };
}

const load = () => loadavg()[0].toFixed(2);

async function throughput(names) {
  const figures = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const server = await start(name, false);
      try {
        wrk(server.port, 1); // warm-up (JIT, caches)
        const before = cpuNanos(server.child.pid);
        const loadBefore = load();
        const run = wrk(server.port, duration);
        const cpu = cpuNanos(server.child.pid) - before;
        const usPerRequest = run.requests > 0 ? cpu / 1000 / run.requests : NaN;
        figures[name].push({ usPerRequest, perSecond: run.perSecond, errors: run.errors, load: loadBefore });
        process.stderr.write(
          `round ${round + 1} ${SERVERS[name].label}: ${usPerRequest.toFixed(2)} µs CPU/request, ${run.perSecond.toFixed(0)} req/s, load ${loadBefore}${run.errors ? `, ${run.errors}` : ''}\n`,
        );
      } finally {
        await server.stop();
      }
    }
  }
  return figures;
}

const WARM_UP_CONNECTIONS = 200;
const WARM_UP_REQUESTS_EACH = 50;

/** A client process holding `count` keep-alive connections, each answered `requestsEach` times. */
async function hold(port, count, requestsEach = 1) {
  const [command, ...args] = pinned([process.execPath, here('./lib/http-idle-client.mjs'), String(port), String(count), String(requestsEach)], 1);
  const client = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    createInterface({ input: client.stdout }).on('line', (line) => line.startsWith('holding') && resolve());
    client.once('exit', (code) => reject(new Error(`the idle client exited (${code})`)));
  });
  return client;
}

/** Ends a holding client: its connections close. */
async function release(client) {
  const exited = new Promise((resolve) => client.once('exit', resolve));
  client.stdin.end();
  await exited;
}

async function idleMemory(name) {
  const server = await start(name, true);
  try {
    const kind = SERVERS[name].kind;
    // Read after a collection, with the young generation's resident bytes
    // (BENCHMARKS.md, idle memory: the figure less them is the steadier one).
    const reading = async () => {
      const young = await collect(kind, server.child, server.lines);
      await delay(SETTLE_MS);
      return { rss: rssBytes(server.child.pid), young };
    };
    // The baseline is a server in service: it has answered 10,000 requests
    // (200 connections, 50 each, then closed).
    // What serving commits whatever the connections (V8's young generation:
    // ~2 MB that 10,000 requests' garbage touches, here) is then in the
    // baseline, not charged to the idle connections; --cold-baseline reads
    // from a server that has answered only 200.
    await release(await hold(server.port, WARM_UP_CONNECTIONS, coldBaseline ? 1 : WARM_UP_REQUESTS_EACH));
    const before = await reading();
    const client = await hold(server.port, idleCount);
    await delay(SETTLE_MS);
    const after = await reading();
    await release(client);
    return {
      bytesPerConnection: (after.rss - before.rss) / idleCount,
      lessYoung: (after.rss - after.young - (before.rss - before.young)) / idleCount,
      load: load(),
    };
  } finally {
    await server.stop();
  }
}

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

async function main() {
  const wanted = values.servers.split(',');
  const names = wanted.filter((name) => SERVERS[name]?.available());
  const missing = wanted.filter((name) => !names.includes(name));
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed (apt-get install wrk)');
  const results = { duration, rounds, connections };
  process.stderr.write(`servers: ${names.join(', ')}${missing.length ? ` (not found: ${missing.join(', ')})` : ''}; load ${load()}\n`);
  const figures = rounds > 0 ? await throughput(names) : undefined;
  if (figures) {
    const base = figures.nginx ? median(figures.nginx.map((f) => f.usPerRequest)) : undefined;
    const rows = names.map((name) => {
      const us = median(figures[name].map((f) => f.usPerRequest));
      return {
        server: SERVERS[name].label,
        usPerRequest: Number(us.toFixed(2)),
        vsNginx: base ? Number((us / base).toFixed(2)) : null,
        requestsPerSecond: Math.round(median(figures[name].map((f) => f.perSecond))),
        runs: figures[name].map((f) => Number(f.usPerRequest.toFixed(2))),
        loads: figures[name].map((f) => f.load),
      };
    });
    console.table(rows);
    results.rows = rows;
  }
  const idle = [];
  results.idle = idle;
  if (idleCount > 0) {
    for (const name of names) {
      const { bytesPerConnection, lessYoung, load: after } = await idleMemory(name);
      const row = { server: SERVERS[name].label, connections: idleCount, bytesPerConnection: Math.round(bytesPerConnection), lessYoung: Math.round(lessYoung), load: after };
      idle.push(row);
      process.stderr.write(`${row.server}: ${row.bytesPerConnection} B anonymous RSS per idle keep-alive connection (${row.lessYoung} B less V8's young generation)\n`);
    }
    console.table(idle);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
}

await main();
