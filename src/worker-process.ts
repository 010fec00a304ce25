// One worker process of runWorkers() seen from the primary: forked with its
// slot's listening socket at fd 3, and the conversation with it over IPC
// (ready, stats, drain) until it exits.
import { type ChildProcess, fork } from 'node:child_process';
import { ReactorError } from './errors.js';
import {
  kindOf,
  MESSAGE_KEY,
  type PrimaryMessage,
  WORKER_FD,
  WORKER_FD_ENV,
  WORKER_INDEX_ENV,
  type WorkerMessage,
} from './worker-messages.js';

/** @internal How a worker is started. */
export interface WorkerSpawn {
  script: string;
  args: string[];
  execArgv: string[] | undefined;
  env: Record<string, string | undefined>;
}

/** @internal How a worker ended. */
export interface WorkerExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** @internal */
export class WorkerProcess {
  readonly pid: number;
  /** Resolves when the worker reported ready; rejects if it exits first (ERR_WORKER_EXITED). */
  readonly ready: Promise<void>;
  readonly exited: Promise<WorkerExitStatus>;
  /** When it reported ready (ms, performance.now()), undefined before. */
  readyAt: number | undefined;
  /** The primary asked it to stop: its exit is no crash. */
  stopping = false;
  readonly #child: ChildProcess;
  readonly #stats = new Map<number, (stats: Record<string, unknown> | undefined) => void>();
  #seq = 0;
  #exitedWith: WorkerExitStatus | undefined;

  constructor(spawn: WorkerSpawn, fd: number, readonly index: number) {
    this.#child = fork(spawn.script, spawn.args, {
      env: { ...spawn.env, [WORKER_FD_ENV]: String(WORKER_FD), [WORKER_INDEX_ENV]: String(index) },
      ...(spawn.execArgv !== undefined && { execArgv: spawn.execArgv }),
      // The socket goes in at WORKER_FD; a worker reads no stdin of ours.
      stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
    });
    this.pid = this.#child.pid ?? 0;
    let readied: () => void;
    let failed: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      readied = resolve;
      failed = reject;
    });
    this.ready.catch(() => {}); // the owner may be waiting for its exit instead
    this.exited = new Promise((resolve) => {
      const exited = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.#exitedWith !== undefined) return;
        this.#exitedWith = { code, signal };
        for (const answer of this.#stats.values()) answer(undefined);
        this.#stats.clear();
        failed(new ReactorError('ERR_WORKER_EXITED', `worker ${index} (pid ${this.pid}) exited before it was ready (${describe(this.#exitedWith)})`));
        resolve(this.#exitedWith);
      };
      this.#child.once('exit', exited);
      // Not started at all (no 'exit' follows), or a failed kill or send (the exit follows).
      this.#child.on('error', () => {
        if (this.#child.pid === undefined) exited(null, null);
      });
    });
    this.#child.on('message', (message: unknown) => {
      const kind = kindOf(message);
      if (kind === 'ready' && this.readyAt === undefined) {
        this.readyAt = performance.now();
        readied();
      } else if (kind === 'stats') {
        const reply = message as WorkerMessage & { seq: number; stats?: Record<string, unknown> };
        this.#stats.get(reply.seq)?.(reply.stats);
      }
    });
  }

  get isReady(): boolean {
    return this.readyAt !== undefined && this.#exitedWith === undefined;
  }

  /**
   * Asks for its stats; undefined if it is not serving, exits first,
   * reports an error or does not answer within `timeoutMs`.
   */
  stats(timeoutMs: number): Promise<Record<string, unknown> | undefined> {
    if (!this.isReady || !this.#child.connected) return Promise.resolve(undefined);
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer(undefined), timeoutMs);
      const answer = (stats: Record<string, unknown> | undefined) => {
        clearTimeout(timer);
        this.#stats.delete(seq);
        resolve(stats);
      };
      this.#stats.set(seq, answer);
      this.#send({ [MESSAGE_KEY]: 'stats', seq });
    });
  }

  /**
   * Stops it: a ready worker is asked to drain and killed (SIGKILL) if it has
   * not exited `drainTimeoutMs` later; one not ready yet has nothing to
   * drain and is killed at once. Resolves when it has exited.
   */
  stop(drainTimeoutMs: number): Promise<WorkerExitStatus> {
    if (!this.stopping && this.#exitedWith === undefined) {
      this.stopping = true;
      if (this.isReady && this.#child.connected) {
        this.#send({ [MESSAGE_KEY]: 'drain' });
        const timer = setTimeout(() => this.kill(), drainTimeoutMs);
        void this.exited.then(() => clearTimeout(timer));
      } else {
        this.kill();
      }
    }
    return this.exited;
  }

  /** SIGKILL, unless it has exited (its pid may be someone else's by now). */
  kill(): void {
    if (this.#exitedWith === undefined) this.#child.kill('SIGKILL');
  }

  #send(message: PrimaryMessage): void {
    // A send to a worker that is exiting fails; its exit is handled there.
    if (this.#child.connected) this.#child.send(message, undefined, undefined, () => {});
  }
}

/** "code 1", "signal SIGKILL". */
function describe(status: WorkerExitStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `code ${status.code ?? 'unknown'}`;
}
