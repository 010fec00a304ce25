import type { ReactorError } from './errors.js';
import type { Transport } from './transport.js';

/**
 * What a connection does with its events. Only `dataReceived` is required.
 * Every method also gets the transport, so one object can serve many
 * connections.
 */
export interface Protocol {
  /** The connection is open; `transport` can be kept and written to from now on. */
  connectionMade?(transport: Transport): void;
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
  readonly keepsData?: boolean;
  /**
   * The peer shut down its write side. If this method exists the connection
   * stays open for writing (end() or close() it when done); otherwise the
   * transport closes itself once its queued bytes are flushed.
   */
  readConnectionLost?(transport: Transport): void;
  /**
   * Bytes queued for writing fell to the transport's lowWaterMark after a
   * write() had returned false: a good moment to write more.
   */
  writeDrained?(transport: Transport): void;
  /**
   * The idle timeout expired (see listener `idleTimeoutMs` and
   * transport.setIdleTimeout). If this method exists it decides: close or end
   * the transport, or do nothing to keep it for another period. Without it,
   * the reactor ends the connection gracefully (flushes, shuts down the write
   * side, discards input) and aborts it after the grace period if the peer
   * has not closed; connectionLost then gets ERR_IDLE_TIMEOUT.
   */
  timeoutConnection?(transport: Transport): void;
  /**
   * reactor.shutdown() began. If this method exists, the protocol finishes
   * its work and closes the transport itself (before the shutdown's timeout,
   * after which the connection is aborted); otherwise the transport is
   * close()d at once (queued bytes are flushed first).
   */
  shutdownRequested?(transport: Transport): void;
  /**
   * The connection is closed and its descriptor released. `reason` is
   * undefined for a clean close (either side) and an Error with a code
   * (ECONNRESET, EPIPE, ERR_IDLE_TIMEOUT, ERR_WRITE_BUFFER_FULL,
   * ERR_REACTOR_CLOSED, ...) otherwise.
   */
  connectionLost?(reason: ReactorError | undefined, transport: Transport): void;
}

/** Builds the protocol for an accepted connection; null/undefined refuses it (closed at once). */
export type ProtocolFactory = (transport: Transport) => Protocol | null | undefined;
