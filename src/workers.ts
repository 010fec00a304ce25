// runWorkers(): N worker processes serving one port. The primary binds one
// SO_REUSEPORT listening socket per worker slot (the kernel spreads the
// connections over their accept queues) and holds them for the service's
// life; each worker gets its slot's socket at spawn. A worker that dies leaves
// its socket open in the group, so its connections wait in the backlog for
// its replacement; a graceful restart starts the new worker on the same
// socket before the old one stops accepting. See README "Workers on every core".
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { availableParallelism, constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { listenHost } from './address.js';
import { ReactorError, systemError } from './errors.js';
import { validateMs } from './limits.js';
import { nativeSockets } from './native.js';
import { WorkerProcess, type WorkerSpawn } from './worker-process.js';
import {
  invalidType,
  validateBoolean,
  validateCString,
  validateInteger,
  validateKeys,
  validateObject,
  validatePort,
} from './validate.js';

export interface WorkersListenOptions {
  /** 0: a free port, then `workers.port`. */
  port: number;
  /** Numeric address or "localhost". Default: "::" (dual-stack), else "0.0.0.0". */
  host?: string | undefined;
  /** Each worker's accept queue. Default 511. */
  backlog?: number | undefined;
  ipv6Only?: boolean | undefined;
}

export interface RunWorkersOptions {
  /** The worker's module (a path or file: URL); it calls workerContext(). */
  script: string | URL;
  /** How many. Default: os.availableParallelism(). */
  workers?: number | undefined;
  listen: WorkersListenOptions;
  /** The workers' command-line arguments. */
  args?: readonly string[] | undefined;
  /** Added to process.env for the workers (undefined removes a variable). */
  env?: Record<string, string | undefined> | undefined;
  /** Node's options for the workers. Default: process.execArgv. */
  execArgv?: readonly string[] | undefined;
  /**
   * A worker that died unasked is replaced after this; it doubles with each
   * death in a row of the same slot (one that served 10 s starts the count
   * again), up to 30 s. Default 100 ms.
   */
  restartDelayMs?: number | undefined;
  /** A draining worker still running after this is killed (SIGKILL). Default 10 s. */
  drainTimeoutMs?: number | undefined;
  /** stats() leaves out a worker that has not answered after this. Default 5 s. */
  statsTimeoutMs?: number | undefined;
  /** SIGHUP restarts the workers gracefully; SIGTERM and SIGINT close them. Default false. */
  handleSignals?: boolean | undefined;
}

/** A worker process: its slot and pid. */
export interface WorkerInfo {
  index: number;
  pid: number;
}

/** The 'exit' event: a worker ended; `expected` when the primary stopped it. */
export interface WorkerExit extends WorkerInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  expected: boolean;
}

/** The 'restart' event: a slot has a new worker serving, after a crash or in a graceful restart. */
export interface WorkerRestart extends WorkerInfo {
  previousPid: number | undefined;
  reason: 'crash' | 'restart';
}

export interface WorkersStats {
  /** Every numeric field of the workers' stats summed (those named max*: the largest). */
  total: Record<string, number>;
  /** The workers that answered, by slot. */
  workers: (WorkerInfo & { stats: Record<string, unknown> })[];
}

const RUN_KEYS = [
  'script',
  'workers',
  'listen',
  'args',
  'env',
  'execArgv',
  'restartDelayMs',
  'drainTimeoutMs',
  'statsTimeoutMs',
  'handleSignals',
] as const;
const LISTEN_KEYS = ['port', 'host', 'backlog', 'ipv6Only'] as const;
// A worker that served this long before dying is not in a crash loop.
const STABLE_RUN_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

interface Slot {
  readonly index: number;
  readonly fd: number;
  /** The worker serving the slot (or starting to). */
  current: WorkerProcess | undefined;
  /** Its replacement during a graceful restart, until ready. */
  incoming: WorkerProcess | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  /** Deaths in a row, for the restart backoff. */
  deaths: number;
}

interface Settings {
  spawn: WorkerSpawn;
  restartDelayMs: number;
  drainTimeoutMs: number;
  statsTimeoutMs: number;
}

/**
 * Workers serving one port: `runWorkers(options)`. Events: 'exit'
 * (WorkerExit), 'restart' (WorkerRestart), 'error' (a restart asked by
 * SIGHUP failed), 'close'.
 */
export class Workers extends EventEmitter {
  /** The port every worker serves (the one bound when 0 was asked for). */
  readonly port: number;
  /**
   * Resolves when every worker is listening (reported ready). Rejects with
   * ERR_WORKER_EXITED if one exits before, and the service is closed then.
   */
  readonly ready: Promise<void>;
  readonly #settings: Settings;
  readonly #slots: Slot[];
  #started = false;
  #closing: Promise<void> | undefined;
  #restarts: Promise<unknown> = Promise.resolve();
  readonly #signals: [NodeJS.Signals, () => void][] = [];

  /** @internal runWorkers() makes it. */
  constructor(settings: Settings, fds: number[], port: number, handleSignals: boolean) {
    super();
    this.port = port;
    this.#settings = settings;
    this.#slots = fds.map((fd, index) => ({ index, fd, current: undefined, incoming: undefined, restartTimer: undefined, deaths: 0 }));
    for (const slot of this.#slots) slot.current = this.#spawn(slot);
    this.ready = Promise.all(this.#slots.map((slot) => slot.current!.ready)).then(
      () => {
        this.#started = true;
      },
      async (error: unknown) => {
        await this.close();
        throw error;
      },
    );
    this.ready.catch(() => {}); // reported to whoever awaits it; the service closes itself
    if (handleSignals) {
      const restart = () => this.restart().catch((error: unknown) => this.emit('error', error));
      const close = () => void this.close();
      this.#signals.push(['SIGHUP', restart], ['SIGTERM', close], ['SIGINT', close]);
      for (const [signal, handler] of this.#signals) process.on(signal, handler);
    }
  }

  /** The pids of the workers serving now, by slot (0 where a slot waits for its restart). */
  get pids(): number[] {
    return this.#slots.map((slot) => slot.current?.pid ?? 0);
  }

  /**
   * Replaces every worker, one slot after another: the new worker starts on
   * the slot's socket and reports ready, then the old one drains (stops
   * accepting, finishes its connections, drainTimeoutMs at most). Resolves
   * when every old worker has exited; rejects (ERR_WORKER_EXITED) if a new
   * one exits before it is ready, its slot's old worker still serving.
   * Restarts asked while one runs follow it.
   */
  restart(): Promise<void> {
    const run = this.#restarts.then(() => this.#restartAll());
    this.#restarts = run.catch(() => {});
    return run;
  }

  /** Every worker's stats, summed and by worker. */
  async stats(): Promise<WorkersStats> {
    const answers = await Promise.all(
      this.#slots.map(async ({ index, current }) => {
        const stats = await current?.stats(this.#settings.statsTimeoutMs);
        return stats && { index, pid: current!.pid, stats };
      }),
    );
    const workers = answers.filter((entry) => entry !== undefined);
    return { total: sum(workers.map((entry) => entry.stats)), workers };
  }

  /**
   * Drains every worker (drainTimeoutMs at most, then kills it) and closes
   * the sockets: the port stops listening once no worker holds it. Resolves
   * when every worker has exited. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    for (const [signal, handler] of this.#signals) process.off(signal, handler);
    const workers: WorkerProcess[] = [];
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      if (slot.current) workers.push(slot.current);
      if (slot.incoming) workers.push(slot.incoming);
    }
    const exited = workers.map((worker) => worker.stop(this.#settings.drainTimeoutMs));
    // The workers' descriptors keep each socket open while they drain.
    for (const slot of this.#slots) closeSync(slot.fd);
    await Promise.all(exited);
    this.emit('close');
  }

  async #restartAll(): Promise<void> {
    await this.ready;
    const drained: Promise<unknown>[] = [];
    try {
      for (const slot of this.#slots) {
        if (this.#closing) throw closedError();
        drained.push((await this.#replace(slot)).exited);
      }
    } finally {
      await Promise.all(drained);
    }
  }

  // Starts the slot's new worker; once it is ready, the old one is told to
  // drain: resolves then with the old one's exit, without waiting for it.
  async #replace(slot: Slot): Promise<{ exited: Promise<unknown> }> {
    clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const fresh = this.#spawn(slot);
    slot.incoming = fresh;
    try {
      await fresh.ready;
    } catch (error) {
      slot.incoming = undefined;
      if (this.#closing) throw closedError(); // close() stopped it
      if (slot.current === undefined) this.#scheduleRestart(slot, fresh);
      throw error;
    }
    slot.incoming = undefined;
    const old = slot.current;
    slot.current = fresh;
    this.emit('restart', { index: slot.index, pid: fresh.pid, previousPid: old?.pid, reason: 'restart' } satisfies WorkerRestart);
    return { exited: old?.stop(this.#settings.drainTimeoutMs) ?? Promise.resolve() };
  }

  #spawn(slot: Slot): WorkerProcess {
    const worker = new WorkerProcess(this.#settings.spawn, slot.fd, slot.index);
    void worker.exited.then((status) => {
      const expected = worker.stopping || this.#closing !== undefined;
      this.emit('exit', { index: slot.index, pid: worker.pid, ...status, expected } satisfies WorkerExit);
      if (slot.current !== worker) return; // an incoming worker's failure is its restart's
      slot.current = undefined;
      // Before the service started, ready's rejection closes it; during a
      // graceful restart the incoming worker takes the slot.
      if (!expected && this.#started && slot.incoming === undefined) this.#scheduleRestart(slot, worker);
    });
    return worker;
  }

  #scheduleRestart(slot: Slot, dead: WorkerProcess): void {
    const served = dead.readyAt === undefined ? 0 : performance.now() - dead.readyAt;
    slot.deaths = served >= STABLE_RUN_MS ? 1 : slot.deaths + 1;
    const { restartDelayMs } = this.#settings;
    const delay = Math.min(restartDelayMs * 2 ** (slot.deaths - 1), Math.max(restartDelayMs, MAX_RESTART_DELAY_MS));
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      const fresh = this.#spawn(slot);
      slot.current = fresh;
      void fresh.ready.then(() => {
        this.emit('restart', { index: slot.index, pid: fresh.pid, previousPid: dead.pid, reason: 'crash' } satisfies WorkerRestart);
      }, () => {});
    }, delay);
  }
}

/**
 * Binds the port (one SO_REUSEPORT socket per worker) and starts the
 * workers; see Workers. Throws synchronously for bad options
 * (ERR_INVALID_ARG_TYPE/VALUE, ERR_OUT_OF_RANGE, ERR_SOCKET_BAD_PORT) and a
 * port that cannot be bound (EADDRINUSE...). POSIX only.
 */
export function runWorkers(options: RunWorkersOptions): Workers {
  if (process.platform === 'win32') {
    throw new ReactorError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', 'runWorkers is not supported on Windows (no SO_REUSEPORT)');
  }
  validateObject(options, 'options');
  validateKeys(options, 'options', RUN_KEYS);
  const script = scriptPath(options.script);
  const count = validateInteger(options.workers ?? availableParallelism(), 'options.workers', 1, 1024);
  const listen = options.listen;
  validateObject(listen, 'options.listen');
  validateKeys(listen, 'options.listen', LISTEN_KEYS);
  const port = validatePort(listen.port, 'options.listen.port');
  if (listen.host !== undefined) validateCString(listen.host, 'options.listen.host');
  const host = listen.host === undefined ? undefined : listenHost(listen.host);
  const backlog = validateInteger(listen.backlog ?? 511, 'options.listen.backlog', 1, 0x7fffffff);
  const ipv6Only = validateBoolean(listen.ipv6Only ?? false, 'options.listen.ipv6Only');
  const settings: Settings = {
    spawn: {
      script,
      args: strings(options.args ?? [], 'options.args'),
      execArgv: options.execArgv === undefined ? undefined : strings(options.execArgv, 'options.execArgv'),
      env: { ...process.env, ...environment(options.env ?? {}) },
    },
    restartDelayMs: validateMs(options.restartDelayMs ?? 100, 'options.restartDelayMs'),
    drainTimeoutMs: validateMs(options.drainTimeoutMs ?? 10_000, 'options.drainTimeoutMs'),
    statsTimeoutMs: validateMs(options.statsTimeoutMs ?? 5_000, 'options.statsTimeoutMs'),
  };
  const handleSignals = validateBoolean(options.handleSignals ?? false, 'options.handleSignals');
  const group = bindGroup(host, port, backlog, ipv6Only, count);
  return new Workers(settings, group.fds, group.port, handleSignals);
}

// `count` listening sockets on one port, SO_REUSEPORT on each.
function bindGroup(host: string | undefined, port: number, backlog: number, ipv6Only: boolean, count: number): { fds: number[]; port: number } {
  const fds: number[] = [];
  let address = host ?? '::';
  try {
    for (let i = 0; i < count; i++) {
      let fd = nativeSockets.listenSocket(address, port, backlog, true, ipv6Only);
      if (fd === -constants.errno.EAFNOSUPPORT && host === undefined && i === 0) {
        address = '0.0.0.0';
        fd = nativeSockets.listenSocket(address, port, backlog, true, ipv6Only);
      }
      if (fd < 0) throw systemError(-fd, 'listen', { address, port });
      fds.push(fd);
      if (i === 0) {
        const bound = nativeSockets.socketAddress(fd);
        if (typeof bound === 'number') throw systemError(-bound, 'getsockname', { address, port });
        port = bound.port;
      }
    }
  } catch (error) {
    for (const fd of fds) closeSync(fd);
    throw error;
  }
  return { fds, port };
}

function scriptPath(script: unknown): string {
  if (script instanceof URL) {
    if (script.protocol !== 'file:') throw new ReactorError('ERR_INVALID_ARG_VALUE', `"options.script" must be a file: URL, got ${script.href}`);
    return fileURLToPath(script);
  }
  validateCString(script, 'options.script');
  return script;
}

function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw invalidType(name, 'an array of strings', value);
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'string') throw invalidType(`${name}[${i}]`, 'a string', item);
  });
  return [...(value as string[])];
}

function environment(value: unknown): Record<string, string | undefined> {
  validateObject(value, 'options.env');
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined && typeof item !== 'string') throw invalidType(`options.env.${key}`, 'a string or undefined', item);
  }
  return value as Record<string, string | undefined>;
}

function sum(all: Record<string, unknown>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const stats of all) {
    for (const [key, value] of Object.entries(stats)) {
      if (typeof value !== 'number') continue;
      total[key] = key.startsWith('max') ? Math.max(total[key] ?? value, value) : (total[key] ?? 0) + value;
    }
  }
  return total;
}

function closedError(): ReactorError {
  return new ReactorError('ERR_WORKERS_CLOSED', 'the workers are closed');
}
