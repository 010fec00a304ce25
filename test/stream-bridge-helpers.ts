// What the streams bridge's tests share: node:http served over a
// StreamServer, curl run as a child with a time bound, and a bound on waits.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { afterAll, beforeAll } from 'vitest';
import { createStreamServer, type Reactor, type StreamServer, type StreamServerOptions, type TransportStream } from '../src/index.js';

export const HOST = '127.0.0.1';

/** Rejects when `promise` has not settled within `ms` (a bound, not a wait). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

export interface Bridged {
  http: http.Server;
  server: StreamServer;
  port: number;
  /** Every stream the bridge handed to node:http, in order. */
  streams: TransportStream[];
}

/** node:http (`handler`) served over the bridge on a loopback port. */
export async function serveHttp(
  reactor: Reactor,
  handler: http.RequestListener,
  options: StreamServerOptions = {},
  server: http.Server = http.createServer(handler),
): Promise<Bridged> {
  const streams: TransportStream[] = [];
  const bridge = createStreamServer(reactor, options, (stream) => {
    streams.push(stream);
    server.emit('connection', stream);
  });
  await new Promise<void>((resolve) => bridge.listen(0, HOST, resolve));
  return { http: server, server: bridge, port: bridge.address()!.port, streams };
}

// curl is not instrumented: under npm run test:asan the sanitizer runtime
// preloaded for node would be preloaded into it too (curl hangs).
const CURL_ENV = { ...process.env, LD_PRELOAD: '' };

/** Runs curl (bounded by --max-time) and gives its stdout; rejects on a non-zero exit. */
export function curl(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const options = { encoding: 'buffer' as const, maxBuffer: 64 << 20, env: CURL_ENV };
    execFile('curl', ['--silent', '--show-error', '--max-time', '15', ...args], options, (error, stdout, stderr) => {
      if (error) reject(new Error(`curl ${args.join(' ')}: ${error.message} ${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

export function sha256(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Collects a readable's bytes. */
export async function collect(readable: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface Certificate {
  /** PEM files, for the examples' --cert and --key and curl's --cacert. */
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  remove(): void;
}

/**
 * A self-signed certificate for localhost and 127.0.0.1, made by openssl in
 * a directory of its own. A P-256 key: made in milliseconds, where RSA takes
 * a noticeable while.
 */
export function makeCertificate(prefix: string): Certificate {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', keyPath, '-out', certPath,
    ],
    { stdio: 'ignore', timeout: 15_000 },
  );
  return {
    certPath,
    keyPath,
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A certificate made before a file's tests and removed after them: its fields are set once they run. */
export function suiteCertificate(prefix: string): Certificate {
  const certificate = {} as Certificate;
  beforeAll(() => void Object.assign(certificate, makeCertificate(prefix)));
  afterAll(() => certificate.remove());
  return certificate;
}
