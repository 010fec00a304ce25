// Helpers for the flow-control tests (pause/resume, watermarks, producers,
// maxWriteBuffer). Like helpers.ts, nothing here sleeps: waits are promises
// settled from protocol callbacks; the only timed thing is a scheduled
// reactor.callLater.
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Reactor, Transport, TransportState } from '../src/index.js';
import { Collector, deferred } from './helpers.js';

export const HOST = '127.0.0.1';
export const KiB = 1024;
export const MiB = 1024 * 1024;
/** The documented defaults. */
export const DEFAULT_HIGH = 64 * KiB;
export const DEFAULT_LOW = 16 * KiB;

export const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** What one write() said, and the queue right after it. */
export interface WriteRecord {
  ok: boolean;
  buffered: number;
  state: TransportState;
  threw?: unknown;
}

export interface WriteRun {
  records: WriteRecord[];
  /** Bytes handed to write() that it accepted (it did not throw). */
  written: number;
}

/**
 * Writes payload in `chunk`-sized pieces, from offset `from`, recording each
 * result, until `stop(record)` says so, the transport is closed, or `maxBytes`
 * were written. Never throws: a throwing write is recorded and ends the run.
 */
export function writeChunks(
  transport: Transport,
  payload: Buffer,
  chunk: number,
  options: { from?: number; maxBytes?: number; stop?: (record: WriteRecord) => boolean } = {},
): WriteRun {
  const records: WriteRecord[] = [];
  let at = options.from ?? 0;
  const end = Math.min(payload.length, at + (options.maxBytes ?? payload.length));
  let written = 0;
  while (at < end && transport.state !== 'closed') {
    const piece = payload.subarray(at, Math.min(end, at + chunk));
    let record: WriteRecord;
    try {
      const ok = transport.write(piece);
      record = { ok, buffered: transport.bufferedAmount, state: transport.state };
      written += piece.length;
      at += piece.length;
    } catch (error) {
      records.push({ ok: false, buffered: transport.bufferedAmount, state: transport.state, threw: error });
      break;
    }
    records.push(record);
    if (options.stop?.(record)) break;
  }
  return { records, written };
}

/** Writes the same buffer over and over (no big payload needed), like writeChunks. */
export function writeRepeatedly(
  transport: Transport,
  piece: Buffer,
  times: number,
  stop?: (record: WriteRecord) => boolean,
): WriteRun {
  const records: WriteRecord[] = [];
  let written = 0;
  for (let i = 0; i < times && transport.state !== 'closed'; i++) {
    try {
      const ok = transport.write(piece);
      written += piece.length;
      const record = { ok, buffered: transport.bufferedAmount, state: transport.state };
      records.push(record);
      if (stop?.(record)) break;
    } catch (error) {
      records.push({ ok: false, buffered: transport.bufferedAmount, state: transport.state, threw: error });
      break;
    }
  }
  return { records, written };
}

/** A promise settled by a reactor timer (the only "wait" these tests use, to schedule a step). */
export function after(reactor: Reactor, ms: number, fn: () => void = () => {}): Promise<void> {
  const done = deferred<void>();
  reactor.callLater(ms, () => {
    try {
      fn();
      done.resolve();
    } catch (error) {
      done.reject(error);
    }
  });
  return done.promise;
}

/** A client that stops reading as soon as it is connected (a reader that never reads, until resumed). */
export class PausedReader extends Collector {
  override connectionMade(transport: Transport): void {
    transport.pause();
    super.connectionMade(transport);
  }
}

/** A Collector that also records every writeDrained (the queue size when it ran). */
export class DrainWatcher extends Collector {
  readonly drains: number[] = [];
  readonly drained = deferred<void>();

  writeDrained(transport: Transport): void {
    this.drains.push(transport.bufferedAmount);
    this.drained.resolve();
  }
}

/** A node:net server on 127.0.0.1; resolves with its port. */
export async function listenNet(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/** Collects a node:net socket's bytes; `received(n)` resolves once n arrived. */
export class NetCollector {
  readonly chunks: Buffer[] = [];
  length = 0;
  #waiters: { n: number; resolve(data: Buffer): void; reject(error: unknown): void }[] = [];

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.#waiters = this.#waiters.filter((w) => {
        if (this.length < w.n) return true;
        w.resolve(Buffer.concat(this.chunks));
        return false;
      });
    });
    socket.on('close', () => {
      for (const w of this.#waiters) w.reject(new Error(`socket closed after ${this.length} bytes`));
      this.#waiters = [];
    });
    socket.on('error', () => {}); // reported through 'close'
  }

  received(n: number): Promise<Buffer> {
    if (this.length >= n) return Promise.resolve(Buffer.concat(this.chunks));
    const d = deferred<Buffer>();
    this.#waiters.push({ n, resolve: d.resolve, reject: d.reject });
    return d.promise;
  }
}
