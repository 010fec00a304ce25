// The response of the native HTTP server: status and headers kept here until
// the first write, then the core writes the status line, Date, framing
// (Content-Length when end() carries the whole body, else chunked) and
// Connection, the headers and the body, in one send when it can.
import { ReactorError } from './errors.js';
import { HTTPEvents } from './http-events.js';
import { HTTPRequest } from './http-request.js';
import { HttpResponseFlags } from './native.js';
import { invalidType } from './validate.js';

/** @internal What responses need from their connections (the server's HttpExchanges). */
export interface ResponseSink {
  /** The head and maybe body bytes: bytes queued, or -errno. */
  respond(id: number, status: number, reason: string, headerLines: string, flags: number, body: string | Uint8Array | undefined, end: boolean): number;
  send(id: number, body: string | Uint8Array | undefined, end: boolean): number;
  /** Pauses (false) or resumes the request body's records. */
  bodyReading(id: number, reading: boolean): void;
  /** The response ended: the connection goes on with its next request. */
  finished(response: HTTPResponse): void;
  /** The reactor is dispatching a batch: writes wait for its end (or for end()). */
  readonly batching: boolean;
  /** Calls response.uncork() when the batch ends. */
  cork(response: HTTPResponse): void;
}

export type HeaderValue = string | number | readonly string[];

// Field names and values as RFC 9110 allows them: a header that would split
// the response (CR, LF) or smuggle one is refused before it is written.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REASON = FIELD_VALUE;

/**
 * Events: 'drain' (write() returned false and the queue fell back), 'finish'
 * (end() handed everything to the core), 'close' (after 'finish', or when the
 * client went away first).
 */
// Response states, one bit each.
const HEAD_DECIDED = 1; // headersSent: the head is decided (it goes with the first bytes sent)
const ENDED = 2;
const DESTROYED = 4; // the client went away, or the connection failed, before end()
const HEAD_SENT = 8;

/**
 * The response to one request, and that request's exchange with the
 * connection: it holds the request (`response.request`) and carries both to
 * the core. Events: 'drain' (write() returned false and the queue fell
 * back), 'finish' (end() handed everything to the core), 'close' (after
 * 'finish', or when the client went away first).
 */
// It is its request's RequestSource (checked where it passes itself): no
// `implements` clause, which would name that internal interface in the types.
export class HTTPResponse extends HTTPEvents {
  statusCode = 200;
  /** Default: the standard phrase of statusCode. */
  statusMessage = '';
  /** The request this answers. */
  readonly request: HTTPRequest;
  private headerMap: Map<string, [string, HeaderValue]> | undefined;
  private state = 0;
  private queued = 0; // by the core after our last send: only our sends grow it
  // Writes made during a batch, sent together at its end or with end() (then
  // with a Content-Length if the head had not gone yet).
  private corking: { chunks: (string | Uint8Array)[]; bytes: number } | undefined;

  /** @internal */
  constructor(
    private readonly sink: ResponseSink,
    /** @internal the connection */ readonly id: number,
    private readonly highWaterMark: number,
    slab: Buffer,
    words: Int32Array,
    at: number,
  ) {
    super();
    this.request = new HTTPRequest(this, slab, words, at);
  }

  get headersSent(): boolean {
    return (this.state & HEAD_DECIDED) !== 0;
  }

  get writableEnded(): boolean {
    return (this.state & ENDED) !== 0;
  }

  /** True once the client went away (or the connection failed) before end(). */
  get destroyed(): boolean {
    return (this.state & DESTROYED) !== 0;
  }

  /** @internal The request's pause() and resume(). */
  bodyReading(reading: boolean): void {
    if ((this.state & (ENDED | DESTROYED)) === 0) this.sink.bodyReading(this.id, reading);
  }

  setHeader(name: string, value: HeaderValue): this {
    this.checkNotSent('setHeader');
    checkHeader(name, value);
    (this.headerMap ??= new Map()).set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.headerMap?.get(name.toLowerCase())?.[1];
  }

  hasHeader(name: string): boolean {
    return this.headerMap?.has(name.toLowerCase()) ?? false;
  }

  removeHeader(name: string): void {
    this.checkNotSent('removeHeader');
    this.headerMap?.delete(name.toLowerCase());
  }

  getHeaderNames(): string[] {
    return [...(this.headerMap?.keys() ?? [])];
  }

  writeHead(status: number, reasonOrHeaders?: string | Record<string, HeaderValue>, headers?: Record<string, HeaderValue>): this {
    this.checkNotSent('writeHead');
    checkStatus(status);
    this.statusCode = status;
    if (typeof reasonOrHeaders === 'string') this.statusMessage = reasonOrHeaders;
    else headers = reasonOrHeaders;
    if (headers !== undefined) {
      for (const name of Object.keys(headers)) this.setHeader(name, headers[name]!);
    }
    return this;
  }

  /** Sends body bytes (the head first, chunked framing). False: wait for 'drain'. */
  write(chunk: string | Uint8Array): boolean {
    checkChunk(chunk);
    if (this.state & ENDED) throw new ReactorError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
    if (this.state & DESTROYED) return false;
    this.decideHead();
    const sink = this.sink;
    if (sink.batching) {
      if (this.corking === undefined) {
        this.corking = { chunks: [], bytes: 0 };
        sink.cork(this);
      }
      this.corking.chunks.push(chunk);
      // A string's UTF-8 takes at most 3 bytes per UTF-16 unit.
      this.corking.bytes += typeof chunk === 'string' ? 3 * chunk.length : chunk.length;
      // Certain whatever the socket takes: the answer it would give after sending.
      if (this.queued + this.corking.bytes < this.highWaterMark) return true;
      this.uncork();
      return this.queued < this.highWaterMark;
    }
    this.queued = this.result(this.send(chunk, false));
    return this.queued < this.highWaterMark;
  }

  /** Ends the response, with its last bytes (the whole body: Content-Length). */
  end(chunk?: string | Uint8Array): this {
    if (chunk !== undefined) checkChunk(chunk);
    if (this.state & ENDED) return this;
    if (this.state & DESTROYED) {
      this.state |= ENDED;
      return this;
    }
    this.decideHead();
    this.state |= ENDED;
    let body = chunk;
    if (this.corking !== undefined) {
      if (chunk !== undefined) this.corking.chunks.push(chunk);
      body = joined(this.corking.chunks);
      this.corking = undefined;
    }
    this.result(this.send(body, true));
    this.sink.finished(this);
    if (this.listened) {
      this.emit('finish');
      this.emit('close');
    }
    return this;
  }

  /** @internal Sends what was corked (the batch ended, or the watermark was near). */
  uncork(): void {
    const corking = this.corking;
    if (corking === undefined) return;
    this.corking = undefined;
    if (this.state & (ENDED | DESTROYED)) return;
    this.queued = this.result(this.send(joined(corking.chunks), false));
  }

  /** @internal The client went away, or the connection failed. */
  destroy(): void {
    if (this.state & (ENDED | DESTROYED)) return;
    this.state |= DESTROYED;
    this.emit('close');
  }

  /** @internal */
  drained(): void {
    this.emit('drain');
  }

  private send(chunk: string | Uint8Array | undefined, end: boolean): number {
    if (this.state & HEAD_SENT) return this.sink.send(this.id, chunk, end);
    this.state |= HEAD_SENT;
    const headerMap = this.headerMap;
    if (headerMap === undefined) return this.sink.respond(this.id, this.statusCode, this.statusMessage, '', 0, chunk, end);
    // The head's lines are made as it goes out, not kept: headers cannot change once decided.
    let lines = '';
    let flags = 0;
    for (const [lower, [name, value]] of headerMap) {
      if (lower === 'content-length') flags |= HttpResponseFlags.UserLength;
      else if (lower === 'connection' || lower === 'transfer-encoding' || lower === 'date') {
        // The server writes these itself: the user's close is a flag.
        if (lower === 'connection' && /(^|,)\s*close\s*(,|$)/i.test(String(value))) flags |= HttpResponseFlags.UserClose;
        continue;
      }
      if (Array.isArray(value)) for (const v of value) lines += `${name}: ${v}\r\n`;
      else lines += `${name}: ${value as string}\r\n`;
    }
    return this.sink.respond(this.id, this.statusCode, this.statusMessage, lines, flags, chunk, end);
  }

  // The head is decided at the first write or end (headersSent from then
  // on, as node:http), sent with the first bytes that go out.
  private decideHead(): void {
    if (this.state & HEAD_DECIDED) return;
    checkStatus(this.statusCode);
    if (this.statusMessage !== '' && !REASON.test(this.statusMessage)) throw new ReactorError('ERR_INVALID_CHAR', 'invalid character in statusMessage');
    this.state |= HEAD_DECIDED;
  }

  // A failure means the connection is gone (its close is reported with it).
  private result(queued: number): number {
    if (queued < 0) {
      this.state |= DESTROYED;
      return Infinity;
    }
    return queued;
  }

  private checkNotSent(what: string): void {
    if (this.state & HEAD_DECIDED) throw new ReactorError('ERR_HTTP_HEADERS_SENT', `${what}: the headers are already sent`);
  }
}

function checkHeader(name: unknown, value: unknown): void {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new ReactorError('ERR_INVALID_HTTP_TOKEN', `header name must be a valid HTTP token, got ${JSON.stringify(name)}`);
  const values = Array.isArray(value) ? value : [value];
  for (const v of values) {
    if (typeof v !== 'string' && typeof v !== 'number') throw invalidType(`header "${name}"`, 'a string, a number or an array of strings', v);
    if (!FIELD_VALUE.test(String(v))) throw new ReactorError('ERR_INVALID_CHAR', `invalid character in header "${name}"`);
  }
}

function joined(chunks: (string | Uint8Array)[]): string | Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  if (chunks.every((chunk) => typeof chunk === 'string')) return chunks.join('');
  return Buffer.concat(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));
}

function checkStatus(status: unknown): void {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 999) {
    throw new ReactorError('ERR_HTTP_INVALID_STATUS_CODE', `invalid status code: ${String(status)}`);
  }
}

function checkChunk(chunk: unknown): void {
  if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) throw invalidType('chunk', 'a string or a Uint8Array', chunk);
}
