import { ReactorError } from './errors.js';
import type { Transport } from './transport.js';
import type { DatagramProtocol } from './udp.js';
import { editDistance, invalidType, validateObject } from './validate.js';

/**
 * What a connection does with its events. Only `dataReceived` is required.
 * Every method also gets the transport, so one object can serve many
 * connections.
 */
export interface Protocol {
  /** The connection is open; `transport` can be kept and written to from now on. */
  connectionMade?: ((transport: Transport) => void) | undefined;
  /**
   * Bytes as they arrived. The Buffer is a view of a read slab that is never
   * rewritten, so it stays valid for as long as it is kept, with no copy.
   */
  dataReceived(data: Buffer, transport: Transport): void;
  /**
   * Set to false to promise that `dataReceived` never keeps `data` (or a view
   * of it) after it returns — writing it is fine, since unsent bytes are
   * copied. The reactor then reads into the same memory again instead of a
   * fresh slab, like node:net's `onread` buffer. Default: kept, and valid
   * for as long as it is kept.
   */
  readonly keepsData?: boolean | undefined;
  /**
   * The peer shut down its write side. If this method exists the connection
   * stays open for writing (end() or close() it when done); otherwise the
   * transport closes itself once its queued bytes are flushed.
   */
  readConnectionLost?: ((transport: Transport) => void) | undefined;
  /**
   * Bytes queued for writing fell to the transport's lowWaterMark after a
   * write() had returned false: a good moment to write more.
   */
  writeDrained?: ((transport: Transport) => void) | undefined;
  /**
   * The idle timeout expired (see listener `idleTimeoutMs` and
   * transport.setIdleTimeout). If this method exists it decides: close or end
   * the transport, or do nothing to keep it for another period. Without it,
   * the reactor ends the connection gracefully (flushes, shuts down the write
   * side, discards input) and aborts it after the grace period if the peer
   * has not closed; connectionLost then gets ERR_IDLE_TIMEOUT.
   */
  timeoutConnection?: ((transport: Transport) => void) | undefined;
  /**
   * reactor.shutdown() began. If this method exists, the protocol finishes
   * its work and closes the transport itself (before the shutdown's timeout,
   * after which the connection is aborted); otherwise the transport is
   * close()d at once (queued bytes are flushed first).
   */
  shutdownRequested?: ((transport: Transport) => void) | undefined;
  /**
   * The connection is closed and its descriptor released; runs once, and
   * only after connectionMade. `reason` is undefined for a clean close
   * (either side) and otherwise a ReactorError whose code says how it ended:
   * a system error (ECONNRESET, EPIPE, ...), ERR_CONNECTION_ABORTED (abort()),
   * ERR_STREAM_WRITE_AFTER_END, ERR_WRITE_BUFFER_FULL, ERR_IDLE_TIMEOUT,
   * ERR_IDLE_GRACE_EXPIRED, ERR_SHUTDOWN_TIMEOUT, ERR_CALLBACK_THREW or
   * ERR_REACTOR_CLOSED (README, Errors).
   */
  connectionLost?: ((reason: ReactorError | undefined, transport: Transport) => void) | undefined;
}

/** Builds the protocol for an accepted connection; null/undefined refuses it (closed at once). */
export type ProtocolFactory = (transport: Transport) => Protocol | null | undefined;

/** What a kind of protocol may have: its methods, the one it must have, and its other members. */
interface ProtocolShape {
  readonly name: string;
  readonly required: string;
  readonly methods: readonly string[];
  readonly members: readonly string[];
  // Objects (and class prototypes) already checked: a factory that returns the
  // same protocol, or instances of one class, cost one WeakSet lookup.
  readonly checked: WeakSet<object>;
}

function shape(required: string, methods: readonly string[]): ProtocolShape {
  return { name: 'protocol', required, methods, members: [...methods, 'keepsData'], checked: new WeakSet() };
}

const STREAM = shape('dataReceived', [
  'connectionMade',
  'dataReceived',
  'readConnectionLost',
  'writeDrained',
  'timeoutConnection',
  'shutdownRequested',
  'connectionLost',
]);

const DATAGRAM = shape('datagramReceived', ['startProtocol', 'datagramReceived', 'connectionRefused', 'socketError', 'stopProtocol']);

/**
 * @internal
 * A protocol has dataReceived, its known members have the right types, and no
 * member is a near miss of a known one ("dataRecieved", "keepData"), which
 * would otherwise never be called, without a word.
 */
export function validateProtocol(protocol: unknown): asserts protocol is Protocol {
  check(protocol, STREAM);
}

/** @internal The same for a UDP socket's protocol (datagramReceived, "datagramRecieved"...). */
export function validateDatagramProtocol(protocol: unknown): asserts protocol is DatagramProtocol {
  check(protocol, DATAGRAM);
}

function check(protocol: unknown, shape: ProtocolShape): void {
  validateObject(protocol, shape.name);
  if (shape.checked.has(protocol)) return;
  const members = protocol as Record<string, unknown>;
  for (const name of shape.methods) {
    const value = members[name];
    if (value !== undefined && typeof value !== 'function') throw invalidType(`${shape.name}.${name}`, 'a function', value);
  }
  if (typeof members[shape.required] !== 'function') {
    throw invalidType(`${shape.name}.${shape.required}`, 'a function', members[shape.required]);
  }
  if (members.keepsData !== undefined && typeof members.keepsData !== 'boolean') {
    throw invalidType(`${shape.name}.keepsData`, 'a boolean', members.keepsData);
  }
  for (let level: object | null = protocol; level !== null && level !== Object.prototype; level = Object.getPrototypeOf(level)) {
    if (level !== protocol && shape.checked.has(level)) break;
    for (const key of Object.getOwnPropertyNames(level)) {
      const miss = nearMiss(key, shape.members);
      if (miss !== undefined) {
        throw new ReactorError('ERR_INVALID_ARG_VALUE', `"${shape.name}.${key}" is not a protocol member; did you mean "${miss}"?`);
      }
    }
    if (level !== protocol) shape.checked.add(level);
  }
  shape.checked.add(protocol);
}

function nearMiss(key: string, members: readonly string[]): string | undefined {
  if (key.length < 8 || members.includes(key)) return undefined;
  const lower = key.toLowerCase();
  return members.find((name) => editDistance(lower, name.toLowerCase()) <= 2);
}
