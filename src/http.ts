// The native HTTP/1.1 server's JavaScript side: its options, the server
// object, and the requests in progress of a reactor (one per connection at a
// time: the core parses the next only once the response ended), fed by the
// reactor's dispatcher with the HTTP records.
import { ReactorError } from './errors.js';
import type { HTTPRequest } from './http-request.js';
import { HTTPResponse, type ResponseSink } from './http-response.js';
import { type Address, type ListenSocketOptions, toAddress } from './address.js';
import type { Listener } from './listener.js';
import { type ConnectionLimitOptions, LIMIT_KEYS, validateMs } from './limits.js';
import { HttpDescriptor, type NativeHttpConfig, type NativeReactor, NO_LIMIT, packId, RecordKind, slotOf } from './native.js';
import { validateInteger } from './validate.js';

export interface ListenHTTPOptions extends ListenSocketOptions, Omit<ConnectionLimitOptions, 'idleTimeoutMs' | 'idleResetOnWrite'> {
  /** Request line and headers; more: 431. Default 16 KiB (node:http's). */
  maxHeaderBytes?: number | undefined;
  /** A request body (declared or chunked); more: 413. Default 1 MiB (nginx's); Infinity: none. */
  maxBodyBytes?: number | undefined;
  /** From a request's first byte to its complete head; longer: 408 (slowloris). Default 30 s. */
  headersTimeoutMs?: number | undefined;
  /**
   * From a request's first byte to its complete body; longer: 408, or the
   * connection closed if the response has begun (slow bodies). The response
   * itself may take any time (long-polls). Default 300 s (node:http's); 0: none.
   */
  requestTimeoutMs?: number | undefined;
  /** A keep-alive connection idle between requests is closed after this. Default 60 s; 0: never. */
  keepAliveTimeoutMs?: number | undefined;
}

export type RequestHandler = (request: HTTPRequest, response: HTTPResponse) => void;

/** @internal The connection limits an HTTP listener takes (its idle timeout is keepAliveTimeoutMs). */
export const HTTP_LIMIT_KEYS = LIMIT_KEYS.filter((key) => key !== 'idleTimeoutMs' && key !== 'idleResetOnWrite');
/** @internal */
export const HTTP_KEYS = ['maxHeaderBytes', 'maxBodyBytes', 'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs'] as const;

const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 60_000;
// Unparsed bytes held for a connection (pipelined requests, a paused body).
const MAX_PENDING_BYTES = 64 * 1024;

/** @internal */
export function parseHttpConfig(options: ListenHTTPOptions): NativeHttpConfig {
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return {
    maxHeaderBytes: validateInteger(options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES, 'maxHeaderBytes', 64, 1024 * 1024),
    maxBodyBytes: maxBody === Infinity ? NO_LIMIT : validateInteger(maxBody, 'maxBodyBytes', 0, NO_LIMIT - 1),
    headersTimeoutMs: validateMs(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, 'headersTimeoutMs'),
    requestTimeoutMs: validateMs(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 'requestTimeoutMs'),
    keepAliveTimeoutMs: validateMs(options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS, 'keepAliveTimeoutMs'),
    maxPendingBytes: MAX_PENDING_BYTES,
  };
}

/** A native HTTP/1.1 server: `reactor.listenHTTP(options, handler)`. */
export class HTTPServer {
  #drained: Promise<void> | undefined;

  /** @internal */
  constructor(
    /** The listening socket: its address, connections, queue and close(). */
    readonly listener: Listener,
    /** @internal */ readonly handler: RequestHandler,
    /** @internal */ readonly highWaterMark: number,
    private readonly exchanges: HttpExchanges,
  ) {}

  get address(): Address {
    return this.listener.address;
  }

  /**
   * Stops accepting and closes the keep-alive connections waiting between
   * requests (as node:http's close()); one with a request in progress closes
   * once its response has gone out. Resolves when the last connection the
   * server accepted has ended (or its reactor closed): a worker's drain.
   * Throws ERR_SERVER_NOT_RUNNING if already closed.
   */
  close(): Promise<void> {
    this.listener.close();
    return this.exchanges.closeServer(this.listener.id);
  }

  /**
   * A worker's graceful stop (runWorkers): stops accepting without closing
   * the socket (the processes sharing it take the new clients). Keep-alive
   * connections waiting between requests close now; every other one is
   * served one more request, answered with `Connection: close` — a connection
   * accepted whose request is still on its way is not dropped; one that stays
   * silent holds the drain until its idle timeout (keepAliveTimeoutMs). Then
   * the listener closes. Resolves when the last connection has ended.
   */
  drain(): Promise<void> {
    this.#drained ??= this.#drain();
    return this.#drained;
  }

  async #drain(): Promise<void> {
    this.listener.stopAccepting();
    await this.exchanges.connectionsEnded(this.listener.id);
    if (this.listener.listening) await this.close();
  }
}

/** @internal What the requests need from the reactor. */
export interface ExchangeHost {
  readonly native: NativeReactor;
  /** A batch of records is being dispatched. */
  readonly dispatching: boolean;
  callbackFailed(error: unknown): void;
}

/** @internal The HTTP servers of a reactor and their requests in progress, by connection slot. */
export class HttpExchanges implements ResponseSink {
  readonly #servers = new Map<number, HTTPServer>();
  // Closed or draining servers waiting for their connections to end, by listener id.
  readonly #ending = new Map<number, (() => void)[]>();
  // The response (holding its request) in progress on each connection.
  readonly #bySlot: (HTTPResponse | undefined)[] = [];
  #words: Int32Array = new Int32Array(0);
  #corked: HTTPResponse[] = [];
  #wordsOf: Buffer | undefined;

  constructor(private readonly host: ExchangeHost) {}

  add(server: HTTPServer): void {
    this.#servers.set(server.listener.id, server);
  }

  get batching(): boolean {
    return this.host.dispatching;
  }

  cork(response: HTTPResponse): void {
    this.#corked.push(response);
  }

  /** The batch ended: responses written during it go out, one send each; closed servers may have drained. */
  batchEnded(): void {
    const corked = this.#corked;
    if (corked.length > 0) {
      this.#corked = [];
      for (const response of corked) response.uncork();
    }
    if (this.#ending.size > 0) this.settleDrained();
  }

  respond(id: number, status: number, reason: string, lines: string, flags: number, body: string | Uint8Array | undefined, end: boolean): number {
    const native = this.host.native;
    // The head's extras only when there are any: a bare end(body) is four arguments.
    if (reason !== '') return native.httpRespond(id, status, body, end, flags, lines, reason);
    if (lines !== '' || flags !== 0) return native.httpRespond(id, status, body, end, flags, lines);
    return native.httpRespond(id, status, body, end);
  }

  send(id: number, body: string | Uint8Array | undefined, end: boolean): number {
    return this.host.native.httpSend(id, body, end);
  }

  bodyReading(id: number, reading: boolean): void {
    this.host.native.httpBodyReading(id, reading);
  }

  address(id: number, proxy: boolean): Address | undefined {
    const raw = proxy ? this.host.native.proxyAddress(id) : this.host.native.address(id, true);
    return typeof raw === 'number' ? undefined : toAddress(raw);
  }

  finished(response: HTTPResponse): void {
    const slot = slotOf(response.id);
    if (this.#bySlot[slot] === response) this.#bySlot[slot] = undefined;
  }

  /** An HTTP record (RecordKind.HttpRequest, HttpBody, HttpEnd). */
  handle(kind: number, slot: number, id: number, a: number, b: number, slab: Buffer): void {
    if (kind === RecordKind.HttpRequest) {
      this.#request(slot, id, a, slab);
      return;
    }
    const response = this.#bySlot[slot];
    if (response === undefined || response.id !== id) return;
    if (kind === RecordKind.HttpBody) response.request.received(slab.subarray(a, a + b));
    else response.request.ended();
  }

  /**
   * A connection record for a connection with no transport: an HTTP one's
   * end (the client went away: its request in progress is aborted, as
   * node:http does), close, or drain.
   */
  connectionEvent(kind: number, slot: number, id: number): void {
    const found = this.#bySlot[slot];
    const response = found !== undefined && found.id === id ? found : undefined;
    if (kind === RecordKind.Drain) {
      response?.drained();
      return;
    }
    if (kind !== RecordKind.Eof && kind !== RecordKind.Closed) return;
    if (kind === RecordKind.Eof) this.host.native.close(id);
    if (response === undefined) return;
    this.#bySlot[slot] = undefined;
    response.destroy();
    response.request.abort(new ReactorError('ECONNRESET', 'the client went away before the response ended'));
  }

  #request(slot: number, id: number, at: number, slab: Buffer): void {
    if (this.#wordsOf !== slab) {
      this.#wordsOf = slab;
      this.#words = new Int32Array(slab.buffer, slab.byteOffset, slab.length >> 2);
    }
    const words = this.#words;
    const first = at >> 2;
    const listener = packId(words[first + HttpDescriptor.ListenerSlot]!, words[first + HttpDescriptor.ListenerGen]!);
    const server = this.#servers.get(listener);
    if (server === undefined) {
      this.host.native.abort(id); // its server closed earlier in this batch
      return;
    }
    const response = new HTTPResponse(this, id, server.highWaterMark, slab, words, first);
    this.#bySlot[slot] = response;
    try {
      server.handler(response.request, response);
    } catch (error) {
      if (this.#bySlot[slot] === response) {
        if (!response.headersSent) {
          response.statusCode = 500;
          response.end();
        } else {
          this.host.native.abort(id);
          this.#bySlot[slot] = undefined;
        }
      }
      this.host.callbackFailed(error);
    }
  }

  /** @internal Resolves once the listener (closed, or no longer accepting) has no connection left. */
  connectionsEnded(listenerId: number): Promise<void> {
    return new Promise((resolve) => {
      const waiting = this.#ending.get(listenerId);
      if (waiting === undefined) this.#ending.set(listenerId, [resolve]);
      else waiting.push(resolve);
      this.settleDrained();
    });
  }

  /** @internal A server's listener closed: resolves once its connections have ended. */
  closeServer(listenerId: number): Promise<void> {
    this.#servers.delete(listenerId);
    return this.connectionsEnded(listenerId);
  }

  /**
   * Resolves the waits of servers whose last connection ended. Called after
   * every batch (where connections close) and when the reactor closes (the
   * count is 0 then).
   */
  settleDrained(): void {
    const native = this.host.native;
    for (const [listenerId, waiting] of this.#ending) {
      if (native.listenerConnections(listenerId) > 0) continue;
      this.#ending.delete(listenerId);
      for (const resolve of waiting) resolve();
    }
  }
}
