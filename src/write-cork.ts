import type { NativeReactor } from './native.js';

/** Fields of one entry of NativeReactor.corked. */
const FIELDS = 3;

/**
 * Writes of read bytes made while a batch is dispatched, kept in a shared array
 * and handed to the core in one call when the batch returns (or before any
 * other call a transport makes): one Node-API call per batch instead of one
 * per echo. Only the very Buffer that dataReceived is being given is corked:
 * the core knows where it lies in the batch's slab, and recognising it costs a
 * comparison (reading a view's `.buffer` is a call into V8's runtime).
 *
 * write() must still return what it would have returned at once: true while
 * less than the high watermark is queued. A write is corked only when that is
 * certain whatever the socket takes: the bytes a connection may have queued
 * (at most its last known queue, since the core only ever drains it between
 * calls) plus every byte corked in this batch plus this write stay below the
 * mark. Anything else goes the direct way, after a flush that keeps the order.
 */
/** @internal */
export class WriteCork {
  readonly #native: NativeReactor;
  readonly #entries: Float64Array;
  readonly #capacity: number;
  #count = 0;
  #bytes = 0;
  // What dataReceived is being given now, and where it lies in the batch's slab.
  #data: Uint8Array | undefined;
  #dataOffset = 0;
  // Connections whose queue may hold bytes, by id: an upper bound of them.
  readonly #queuedAtMost = new Map<number, number>();

  constructor(
    native: NativeReactor,
    /** A corked write the core refused (-errno), reported to its transport. */
    private readonly refused: (id: number, result: number) => void,
  ) {
    this.#native = native;
    this.#entries = native.corked;
    this.#capacity = Math.floor(this.#entries.length / FIELDS);
  }

  /** `data`, at `offset` in the batch's slab, is handed to dataReceived: writes of it may be corked. */
  receiving(data: Uint8Array, offset: number): void {
    this.#data = data;
    this.#dataOffset = offset;
  }

  /** The batch returns: its corked writes go out. */
  end(): void {
    this.#data = undefined;
    this.flush();
  }

  /** Corks the write when its result is certainly true (see the class); false: write it now. */
  add(id: number, bytes: Uint8Array, highWaterMark: number): boolean {
    if (bytes !== this.#data || this.#count === this.#capacity) return false;
    const length = bytes.byteLength;
    const queued = this.#queuedAtMost.size === 0 ? 0 : (this.#queuedAtMost.get(id) ?? 0);
    if (queued + this.#bytes + length >= highWaterMark) return false;
    const at = this.#count * FIELDS;
    this.#entries[at] = id;
    this.#entries[at + 1] = this.#dataOffset;
    this.#entries[at + 2] = length;
    this.#count++;
    this.#bytes += length;
    return true;
  }

  /** Sends what is corked, in order. */
  flush(): void {
    const count = this.#count;
    if (count === 0) return;
    this.#count = 0;
    this.#bytes = 0;
    const unusual = this.#native.writeCorked(count);
    if (unusual === 0) {
      // Every queue it wrote to is empty now.
      if (this.#queuedAtMost.size > 0) for (let at = 0; at < count * FIELDS; at += FIELDS) this.#queuedAtMost.delete(this.#entries[at]!);
      return;
    }
    if (unusual < 0) return; // the reactor is closed, and every connection with it
    for (let at = 0; at < count * FIELDS; at += FIELDS) {
      const id = this.#entries[at]!;
      const result = this.#entries[at + 2]!;
      if (result < 0) this.refused(id, result);
      else this.queued(id, result);
    }
  }

  /** A write to `id` left `queued` bytes in its queue. */
  queued(id: number, queued: number): void {
    if (queued > 0) this.#queuedAtMost.set(id, queued);
    else if (this.#queuedAtMost.size > 0) this.#queuedAtMost.delete(id);
  }

  /** The connection is gone. */
  forget(id: number): void {
    this.#queuedAtMost.delete(id);
  }
}
