// Shared helpers for the vitest suite: deferred promises, echo protocols,
// byte collectors and descriptor counting. Nothing here sleeps: every wait is
// a promise settled from a protocol callback or a process event.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Reactor, type BackendName, type Protocol, type ReactorError, type ReactorOptions, type Transport } from '../src/index.js';

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A reactor on the given backend (Reactor.backends holds plain strings). */
export function newReactor(backend: string, options: Omit<ReactorOptions, 'backend'> = {}): Reactor {
  return new Reactor({ ...options, backend: backend as BackendName });
}

/**
 * How many connections a test may hold open at once in this process (both
 * ends count): select watches only fds below FD_SETSIZE (1024), so tests that
 * want more scale down to what fits there.
 */
export function connectionsFor(backend: string, wanted: number): number {
  return backend === 'select' ? Math.min(wanted, 400) : wanted;
}

/** Closes a reactor unless a test already did. */
export function closeQuietly(reactor: Reactor | undefined): void {
  if (reactor !== undefined && !reactor.closed) reactor.close();
}

/** Echoes every byte; with `halfClose`, ends its own side when the peer ends. */
export function echoProtocol(halfClose = false): Protocol {
  const protocol: Protocol = {
    dataReceived(data, transport) {
      transport.write(data);
    },
  };
  if (halfClose) protocol.readConnectionLost = (transport) => transport.end();
  return protocol;
}

/**
 * A client protocol that collects bytes. `received(n)` resolves once at least
 * n bytes arrived; `lost` resolves with connectionLost's reason.
 */
export class Collector implements Protocol {
  readonly chunks: Buffer[] = [];
  length = 0;
  readonly made = deferred<Transport>();
  readonly lost = deferred<ReactorError | undefined>();
  lostCalls = 0;
  /** Bytes received before connectionLost ran (-1 until then). */
  lengthAtLoss = -1;
  #waiters: { n: number; d: Deferred<Buffer> }[] = [];

  connectionMade(transport: Transport): void {
    this.made.resolve(transport);
  }

  dataReceived(data: Buffer): void {
    this.chunks.push(data);
    this.length += data.length;
    this.#waiters = this.#waiters.filter(({ n, d }) => {
      if (this.length < n) return true;
      d.resolve(this.bytes());
      return false;
    });
  }

  connectionLost(reason: ReactorError | undefined): void {
    this.lostCalls++;
    this.lengthAtLoss = this.length;
    for (const { d } of this.#waiters) {
      d.reject(new Error(`connection lost (${reason?.code ?? 'clean'}) after ${this.length} bytes`));
    }
    this.#waiters = [];
    this.lost.resolve(reason);
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  received(n: number): Promise<Buffer> {
    if (this.length >= n) return Promise.resolve(this.bytes());
    const d = deferred<Buffer>();
    this.#waiters.push({ n, d });
    return d.promise;
  }
}

/**
 * Counts server-side connections: made/lost totals and a promise resolved when
 * `lost` reaches a target.
 */
export class ServerCounter {
  made = 0;
  lost = 0;
  readonly transports: Transport[] = [];
  readonly reasons: (ReactorError | undefined)[] = [];
  #targets: { n: number; d: Deferred<void> }[] = [];

  constructor(private readonly inner: Protocol = echoProtocol()) {}

  factory = (): Protocol => {
    const inner = this.inner;
    const protocol: Protocol = {
      connectionMade: (transport) => {
        this.made++;
        this.transports.push(transport);
        inner.connectionMade?.(transport);
      },
      dataReceived: (data, transport) => inner.dataReceived(data, transport),
      connectionLost: (reason, transport) => {
        this.lost++;
        this.reasons.push(reason);
        inner.connectionLost?.(reason, transport);
        this.#targets = this.#targets.filter(({ n, d }) => {
          if (this.lost < n) return true;
          d.resolve();
          return false;
        });
      },
    };
    if (inner.readConnectionLost) protocol.readConnectionLost = (t) => inner.readConnectionLost!(t);
    return protocol;
  };

  lostAtLeast(n: number): Promise<void> {
    if (this.lost >= n) return Promise.resolve();
    const d = deferred<void>();
    this.#targets.push({ n, d });
    return d.promise;
  }
}

/** A fresh Unix socket path in the temp directory. */
export function tmpSocketPath(tag: string): string {
  for (;;) {
    const path = join(tmpdir(), `nr-${tag}-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
    if (!existsSync(path)) return path;
  }
}

// Windows builds have no Unix-domain sockets yet: listenUnix and connectUnix
// fail there with EAFNOSUPPORT (test/unix.test.ts checks that instead).
export const hasUnixSockets = process.platform !== 'win32';

// Linux (a link to /proc/self/fd) and macOS list a process's descriptors here.
export const hasFdDirectory = existsSync('/dev/fd/0');

/** Open descriptors of this process. */
export function openFds(): number {
  return readdirSync('/dev/fd').length;
}

/** Bytes that never repeat with a short period: a 32-bit counter, little-endian. */
export function patterned(length: number, seed = 0): Buffer {
  const buffer = Buffer.alloc(length);
  let i = 0;
  for (; i + 4 <= length; i += 4) buffer.writeUInt32LE((seed + i / 4) >>> 0, i);
  for (; i < length; i++) buffer[i] = i & 0xff;
  return buffer;
}

/** Whether a process is still running (or a zombie not yet waited for). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Expects fn to throw an error carrying `code`. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code ?? 'NO_CODE';
  }
  return undefined;
}

/** The code a promise rejects with (undefined if it resolves). */
export async function rejectionCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? 'NO_CODE';
  }
  return undefined;
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command (a fixture under node, say) to its end, killed with SIGKILL
 * after `timeoutMs`; a crash shows as its exit code or signal.
 */
export function runProcess(command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
