// What runWorkers' primary (src/workers.ts) and its workers
// (src/worker-context.ts) tell each other: the environment a worker starts
// with, and the messages on the IPC channel. Every message carries MESSAGE_KEY
// so the application's own messages on the same channel are left alone.

/** @internal The descriptor number of the worker's listening socket (its stdio entry). */
export const WORKER_FD_ENV = 'NATIVE_REACTOR_WORKER_FD';
/** @internal The worker's slot, 0 to workers - 1. */
export const WORKER_INDEX_ENV = 'NATIVE_REACTOR_WORKER_INDEX';
/** @internal Where the listening socket sits in the worker's stdio array. */
export const WORKER_FD = 3;
/** @internal */
export const MESSAGE_KEY = 'nativeReactorWorkers';

/** @internal Primary → worker. */
export type PrimaryMessage =
  | { [MESSAGE_KEY]: 'stats'; seq: number }
  /** Stop accepting, let the connections end, exit. */
  | { [MESSAGE_KEY]: 'drain' };

/** @internal Worker → primary. */
export type WorkerMessage =
  /** Listening: the primary may send it connections' worth of traffic (and stop the one it replaces). */
  | { [MESSAGE_KEY]: 'ready' }
  | { [MESSAGE_KEY]: 'stats'; seq: number; stats?: Record<string, unknown>; error?: string };

/** @internal The message's kind when it is one of ours, else undefined. */
export function kindOf(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const kind = (message as Record<string, unknown>)[MESSAGE_KEY];
  return typeof kind === 'string' ? kind : undefined;
}
