// What the long-poll tests start and talk to: a real redis-server, the
// example (examples/long-poll/server.mjs), real nginx with the example's
// configuration, each on a free loopback port and stopped by the test; and
// clients for /poll and /publish.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { within } from './stream-bridge-helpers.js';

export const HOST = '127.0.0.1';
export const NGINX = '/usr/sbin/nginx';
export const hasRedis = existsSync('/usr/bin/redis-server');
export const hasNginx = existsSync(NGINX);
const START_TIMEOUT_MS = 10_000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, HOST, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A child process; stop() ends it (signal, then SIGKILL after 5 s) and resolves with its exit code. */
export interface Started {
  child: ChildProcess;
  port: number;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

function stopper(child: ChildProcess): (signal?: NodeJS.Signals) => Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const hard = setTimeout(() => child.kill('SIGKILL'), 5000);
      void exited.then(() => clearTimeout(hard));
    }
    return exited;
  };
}

/** Spawns and waits until `ready(output)` gives the port. */
async function startProcess(command: string, args: string[], ready: (output: string) => number | undefined): Promise<Started> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const stop = stopper(child);
  const port = new Promise<number>((resolve, reject) => {
    const seen = (chunk: Buffer) => {
      output += chunk.toString();
      const found = ready(output);
      if (found !== undefined) resolve(found);
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before it was ready: ${output}`)));
  });
  try {
    return { child, port: await within(port, START_TIMEOUT_MS, `${command} ready`), output: () => output, stop };
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
}

export interface Redis extends Started {
  url: string;
}

export async function startRedis(): Promise<Redis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'];
  const started = await startProcess('redis-server', args, (output) => (output.includes('Ready to accept connections') ? port : undefined));
  return { ...started, url: `redis://${HOST}:${port}` };
}

/** The example server; resolves once it printed "listening PORT". */
export function startExample(args: string[]): Promise<Started> {
  return startProcess(process.execPath, ['examples/long-poll/server.mjs', '--port', '0', ...args], (output) => {
    const match = /^listening (\d+)$/m.exec(output);
    return match ? Number(match[1]) : undefined;
  });
}

function portAccepts(port: number): Promise<void> {
  return new Promise((resolve) => {
    const attempt = () => {
      const socket = connect({ port, host: HOST }, () => {
        socket.destroy();
        resolve();
      });
      socket.on('error', () => setTimeout(attempt, 20));
    };
    attempt();
  });
}

/** nginx with examples/long-poll/nginx.conf in front of the example's port; resolves once its port accepts. */
export async function startNginx(serverPort: number): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'long-poll-nginx-'));
  const port = await freePort();
  const config = readFileSync('examples/long-poll/nginx.conf', 'utf8').replaceAll('LISTEN_PORT', String(port)).replaceAll('SERVER_PORT', String(serverPort));
  writeFileSync(join(dir, 'nginx.conf'), config);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr warn;`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = stopper(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`nginx exited (${code}): ${output}`))));
  exited.catch(() => undefined);
  try {
    await within(Promise.race([portAccepts(port), exited]), START_TIMEOUT_MS, 'nginx listening');
  } catch (error) {
    await stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    child,
    port,
    output: () => output,
    stop: async (signal) => {
      const code = await stop(signal);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface Reply {
  status: number;
  body: Buffer;
}

/** An HTTP exchange over `agent` (keep-alive): the status and whole body. */
export function exchange(agent: Agent, port: number, method: 'GET' | 'POST', path: string, body?: Buffer | string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: HOST, port, method, path }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const poll = (agent: Agent, port: number, uid: string): Promise<Reply> => exchange(agent, port, 'GET', `/poll?uid=${encodeURIComponent(uid)}`);

export async function publish(agent: Agent, port: number, uid: string, message: Buffer | string): Promise<number> {
  return (await exchange(agent, port, 'POST', `/publish?uid=${encodeURIComponent(uid)}`, message)).status;
}

export interface AbandonedPoll {
  /** Shuts the client's sending side: the server sees the client go. */
  leave(): void;
  /** What the server had sent before it closed: nothing (null), or a whole response. */
  reply: Promise<Reply | null>;
}

/** A poll on its own connection, which the client abandons when leave() is called. */
export function abandonedPoll(port: number, uid: string): AbandonedPoll {
  const socket = connect({ port, host: HOST });
  socket.write(`GET /poll?uid=${encodeURIComponent(uid)} HTTP/1.1\r\nHost: t\r\n\r\n`);
  const reply = new Promise<Reply | null>((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => {
      const text = Buffer.concat(chunks);
      if (text.length === 0) {
        resolve(null);
        return;
      }
      const headEnd = text.indexOf('\r\n\r\n');
      const head = text.subarray(0, Math.max(headEnd, 0)).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      const body = text.subarray(headEnd + 4);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (headEnd < 0 || status === null || body.length !== length) reject(new Error(`not a whole response: ${JSON.stringify(text.toString('latin1'))}`));
      else resolve({ status: Number(status[1]), body });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET') reject(error);
    });
  });
  return { leave: () => socket.end(), reply };
}

/** Descriptors open in a process and its children (Linux: /proc): their growth is the connections held. */
export function descriptorsOf(pid: number): number {
  let count = 0;
  try {
    count += readdirSync(`/proc/${pid}/fd`).length;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const child of children === '' ? [] : children.split(' ')) count += descriptorsOf(Number(child));
    }
  } catch {
    // the process exited
  }
  return count;
}

/** Resolves once check() holds, looking every 20 ms (no event says it); rejects after limitMs. */
export async function until(check: () => boolean, what: string, limitMs: number): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
