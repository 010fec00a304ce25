// What the streams bridge's tests share: node:http served over a
// StreamServer, curl run as a child with a time bound, and a bound on waits.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
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

/** Runs curl (bounded by --max-time) and gives its stdout; rejects on a non-zero exit. */
export function curl(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', '15', ...args], { encoding: 'buffer', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
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
