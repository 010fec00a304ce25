#!/usr/bin/env node
// `npm run bench:long-poll`: the long-poll example (examples/long-poll/server.mjs,
// one process, the native HTTP server) side by side with the same server on
// node:http (bench/servers/long-poll-node-http.mjs: the same Redis mailbox
// and routes), against one real redis-server started here. Each server is
// pinned to CPU 0; this client and redis-server to CPU 1.
//  - held polls: N polls held at once (each its own connection, no message),
//    and the server's anonymous RSS growth per held poll, read after a
//    garbage collection (bench/servers/collect-on-signal.cjs);
//  - delivery: P polls held, each polling again as soon as it is answered,
//    while 32 keep-alive publishers post messages to the users in turn, for D
//    seconds: messages delivered per second end to end (publish → Redis →
//    the poll's response), and the server's CPU time per delivered message
//    (/proc/PID, all threads; it handles the publish and the poll). Every
//    message published is then checked delivered, once.
//   node bench/long-poll.mjs [--hold 10000] [--polls 4000] [--duration 5]
//                            [--servers native,node:http] [--json FILE]
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { collect, collecting } from './lib/collect.mjs';
import { cpuNanos, freePort, pinned, rssBytes, stopChild } from './lib/proc.mjs';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const START_TIMEOUT_MS = 10_000;
const SETTLE_MS = 300; // memory settles before it is read
const AT_ONCE = 200; // connections being opened at a time, within the listen backlog
const PUBLISHERS = 32;
const WARM_UP_MS = 1000;
const HOLD_MAX_WAIT_MS = 600_000; // held polls are not answered while the figures are read

const { values } = parseArgs({
  options: {
    hold: { type: 'string', default: '10000' },
    polls: { type: 'string', default: '4000' },
    duration: { type: 'string', default: '5' },
    servers: { type: 'string', default: 'native,node:http' },
    json: { type: 'string' },
  },
});
const holdCount = Number(values.hold);
const pollCount = Number(values.polls);
const duration = Number(values.duration);

const SERVERS = {
  native: { label: 'native-reactor listenHTTP', kind: 'reactor', script: here('../examples/long-poll/server.mjs') },
  'node:http': { label: 'node:http', kind: 'net', script: here('./servers/long-poll-node-http.mjs') },
};

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Spawns argv; resolves once a stdout or stderr line matches `ready` (its first group, if any). */
function spawnReady(argv, ready) {
  const [command, ...args] = argv;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = createInterface({ input: child.stdout });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} not ready: ${output}`)), START_TIMEOUT_MS);
    const seen = (line) => {
      output += `${line}\n`;
      const match = ready.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve({ child, lines, found: match[1] });
    };
    lines.on('line', seen);
    createInterface({ input: child.stderr }).on('line', seen);
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}): ${output}`)));
  });
}

async function startRedis() {
  const port = await freePort();
  const argv = pinned(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], 1);
  const { child } = await spawnReady(argv, /Ready to accept connections/);
  return { child, url: `redis://127.0.0.1:${port}` };
}

async function startServer(name, redisUrl, maxWaitMs) {
  const server = SERVERS[name];
  const argv = collecting(server.kind, [process.execPath, server.script, '--port', '0', '--redis', redisUrl, '--max-wait-ms', String(maxWaitMs)]);
  const { child, lines, found } = await spawnReady(pinned(argv, 0), /^listening (\d+)/);
  return { child, lines, port: Number(found), kind: server.kind };
}

const descriptors = (pid) => readdirSync(`/proc/${pid}/fd`).length;

async function until(check, what, limitMs = 60_000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`not within ${limitMs} ms: ${what}`);
    await delay(20);
  }
}

/**
 * A keep-alive connection sending requests one at a time: send(request)
 * resolves with the next response's status and body (Content-Length framing:
 * what both servers send for these routes).
 */
function openConnection(port) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let pending = Buffer.alloc(0);
  let waiting = null;
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const headEnd = pending.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = pending.toString('latin1', 0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (/\r\ntransfer-encoding:/i.test(head)) throw new Error(`a chunked response: ${head}`);
    if (pending.length < headEnd + 4 + length) return;
    const status = Number(head.slice(9, 12));
    const body = pending.subarray(headEnd + 4, headEnd + 4 + length);
    pending = pending.subarray(headEnd + 4 + length);
    const settle = waiting;
    waiting = null;
    settle({ status, body });
  });
  socket.on('error', (error) => {
    throw new Error(`a client connection failed: ${error.message}`);
  });
  return {
    socket,
    send(request) {
      return new Promise((resolve) => {
        waiting = resolve;
        socket.write(request);
      });
    },
  };
}

const pollRequest = (uid) => `GET /poll?uid=${uid} HTTP/1.1\r\nHost: bench\r\n\r\n`;
const publishRequest = (uid, message) => `POST /publish?uid=${uid} HTTP/1.1\r\nHost: bench\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`;

/** Opens `count` connections (AT_ONCE at a time), each sending one poll; resolves once all are connected. */
async function openPolls(port, count, prefix) {
  const connections = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(AT_ONCE, count) }, async () => {
      while (next < count) {
        const at = next++;
        const connection = openConnection(port);
        await new Promise((resolve) => connection.socket.once('connect', resolve));
        connections[at] = connection;
        connection.uid = `${prefix}${at}`;
      }
    }),
  );
  return connections;
}

async function heldPolls(name, redisUrl) {
  const server = await startServer(name, redisUrl, HOLD_MAX_WAIT_MS);
  try {
    const reading = async () => {
      const young = await collect(server.kind, server.child, server.lines);
      await delay(SETTLE_MS);
      return { rss: rssBytes(server.child.pid), young };
    };
    // A warm-up: 200 polls held, then gone (the server has served before its baseline).
    const fdsIdle = descriptors(server.child.pid);
    const warm = await openPolls(server.port, AT_ONCE, 'warm-');
    for (const poll of warm) void poll.send(pollRequest(poll.uid));
    await until(() => descriptors(server.child.pid) >= fdsIdle + AT_ONCE, 'the warm-up polls held');
    for (const poll of warm) poll.socket.destroy();
    await until(() => descriptors(server.child.pid) <= fdsIdle, 'the warm-up polls gone');
    const before = await reading();
    const polls = await openPolls(server.port, holdCount, 'hold-');
    for (const poll of polls) void poll.send(pollRequest(poll.uid));
    await until(() => descriptors(server.child.pid) >= fdsIdle + holdCount, `${holdCount} polls held`);
    await delay(SETTLE_MS);
    const after = await reading();
    const held = descriptors(server.child.pid) - fdsIdle;
    for (const poll of polls) poll.socket.destroy();
    return {
      server: SERVERS[name].label,
      held,
      bytesPerPoll: Math.round((after.rss - before.rss) / holdCount),
      lessYoung: Math.round((after.rss - after.young - (before.rss - before.young)) / holdCount),
    };
  } finally {
    await stopChild(server.child);
  }
}

async function delivery(name, redis) {
  const server = await startServer(name, redis.url, 30_000);
  try {
    const fdsBefore = descriptors(server.child.pid);
    const polls = await openPolls(server.port, pollCount, 'user-');
    let delivered = 0;
    const seen = new Set();
    let duplicates = 0;
    for (const poll of polls) {
      void (async () => {
        for (;;) {
          const reply = await poll.send(pollRequest(poll.uid));
          if (poll.socket.destroyed) return;
          if (reply.status === 200) {
            const message = reply.body.toString('latin1');
            if (seen.has(message)) duplicates++;
            seen.add(message);
            delivered++;
          }
        }
      })();
    }
    await until(() => descriptors(server.child.pid) >= fdsBefore + pollCount, `${pollCount} polls held`);
    let published = 0;
    let publishing = true;
    const publishers = Array.from({ length: PUBLISHERS }, async () => {
      const connection = openConnection(server.port);
      await new Promise((resolve) => connection.socket.once('connect', resolve));
      while (publishing) {
        const seq = published++;
        const reply = await connection.send(publishRequest(polls[seq % pollCount].uid, `m${seq}`));
        if (reply.status !== 202) throw new Error(`publish answered ${reply.status}`);
      }
      connection.socket.destroy();
    });
    await delay(WARM_UP_MS);
    const startDelivered = delivered;
    const startCpu = cpuNanos(server.child.pid);
    const startRedisCpu = cpuNanos(redis.child.pid);
    const started = performance.now();
    await delay(duration * 1000);
    const seconds = (performance.now() - started) / 1000;
    const count = delivered - startDelivered;
    const cpu = cpuNanos(server.child.pid) - startCpu;
    const redisCpu = cpuNanos(redis.child.pid) - startRedisCpu;
    publishing = false;
    await Promise.all(publishers);
    await until(() => delivered >= published, `every message delivered (${delivered} of ${published})`, 30_000);
    for (const poll of polls) poll.socket.destroy();
    return {
      server: SERVERS[name].label,
      polls: pollCount,
      messagesPerSecond: Math.round(count / seconds),
      usCpuPerMessage: Number((cpu / 1000 / count).toFixed(1)),
      redisUsCpuPerMessage: Number((redisCpu / 1000 / count).toFixed(1)),
      published,
      delivered,
      duplicates,
    };
  } finally {
    await stopChild(server.child);
  }
}

async function main() {
  const names = values.servers.split(',');
  for (const name of names) if (!SERVERS[name]) throw new Error(`unknown server ${name}: ${Object.keys(SERVERS).join(', ')}`);
  const redis = await startRedis();
  const results = { hold: [], delivery: [] };
  try {
    if (holdCount > 0) {
      for (const name of names) {
        const row = await heldPolls(name, redis.url);
        process.stderr.write(`${row.server}: ${row.held} polls held, ${row.bytesPerPoll} B anonymous RSS each (${row.lessYoung} B less V8's young generation)\n`);
        results.hold.push(row);
      }
      console.table(results.hold);
    }
    if (pollCount > 0 && duration > 0) {
      for (const name of names) {
        const row = await delivery(name, redis);
        process.stderr.write(`${row.server}: ${row.messagesPerSecond} messages/s at ${row.polls} polls, ${row.usCpuPerMessage} µs server CPU each\n`);
        results.delivery.push(row);
      }
      console.table(results.delivery);
    }
  } finally {
    await stopChild(redis.child);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
}

await main();
