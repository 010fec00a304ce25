// A worker's side of runWorkers() (src/workers.ts): the listening socket the
// primary passed it, its slot, and the answers to the primary's requests
// (ready, stats, drain) over the IPC channel.
import { ReactorError } from './errors.js';
import { kindOf, MESSAGE_KEY, type PrimaryMessage, WORKER_FD_ENV, WORKER_INDEX_ENV, type WorkerMessage } from './worker-messages.js';
import { show, validateFunction, validateKeys, validateObject } from './validate.js';

export interface WorkerHandlers {
  /**
   * The worker's figures for the primary's `workers.stats()`, usually
   * `() => reactor.stats()`: an object (or a promise of one) whose numbers
   * are summed over the workers.
   */
  stats?: (() => object | Promise<object>) | undefined;
  /**
   * Stops accepting (the socket stays open: the primary and the slot's new
   * worker keep it) and resolves when the worker's connections have ended,
   * usually `async () => { await server.drain(); reactor.close(); }`. The
   * worker exits once it settles (status 1 if it rejected).
   */
  drain: () => unknown;
}

/** What a worker started by runWorkers() knows: `workerContext()`. */
export class WorkerContext {
  #handlers: WorkerHandlers | undefined;
  #draining = false;

  /** @internal Only workerContext() makes one. */
  constructor(
    /** The listening socket to serve: `listenHTTP({ fd })`, `listen({ fd })`, `adoptListener(fd, ...)`. */
    readonly fd: number,
    /** This worker's slot, 0 to workers - 1 (its replacement gets the same one). */
    readonly index: number,
  ) {}

  /**
   * Tells the primary this worker is serving its socket; from then on it
   * answers the primary's stats requests and drains when asked, when the
   * primary goes away, or on SIGTERM/SIGINT. Call it once, after listening.
   */
  ready(handlers: WorkerHandlers): void {
    validateObject(handlers, 'handlers');
    validateKeys(handlers, 'handlers', ['stats', 'drain']);
    validateFunction(handlers.drain, 'handlers.drain');
    if (handlers.stats !== undefined) validateFunction(handlers.stats, 'handlers.stats');
    if (this.#handlers !== undefined) throw new ReactorError('ERR_INVALID_STATE', 'workerContext().ready() was called already');
    this.#handlers = { ...handlers };
    process.on('message', (message: unknown) => this.#received(message));
    const drain = () => void this.#drain();
    process.once('disconnect', drain).once('SIGTERM', drain).once('SIGINT', drain);
    send({ [MESSAGE_KEY]: 'ready' });
  }

  #received(message: unknown): void {
    const kind = kindOf(message);
    if (kind === 'drain') void this.#drain();
    else if (kind === 'stats') void this.#sendStats((message as PrimaryMessage & { seq: number }).seq);
  }

  async #sendStats(seq: number): Promise<void> {
    try {
      const stats = (await this.#handlers!.stats?.()) ?? {};
      send({ [MESSAGE_KEY]: 'stats', seq, stats: stats as Record<string, unknown> });
    } catch (error) {
      send({ [MESSAGE_KEY]: 'stats', seq, error: show(error) });
    }
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    let status = 0;
    try {
      await this.#handlers!.drain();
    } catch (error) {
      process.stderr.write(`worker ${this.index}: drain failed: ${show(error)}\n`);
      status = 1;
    }
    process.exit(status);
  }
}

// The primary may be gone (its channel closed): nothing to tell then.
function send(message: WorkerMessage): void {
  if (process.connected) process.send!(message, undefined, undefined, () => {});
}

let context: WorkerContext | null | undefined;

/**
 * This process's WorkerContext when runWorkers() started it, else null. The
 * variables that told it are removed from process.env, so its own children
 * are not mistaken for workers.
 */
export function workerContext(): WorkerContext | null {
  if (context !== undefined) return context;
  const fd = process.env[WORKER_FD_ENV];
  const index = process.env[WORKER_INDEX_ENV];
  delete process.env[WORKER_FD_ENV];
  delete process.env[WORKER_INDEX_ENV];
  if (fd === undefined || index === undefined || typeof process.send !== 'function') {
    context = null;
    return context;
  }
  context = new WorkerContext(decimal(WORKER_FD_ENV, fd), decimal(WORKER_INDEX_ENV, index));
  return context;
}

function decimal(name: string, value: string): number {
  if (!/^[0-9]{1,9}$/.test(value)) {
    throw new ReactorError('ERR_INVALID_ARG_VALUE', `$${name} must be a decimal number, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}
