// node:events' listener methods for the HTTP server's request and response,
// which are made once per request: an EventEmitter costs a dictionary-mode
// `_events` object and four fields each, this one field, and nothing until a
// listener is added. emit('error') with no listener throws, as there.
type Listener = (...args: any[]) => void;
// once() wrappers remember what they wrap, so off(event, original) finds them.
type Wrapped = Listener & { listener?: Listener };

export class HTTPEvents {
  private events: Map<string | symbol, Wrapped[]> | undefined;

  /** @internal Whether any listener is set: emitting costs an arguments array even with none. */
  protected get listened(): boolean {
    return this.events !== undefined;
  }

  on(event: string | symbol, listener: Listener): this {
    const events = (this.events ??= new Map());
    const list = events.get(event);
    if (list === undefined) events.set(event, [listener]);
    else list.push(listener);
    return this;
  }

  addListener(event: string | symbol, listener: Listener): this {
    return this.on(event, listener);
  }

  once(event: string | symbol, listener: Listener): this {
    const wrapped: Wrapped = (...args: unknown[]) => {
      this.off(event, wrapped);
      listener.apply(this, args);
    };
    wrapped.listener = listener;
    return this.on(event, wrapped);
  }

  off(event: string | symbol, listener: Listener): this {
    const list = this.events?.get(event);
    if (list === undefined) return this;
    const at = list.findIndex((l) => l === listener || l.listener === listener);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.events!.delete(event);
    return this;
  }

  removeListener(event: string | symbol, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: string | symbol): this {
    if (event === undefined) this.events = undefined;
    else this.events?.delete(event);
    return this;
  }

  listenerCount(event: string | symbol): number {
    return this.events?.get(event)?.length ?? 0;
  }

  emit(event: string | symbol, ...args: unknown[]): boolean {
    const list = this.events?.get(event);
    if (list === undefined) {
      if (event === 'error') throw args[0];
      return false;
    }
    // A copy: listeners may add or remove listeners.
    for (const listener of [...list]) listener.apply(this, args);
    return true;
  }
}
