// native-reactor-bench (bench/cli.mjs) against servers it did not start:
// echo verified byte for byte, HTTP status and framing checked, errors by
// kind, open-loop latency corrected for coordinated omission, the --json
// shape, quiet output on a pipe, FIN closes, bad command lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCliArgs, UsageError } from '../bench/lib/cli-args.mjs';
import { httpReader } from '../bench/lib/http-reply.mjs';
import { ReplyError } from '../bench/lib/reply-error.mjs';
import { echoMessage } from '../bench/lib/workloads.mjs';
import { Reactor } from '../src/index.js';
import { runProcess, tmpSocketPath } from './helpers.js';

const CLI = 'bench/cli.mjs';
const SHORT = ['--duration', '0.5', '--warmup', '0.1'];

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  p9999: number;
  max: number;
  mean: number;
}
interface BenchResult {
  throughput: number;
  requests: number;
  errors: Record<string, number> & { total: number };
  latency: Latency;
  uncorrectedLatency?: Latency;
  bytes: { sent: number; received: number };
  established: number;
  reconnects: number;
  serverCloses: number;
  p50: number;
  p99: number;
  p999: number;
  generator: { cpuSeconds: number; cpuMicrosPerRequest: number | null };
}

interface StormResult {
  established: number;
  seconds: number;
  throughput: number;
  connectsPerSecond: number;
  errors: Record<string, number> & { total: number };
  errorCodes: Record<string, number>;
  p50: number;
  p99: number;
  uncorrectedLatency?: Latency;
}
interface IdleResult {
  established: number;
  held: number;
  closedByServer: { total: number; fin: number; reset: number; other: number };
  closedWhen: { untilSeconds: number; fin: number; reset: number; other: number }[];
  p50: number;
}

/** Runs the CLI with `args` on `backend`; its JSON result (with --json) and raw output. */
async function bench(backend: string, args: string[], timeoutMs = 30_000) {
  const run = await runProcess(process.execPath, [CLI, ...args], timeoutMs, { NATIVE_REACTOR_BACKEND: backend });
  const json = args.includes('--json') && run.code === 0 ? (JSON.parse(run.stdout) as BenchResult) : undefined;
  return { ...run, json };
}

const servers: (Server | HttpServer)[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listening(server: Server | HttpServer, where: number | string = 0): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(typeof where === 'string' ? where : { port: where, host: '127.0.0.1' }, resolve));
  const address = server.address();
  return typeof address === 'string' ? address : `127.0.0.1:${address!.port}`;
}

/** A node:net server echoing with `transform` applied; counts how connections ended. */
function netEcho(transform: (data: Buffer) => Buffer = (d) => d) {
  const ends = { fin: 0, reset: 0 };
  const server = createServer((socket: Socket) => {
    socket.on('data', (data) => socket.write(transform(data)));
    socket.on('end', () => ends.fin++);
    socket.on('error', (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET' && ends.reset++);
  });
  return { server, ends };
}

/** A node:http server answering every request with `status` after `delayMs`. */
function httpServer(status = 200, delayMs = 0) {
  return createHttpServer({ keepAliveTimeout: 30_000 }, (_req, res) => {
    const answer = () => {
      res.statusCode = status;
      res.setHeader('Content-Length', '5');
      res.end('hello');
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  it('echo against examples/echo-server.mjs: replies verified, no errors', async () => {
    const child = spawn(process.execPath, ['examples/echo-server.mjs', '--port', '0', '--backend', backend], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const port = await new Promise<number>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const match = /^listening (\d+)/.exec(line);
        if (match) resolve(Number(match[1]));
      });
    });
    const run = await bench(backend, ['echo', `127.0.0.1:${port}`, '--connections', '20', '--size', '300', '--pipeline', '2', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = run.json!;
    expect(result.throughput).toBeGreaterThan(0);
    expect(result.errors.total).toBe(0);
    expect(result.established).toBe(20);
    expect(result.bytes.received).toBe(result.bytes.sent);
    expect(result.bytes.sent % 300).toBe(0);
  });

  it('echo against node:net over TCP and a Unix path; connections end with a FIN (a reset with --reset)', async () => {
    const tcp = netEcho();
    const target = await listening(tcp.server);
    const run = await bench(backend, ['echo', target, '--connections', '10', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json!.throughput).toBeGreaterThan(0);
    expect(run.json!.errors.total).toBe(0);
    await expect.poll(() => tcp.ends.fin).toBe(10);
    expect(tcp.ends.reset).toBe(0);

    const aborting = netEcho();
    const reset = await bench(backend, ['echo', await listening(aborting.server), '--connections', '4', ...SHORT, '--reset', '--json']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.json!.errors.total).toBe(0);
    await expect.poll(() => aborting.ends.reset).toBe(4);
    expect(aborting.ends.fin).toBe(0);

    const unix = netEcho();
    const path = await listening(unix.server, tmpSocketPath('bench-cli'));
    const overUnix = await bench(backend, ['echo', path, '--connections', '4', ...SHORT, '--json']);
    expect(overUnix.code, overUnix.stderr).toBe(0);
    expect(overUnix.json!.errors.total).toBe(0);
    expect(overUnix.json!.throughput).toBeGreaterThan(0);
    await expect.poll(() => unix.ends.fin).toBe(4);
  });

  it('rr: a custom payload, replies framed by a delimiter or by a length', async () => {
    const target = await listening(netEcho().server);
    for (const framing of [['--reply-delimiter', '\\r\\n'], ['--reply-length', '7']]) {
      const run = await bench(backend, ['rr', target, '--payload', 'PING\\x01\\r\\n', ...framing, '--pipeline', '3', '--connections', '3', ...SHORT, '--json']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json!.errors.total).toBe(0);
      expect(run.json!.throughput).toBeGreaterThan(0);
      expect(run.json!.bytes.sent % 7).toBe(0);
    }
  });

  it('echo: a server that corrupts one byte gets bad replies counted', async () => {
    const { server } = netEcho((data) => {
      const copy = Buffer.from(data);
      copy[copy.length - 1] ^= 0xff;
      return copy;
    });
    const run = await bench(backend, ['echo', await listening(server), '--connections', '4', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json!.errors.badReply).toBeGreaterThan(0);
    expect(run.json!.errors.total).toBe(run.json!.errors.badReply);
    expect(run.json!.requests).toBe(0); // no reply was good
  });

  it('http: 200s with a Content-Length are good replies; a 500 is a bad status; a refused connect is counted', async () => {
    const ok = await bench(backend, ['http', `http://${await listening(httpServer(200))}/x?y=1`, '--connections', '8', ...SHORT, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json!.throughput).toBeGreaterThan(0);
    expect(ok.json!.errors.total).toBe(0);

    const failing = await bench(backend, ['http', `http://${await listening(httpServer(500))}/`, '--connections', '4', ...SHORT, '--json']);
    expect(failing.code, failing.stderr).toBe(0);
    expect(failing.json!.errors.badStatus).toBeGreaterThan(0);
    expect(failing.json!.requests).toBe(0);

    const closed = createServer();
    const port = Number((await listening(closed)).split(':')[1]);
    await new Promise((resolve) => closed.close(resolve));
    servers.pop();
    const refused = await bench(backend, ['http', `http://127.0.0.1:${port}/`, '--connections', '2', '--duration', '0.2', '--warmup', '0', '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).errors.connectRefused).toBeGreaterThan(0);
  });

  it('http: chunked replies with trailers are good replies; Connection: close is honoured and counted', async () => {
    const chunked = createHttpServer({ keepAliveTimeout: 30_000 }, (_req, res) => {
      res.setHeader('Trailer', 'X-Checksum');
      res.write('hel');
      res.write('lo');
      res.addTrailers({ 'X-Checksum': '1' });
      res.end();
    });
    const run = await bench(backend, ['http', `http://${await listening(chunked)}/`, '--connections', '4', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json!.errors.total).toBe(0);
    expect(run.json!.requests).toBeGreaterThan(0);
    expect(run.json!.reconnects).toBe(0);

    let served = 0;
    const closing = createHttpServer({ keepAliveTimeout: 30_000 }, (_req, res) => {
      if (++served % 3 === 0) res.setHeader('Connection', 'close');
      res.setHeader('Content-Length', '2');
      res.end('ok');
    });
    const closes = await bench(backend, ['http', `http://${await listening(closing)}/`, '--connections', '4', ...SHORT, '--json']);
    expect(closes.code, closes.stderr).toBe(0);
    expect(closes.json!.errors.total).toBe(0);
    expect(closes.json!.requests).toBeGreaterThan(0);
    expect(closes.json!.serverCloses).toBeGreaterThan(0);
    expect(closes.json!.reconnects).toBeGreaterThanOrEqual(closes.json!.serverCloses);
  });

  it('open loop: a server that takes 20 ms per reply shows p50 of 20 ms or more', async () => {
    const target = `http://${await listening(httpServer(200, 20))}/`;
    const run = await bench(backend, ['http', target, '--connections', '10', '--rate', '200', '--duration', '0.8', '--warmup', '0.1', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json!.errors.total).toBe(0);
    // The server's 20 ms runs from libuv's loop time, read at the start of its
    // turn, so a reply may come up to 1 ms before 20 ms of real time.
    expect(run.json!.latency.p50).toBeGreaterThanOrEqual(19_000);
    expect(run.json!.uncorrectedLatency!.p50).toBeGreaterThanOrEqual(19_000);
  });

  it('open loop over capacity: the corrected latency grows with the backlog, the uncorrected one does not', async () => {
    // 4 connections, one request at a time, 10 ms each: at most ~400/s.
    const target = `http://${await listening(httpServer(200, 10))}/`;
    const at = async (rate: number) => {
      const run = await bench(backend, ['http', target, '--connections', '4', '--rate', String(rate), '--duration', '1', '--warmup', '0.2', '--json']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.json!.errors.total).toBe(0);
      return run.json!;
    };
    const under = await at(100);
    const over = await at(1000);
    expect(over.throughput).toBeLessThan(600); // the server's capacity, not the asked rate
    // Over capacity each request waits behind the ones before it: from
    // ~10 ms to hundreds of ms as the run goes on. Measured from when each
    // was actually sent, as a closed-loop tool would, it still looks like ~10 ms.
    expect(over.latency.p50).toBeGreaterThan(100_000);
    expect(over.latency.p50).toBeGreaterThan(5 * under.latency.p50);
    expect(over.uncorrectedLatency!.p50).toBeLessThan(60_000);
  });
});

describe.each(Reactor.backends)('%s backend: storm, idle, churn', (backend) => {
  it('storm: N connects back to back or at a rate, all held until the last is in; refused connects by code', async () => {
    let ended = 0;
    const server = createServer((socket) => {
      socket.on('close', () => ended++);
      socket.on('error', () => {});
    });
    const target = await listening(server);
    const run = await bench(backend, ['storm', target, '--connections', '300', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = run.json! as unknown as StormResult;
    expect(result.established).toBe(300);
    expect(result.errors.total).toBe(0);
    expect(result.connectsPerSecond).toBeGreaterThan(0);
    expect(result.throughput).toBe(result.connectsPerSecond);
    expect(result.p50).toBeGreaterThan(0);
    expect(result.p50).toBeLessThanOrEqual(result.p99);
    await expect.poll(() => ended).toBe(300);

    const paced = await bench(backend, ['storm', target, '--connections', '100', '--rate', '1000', '--json']);
    expect(paced.code, paced.stderr).toBe(0);
    const pacedResult = paced.json! as unknown as StormResult;
    expect(pacedResult.established).toBe(100);
    expect(pacedResult.seconds).toBeGreaterThan(0.09); // 100 connects at 1,000/s
    expect(pacedResult.uncorrectedLatency!.p50).toBeGreaterThan(0);

    const closed = createServer();
    const port = Number((await listening(closed)).split(':')[1]);
    await new Promise((resolve) => closed.close(resolve));
    servers.pop();
    const refused = await bench(backend, ['storm', `127.0.0.1:${port}`, '--connections', '5', '--concurrency', '2', '--json']);
    expect(refused.code).toBe(1);
    const refusedResult = JSON.parse(refused.stdout) as StormResult;
    expect(refusedResult.errors.connectRefused).toBe(5);
    expect(refusedResult.errorCodes).toEqual({ ECONNREFUSED: 5 });
  });

  it('idle: how many connections the server closed, when, and with a FIN or a reset', async () => {
    let accepted = 0;
    const endedByClient = { fin: 0 };
    const server = createServer((socket) => {
      const which = accepted++ % 3;
      socket.on('error', () => {});
      if (which === 0) setTimeout(() => socket.end(), 200);
      else if (which === 1) setTimeout(() => socket.resetAndDestroy(), 400);
      else socket.on('end', () => endedByClient.fin++);
    });
    const run = await bench(backend, ['idle', await listening(server), '--connections', '30', '--duration', '1', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = run.json! as unknown as IdleResult;
    expect(result.established).toBe(30);
    expect(result.closedByServer).toEqual({ total: 20, fin: 10, reset: 10, other: 0 });
    expect(result.held).toBe(10);
    expect(result.closedWhen).toHaveLength(10);
    const bins = result.closedWhen;
    expect(bins.reduce((sum, b) => sum + b.fin, 0)).toBe(10);
    expect(bins.reduce((sum, b) => sum + b.reset, 0)).toBe(10);
    // Lifetimes run from the client's connect; the server's timers may fire a millisecond early.
    expect(bins[0]!.fin).toBe(0); // ended at 200 ms
    expect(bins.slice(0, 3).reduce((sum, b) => sum + b.reset, 0)).toBe(0); // reset at 400 ms
    expect(result.p50).toBeGreaterThanOrEqual(190_000);
    await expect.poll(() => endedByClient.fin).toBe(10); // the rest closed with a FIN at the end
  });

  it('churn: connect, one echo, close, again: every connection carries one message and ends with a FIN', async () => {
    const perConnection: number[] = [];
    let resets = 0;
    const server = createServer((socket) => {
      const index = perConnection.push(0) - 1;
      socket.on('data', (data) => {
        perConnection[index]! += data.length;
        socket.write(data);
      });
      socket.on('error', () => resets++);
    });
    const run = await bench(backend, ['churn', await listening(server), '--connections', '4', '--size', '100', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = run.json!;
    expect(result.errors.total).toBe(0);
    expect(result.throughput).toBeGreaterThan(0);
    expect(result.requests).toBeGreaterThan(0);
    expect(perConnection.length).toBeGreaterThan(result.requests);
    expect(perConnection.every((bytes) => bytes === 0 || bytes === 100)).toBe(true);
    expect(resets).toBe(0);
  });
});

describe('native-reactor-bench output and command line', () => {
  it('--json prints one object with throughput, errors by kind and latency percentiles in µs', async () => {
    const target = await listening(netEcho().server);
    const run = await bench(Reactor.backends[0]!, ['echo', target, '--connections', '2', '--workers', '2', ...SHORT, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const result = run.json!;
    expect(result.throughput).toBeGreaterThan(0);
    expect(Object.keys(result.errors).sort()).toEqual(
      ['total', 'connectRefused', 'connectTimeout', 'connect', 'reset', 'closed', 'timeout', 'badReply', 'badStatus'].sort(),
    );
    for (const p of ['p50', 'p90', 'p99', 'p999', 'p9999', 'max', 'mean'] as const) expect(result.latency[p]).toBeGreaterThan(0);
    expect(result.latency.p50).toBeLessThanOrEqual(result.latency.p99);
    expect(result.latency.p99).toBeLessThanOrEqual(result.latency.p999);
    expect(result.latency.p9999).toBeLessThanOrEqual(result.latency.max);
    expect([result.p50, result.p99, result.p999]).toEqual([result.latency.p50, result.latency.p99, result.latency.p999]);
    expect(result.generator.cpuSeconds).toBeGreaterThan(0);
    expect(result.generator.cpuMicrosPerRequest).toBeGreaterThan(0);
    expect(result.uncorrectedLatency).toBeUndefined(); // closed loop
  });

  it('on a pipe: no progress lines, one summary line on stderr and the text summary on stdout', async () => {
    const target = await listening(netEcho().server);
    const run = await bench(Reactor.backends[0]!, ['echo', target, '--connections', '2', '--duration', '1', '--warmup', '0.2']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).not.toMatch(/\r|\x1b/);
    expect(run.stdout).toMatch(/requests +[\d,]+ in [\d.]+ s: [\d,]+\/s/);
    expect(run.stdout).toMatch(/latency +p50 /);
    expect(run.stdout).toMatch(/errors +0/);
  });

  it.each([
    [['echo', '127.0.0.1:7000', '--conections', '5'], /unknown flag --conections; did you mean --connections\?/],
    [['echo', '127.0.0.1:7000', '--size', '0'], /--size must be a whole number/],
    [['echo', '127.0.0.1:7000', '--rate', 'fast'], /--rate must be a whole number/],
    [['echo', '127.0.0.1:7000', '--duration', '-1'], /--duration/],
    [['http', 'http://127.0.0.1/', '--size', '64'], /--size applies to the echo, churn workloads only/],
    [['storm', '127.0.0.1:7000', '--pipeline', '2'], /--pipeline applies to the echo, http, rr workloads only/],
    [['idle', '127.0.0.1:7000', '--concurrency', '2'], /--concurrency applies to the storm workload only/],
    [['storm', '127.0.0.1:7000', '--concurrency', '0'], /--concurrency must be a whole number/],
    [['ecko', '127.0.0.1:7000'], /unknown workload "ecko"; did you mean "echo"\?/],
    [['echo', '127.0.0.1'], /target must be HOST:PORT/],
    [['http', 'https://127.0.0.1/'], /only http:\/\/ URLs/],
    [['rr', '127.0.0.1:7000', '--payload', 'x'], /--reply-length or --reply-delimiter/],
  ])('%j exits 2 naming what is wrong', async (argv, message) => {
    const run = await runProcess(process.execPath, [CLI, ...argv], 10_000);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
  });

  it('--help prints every flag and exits 0', async () => {
    const run = await runProcess(process.execPath, [CLI, '--help'], 10_000);
    expect(run.code).toBe(0);
    for (const flag of ['--connections', '--pipeline', '--rate', '--duration', '--warmup', '--workers', '--timeout', '--size', '--header', '--unix-socket', '--payload', '--payload-file', '--reply-length', '--reply-delimiter', '--reset', '--json', '--concurrency', 'storm', 'idle', 'churn', 'p999']) {
      expect(run.stdout).toContain(flag);
    }
  });
});

describe('bench readers', () => {
  const feedAll = (chunks: Buffer[]) => {
    const reader = httpReader();
    const replies: (string | null)[] = [];
    for (const chunk of chunks) reader.feed(chunk, (kind: string | null) => replies.push(kind));
    return { replies, closing: reader.closing };
  };
  const response = (status: number, body: string, extra = '') =>
    `HTTP/1.1 ${status} X\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

  it('reads pipelined HTTP responses however they are split', () => {
    const stream = Buffer.from(response(200, 'hello') + response(500, '') + response(204, '', 'X: y\r\n') + response(200, 'a\r\n\r\nb'));
    for (let size = 1; size <= stream.length; size++) {
      const chunks = [];
      for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
      expect(feedAll(chunks).replies, `chunks of ${size}`).toEqual([null, 'badStatus', null, null]);
    }
  });

  const inChunksOf = (stream: Buffer, size: number) => {
    const chunks = [];
    for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
    return chunks;
  };

  it('reads chunked responses, extensions and trailers included, however they are split', () => {
    const chunked = (status: number, chunks: string[], trailers = '') =>
      `HTTP/1.1 ${status} X\r\nTransfer-Encoding: chunked\r\n\r\n` +
      chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') +
      `0\r\n${trailers}\r\n`;
    const stream = Buffer.from(
      chunked(200, ['hel', 'lo\r\n0\r\n\r\n']) +
        response(200, 'x') +
        chunked(503, ['a'.repeat(300)], 'X-Checksum: 1\r\nX-Other: 2\r\n') +
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA;name=value\r\n0123456789\r\n0\r\n\r\n',
    );
    for (let size = 1; size <= stream.length; size += size < 40 ? 1 : 37) {
      expect(feedAll(inChunksOf(stream, size)).replies, `chunks of ${size}`).toEqual([null, null, 'badStatus', null]);
    }
  });

  it('skips 1xx interim responses; a body without a length ends with the connection', () => {
    const interim = feedAll([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n' + response(200, 'ok'))]);
    expect(interim.replies).toEqual([null]);

    const reader = httpReader();
    const replies: (string | null)[] = [];
    reader.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\nbody until'), (kind: string | null) => replies.push(kind));
    reader.feed(Buffer.from(' the close HTTP/1.1 500'), (kind: string | null) => replies.push(kind));
    expect(replies).toEqual([]);
    expect(reader.closing).toBe(true);
    reader.end((kind: string | null) => replies.push(kind));
    expect(replies).toEqual([null]);
  });

  it('notes Connection: close (and HTTP/1.0 without keep-alive); refuses what cannot be followed', () => {
    expect(feedAll([Buffer.from(response(200, '', 'Connection: close\r\n'))]).closing).toBe(true);
    expect(feedAll([Buffer.from(response(200, '', 'Connection: Keep-Alive\r\n'))]).closing).toBe(false);
    expect(feedAll([Buffer.from(response(200, '').replace('1.1', '1.0'))]).closing).toBe(true);
    for (const bad of [
      'SSH-2.0-x\r\n\r\n',
      'HTTP/1.1 2x0 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n',
    ]) {
      expect(() => feedAll([Buffer.from(bad)]), bad).toThrow(ReplyError);
    }
    expect(() => feedAll([Buffer.from('HTTP/1.1 200 OK\r\nX: ' + 'y'.repeat(70_000))])).toThrow(/head over/);
  });

  it('an echo message has no period shorter than 251 bytes', () => {
    const message = echoMessage(600);
    for (let shift = 1; shift < 251; shift++) expect(message.subarray(shift, shift + 300).equals(message.subarray(0, 300))).toBe(false);
  });
});
