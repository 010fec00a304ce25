// A request of the native HTTP server: its head read from the descriptor the
// core wrote in the read slab (strings made only when asked for), its body
// as 'data' events with pause()/resume() reaching the native parser.
import { HTTPEvents } from './http-events.js';
import { HttpDescriptor, HttpHeadFlags } from './native.js';

// Request states, one bit each.
const PAUSED = 1;
const COMPLETE = 2; // the whole body has arrived
const ABORTED = 4;
const END_EMITTED = 8;

/** @internal What a request needs from its connection. */
export interface RequestSource {
  /** Pauses (false) or resumes the native body records. */
  bodyReading(reading: boolean): void;
}

/**
 * An incoming request. Events: 'data' (Buffer: body bytes, views of the read
 * memory, safe to keep), 'end' (the body is complete), 'aborted' (the client
 * went away before the response ended), 'close'.
 */
export class HTTPRequest extends HTTPEvents {
  /** Aborted when the client goes away before the response ends (long-polls hang on it). */
  private controller: AbortController | undefined;
  private methodText: string | undefined;
  private urlText: string | undefined;
  private headerTable: Record<string, string | string[]> | undefined;
  private pending: Buffer[] | undefined; // body bytes that came before a 'data' listener
  private state = 0; // PAUSED | COMPLETE | ABORTED | END_EMITTED: one field, not four, per request

  /** @internal */
  constructor(
    private readonly source: RequestSource,
    private readonly slab: Buffer,
    private readonly words: Int32Array,
    /** @internal first word of the descriptor */ private readonly at: number,
  ) {
    super();
  }

  /** @internal */
  get flags(): number {
    return this.words[this.at + HttpDescriptor.Flags]!;
  }

  private text(offsetWord: number): string {
    const start = this.headBytes() + this.words[this.at + offsetWord]!;
    return this.slab.toString('latin1', start, start + this.words[this.at + offsetWord + 1]!);
  }

  // Slab offset of the head's bytes, after the header spans.
  private headBytes(): number {
    return (this.at + HttpDescriptor.FixedWords + 4 * this.words[this.at + HttpDescriptor.HeaderCount]!) * 4;
  }

  get method(): string {
    return (this.methodText ??= this.text(HttpDescriptor.MethodOffset));
  }

  /** The request target as sent: path and query ("/a?b=1"), or an absolute URL. */
  get url(): string {
    return (this.urlText ??= this.text(HttpDescriptor.TargetOffset));
  }

  /** "1.1" or "1.0". */
  get httpVersion(): string {
    return (this.flags >> 8) & 0xff ? '1.1' : '1.0';
  }

  /** Whether the connection stays open after the response (as the request asked). */
  get keepAlive(): boolean {
    return (this.flags & HttpHeadFlags.KeepAlive) !== 0;
  }

  /** The body's declared length (Content-Length), or undefined (none, or chunked). */
  get contentLength(): number | undefined {
    if ((this.flags & HttpHeadFlags.Length) === 0) return undefined;
    return this.words[this.at + HttpDescriptor.LengthHigh]! * 0x100000000 + (this.words[this.at + HttpDescriptor.LengthLow]! >>> 0);
  }

  /** Header names lower-cased, as node:http: repeated ones joined with ", " (set-cookie: an array). */
  get headers(): Record<string, string | string[]> {
    if (this.headerTable !== undefined) return this.headerTable;
    const headers: Record<string, string | string[]> = Object.create(null);
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      const had = headers[name];
      if (had === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
      else if (Array.isArray(had)) had.push(value);
      else headers[name] = `${had}, ${value}`;
    }
    return (this.headerTable = headers);
  }

  /** Names and values as received, alternating. */
  get rawHeaders(): string[] {
    const count = this.words[this.at + HttpDescriptor.HeaderCount]!;
    const bytes = this.headBytes();
    const raw: string[] = new Array(count * 2);
    for (let i = 0, word = this.at + HttpDescriptor.FixedWords; i < count; i++, word += 4) {
      const nameAt = bytes + this.words[word]!;
      const valueAt = bytes + this.words[word + 2]!;
      raw[2 * i] = this.slab.toString('latin1', nameAt, nameAt + this.words[word + 1]!);
      raw[2 * i + 1] = this.slab.toString('latin1', valueAt, valueAt + this.words[word + 3]!);
    }
    return raw;
  }

  /** True once the whole body has arrived. */
  get complete(): boolean {
    return (this.state & COMPLETE) !== 0;
  }

  get aborted(): boolean {
    return (this.state & ABORTED) !== 0;
  }

  /** Aborted (reason: an Error with code ECONNRESET) when the client goes away mid-request. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  /** Stops the body's 'data' events; the connection is not read further meanwhile. */
  pause(): this {
    if ((this.state & (PAUSED | COMPLETE)) === 0) this.source.bodyReading(false);
    this.state |= PAUSED;
    return this;
  }

  resume(): this {
    if ((this.state & PAUSED) === 0) return this;
    this.state &= ~PAUSED;
    this.flush();
    if ((this.state & (PAUSED | COMPLETE)) === 0) this.source.bodyReading(true);
    return this;
  }

  isPaused(): boolean {
    return (this.state & PAUSED) !== 0;
  }

  /** Body bytes held until a 'data' listener comes are given to it. */
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === 'data' && this.pending !== undefined) queueMicrotask(() => this.flush());
    if (event === 'end' && (this.state & COMPLETE) !== 0 && this.pending === undefined) queueMicrotask(() => this.emitEnd());
    return this;
  }

  /** The whole body (what is left of it), once complete. */
  async body(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      this.on('data', (chunk: Buffer) => chunks.push(chunk));
      this.once('end', resolve);
      this.once('aborted', () => reject(this.signal.reason));
    });
    return Buffer.concat(chunks);
  }

  /** @internal */
  received(chunk: Buffer): void {
    if (this.pending !== undefined || (this.state & PAUSED) !== 0 || this.listenerCount('data') === 0) {
      (this.pending ??= []).push(chunk);
      return;
    }
    this.emit('data', chunk);
  }

  /** @internal */
  ended(): void {
    this.state |= COMPLETE;
    if (this.pending === undefined) this.emitEnd();
  }

  private emitEnd(): void {
    if ((this.state & END_EMITTED) !== 0 || this.listenerCount('end') === 0) return;
    this.state |= END_EMITTED;
    this.emit('end');
  }

  private flush(): void {
    const pending = this.pending;
    if (pending === undefined || this.listenerCount('data') === 0) return;
    this.pending = undefined;
    for (let i = 0; i < pending.length; i++) {
      if ((this.state & PAUSED) !== 0) {
        this.pending = pending.slice(i);
        return;
      }
      this.emit('data', pending[i]);
    }
    if ((this.state & COMPLETE) !== 0) this.emitEnd();
  }

  /** @internal The client went away before the response ended. */
  abort(reason: Error): void {
    if ((this.state & ABORTED) !== 0) return;
    this.state |= ABORTED;
    this.controller?.abort(reason);
    this.emit('aborted');
    this.emit('close');
  }
}
