// The misuse fuzzer (issue 9): random sequences of public API calls — every
// method, with valid and invalid arguments, from the top level and from inside
// protocol, factory, producer and timer callbacks, with close/abort/shutdown at
// any point — driven by a seeded PRNG. It runs in a child process
// (test/fixtures/fuzz-child.mjs, started by test/fuzz.test.ts) so a native
// crash is an exit status, not a dead test runner.
//
// What it asserts, as "violations" (collected, never thrown):
// - every synchronous throw, promise rejection, connectionLost reason and
//   onError/uncaught error is a ReactorError whose `code` is a string starting
//   with "E" (ERR_* or an errno name) — apart from the fuzzer's own marked
//   errors, thrown on purpose from callbacks;
// - invalid arguments (wrong types, unknown option keys, out-of-range numbers,
//   NUL bytes in paths, ...) throw; valid ones do not, except where the state
//   makes the call misuse:
//     write/writev/end on a transport that cannot be written (closed, closing,
//       ended) do not throw and write()/writev() return false; `transport.writable`
//       tells (and is never true then);
//     pause/resume/setIdleTimeout/... on a closed transport throw (pause and
//       resume on a closing one too);
//     every reactor method after reactor.close() throws ERR_REACTOR_CLOSED;
// - no callback after connectionLost, connectionLost at most once and with the
//   transport closed; no timer fires early, twice, or after cancel();
// - no hang: every connect settles and every connectionLost runs once the
//   reactor is closed, shutdown() resolves;
// - nothing leaks: the process's descriptor count is back where it started, no
//   Unix socket path is left behind (and the parent checks that the process
//   exits by itself).
import { existsSync, readdirSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Reactor,
  ReactorError,
  type BackendName,
  type DelayedCall,
  type Listener,
  type Protocol,
  type Transport,
} from '../src/index.js';

// ---------------------------------------------------------------- PRNG ----

/** mulberry32: a small, fast 32-bit seeded generator. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of items) total += w;
    let x = this.next() * total;
    for (const [w, v] of items) {
      if ((x -= w) < 0) return v;
    }
    return items[items.length - 1]![1];
  }
}

// -------------------------------------------------------------- values ----

/** 0: valid, 1: either outcome is acceptable, 2: invalid (must throw). */
type Badness = 0 | 1 | 2;
interface Val {
  v: unknown;
  b: Badness;
  s: string;
  /** For an invalid value: what makes it so (groups the violations). */
  why?: string;
}
const val = (v: unknown, b: Badness, s = show(v), why?: string): Val => ({ v, b, s, why: b === 2 ? (why ?? s) : undefined });
const worst = (...vals: Val[]): Badness => vals.reduce<Badness>((m, x) => (x.b > m ? x.b : m), 0);
const whyOf = (...vals: Val[]): string | undefined => vals.find((x) => x.b === 2)?.why;

/** A marked error: thrown on purpose by the fuzzer's own callbacks. */
export class FuzzThrow extends Error {
  readonly fuzz = true;
}
const isMarked = (e: unknown): boolean => e instanceof FuzzThrow;

export function show(v: unknown, depth = 0): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string': {
      const s = v.length > 24 ? `${v.slice(0, 20)}…(${v.length})` : v;
      return JSON.stringify(s);
    }
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v);
    case 'bigint':
      return `${v}n`;
    case 'symbol':
      return v.toString();
    case 'function':
      return 'fn';
    case 'boolean':
      return String(v);
  }
  if (Object.getPrototypeOf(v) === null) return 'Object.create(null)';
  if (Buffer.isBuffer(v)) return `<Buffer ${v.length}>`;
  if (ArrayBuffer.isView(v)) return `<${v.constructor.name} ${v.byteLength}>`;
  if (v instanceof ArrayBuffer) return `<ArrayBuffer ${v.byteLength}>`;
  const proto = Object.getPrototypeOf(v);
  if (!Array.isArray(v) && proto !== Object.prototype) return `<${proto?.constructor?.name ?? 'object'}>`;
  if (depth > 1) return '{…}';
  if (Array.isArray(v)) {
    const items: string[] = [];
    for (let i = 0; i < Math.min(v.length, 4); i++) items.push(i in v ? show(v[i], depth + 1) : '<hole>');
    if (v.length > 4) items.push(`…(${v.length})`);
    return `[${items.join(',')}]`;
  }
  const parts: string[] = [];
  for (const key of Object.keys(v as object)) {
    const d = Object.getOwnPropertyDescriptor(v, key)!;
    parts.push(`${key}:${d.get ? '<getter>' : show(d.value, depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Picks a valid value most of the time, else an invalid or doubtful one. */
function choose(rng: Rng, good: readonly unknown[], bad: readonly unknown[], either: readonly unknown[] = [], pBad = 0.25): Val {
  const x = rng.next();
  if (x < pBad && bad.length > 0) return val(rng.pick(bad), 2);
  if (x < pBad + 0.07 && either.length > 0) return val(rng.pick(either), 1);
  return val(rng.pick(good), 0);
}

const nullProto = (): unknown => Object.create(null);

function detachedBytes(): Uint8Array {
  const bytes = new Uint8Array(16);
  structuredClone(bytes.buffer, { transfer: [bytes.buffer] });
  return bytes; // length 0 now
}

class LyingBytes extends Uint8Array {
  override get length(): number {
    throw new TypeError('LyingBytes.length');
  }
}

/** Options object from known fields (each maybe present) plus maybe an unknown key. */
interface Field {
  key: string;
  gen: (rng: Rng) => Val;
  p?: number;
}
function buildOptions(w: World, fields: Field[], pUnknown = 0.08): Val {
  const rng = w.rng;
  const out: Record<string, unknown> = {};
  const vals = new Map<string, Val>();
  for (const f of fields) {
    if (!rng.chance(f.p ?? 0.5)) continue;
    const x = f.gen(rng);
    out[f.key] = x.v;
    // null for an optional option may mean "absent" (as with ??) or be refused: either is fine.
    if (x.v === null && x.b === 2) vals.set(f.key, val(null, 1));
    else vals.set(f.key, { ...x, why: x.why === undefined ? undefined : `${f.key}: ${x.why}` });
  }
  if (rng.chance(pUnknown)) {
    const key = rng.pick(['bogus', 'Port', 'timeout', 'onerror', 'hostname', 'keepAlive']);
    if (!(key in out)) {
      out[key] = rng.pick([1, 'x', undefined, true]);
      // A key set to undefined is doubtful; a real value under an unknown key must throw.
      vals.set(key, val(out[key], out[key] === undefined ? 1 : 2, key, 'an unknown option key'));
    }
  }
  if (fields.length > 0 && rng.chance(0.03)) {
    // A getter that runs another random call (reactor.close(), say) while the
    // options are being read, then yields its value: any outcome is fine.
    const f = rng.pick(fields);
    const x = f.gen(rng);
    Object.defineProperty(out, f.key, {
      enumerable: true,
      configurable: true,
      get: () => {
        w.nested('getter', () => w.randomOp());
        return x.v;
      },
    });
    vals.set(f.key, val(x.v, 1));
  }
  const all = [...vals.values()];
  return { v: out, b: worst(...all), s: show(out), why: whyOf(...all) };
}

// --------------------------------------------------------------- world ----

type Expect = 'throw' | 'nothrow' | 'either';

interface RS {
  n: number;
  reactor: Reactor;
  hasOnError: boolean;
  shutdown: Promise<unknown> | undefined;
  /** The first shutdown() had a timeoutMs of at most 50: it must settle soon by itself. */
  shutdownSoon?: boolean;
}

interface LS {
  n: number;
  listener: Listener;
  rs: RS;
  kind: 'tcp' | 'unix';
  port: number;
  path: string;
  closedByUs: boolean;
}

interface TS {
  n: number;
  t: Transport;
  rs: RS;
  side: 'server' | 'client';
  made: boolean;
  lost: number;
  ended: boolean;
  producer: boolean;
  // Inside its registerProducer() call: a producer over the mark is paused at
  // once, and what the pause does may register again (already registered).
  registering: boolean;
}

interface CS {
  n: number;
  call: DelayedCall;
  rs: RS;
  setAt: number;
  ms: number;
  fired: number;
  cancelled: boolean;
  args: unknown[];
}

interface Pending {
  what: string;
  rs: RS;
  settled: boolean;
  promise: Promise<unknown>;
}

export interface Violation {
  /** Groups repeats: kind, method and what made the call invalid (or the error code). */
  key: string;
  seed: number;
  step: number;
  kind: string;
  op: string;
  detail: string;
  count: number;
  trace: string[];
}

export interface SeedResult {
  seed: number;
  steps: number;
  ms: number;
  calls: number;
  callbacks: number;
  transports: number;
  violations: Violation[];
}

const SOCKET_PREFIX = `nr-fuzz-${process.pid}-`;
const MAX_TRACE = 30;

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function fdList(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // gone meanwhile (the directory's own descriptor)
    }
  }
  return out;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves true once `done()` holds, false after `ms`. */
async function waitFor(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) return false;
    await sleep(2);
  }
  return true;
}

class World {
  readonly rng: Rng;
  step = 0;
  ctx = 'main';
  depth = 0;
  calls = 0;
  callbacks = 0;
  readonly reactors: RS[] = [];
  readonly listeners: LS[] = [];
  readonly transports: TS[] = [];
  readonly timers: CS[] = [];
  readonly pending: Pending[] = [];
  readonly byTransport = new Map<Transport, TS>();
  readonly closedPorts: number[] = [];
  readonly paths = new Set<string>();
  readonly violations = new Map<string, Violation>();
  readonly trace: string[] = [];
  #counter = 0;
  everTransports = 0;
  /** Set while the run winds down: callbacks no longer create reactors, listeners or connections. */
  finishing = false;

  constructor(
    readonly seed: number,
    readonly backend: string,
    readonly traceOut: boolean,
  ) {
    this.rng = new Rng(seed);
  }

  // ---- bookkeeping ----

  log(line: string): void {
    const entry = `#${this.step} ${this.ctx}: ${line}`;
    this.trace.push(entry);
    if (this.trace.length > MAX_TRACE) this.trace.shift();
    if (this.traceOut) writeSync(2, entry + '\n');
  }

  /** Records a violation once per (kind, method, key); `key` defaults to the detail. */
  violate(kind: string, op: string, detail: string, key = detail): void {
    key = `${kind}|${op.replace(/^[rtlc]\d+\./, '')}|${key.replace(/\d+/g, 'N').slice(0, 120)}`;
    const seen = this.violations.get(key);
    if (seen) {
      seen.count++;
      return;
    }
    this.log(`VIOLATION ${kind}: ${op}: ${detail}`);
    this.violations.set(key, { key, seed: this.seed, step: this.step, kind, op, detail, count: 1, trace: [...this.trace] });
  }

  /** An error reported by the library, any way: must be a ReactorError with a code. */
  checkError(error: unknown, how: string, op: string): void {
    if (isMarked(error)) return;
    if (!(error instanceof ReactorError)) {
      const e = error as { name?: string; code?: unknown; message?: string } | undefined;
      const what = `${e?.name ?? typeof error}${e?.code ? ` code=${String(e.code)}` : ''}: ${String(e?.message ?? error).slice(0, 140)}`;
      this.violate('not-a-ReactorError', op, `${how}: ${what}`, what);
      return;
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !/^E[A-Z0-9_]+$/.test(code)) {
      this.violate('bad-code', op, `${how}: code=${show(code)} message=${error.message}`, show(code));
    }
  }

  /**
   * Runs one API call. `expect` says whether it must throw, must not, or may
   * either; whatever it throws must be a ReactorError (or our marked error).
   */
  call<T>(op: string, args: string, expect: Expect, fn: () => T, wantCode?: string, why?: string): { ok: true; value: T } | { ok: false; error: unknown } {
    this.calls++;
    this.log(`${op}(${args}) expect=${expect}`);
    try {
      const value = fn();
      if (expect === 'throw') this.violate('accepted', op, `(${args}) returned ${show(value)}${why ? ` [invalid: ${why}]` : ''}`, why ?? 'state');
      return { ok: true, value };
    } catch (error) {
      if (isMarked(error)) return { ok: false, error };
      this.log(`  threw ${(error as { code?: string }).code ?? (error as Error)?.name}`);
      this.checkError(error, `thrown by ${op}(${args})`, op);
      const code = (error as { code?: string }).code;
      if (expect === 'nothrow') {
        this.violate('threw', op, `${code ?? 'no code'} (${(error as Error).message}) for (${args})`, `${code}`);
      } else if (wantCode !== undefined && code !== wantCode) {
        this.violate('code', op, `${code} instead of ${wantCode} for (${args})`, `${code}`);
      }
      return { ok: false, error };
    }
  }

  /** A promise from the library: rejections must be ReactorErrors; tracked for hangs. */
  track<T>(what: string, rs: RS, promise: Promise<T>, onValue?: (value: T) => void, expect: Expect = 'either', why?: string): void {
    const p: Pending = { what, rs, settled: false, promise };
    this.pending.push(p);
    const ctx = this.ctx;
    promise.then(
      (value) => {
        p.settled = true;
        if (expect === 'throw') this.violate('accepted', what.replace(/\(.*/, ''), `${what} resolved (${ctx})${why ? ` [invalid: ${why}]` : ''}`, why ?? 'state');
        onValue?.(value);
      },
      (error: unknown) => {
        p.settled = true;
        this.checkError(error, `rejection of ${what}`, what.replace(/\(.*/, ''));
      },
    );
  }

  nested(ctx: string, fn: () => void): void {
    if (this.depth >= 3) return;
    const saved = this.ctx;
    this.depth++;
    this.ctx = ctx;
    try {
      fn();
    } finally {
      this.depth--;
      this.ctx = saved;
    }
  }

  next(): number {
    return ++this.#counter;
  }

  // ---- picking targets ----

  openReactors(): RS[] {
    return this.reactors.filter((r) => !r.reactor.closed);
  }

  anyReactor(): RS | undefined {
    const open = this.openReactors();
    if (open.length > 0 && (this.rng.chance(0.9) || open.length === this.reactors.length)) return this.rng.pick(open);
    return this.reactors.length > 0 ? this.rng.pick(this.reactors) : undefined;
  }

  anyTransport(prefer?: Transport): TS | undefined {
    if (prefer !== undefined && this.rng.chance(0.6)) {
      const own = this.byTransport.get(prefer);
      if (own) return own;
    }
    if (this.transports.length === 0) return undefined;
    const live = this.transports.filter((x) => x.t.state !== 'closed');
    if (live.length > 0 && this.rng.chance(0.7)) return this.rng.pick(live);
    return this.rng.pick(this.transports);
  }

  liveTransportCount(): number {
    let n = 0;
    for (const x of this.transports) if (x.t.state !== 'closed') n++;
    return n;
  }

  // ---- transports and protocols ----

  /** The record for a transport first seen in a factory or connectionMade. */
  adopt(t: Transport, rs: RS, side: 'server' | 'client'): TS {
    let x = this.byTransport.get(t);
    if (x) return x;
    x = { n: this.next(), t, rs, side, made: false, lost: 0, ended: false, producer: false, registering: false };
    this.byTransport.set(t, x);
    this.transports.push(x);
    this.everTransports++;
    // Keep the list short: forget transports long gone.
    if (this.transports.length > 80) {
      const i = this.transports.findIndex((y) => y.lost > 0);
      if (i >= 0) this.transports.splice(i, 1);
    }
    return x;
  }

  /** One of the fuzzer's protocols: every method runs random calls; some throw. */
  protocol(rs: RS, side: 'server' | 'client'): Protocol {
    const rng = this.rng;
    const w = this;
    const enter = (name: string, t: Transport, check: (x: TS) => void, body?: (x: TS) => void): void => {
      w.callbacks++;
      const x = w.adopt(t, rs, side);
      w.log(`<${name} t${x.n} state=${t.state}>`);
      if (x.lost > 0 && name !== 'connectionLost') w.violate('callback-after-connectionLost', name, `${side} t${x.n}`);
      check(x);
      w.nested(`${name}(t${x.n})`, () => {
        body?.(x);
        const n = rng.weighted([
          [5, 0],
          [4, 1],
          [2, 2],
          [1, 4],
        ]);
        for (let i = 0; i < n; i++) w.randomOp(t);
      });
      if (rng.chance(0.03)) {
        w.log(`  ${name} throws a marked error`);
        throw new FuzzThrow(`fuzz: thrown from ${name}`);
      }
      if (rng.chance(0.01) && w.depth === 0) {
        // A ReactorError escaping a callback: onError (or uncaught) must take it.
        throw new ReactorError('ERR_FUZZ_RETHROWN', 'fuzz: a ReactorError rethrown from a callback');
      }
    };
    const made = (x: TS) => {
      if (x.made) w.violate('connectionMade-twice', 'connectionMade', `t${x.n}`);
      if (x.t.state === 'closed') w.violate('connectionMade-on-closed-transport', 'connectionMade', `${side} t${x.n}, lost=${x.lost}`, side);
      x.made = true;
    };
    const needMade = (name: string) => (x: TS) => {
      if (!x.made) w.violate('callback-before-connectionMade', name, `${side} t${x.n}`);
    };
    const protocol: Protocol = {
      connectionMade: (t) => enter('connectionMade', t, made),
      dataReceived: (data, t) =>
        enter('dataReceived', t, (x) => {
          needMade('dataReceived')(x);
          if (!Buffer.isBuffer(data)) w.violate('data-not-a-Buffer', 'dataReceived', show(data));
        }, (x) => {
          if (rng.chance(0.3) && x.t.state === 'open' && !x.ended) w.call('write', `t${x.n}, echo ${data.length}`, 'either', () => t.write(data));
        }),
      connectionLost: (reason, t) =>
        enter('connectionLost', t, (x) => {
          x.lost++;
          if (x.lost > 1) w.violate('connectionLost-twice', 'connectionLost', `${side} t${x.n}`);
          if (reason !== undefined) w.checkError(reason, 'connectionLost reason', 'connectionLost');
          if (t.state !== 'closed') w.violate('state-after-connectionLost', 'connectionLost', `state=${t.state}`);
        }),
    };
    if (rng.chance(0.6)) protocol.readConnectionLost = (t) =>
      enter('readConnectionLost', t, needMade('readConnectionLost'), (x) => {
        const how = rng.int(3);
        if (how === 0) w.call('end', `t${x.n}`, 'either', () => t.end());
        else if (how === 1) w.call('close', `t${x.n}`, 'either', () => t.close());
      });
    if (rng.chance(0.5)) protocol.writeDrained = (t) => enter('writeDrained', t, needMade('writeDrained'));
    if (rng.chance(0.3)) protocol.timeoutConnection = (t) => enter('timeoutConnection', t, needMade('timeoutConnection'));
    if (rng.chance(0.4)) protocol.shutdownRequested = (t) =>
      enter('shutdownRequested', t, needMade('shutdownRequested'), (x) => {
        if (rng.chance(0.5)) w.call('close', `t${x.n}`, 'either', () => t.close());
      });
    if (rng.chance(0.2)) (protocol as { keepsData?: boolean }).keepsData = false;
    return protocol;
  }

  /** A producer for registerProducer: runs random calls when paused or resumed. */
  producer(): Val {
    const w = this;
    const make = () => ({
      pause: () => {
        w.callbacks++;
        w.nested('producer.pause', () => w.randomOp());
        if (w.rng.chance(0.05)) throw new FuzzThrow('fuzz: producer.pause');
      },
      resume: () => {
        w.callbacks++;
        w.nested('producer.resume', () => w.randomOp());
        if (w.rng.chance(0.05)) throw new FuzzThrow('fuzz: producer.resume');
      },
    });
    const other = this.anyTransport();
    return choose(this.rng, [make(), other?.t ?? make(), { pause() {}, resume() {} }], [null, {}, { pause: 1, resume() {} }, 'producer', { pause() {} }, nullProto()]);
  }

  factory(rs: RS): Val {
    const w = this;
    const rng = this.rng;
    const shared = rng.chance(0.2) ? this.protocol(rs, 'server') : undefined;
    const factory = (t: Transport) => {
      w.callbacks++;
      const x = w.adopt(t, rs, 'server');
      w.log(`<factory t${x.n}>`);
      let result: Protocol | null | undefined | object;
      w.nested(`factory(t${x.n})`, () => {
        const n = rng.weighted([
          [6, 0],
          [2, 1],
          [1, 2],
        ]);
        for (let i = 0; i < n; i++) w.randomOp(t);
      });
      const what = rng.weighted<string>([
        [40, 'protocol'],
        [2, 'null'],
        [2, 'undefined'],
        [1, 'empty'],
        [1, 'throw'],
      ]);
      if (what === 'throw') throw new FuzzThrow('fuzz: thrown from the factory');
      if (what === 'null') result = null;
      else if (what === 'undefined') result = undefined;
      else if (what === 'empty') result = {};
      else result = shared ?? w.protocol(rs, 'server');
      if (what !== 'protocol') x.lost = -1; // no protocol: no connectionLost will come
      return result as Protocol;
    };
    return choose(rng, [factory], [undefined, null, 'factory', {}], [], 0.05);
  }

  // ---- argument generators ----

  port(): Val {
    const live = this.listeners.filter((l) => l.kind === 'tcp' && l.listener.listening);
    const good: unknown[] = [0, 0, 0];
    const either: unknown[] = [];
    if (live.length > 0) either.push(this.rng.pick(live).port);
    if (this.closedPorts.length > 0) either.push(this.rng.pick(this.closedPorts));
    return choose(this.rng, good, [-1, 65536, 1.5, '80', Number.NaN, null, undefined, nullProto(), 2 ** 32, 10n], either, 0.2);
  }

  connectPort(): Val {
    const live = this.listeners.filter((l) => l.kind === 'tcp' && l.listener.listening);
    const good: unknown[] = [];
    if (live.length > 0) good.push(this.rng.pick(live).port, this.rng.pick(live).port);
    if (this.closedPorts.length > 0) good.push(this.rng.pick(this.closedPorts));
    if (good.length === 0) good.push(1); // nothing listens on port 1
    return choose(this.rng, good, [-1, 65536, 1.5, '80', Number.NaN, null, undefined, nullProto()], [0], 0.15);
  }

  freshPath(): string {
    const path = join(tmpdir(), `${SOCKET_PREFIX}${this.next()}.sock`);
    this.paths.add(path);
    return path;
  }

  unixPath(forConnect: boolean): Val {
    const rng = this.rng;
    const live = this.listeners.filter((l) => l.kind === 'unix' && l.listener.listening);
    const good: unknown[] = [];
    const either: unknown[] = [];
    if (forConnect) {
      if (live.length > 0) good.push(rng.pick(live).path, rng.pick(live).path);
      good.push(join(tmpdir(), `${SOCKET_PREFIX}none.sock`));
      either.push(join(tmpdir(), `${SOCKET_PREFIX}no-such-dir`, 'x.sock'), tmpdir());
    } else {
      good.push(this.freshPath());
      either.push(join(tmpdir(), `${SOCKET_PREFIX}no-such-dir`, 'x.sock'));
      if (live.length > 0) either.push(rng.pick(live).path); // EADDRINUSE
    }
    const withNul = this.freshPath();
    const bad = ['', 42, null, undefined, nullProto(), `${withNul}\0tail`, join(tmpdir(), `${SOCKET_PREFIX}${'x'.repeat(120)}.sock`)];
    return choose(rng, good, bad, either, 0.25);
  }

  listenHost(): Val {
    return choose(this.rng, ['127.0.0.1', '127.0.0.1', 'localhost', undefined], ['', 'not-an-address', 42, '127.0.0.1\0', nullProto(), '127.0.0.1.5'], ['::1', null], 0.2);
  }

  connectHost(): Val {
    return choose(this.rng, ['127.0.0.1', '127.0.0.1', 'localhost', undefined], ['', 42, nullProto(), {}], ['::1', null], 0.15);
  }

  /** A duration the native side keeps in 32 bits (idle times, grace, queue timeout). */
  ms(): Val {
    const max = 0xfffffffe;
    return choose(this.rng, [0, 1, 5, 20, 1.5, 1000, max], [-1, Number.NaN, Infinity, '5', null, 10n, nullProto(), max + 2], [], 0.2);
  }

  /** A timer delay: any finite number >= 0 (up to 2^53). */
  delay(): Val {
    return choose(
      this.rng,
      [0, 0, 1, 2, 5, 10, 30, 1.5, 1000, 2 ** 31, 2 ** 32 + 3, 2 ** 40, Number.MAX_SAFE_INTEGER],
      [-1, Number.NaN, Infinity, '5', null, undefined, 10n, nullProto()],
      [-0],
      0.15,
    );
  }

  count(min: number): Val {
    return choose(this.rng, [min, min + 1, 5, 100, Infinity], [min - 1, -1, 1.5, Number.NaN, '3', 2 ** 32, null, nullProto()], [], 0.2);
  }

  bool(): Val {
    return choose(this.rng, [true, false], [1, 'yes', null, {}], [], 0.2);
  }

  writeLimitFields(): Field[] {
    const n = (good: unknown[]) => (rng: Rng) => choose(rng, good, [0, -5, Number.NaN, 2 ** 32, '1024', null], [], 0.15);
    return [
      { key: 'highWaterMark', gen: n([1, 1024, 65536, 1 << 20]), p: 0.3 },
      { key: 'lowWaterMark', gen: (rng) => choose(rng, [0, 512, 16384], [-1, 1.5, Number.NaN, 2 ** 32], [], 0.15), p: 0.3 },
      { key: 'maxWriteBuffer', gen: n([4096, 1 << 20, 16 << 20]), p: 0.3 },
    ];
  }

  /** Validity of a write-limit triple beyond each field's own check. */
  writeLimitsBad(opts: Record<string, unknown>, base = { high: 65536, low: 16384, max: 16 << 20 }): boolean {
    const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);
    const hi = opts.highWaterMark === undefined ? base.high : num(opts.highWaterMark);
    if (hi === undefined) return false; // the field check decides
    const lo = opts.lowWaterMark === undefined ? (opts.highWaterMark === undefined ? base.low : Math.floor(hi / 4)) : num(opts.lowWaterMark);
    const mx = opts.maxWriteBuffer === undefined ? Math.max(base.max, hi) : num(opts.maxWriteBuffer);
    if (lo === undefined || mx === undefined) return false;
    return lo > hi || mx < hi;
  }

  limitFields(tcp: boolean): Field[] {
    const fields: Field[] = [
      { key: 'maxConnections', gen: (rng) => this.countFrom(rng, 1), p: 0.2 },
      { key: 'idleTimeoutMs', gen: () => this.ms(), p: 0.2 },
      { key: 'idleGraceMs', gen: () => this.ms(), p: 0.15 },
      { key: 'idleResetOnWrite', gen: () => this.bool(), p: 0.1 },
      ...this.writeLimitFields(),
      { key: 'queue', gen: () => this.queue(), p: 0.2 },
    ];
    const perPeer: Field = { key: 'maxConnectionsPerPeer', gen: (rng) => this.countFrom(rng, 1), p: 0.1 };
    if (tcp) fields.push(perPeer);
    else if (this.rng.chance(0.05)) fields.push({ key: 'maxConnectionsPerPeer', gen: () => val(2, 2), p: 1 });
    return fields;
  }

  countFrom(rng: Rng, min: number): Val {
    void rng;
    return this.count(min);
  }

  queue(): Val {
    const rng = this.rng;
    if (rng.chance(0.1)) return choose(rng, [{}, nullProto()], ['queue', 5], [null], 0.9);
    return buildOptions(this, [
      { key: 'mode', gen: (r) => choose(r, ['park', 'backlog'], ['fifo', 1, '']), p: 0.4 },
      { key: 'limit', gen: (r) => choose(r, [0, 1, 5, 1024], [-1, 1.5, Number.NaN, '5']), p: 0.4 },
      { key: 'timeoutMs', gen: () => this.ms(), p: 0.3 },
      { key: 'overflow', gen: (r) => choose(r, ['close', 'reset', 'HTTP/1.1 503\r\n\r\n', Buffer.from('busy')], [5, {}, nullProto()], [null]), p: 0.3 },
    ]);
  }

  data(): Val {
    const rng = this.rng;
    const size = rng.weighted([
      [10, rng.int(64)],
      [5, rng.int(4096)],
      [2, rng.int(70000)],
      [1, 1 << 20],
    ]);
    const good: unknown[] = [
      'x'.repeat(size % 300),
      Buffer.alloc(size, 0x61),
      new Uint8Array(size),
      Buffer.alloc(size + 10).subarray(5, 5 + size),
      '',
      Buffer.alloc(0),
      '\ud800 lone surrogate \udfff',
      Buffer.from(new SharedArrayBuffer(32)),
      detachedBytes(),
    ];
    const bad: unknown[] = [42, null, undefined, { length: 3, 0: 1, 1: 2, 2: 3 }, [1, 2, 3], nullProto(), { [Symbol.toStringTag]: 'Uint8Array', byteLength: 4 }, true];
    const either: unknown[] = [new Uint16Array(4), new DataView(new ArrayBuffer(4)), new ArrayBuffer(8), new Proxy(new Uint8Array(4), {}), new LyingBytes(4)];
    return choose(rng, good, bad, either, 0.2);
  }

  encoding(data: unknown): Val | undefined {
    const rng = this.rng;
    if (!rng.chance(0.3)) return undefined;
    if (typeof data !== 'string') return val(rng.pick(['utf8', 'hex', 'utf9']), 1);
    return choose(rng, ['utf8', 'hex', 'base64', 'latin1', 'ucs2', 'utf-8', undefined], ['utf9', 42, {}, 'UTF-99'], ['', null], 0.3);
  }

  chunks(): Val {
    const rng = this.rng;
    const kind = rng.weighted<string>([
      [10, 'good'],
      [2, 'many'],
      [1, 'empty'],
      [2, 'sparse'],
      [2, 'badItem'],
      [2, 'notArray'],
      [1, 'throwingItem'],
    ]);
    switch (kind) {
      case 'good': {
        const n = rng.range(1, 5);
        const items: unknown[] = [];
        let b: Badness = 0;
        for (let i = 0; i < n; i++) {
          const d = this.data();
          items.push(d.v);
          if (d.b > b) b = d.b;
        }
        return { v: items, b, s: show(items) };
      }
      case 'many':
        return val(Array.from({ length: 1100 }, (_, i) => (i % 2 ? 'ab' : Buffer.from('cd'))), 0, '[1100 chunks]');
      case 'empty':
        return val([], 0);
      case 'sparse': {
        const sparse: unknown[] = ['a'];
        sparse[3] = Buffer.from('b');
        return val(sparse, 2);
      }
      case 'badItem':
        return val(['ok', rng.pick([7, null, undefined, {}, nullProto()])], 2);
      case 'notArray':
        return val(rng.pick(['abc', { length: 1, 0: 'a' }, null, undefined, Buffer.from('x'), nullProto()]), 2);
      default: {
        const items = ['a', 'b'];
        Object.defineProperty(items, 1, {
          get() {
            throw new FuzzThrow('fuzz: chunk getter');
          },
        });
        return val(items, 1, '[a,<throwing getter>]');
      }
    }
  }

  // ---- expectations ----

  /** Can the transport be written, as far as the fuzzer's model knows. */
  writable(x: TS): boolean {
    return !x.rs.reactor.closed && x.t.state === 'open' && !x.ended;
  }

  checkWritableGetter(x: TS, op: string): void {
    const w = (x.t as unknown as { writable?: unknown }).writable;
    if (typeof w !== 'boolean') {
      this.violate('writable-getter', op, `transport.writable is ${show(w)}, not a boolean`);
    } else if (w && !this.writable(x)) {
      this.violate('writable-getter', op, `writable is true with state=${x.t.state} ended=${x.ended} reactorClosed=${x.rs.reactor.closed}`);
    }
  }

  stateWhy(x: TS): string {
    if (x.rs.reactor.closed) return 'reactor closed';
    return `state=${x.t.state}${x.ended ? ' after end()' : ''}`;
  }

  /** What a transport method must do, from the argument's validity and the state. */
  expectOn(x: TS, method: string, b: Badness): Expect {
    const state = x.t.state;
    const writeFamily = method === 'write' || method === 'writev' || method === 'end';
    if (x.rs.reactor.closed) {
      if (writeFamily || method === 'unregisterProducer') return 'either';
      return 'throw';
    }
    if (b === 2) return writeFamily && !this.writable(x) ? 'either' : 'throw';
    if (b === 1) return 'either';
    if (writeFamily) return 'nothrow';
    switch (method) {
      case 'close':
        return state === 'closed' || state === 'closing' ? 'either' : 'nothrow';
      case 'abort':
        return state === 'closed' ? 'either' : 'nothrow';
      case 'pause':
      case 'resume':
        return state === 'closed' || state === 'closing' ? 'throw' : 'nothrow';
      case 'registerProducer':
        if (state === 'closed') return 'throw';
        if (x.registering) return 'either';
        if (x.producer) return state === 'closing' ? 'either' : 'throw';
        return state === 'closing' ? 'either' : 'nothrow';
      case 'unregisterProducer':
        return 'either';
      default:
        return state === 'closed' ? 'throw' : state === 'closing' ? 'either' : 'nothrow';
    }
  }

  // ---- operations ----

  randomOp(self?: Transport): void {
    const rng = this.rng;
    const manyTransports = this.liveTransportCount() > 60;
    const create = this.finishing ? 0 : 1;
    const op = rng.weighted<() => void>([
      [create * (this.openReactors().length < 3 ? 3 : 0.5), () => this.opNewReactor()],
      [create * (manyTransports ? 1 : 5), () => this.opListenTCP()],
      [create * (manyTransports ? 0.5 : 3), () => this.opListenUnix()],
      [create * (manyTransports ? 1 : 9), () => this.opConnect('tcp')],
      [create * (manyTransports ? 0.5 : 4), () => this.opConnect('unix')],
      [12, () => this.opWrite(self)],
      [5, () => this.opWritev(self)],
      [4, () => this.opEnd(self)],
      [manyTransports ? 8 : 4, () => this.opClose(self)],
      [manyTransports ? 5 : 2, () => this.opAbort(self)],
      [3, () => this.opPauseResume(self, 'pause')],
      [3, () => this.opPauseResume(self, 'resume')],
      [3, () => this.opSetIdleTimeout(self)],
      [3, () => this.opSetWriteBuffer(self)],
      [2, () => this.opSetNoDelay(self)],
      [2, () => this.opSetKeepAlive(self)],
      [2, () => this.opRegisterProducer(self)],
      [1.5, () => this.opUnregisterProducer(self)],
      [2, () => this.opTransportGetters(self)],
      [5, () => this.opCallLater()],
      [2, () => this.opTimer('cancel')],
      [2, () => this.opTimer('reset')],
      [1.5, () => this.opTimer('ref')],
      [0.5, () => this.opTimerGetters()],
      [2, () => this.opListenerClose()],
      [0.5, () => this.opListenerGetters()],
      [1.5, () => this.opStats()],
      [0.6, () => this.opShutdown()],
      [0.6, () => this.opReactorClose()],
    ]);
    op();
  }

  reactorOptions(): Val {
    const rng = this.rng;
    if (rng.chance(0.08)) return choose(rng, [undefined, nullProto()], [null, 'epoll', 42], [], 0.9);
    const others = ['kqueue', 'epoll', 'poll', 'select', 'io_uring'].filter((b) => !Reactor.backends.includes(b));
    return buildOptions(this, [
      { key: 'backend', gen: (r) => choose(r, [this.backend, this.backend, this.backend], ['nope', 'EPOLL', 42, '', nullProto(), ...others], ['auto'], 0.2), p: 0.95 },
      {
        key: 'onError',
        gen: (r) =>
          choose(r, [(error: unknown) => this.onError(error)], ['onError', 1, {}], [], 0.1),
        p: 0.85,
      },
    ]);
  }

  onError(error: unknown): void {
    this.callbacks++;
    this.log(`<onError ${(error as { code?: string }).code ?? (error as Error)?.name}>`);
    this.checkError(error, 'given to onError', 'onError');
  }

  opNewReactor(): RS | undefined {
    const opts = this.reactorOptions();
    const r = this.call('new Reactor', opts.s, opts.b === 2 ? 'throw' : opts.b === 1 ? 'either' : 'nothrow', () => new Reactor(opts.v as never), undefined, opts.why);
    if (!r.ok) return undefined;
    const hasOnError = typeof (opts.v as { onError?: unknown } | undefined)?.onError === 'function';
    const rs: RS = { n: this.next(), reactor: r.value, hasOnError, shutdown: undefined };
    this.reactors.push(rs);
    this.log(`  -> r${rs.n} backend=${r.value.backend}`);
    return rs;
  }

  /** A reactor-level call: after close() it must throw ERR_REACTOR_CLOSED. */
  reactorExpect(rs: RS, b: Badness, otherwise: Expect = 'nothrow'): [Expect, string | undefined] {
    if (rs.reactor.closed) return ['throw', b === 0 ? 'ERR_REACTOR_CLOSED' : undefined];
    if (b === 2) return ['throw', undefined];
    if (b === 1) return ['either', undefined];
    return [otherwise, undefined];
  }

  opListenTCP(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const port = this.port();
    const host = this.listenHost();
    const fields: Field[] = [
      { key: 'backlog', gen: (r) => choose(r, [1, 511, 0x7fffffff], [0, -1, 1.5, Number.NaN, '5', 2 ** 31]), p: 0.2 },
      { key: 'reusePort', gen: () => this.bool(), p: 0.15 },
      { key: 'ipv6Only', gen: () => this.bool(), p: 0.1 },
      ...this.limitFields(true),
    ];
    const optsVal = buildOptions(this, fields);
    const opts = optsVal.v as Record<string, unknown>;
    const parts: Val[] = [optsVal];
    if (this.rng.chance(0.97)) parts.push({ ...port, why: port.why && `port: ${port.why}` });
    else parts.push(val(undefined, 2, '', 'port missing'));
    if ('port' in opts) delete opts.port;
    if (parts[1]!.s !== '') opts.port = port.v;
    if (host.v !== undefined || this.rng.chance(0.5)) {
      opts.host = host.v;
      parts.push({ ...host, why: host.why && `host: ${host.why}` });
    }
    if (this.writeLimitsBad(opts)) parts.push(val(undefined, 2, '', 'lowWaterMark > highWaterMark or maxWriteBuffer < highWaterMark'));
    if (this.rng.chance(0.03)) {
      opts.path = this.freshPath(); // a Unix option on a TCP listener
      parts.push(val(undefined, 2, '', 'path: a Unix option on a TCP listener'));
    }
    const factory = this.factory(rs);
    parts.push({ ...factory, why: factory.why && `factory: ${factory.why}` });
    const b = worst(...parts);
    const [expect, code] = this.reactorExpect(rs, b, port.v === 0 ? 'nothrow' : 'either');
    const argsS = `${show(opts)}, ${factory.b === 2 ? show(factory.v) : 'factory'}`;
    const r = this.call(`r${rs.n}.listenTCP`, argsS, expect, () => rs.reactor.listenTCP(opts as never, factory.v as never), code, whyOf(...parts));
    if (r.ok) this.addListener(rs, r.value, 'tcp', '');
  }

  opListenUnix(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const path = this.unixPath(false);
    const optsVal = buildOptions(this, [{ key: 'backlog', gen: (r) => choose(r, [1, 511], [0, -1, 1.5, '5']), p: 0.2 }, ...this.limitFields(false)]);
    const opts = optsVal.v as Record<string, unknown>;
    const parts: Val[] = [optsVal];
    if (this.rng.chance(0.97)) {
      opts.path = path.v;
      parts.push({ ...path, why: path.why && `path: ${path.why}` });
    } else parts.push(val(undefined, 2, '', 'path missing'));
    if (this.writeLimitsBad(opts)) parts.push(val(undefined, 2, '', 'lowWaterMark > highWaterMark or maxWriteBuffer < highWaterMark'));
    if (this.rng.chance(0.03)) {
      opts.port = 0; // a TCP option on a Unix listener
      parts.push(val(undefined, 2, '', 'port: a TCP option on a Unix listener'));
    }
    const factory = this.factory(rs);
    parts.push({ ...factory, why: factory.why && `factory: ${factory.why}` });
    const [expect, code] = this.reactorExpect(rs, worst(...parts), 'either');
    const argsS = `${show(opts)}, ${factory.b === 2 ? show(factory.v) : 'factory'}`;
    const r = this.call(`r${rs.n}.listenUnix`, argsS, expect, () => rs.reactor.listenUnix(opts as never, factory.v as never), code, whyOf(...parts));
    if (r.ok) this.addListener(rs, r.value, 'unix', String(opts.path));
    if (typeof opts.path === 'string' && opts.path.includes('\0')) this.paths.add(opts.path.slice(0, opts.path.indexOf('\0')));
  }

  addListener(rs: RS, listener: Listener, kind: 'tcp' | 'unix', path: string): void {
    const ls: LS = { n: this.next(), listener, rs, kind, port: listener.address.port, path, closedByUs: false };
    this.listeners.push(ls);
    this.log(`  -> l${ls.n} ${kind} ${kind === 'tcp' ? ls.port : path}`);
    if (kind === 'tcp' && !(ls.port > 0)) this.violate('listener-address', 'listenTCP', `address ${show(listener.address)}`);
    if (this.listeners.length > 30) {
      const i = this.listeners.findIndex((l) => !l.listener.listening);
      if (i >= 0) this.listeners.splice(i, 1);
    }
  }

  opConnect(kind: 'tcp' | 'unix'): void {
    const rs = this.anyReactor();
    if (!rs) return;
    let optsVal: Val;
    if (this.rng.chance(0.05)) {
      optsVal = choose(this.rng, [], [null, 'localhost', 80, undefined, nullProto()], [], 1);
    } else {
      optsVal = buildOptions(this, kind === 'tcp' ? [{ key: 'host', gen: () => this.connectHost(), p: 0.6 }] : []);
      const target = kind === 'tcp' ? this.connectPort() : this.unixPath(true);
      const key = kind === 'tcp' ? 'port' : 'path';
      (optsVal.v as Record<string, unknown>)[key] = target.v;
      optsVal = { v: optsVal.v, b: worst(optsVal, target), s: show(optsVal.v), why: optsVal.why ?? (target.why && `${key}: ${target.why}`) };
    }
    const protocol = choose(this.rng, [this.protocol(rs, 'client')], [null, {}, { dataReceived: 1 }, 'protocol', nullProto()], [], 0.06);
    const b = worst(optsVal, protocol);
    const why = whyOf(optsVal, protocol);
    const [expect, code] = this.reactorExpect(rs, b, 'either');
    const op = `r${rs.n}.${kind === 'tcp' ? 'connectTCP' : 'connectUnix'}`;
    const args = `${optsVal.s}, ${protocol.b === 2 ? protocol.s : 'protocol'}`;
    // Asynchronous: a refusal may be a synchronous throw or a rejection.
    const r = this.call(op, args, expect === 'throw' ? 'either' : expect, () =>
      kind === 'tcp' ? rs.reactor.connectTCP(optsVal.v as never, protocol.v as never) : rs.reactor.connectUnix(optsVal.v as never, protocol.v as never),
    );
    if (!r.ok) return;
    const promise = r.value as Promise<Transport>;
    const ctx = this.ctx;
    this.track(
      `${op}(${args})`,
      rs,
      promise,
      (t) => {
        const x = this.byTransport.get(t);
        if (!x || !x.made) this.violate('resolved-before-connectionMade', op, `(${ctx})`);
      },
      expect,
      why,
    );
    if (code !== undefined) {
      promise.catch((error: { code?: string }) => {
        if (error?.code !== code) this.violate('code', op, `rejected with ${error?.code} instead of ${code} after reactor.close() for (${args})`, `${error?.code}`);
      });
    }
  }

  withTransport(self: Transport | undefined, fn: (x: TS) => void): void {
    const x = this.anyTransport(self);
    if (x) fn(x);
  }

  opWrite(self?: Transport): void {
    this.withTransport(self, (x) => {
      const data = this.data();
      const enc = this.encoding(data.v);
      const b = enc ? worst(data, enc) : data.b;
      const could = this.writable(x);
      this.checkWritableGetter(x, 'write');
      const args = `${data.s}${enc ? ', ' + enc.s : ''}`;
      const why = enc ? whyOf(data, { ...enc, why: enc.why && `encoding ${enc.why}` }) : data.why;
      const r = this.call(`t${x.n}.write`, args, this.expectOn(x, 'write', b), () =>
        enc ? x.t.write(data.v as never, enc.v as never) : x.t.write(data.v as never),
      undefined, why ?? this.stateWhy(x));
      if (r.ok && typeof r.value !== 'boolean') this.violate('write-result', 'write', `returned ${show(r.value)}`);
      if (r.ok && r.value === true && !could) this.violate('write-true-when-not-writable', 'write', `state=${x.t.state} ended=${x.ended} reactorClosed=${x.rs.reactor.closed}`);
    });
  }

  opWritev(self?: Transport): void {
    this.withTransport(self, (x) => {
      const chunks = this.chunks();
      const could = this.writable(x);
      this.checkWritableGetter(x, 'writev');
      const r = this.call(`t${x.n}.writev`, chunks.s, this.expectOn(x, 'writev', chunks.b), () => x.t.writev(chunks.v as never), undefined, chunks.why ?? this.stateWhy(x));
      if (r.ok && typeof r.value !== 'boolean') this.violate('write-result', 'writev', `returned ${show(r.value)}`);
      if (r.ok && r.value === true && !could) this.violate('write-true-when-not-writable', 'writev', `state=${x.t.state} ended=${x.ended} reactorClosed=${x.rs.reactor.closed}`);
    });
  }

  opEnd(self?: Transport): void {
    this.withTransport(self, (x) => {
      let data = this.rng.chance(0.6) ? undefined : this.data();
      if (data?.v === undefined) data = undefined; // end(undefined) is end()
      const b = data ? data.b : 0;
      const r = this.call(`t${x.n}.end`, data ? data.s : '', this.expectOn(x, 'end', b), () => (data ? x.t.end(data.v as never) : x.t.end()), undefined, data?.why ?? this.stateWhy(x));
      if (r.ok) x.ended = true;
    });
  }

  opClose(self?: Transport): void {
    this.withTransport(self, (x) => {
      this.call(`t${x.n}.close`, '', this.expectOn(x, 'close', 0), () => x.t.close(), undefined, this.stateWhy(x));
    });
  }

  opAbort(self?: Transport): void {
    this.withTransport(self, (x) => {
      this.call(`t${x.n}.abort`, '', this.expectOn(x, 'abort', 0), () => x.t.abort(), undefined, this.stateWhy(x));
    });
  }

  opPauseResume(self: Transport | undefined, method: 'pause' | 'resume'): void {
    this.withTransport(self, (x) => {
      const r = this.call(`t${x.n}.${method}`, '', this.expectOn(x, method, 0), () => x.t[method](), undefined, this.stateWhy(x));
      if (r.ok && x.t.isPaused !== (method === 'pause')) this.violate('isPaused', method, `isPaused=${x.t.isPaused} after ${method}()`);
    });
  }

  opSetIdleTimeout(self?: Transport): void {
    this.withTransport(self, (x) => {
      const ms = this.ms();
      const opts = this.rng.chance(0.5)
        ? undefined
        : this.rng.chance(0.1)
          ? choose(this.rng, [{}], [null, 5, 'x'], [], 0.9)
          : buildOptions(this, [
              { key: 'resetOnWrite', gen: () => this.bool(), p: 0.5 },
              { key: 'graceMs', gen: () => this.ms(), p: 0.5 },
            ]);
      const b = opts ? worst(ms, opts) : ms.b;
      this.call(`t${x.n}.setIdleTimeout`, `${ms.s}${opts ? ', ' + opts.s : ''}`, this.expectOn(x, 'setIdleTimeout', b), () =>
        opts ? x.t.setIdleTimeout(ms.v as never, opts.v as never) : x.t.setIdleTimeout(ms.v as never),
      undefined, (opts ? whyOf(ms, opts) : ms.why) ?? this.stateWhy(x));
    });
  }

  opSetWriteBuffer(self?: Transport): void {
    this.withTransport(self, (x) => {
      const opts = this.rng.chance(0.08) ? choose(this.rng, [{}, nullProto()], [undefined, null, 5], [], 0.9) : buildOptions(this, this.writeLimitFields());
      let b = opts.b;
      let why = opts.why;
      if (b === 0 && typeof opts.v === 'object' && opts.v !== null) {
        const t = x.t;
        if (this.writeLimitsBad(opts.v as Record<string, unknown>, { high: t.highWaterMark, low: t.lowWaterMark, max: t.maxWriteBuffer })) {
          b = 2;
          why = 'lowWaterMark > highWaterMark or maxWriteBuffer < highWaterMark';
        }
      }
      this.call(`t${x.n}.setWriteBuffer`, opts.s, this.expectOn(x, 'setWriteBuffer', b), () => x.t.setWriteBuffer(opts.v as never), undefined, why ?? this.stateWhy(x));
    });
  }

  opSetNoDelay(self?: Transport): void {
    this.withTransport(self, (x) => {
      const v = this.rng.chance(0.3) ? undefined : this.bool();
      this.call(`t${x.n}.setNoDelay`, v ? v.s : '', this.expectOn(x, 'setNoDelay', v ? v.b : 0), () => (v ? x.t.setNoDelay(v.v as never) : x.t.setNoDelay()), undefined, v?.why ?? this.stateWhy(x));
    });
  }

  opSetKeepAlive(self?: Transport): void {
    this.withTransport(self, (x) => {
      const rng = this.rng;
      const enable = choose(rng, [true, false], [1, undefined, 'on', null], [], 0.15);
      const args: Val[] = [enable];
      const times = (r: Rng) => choose(r, [undefined, 0, 1000, 60_000, 1.5], [-1, Number.NaN, '5', null, Infinity], [2 ** 40, 1e15], 0.15);
      if (rng.chance(0.6)) args.push(times(rng));
      if (args.length > 1 && rng.chance(0.6)) args.push(times(rng));
      if (args.length > 2 && rng.chance(0.6)) args.push(choose(rng, [undefined, 1, 9, 127], [0, 128, 1.5, Number.NaN, '3', -1], [], 0.2));
      const b = worst(...args);
      const loose = x.t as unknown as { setKeepAlive(...a: unknown[]): void };
      this.call(`t${x.n}.setKeepAlive`, args.map((a) => a.s).join(', '), this.expectOn(x, 'setKeepAlive', b), () => loose.setKeepAlive(...args.map((a) => a.v)), undefined, whyOf(...args) ?? this.stateWhy(x));
    });
  }

  opRegisterProducer(self?: Transport): void {
    this.withTransport(self, (x) => {
      const p = this.producer();
      const expect = this.expectOn(x, 'registerProducer', p.b);
      x.registering = true;
      let r;
      try {
        r = this.call(`t${x.n}.registerProducer`, p.s, expect, () => x.t.registerProducer(p.v as never), undefined, p.why ?? this.stateWhy(x) + (x.producer ? ' producer registered' : ''));
      } finally {
        x.registering = false;
      }
      if (r.ok) x.producer = true;
    });
  }

  opUnregisterProducer(self?: Transport): void {
    this.withTransport(self, (x) => {
      const r = this.call(`t${x.n}.unregisterProducer`, '', this.expectOn(x, 'unregisterProducer', 0), () => x.t.unregisterProducer());
      if (r.ok) x.producer = false;
    });
  }

  opTransportGetters(self?: Transport): void {
    this.withTransport(self, (x) => {
      const t = x.t;
      this.call(`t${x.n}.<getters>`, '', 'nothrow', () => {
        const state = t.state;
        const values = [t.bufferedAmount, t.highWaterMark, t.lowWaterMark, t.maxWriteBuffer];
        if (!values.every((v) => typeof v === 'number' && v >= 0)) this.violate('getter', 'transport getters', `numbers ${show(values)}`);
        if (!['connecting', 'open', 'closing', 'closed'].includes(state)) this.violate('getter', 'state', show(state));
        void t.isPaused;
        void t.localAddress;
        void t.remoteAddress;
        this.checkWritableGetter(x, 'writable');
      });
    });
  }

  opCallLater(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const rng = this.rng;
    const ms = this.delay();
    const args = rng.chance(0.3) ? [rng.int(100), 'arg'] : [];
    let cs: CS | undefined;
    const fn = choose(
      rng,
      [
        (...got: unknown[]) => {
          this.callbacks++;
          const c = cs;
          this.log(`<timer c${c?.n}>`);
          if (c) {
            const elapsed = performance.now() - c.setAt;
            c.fired++;
            if (c.fired > 1) this.violate('timer-fired-twice', 'callLater', `c${c.n} ms=${c.ms}`);
            if (c.cancelled) this.violate('timer-fired-after-cancel', 'callLater', `c${c.n}`);
            if (c.rs.reactor.closed) this.violate('timer-fired-after-close', 'callLater', `c${c.n}`);
            if (elapsed + 2 < Math.min(c.ms, 1e9)) this.violate('timer-fired-early', 'callLater', `ms=${show(c.ms)} fired after ${elapsed.toFixed(1)} ms`);
            if (got.length !== c.args.length || got.some((a, i) => a !== c.args[i])) this.violate('timer-args', 'callLater', `${show(got)} instead of ${show(c.args)}`);
          }
          this.nested(`timer(c${c?.n})`, () => {
            const n = rng.weighted([
              [3, 0],
              [4, 1],
              [2, 2],
            ]);
            for (let i = 0; i < n; i++) this.randomOp();
          });
          if (rng.chance(0.05)) throw new FuzzThrow('fuzz: thrown from a timer');
        },
      ],
      [null, 'fn', {}, 5],
      [],
      0.08,
    );
    const b = worst(ms, fn);
    const [expect, code] = this.reactorExpect(rs, b);
    const loose = rs.reactor as unknown as { callLater(...a: unknown[]): DelayedCall };
    const setAt = performance.now();
    const r = this.call(`r${rs.n}.callLater`, `${ms.s}, ${fn.b ? fn.s : 'fn'}${args.length ? ', ' + show(args) : ''}`, expect, () => loose.callLater(ms.v, fn.v, ...args), code, whyOf(ms, fn));
    if (!r.ok) return;
    cs = { n: this.next(), call: r.value, rs, setAt, ms: Math.ceil(Number(ms.v)), fired: 0, cancelled: false, args };
    this.timers.push(cs);
    if (this.timers.length > 60) this.timers.splice(this.timers.findIndex((c) => !c.call.active) >>> 0, 1);
    this.log(`  -> c${cs.n}`);
  }

  opTimer(method: 'cancel' | 'reset' | 'ref'): void {
    if (this.timers.length === 0) return;
    const c = this.rng.pick(this.timers);
    const closed = c.rs.reactor.closed;
    const wasActive = c.call.active;
    if (method === 'cancel') {
      const r = this.call(`c${c.n}.cancel`, '', closed ? 'either' : 'nothrow', () => c.call.cancel());
      if (r.ok) {
        if (r.value !== wasActive) this.violate('cancel-result', 'cancel', `returned ${r.value} with active=${wasActive}`);
        c.cancelled = true;
      }
    } else if (method === 'reset') {
      const ms = this.delay();
      const expect: Expect = closed || !wasActive || ms.b === 2 ? 'throw' : ms.b === 1 ? 'either' : 'nothrow';
      const setAt = performance.now();
      const r = this.call(`c${c.n}.reset`, ms.s, expect, () => c.call.reset(ms.v as never), undefined, ms.why ?? (closed ? 'reactor closed' : wasActive ? undefined : 'not active'));
      if (r.ok) {
        c.setAt = setAt;
        c.ms = Math.ceil(Number(ms.v));
      }
    } else {
      const which = this.rng.pick(['ref', 'unref', 'hasRef'] as const);
      this.call(`c${c.n}.${which}`, '', closed ? 'either' : 'nothrow', () => c.call[which]());
    }
  }

  opTimerGetters(): void {
    if (this.timers.length === 0) return;
    const c = this.rng.pick(this.timers);
    this.call(`c${c.n}.active`, '', 'nothrow', () => {
      if (typeof c.call.active !== 'boolean') this.violate('getter', 'active', show(c.call.active));
      if (c.call.active && (c.fired > 0 || c.cancelled)) this.violate('getter', 'active', `active after it ${c.fired ? 'fired' : 'was cancelled'}`);
    });
  }

  opListenerClose(): void {
    if (this.listeners.length === 0) return;
    const l = this.rng.pick(this.listeners);
    const expect: Expect = l.rs.reactor.closed ? 'throw' : l.listener.listening ? 'nothrow' : 'either';
    const r = this.call(`l${l.n}.close`, '', expect, () => l.listener.close());
    if (r.ok) {
      l.closedByUs = true;
      if (l.kind === 'tcp') this.closedPorts.push(l.port);
      if (l.listener.listening) this.violate('listening-after-close', 'listener.close', `l${l.n}`);
    }
  }

  opListenerGetters(): void {
    if (this.listeners.length === 0) return;
    const l = this.rng.pick(this.listeners);
    this.call(`l${l.n}.<getters>`, '', 'nothrow', () => {
      const counts = [l.listener.connections, l.listener.queued];
      if (!counts.every((n) => Number.isInteger(n) && n >= 0)) this.violate('getter', 'listener counts', show(counts));
      void l.listener.listening;
      void l.listener.address;
    });
  }

  opStats(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const [expect, code] = this.reactorExpect(rs, 0);
    const r = this.call(`r${rs.n}.stats`, '', expect, () => rs.reactor.stats(), code);
    if (r.ok && (typeof r.value !== 'object' || !Object.values(r.value).every((n) => typeof n === 'number' && n >= 0))) {
      this.violate('stats', 'stats', show(r.value));
    }
  }

  opShutdown(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const opts =
      this.rng.chance(0.3)
        ? undefined
        : this.rng.chance(0.1)
          ? choose(this.rng, [{}, nullProto()], [null, 5, 'x'], [], 0.9)
          : buildOptions(this, [{ key: 'timeoutMs', gen: (r) => choose(r, [0, 1, 5, 20, 50], [-1, Number.NaN, Infinity, '5', 2 ** 32, null]), p: 0.8 }]);
    const b = opts ? opts.b : 0;
    const [expect, code] = this.reactorExpect(rs, b);
    const during = rs.shutdown !== undefined && !rs.reactor.closed ? ' (during a shutdown)' : '';
    const why = opts?.why && `${opts.why}${during}`;
    const r = this.call(`r${rs.n}.shutdown`, opts ? opts.s : '', expect, () => (opts ? rs.reactor.shutdown(opts.v as never) : rs.reactor.shutdown()), code, why);
    if (!r.ok) return;
    if (!(r.value instanceof Promise)) {
      this.violate('shutdown-result', 'shutdown', show(r.value));
      return;
    }
    if (rs.shutdown !== undefined && r.value !== rs.shutdown) this.violate('shutdown-result', 'shutdown', 'a second call returned another promise');
    if (rs.shutdown === undefined) {
      const timeoutMs = (opts?.v as { timeoutMs?: unknown } | undefined)?.timeoutMs;
      rs.shutdownSoon = typeof timeoutMs === 'number' && timeoutMs <= 50;
    }
    rs.shutdown ??= r.value;
    this.track(`r${rs.n}.shutdown(${opts ? opts.s : ''})`, rs, r.value, (result) => {
      const res = result as { closed?: unknown; aborted?: unknown };
      if (typeof res?.closed !== 'number' || typeof res.aborted !== 'number') this.violate('shutdown-result', 'shutdown', `resolved with ${show(result)}`);
      if (!rs.reactor.closed) this.violate('shutdown-result', 'shutdown', 'resolved with the reactor still open');
    });
  }

  opReactorClose(): void {
    const rs = this.anyReactor();
    if (!rs) return;
    const [expect, code] = this.reactorExpect(rs, 0);
    this.call(`r${rs.n}.close`, '', expect, () => rs.reactor.close(), code);
  }

  // ---- the end of a run ----

  async finish(): Promise<void> {
    this.ctx = 'finish';
    this.finishing = true;
    // Close everything: some reactors gracefully, the rest at once.
    for (const rs of this.reactors) {
      if (rs.reactor.closed) continue;
      if (this.rng.chance(0.3) && rs.shutdown === undefined) {
        this.log(`r${rs.n}.shutdown({ timeoutMs: 20 }) to finish`);
        try {
          rs.shutdown = rs.reactor.shutdown({ timeoutMs: 20 });
          rs.shutdownSoon = true;
          this.track(`r${rs.n}.shutdown (finish)`, rs, rs.shutdown);
        } catch (error) {
          this.checkError(error, 'thrown by shutdown (finish)', 'shutdown');
        }
      }
    }
    for (const rs of this.reactors) {
      if (rs.shutdown === undefined) continue;
      const settled = (ms: number) => Promise.race([rs.shutdown!.then(() => true, () => true), sleep(ms).then(() => false)]);
      let done = await settled(2000);
      if (!done && !rs.shutdownSoon && !rs.reactor.closed) {
        // A shutdown() with the default 15 s (or a long) timeout may wait for
        // a connection that does not finish; close() must settle it at once.
        this.log(`r${rs.n}.close() to end a long shutdown()`);
        rs.reactor.close();
        done = await settled(1000);
      }
      if (!done) this.violate('hang', 'shutdown', `r${rs.n}.shutdown() did not settle (open transports: ${this.transports.filter((x) => x.rs === rs && x.t.state !== 'closed').length})`);
    }
    this.ctx = 'finish';
    for (const rs of this.reactors) {
      if (rs.reactor.closed) continue;
      this.log(`r${rs.n}.close() to finish`);
      try {
        rs.reactor.close();
      } catch (error) {
        this.checkError(error, 'thrown by close (finish)', 'close');
      }
    }
    // Every connect settles, every connectionLost runs.
    await waitFor(() => this.pending.every((p) => p.settled), 1500);
    for (const p of this.pending) if (!p.settled) this.violate('hang', p.what.replace(/\(.*/, ''), `never settled after reactor.close(): ${p.what}`);
    const owed = () => this.transports.filter((x) => x.made && x.lost === 0);
    await waitFor(() => owed().length === 0, 1000);
    for (const x of owed()) this.violate('hang', 'connectionLost', `never ran after reactor.close() (${x.side} t${x.n}, state=${x.t.state})`);
    for (const rs of this.reactors) {
      if (rs.reactor.closed) continue;
      this.violate('not-closed', 'reactor', `r${rs.n} is still open after close()`);
      rs.reactor.close();
    }
  }
}

export interface FuzzOptions {
  backend: string;
  seeds: number[];
  steps: number;
  wallMs: number;
  trace: boolean;
  log: (line: string) => void;
}

let current: World | undefined;

function onUncaught(error: unknown): void {
  const w = current;
  if (!w) throw error;
  w.log(`<uncaught ${(error as { code?: string }).code ?? (error as Error)?.name}>`);
  if (isMarked(error)) {
    if (w.reactors.every((r) => r.hasOnError)) w.violate('uncaught', 'uncaughtException', `a callback's error surfaced although every reactor has onError: ${(error as Error).message}`);
    return;
  }
  w.checkError(error, 'uncaught exception', 'uncaughtException');
}

function onUnhandled(error: unknown): void {
  const w = current;
  if (!w) throw error;
  w.violate('unhandled-rejection', 'unhandledRejection', `${(error as Error)?.name}: ${(error as Error)?.message}`);
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await turn();
  await sleep(5);
}

function socketLeftovers(w: World): string[] {
  return [...w.paths].filter((p) => existsSync(p));
}

/** Warms up what a backend opens lazily, so the descriptor count is stable. */
async function warmUp(backend: string): Promise<void> {
  const r = new Reactor({ backend: backend as BackendName });
  const l = r.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({ dataReceived() {} }));
  const t = await r.connectTCP({ port: l.address.port, host: '127.0.0.1' }, { dataReceived() {} });
  t.write('x');
  r.callLater(0, () => {});
  await sleep(5);
  r.close();
  await settle();
}

async function runSeed(seed: number, options: FuzzOptions): Promise<SeedResult> {
  const w = new World(seed, options.backend, options.trace);
  current = w;
  await settle();
  const fdsBefore = fdCount();
  const fdsBeforeList = fdList();
  const start = performance.now();
  const deadline = start + options.wallMs;
  w.opNewReactor();
  for (w.step = 1; w.step <= options.steps && performance.now() < deadline; w.step++) {
    w.ctx = 'main';
    if (w.openReactors().length === 0 && w.rng.chance(0.9)) {
      // Mostly keep a live reactor around, with valid options.
      const rs = w.call('new Reactor', `{backend:${w.backend}}`, 'nothrow', () => new Reactor({ backend: w.backend as BackendName, onError: (e) => w.onError(e) }));
      if (rs.ok) w.reactors.push({ n: w.next(), reactor: rs.value, hasOnError: true, shutdown: undefined });
    }
    w.randomOp();
    const pause = w.rng.weighted<string>([
      [6, 'none'],
      [3, 'turn'],
      [1, 'sleep'],
    ]);
    if (pause === 'turn') await turn();
    else if (pause === 'sleep') await sleep(w.rng.range(1, 8));
  }
  const steps = w.step - 1;
  await w.finish();
  await settle();
  // Closed descriptors may take a turn or two (io_uring closes asynchronously).
  await waitFor(() => fdCount() <= fdsBefore, 1000);
  const fdsAfter = fdCount();
  if (fdsAfter > fdsBefore) {
    const after = fdList();
    const leaked = [...after].filter(([fd, target]) => fdsBeforeList.get(fd) !== target).map(([fd, target]) => `${fd}->${target}`);
    w.violate('fd-leak', 'descriptors', `${fdsAfter - fdsBefore} more open than at the start: ${leaked.slice(0, 8).join(' ')}`);
  }
  const left = socketLeftovers(w);
  if (left.length > 0) {
    w.violate('path-leak', 'listenUnix', `socket path(s) left behind: ${left.slice(0, 3).join(' ')}`);
    for (const p of left) rmSync(p, { force: true });
  }
  current = undefined;
  return {
    seed,
    steps,
    ms: Math.round(performance.now() - start),
    calls: w.calls,
    callbacks: w.callbacks,
    transports: w.everTransports,
    violations: [...w.violations.values()],
  };
}

/** Runs every seed on one backend; see the top of this file. */
export async function runFuzz(options: FuzzOptions): Promise<{ backend: string; seeds: SeedResult[] }> {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);
  try {
    await warmUp(options.backend);
    const seeds: SeedResult[] = [];
    for (const seed of options.seeds) {
      options.log(`seed-start ${seed}`);
      seeds.push(await runSeed(seed, options));
    }
    return { backend: options.backend, seeds };
  } finally {
    // Leave the handlers while late ticks may still throw; they are inert without a world.
  }
}
