// The limits a listener puts on its connections — cap, queue, per-peer cap,
// idle timeout, write buffer — validated and turned into the native
// configuration. Defaults live here and nowhere else.
import { type NativeListenerConfig, NO_LIMIT } from './native.js';
import { ReactorError } from './errors.js';
import { invalidType, invalidValue, validateBoolean, validateDelay, validateInteger, validateKeys, validateObject } from './validate.js';

export interface QueueOptions {
  /**
   * Where connections over `maxConnections` wait. 'park' (default): accepted
   * natively, not read, in FIFO order, with the limit, timeout, overflow
   * policy and abandonment check below. 'backlog': not accepted at all until
   * a slot frees — they wait in the kernel's listen backlog (its order, its
   * size: `backlog`), spending no descriptor; the settings below then apply
   * only to `maxConnectionsPerPeer` rejections.
   */
  mode?: 'park' | 'backlog' | undefined;
  /** Parked connections beyond this are rejected with `overflow`. Default 1024; 0 never parks. */
  limit?: number | undefined;
  /** A connection parked longer than this is rejected with `overflow`. Default 0: no limit. */
  timeoutMs?: number | undefined;
  /**
   * How a rejected connection is told: 'close' (default, a graceful close),
   * 'reset' (RST), or bytes sent before the graceful close (e.g. an HTTP 503).
   */
  overflow?: 'close' | 'reset' | string | Uint8Array | undefined;
}

export interface WriteBufferOptions {
  /** write() returns false once this many bytes are queued. Default 64 KiB. */
  highWaterMark?: number | undefined;
  /** writeDrained and producers' resume() fire when the queue falls to this. Default 16 KiB. */
  lowWaterMark?: number | undefined;
  /** Queuing beyond this aborts the connection with ERR_WRITE_BUFFER_FULL. Default 16 MiB. */
  maxWriteBuffer?: number | undefined;
}

export interface ConnectionLimitOptions extends WriteBufferOptions {
  /** Idle timeout of every accepted connection (no byte read). Default 0: none. */
  idleTimeoutMs?: number | undefined;
  /** Writes reset the idle clock too. Default false. */
  idleResetOnWrite?: boolean | undefined;
  /** After an idle connection is ended, abort it if the peer has not closed within this. Default 15 s. */
  idleGraceMs?: number | undefined;
  /** Connections served at once; more wait in a FIFO queue. Default: no cap. */
  maxConnections?: number | undefined;
  /** Connections (served or queued) from one IP address; more are rejected. TCP only. Default: no cap. */
  maxConnectionsPerPeer?: number | undefined;
  queue?: QueueOptions | undefined;
  /**
   * Every connection starts with a PROXY protocol header (HAProxy's, v1 or
   * v2, told apart by its signature): a proxy in front (nginx
   * `proxy_protocol on`, HAProxy `send-proxy`/`send-proxy-v2`) names the
   * client. The connection is admitted, and reaches the protocol or request
   * handler, only once its header is read and taken off; a transport's
   * `remoteAddress` is then the client's (the socket's own for LOCAL and
   * UNKNOWN headers) and `proxyAddress` the proxy's. A missing, malformed,
   * oversized (v2 over 4 KiB) or late header closes the connection, counted
   * in `reactor.stats()` (proxyMissing, proxyMalformed, proxyTooLarge,
   * proxyTimeouts, proxyAbandoned). `maxConnectionsPerPeer` then counts the
   * clients the headers name. Only for listeners reached through the proxy
   * alone: anyone who can connect can name any address. Default false.
   */
  proxyProtocol?: boolean | undefined;
  /** With `proxyProtocol`: a header not complete within this closes the connection. Default 5 s; 0: no limit. */
  proxyHeaderTimeoutMs?: number | undefined;
}

/** @internal A transport's write buffer limits, in bytes. Shared, never mutated. */
export interface WriteLimits {
  readonly high: number;
  readonly low: number;
  readonly max: number;
}

/** @internal */
export const WRITE_BUFFER_KEYS = ['highWaterMark', 'lowWaterMark', 'maxWriteBuffer'] as const;
/** @internal Every key of ConnectionLimitOptions: listeners take these besides their own. */
export const LIMIT_KEYS = [
  ...WRITE_BUFFER_KEYS,
  'idleTimeoutMs',
  'idleResetOnWrite',
  'idleGraceMs',
  'maxConnections',
  'maxConnectionsPerPeer',
  'queue',
  'proxyProtocol',
  'proxyHeaderTimeoutMs',
] as const;
const QUEUE_KEYS = ['mode', 'limit', 'timeoutMs', 'overflow'] as const;

/** @internal */
export const DEFAULT_WRITE_LIMITS: WriteLimits = Object.freeze({ high: 64 * 1024, low: 16 * 1024, max: 16 * 1024 * 1024 });
/** @internal */
export const DEFAULT_IDLE_GRACE_MS = 15_000;
const DEFAULT_QUEUE_LIMIT = 1024;
// HAProxy's spec asks for at least 3 s, to cover a TCP retransmission.
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;
const MAX_U32 = NO_LIMIT - 1;
const NO_BYTES = new Uint8Array(0);

/** @internal */
export interface ListenerConfig {
  writeLimits: WriteLimits;
  native: NativeListenerConfig;
}

/** @internal */
export function parseWriteLimits(options: WriteBufferOptions, base: WriteLimits = DEFAULT_WRITE_LIMITS): WriteLimits {
  const high = validateInteger(options.highWaterMark ?? base.high, 'highWaterMark', 1, MAX_U32);
  const defaultLow = options.highWaterMark === undefined ? base.low : Math.floor(high / 4);
  const low = validateInteger(options.lowWaterMark ?? defaultLow, 'lowWaterMark', 0, MAX_U32);
  const max = validateInteger(options.maxWriteBuffer ?? Math.max(base.max, high), 'maxWriteBuffer', 1, MAX_U32);
  if (low > high) throw new ReactorError('ERR_OUT_OF_RANGE', `"lowWaterMark" (${low}) must not exceed "highWaterMark" (${high})`);
  if (max < high) throw new ReactorError('ERR_OUT_OF_RANGE', `"maxWriteBuffer" (${max}) must be at least "highWaterMark" (${high})`);
  return high === base.high && low === base.low && max === base.max ? base : Object.freeze({ high, low, max });
}

/** @internal A millisecond duration for the native side (u32); fractions round up. */
export function validateMs(value: unknown, name: string): number {
  const ms = validateDelay(value, name);
  if (ms > MAX_U32) throw new ReactorError('ERR_OUT_OF_RANGE', `"${name}" must be at most ${MAX_U32} ms, got ${ms}`);
  return ms;
}

/** A count >= min, or Infinity for no limit. */
function validateLimit(value: unknown, name: string, min: number): number {
  if (value === Infinity) return NO_LIMIT;
  return validateInteger(value, name, min, MAX_U32);
}

function validateOverflow(value: unknown): { reset: boolean; bytes: Uint8Array } {
  if (value === 'close') return { reset: false, bytes: NO_BYTES };
  if (value === 'reset') return { reset: true, bytes: NO_BYTES };
  if (typeof value === 'string') {
    // A reply is bytes; a lone word is far likelier a misspelt policy ('rst').
    if (/^[A-Za-z_-]{1,16}$/.test(value)) {
      throw invalidValue('queue.overflow', JSON.stringify(value), "must be 'close', 'reset' or the reply's bytes (pass a lone word as a Buffer)");
    }
    return { reset: false, bytes: Buffer.from(value) };
  }
  if (value instanceof Uint8Array) return { reset: false, bytes: value };
  throw invalidType('queue.overflow', "'close', 'reset', a string or a Uint8Array", value);
}

function validateQueueMode(value: unknown): 'park' | 'backlog' {
  if (value === 'park' || value === 'backlog') return value;
  if (typeof value !== 'string') throw invalidType('queue.mode', "'park' or 'backlog'", value);
  throw invalidValue('queue.mode', value, "must be 'park' or 'backlog'");
}

/** @internal */
export function parseListenerConfig(options: ConnectionLimitOptions, tcp: boolean): ListenerConfig {
  const queue = options.queue ?? {};
  validateObject(queue, 'queue');
  validateKeys(queue, 'queue', QUEUE_KEYS);
  if (!tcp && options.maxConnectionsPerPeer !== undefined) {
    throw invalidValue('maxConnectionsPerPeer', options.maxConnectionsPerPeer, 'applies to TCP listeners only');
  }
  const overflow = validateOverflow(queue.overflow ?? 'close');
  const proxyProtocol = validateBoolean(options.proxyProtocol ?? false, 'proxyProtocol');
  if (!proxyProtocol && options.proxyHeaderTimeoutMs !== undefined) {
    throw invalidValue('proxyHeaderTimeoutMs', options.proxyHeaderTimeoutMs, 'applies only with proxyProtocol: true');
  }
  const writeLimits = parseWriteLimits(options);
  return {
    writeLimits,
    native: {
      maxConnections: validateLimit(options.maxConnections ?? Infinity, 'maxConnections', 1),
      maxConnectionsPerPeer: validateLimit(options.maxConnectionsPerPeer ?? Infinity, 'maxConnectionsPerPeer', 1),
      queueLimit: validateInteger(queue.limit ?? DEFAULT_QUEUE_LIMIT, 'queue.limit', 0, MAX_U32),
      queueTimeoutMs: validateMs(queue.timeoutMs ?? 0, 'queue.timeoutMs'),
      overflowReset: overflow.reset,
      overflowBytes: overflow.bytes,
      idleTimeoutMs: validateMs(options.idleTimeoutMs ?? 0, 'idleTimeoutMs'),
      idleGraceMs: validateMs(options.idleGraceMs ?? DEFAULT_IDLE_GRACE_MS, 'idleGraceMs'),
      idleResetOnWrite: validateBoolean(options.idleResetOnWrite ?? false, 'idleResetOnWrite'),
      highWaterMark: writeLimits.high,
      lowWaterMark: writeLimits.low,
      maxWriteBuffer: writeLimits.max,
      waitInBacklog: validateQueueMode(queue.mode ?? 'park') === 'backlog',
      proxyProtocol,
      proxyHeaderTimeoutMs: validateMs(options.proxyHeaderTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS, 'proxyHeaderTimeoutMs'),
    },
  };
}
