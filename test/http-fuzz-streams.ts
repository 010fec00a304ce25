// The differential HTTP fuzzer's streams and oracles (issue 13), shared by
// the parser's fuzzer (test/http-parser-fuzz.test.ts: the parser through the
// http_parse_probe tool) and the server's (test/http-server-fuzz.test.ts: the
// same streams through reactor.listenHTTP, per backend): the seeded
// generator of valid, edge and malformed requests split at random points,
// node:http as the oracle, and how their outcomes are compared.
import { spawn } from 'node:child_process';
import { createServer, METHODS as NODE_METHODS, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const probe = fileURLToPath(
  new URL(`../build/Release/http_parse_probe${process.platform === 'win32' ? '.exe' : ''}`, import.meta.url),
);
/** FUZZ_CASES streams (default `fallback`), from FUZZ_SEED (default random). */
export function fuzzSettings(fallback: number): { cases: number; seed: number } {
  return {
    cases: Number(process.env.FUZZ_CASES ?? fallback),
    seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0,
  };
}

// ---- the seeded generator ------------------------------------------------

export type Random = () => number;

/** mulberry32: small, fast, and the same sequence everywhere for a seed. */
export function prng(state: number): Random {
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const int = (random: Random, n: number) => Math.floor(random() * n);
const pick = <T>(random: Random, items: readonly T[]): T => items[int(random, items.length)]!;
const chance = (random: Random, p: number) => random() < p;

// Every method llhttp knows but CONNECT (node:http hands it to 'connect', not
// 'request'; the native tests cover it), GET and POST most often.
const METHODS = [...NODE_METHODS.filter((m) => m !== 'CONNECT'), ...Array<string>(10).fill('GET'), ...Array<string>(5).fill('POST')];
const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
const TARGET_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-._~/?=&%:@!$()*+,;[]"<>{|}^`#';
const VALUE_CHARS = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\t!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~';
const NAMES = ['Host', 'Accept', 'User-Agent', 'Cookie', 'X-Forwarded-For', 'Cache-Control', 'Accept-Encoding'];

const randomString = (random: Random, chars: string, min: number, max: number) => {
  let s = '';
  for (let n = min + int(random, max - min + 1); n > 0; n--) s += chars[int(random, chars.length)];
  return s;
};

function randomTarget(random: Random): string {
  switch (int(random, 8)) {
    case 0:
      return '*';
    case 1:
      return `http://${randomString(random, 'abcxyz.', 1, 8)}:${int(random, 65536)}/${randomString(random, TARGET_CHARS, 0, 12)}`;
    default:
      return `/${randomString(random, TARGET_CHARS, 0, 40)}`;
  }
}

function randomValue(random: Random): string {
  // Whitespace at either end (trimmed by both), now and then obs-text.
  let value = randomString(random, VALUE_CHARS, 0, 30);
  if (chance(random, 0.1)) value += String.fromCharCode(0x80 + int(random, 128));
  if (chance(random, 0.2)) value = ` \t${value}\t `;
  return value;
}

function chunkedBody(random: Random, body: string): string {
  let out = '';
  for (let at = 0; at < body.length; ) {
    const n = 1 + int(random, body.length - at);
    const size = n.toString(16);
    const extension = chance(random, 0.2) ? `;${randomString(random, TOKEN_CHARS, 1, 5)}=${pick(random, ['v', '"q v"', '"\\""'])}` : '';
    out += `${chance(random, 0.3) ? size.toUpperCase() : size}${extension}\r\n${body.slice(at, at + n)}\r\n`;
    at += n;
  }
  const trailers = chance(random, 0.2) ? `${pick(random, NAMES)}: ${randomValue(random)}\r\n` : '';
  return `${out}0\r\n${trailers}\r\n`;
}

function validRequest(random: Random, last: boolean): string {
  const method = pick(random, METHODS);
  const version = chance(random, 0.85) ? '1.1' : '1.0';
  let head = `${method} ${randomTarget(random)} HTTP/${version}\r\n`;
  for (let n = int(random, 8); n > 0; n--) {
    const name = chance(random, 0.5) ? pick(random, NAMES) : randomString(random, TOKEN_CHARS, 1, 12);
    head += `${name}:${randomValue(random)}\r\n`;
  }
  // Only the last request of a pipeline may end the connection.
  const keepAlive = version === '1.1' ? !(last && chance(random, 0.2)) : !last || chance(random, 0.5);
  if (version === '1.1' && !keepAlive) head += 'Connection: close\r\n';
  if (version === '1.0' && keepAlive) head += 'Connection: keep-alive\r\n';
  if (chance(random, 0.05)) head += 'Expect: 100-continue\r\n';
  const body = chance(random, 0.5) ? '' : randomString(random, VALUE_CHARS + '\r\n\x00\xff', 0, 200);
  switch (int(random, 3)) {
    case 0:
      return body === '' ? `${head}\r\n` : `${head}Content-Length: ${body.length}\r\n\r\n${body}`;
    case 1:
      return `${head}Transfer-Encoding: ${pick(random, ['chunked', 'gzip, chunked', 'Chunked'])}\r\n\r\n${chunkedBody(random, body)}`;
    default:
      return `${head}Content-Length: ${chance(random, 0.5) ? ' ' : ''}${body.length}\r\n\r\n${body}`;
  }
}

/** Edits that make a request invalid, ambiguous or large, chosen at random. */
const MUTATIONS: ReadonlyArray<(random: Random, request: string) => string> = [
  // A random byte changed, inserted or removed.
  (random, r) => {
    const at = int(random, r.length);
    const byte = String.fromCharCode(chance(random, 0.5) ? int(random, 256) : pick(random, [0, 9, 10, 13, 32, 34, 58, 59, 127]));
    return pick(random, [r.slice(0, at) + byte + r.slice(at + 1), r.slice(0, at) + byte + r.slice(at), r.slice(0, at) + r.slice(at + 1)]);
  },
  // Content-Length with Transfer-Encoding; duplicate and invalid Content-Length.
  (_, r) => r.replace('\r\n', '\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n'),
  (random, r) => r.replace('\r\n', `\r\nContent-Length: 0\r\nContent-Length: ${pick(random, ['0', '1'])}\r\n`),
  (random, r) =>
    r.replace('\r\n', `\r\nContent-Length: ${pick(random, ['+1', '-1', '1,1', '0x1', '1 1', '', '18446744073709551616', '99999999999999999999'])}\r\n`),
  // Transfer codings that do not end in chunked.
  (random, r) => r.replace('\r\n', `\r\nTransfer-Encoding: ${pick(random, ['gzip', 'chunked, gzip', 'chunked, chunked', 'chunked,', 'xchunked', ''])}\r\n`),
  // obs-fold, whitespace before a colon, bare LF, bare CR.
  (_, r) => r.replace(/\r\n([^\r\n]*\r\n)/, '\r\n$1 folded\r\n'),
  (_, r) => r.replace(/\r\n([!-9;-~]+):/, '\r\n$1 :'),
  (random, r) => {
    const crlfs = [...r.matchAll(/\r\n/g)].map((m) => m.index!);
    const at = crlfs.length ? pick(random, crlfs) : 0;
    return r.slice(0, at) + pick(random, ['\n', '\r', '\r\r\n']) + r.slice(at + 2);
  },
  // Versions, methods, targets.
  (random, r) => r.replace(/HTTP\/1\.[01]/, pick(random, ['HTTP/1.2', 'HTTP/3.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1.10'])),
  (random, r) => r.replace(/^[A-Z-]+/, pick(random, ['get', 'FOO', 'GETT', 'PRI', 'G ET', 'MKCALENDAR', 'QUERY'])),
  (random, r) => r.replace(/ [^ ]+ HTTP/, ` ${pick(random, ['a', '?x', 'http:/x', '/\x7f', '/\x80', '/a\tb', '//', 'HTTPS://h'])} HTTP`),
  // Chunk framing: overflow, whitespace, bad extensions, missing CRLF.
  (random, r) =>
    r.replace(/\r\n\r\n([0-9a-fA-F]+)(;[^\r]*)?\r\n/, (_m, size: string) => `\r\n\r\n${pick(random, ['fffffffffffffffff', `${size} `, `${size};`, `${size}; a`, `${size};a=\x01`, 'g'])}\r\n`),
  // Huge heads: well over node's 16 KiB (431 from both) or well under it; the
  // two count head bytes differently (see below), so nothing in between.
  (random, r) => r.replace('\r\n', `\r\nX-Big: ${'b'.repeat(chance(random, 0.5) ? 20000 + int(random, 20000) : 1000 + int(random, 11000))}\r\n`),
];

/** The mutation that only makes the head large: with no other, both must answer 431 or accept. */
const HUGE_HEAD = MUTATIONS.length - 1;

export interface Case {
  index: number;
  bytes: Buffer;
  /** Which MUTATIONS were applied, by index. */
  mutations: number[];
  /** Where the probe's pieces begin (the split points). */
  splits: number[];
}

export function generateCase(random: Random, index: number): Case {
  const count = 1 + int(random, chance(random, 0.3) ? 4 : 1);
  const requests: string[] = [];
  const mutations: number[] = [];
  const mutate = (request: string) => {
    const m = int(random, MUTATIONS.length);
    mutations.push(m);
    return MUTATIONS[m]!(random, request);
  };
  for (let i = 0; i < count; i++) {
    let request = validRequest(random, i === count - 1);
    if (chance(random, 0.45)) request = mutate(request);
    if (chance(random, 0.1)) request = mutate(request);
    requests.push(request);
  }
  const bytes = Buffer.from(requests.join(''), 'latin1');
  const splits = [...new Set(Array.from({ length: int(random, 6) }, () => int(random, bytes.length + 1)))].sort((a, b) => a - b);
  return { index, bytes, mutations, splits };
}

export const pieces = (c: Case): Buffer[] => {
  const edges = [0, ...c.splits, c.bytes.length];
  return edges.slice(1).map((end, i) => c.bytes.subarray(edges[i]!, end));
};

// ---- the two parsers -----------------------------------------------------

export interface Request {
  method: string;
  target: string;
  version: string;
  headers: string[];
  body: string; // hex
  complete: boolean;
  keepAlive: boolean;
}
export interface Outcome {
  requests: Request[];
  /** null: accepted (every byte parsed into complete requests). */
  error: string | null;
  /** A head-size refusal: 431 from the probe, HPE_HEADER_OVERFLOW from node. */
  headerOverflow: boolean;
}

export interface ProbeLine {
  requests: Request[];
  error: { status: number; reason: string } | null;
  end: 'boundary' | 'incomplete' | 'upgraded' | 'error';
}

export async function runProbe(all: Case[]): Promise<Outcome[]> {
  const child = spawn(probe, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stdin.end(all.map((c) => pieces(c).map((p) => p.toString('hex')).join(' ')).join('\n') + '\n');
  const code = await exited;
  expect(code, 'http_parse_probe exit status').toBe(0);
  return out
    .trimEnd()
    .split('\n')
    .map((line) => {
      const parsed = JSON.parse(line) as ProbeLine;
      const error = parsed.error ? `${parsed.error.status} ${parsed.error.reason}` : parsed.end === 'incomplete' ? 'incomplete' : null;
      return { requests: parsed.requests, error, headerOverflow: parsed.error?.status === 431 };
    });
}

/** A node:http server that records what its parser made of each connection's bytes. */
export class NodeOracle {
  private server!: Server;
  private port = 0;
  private readonly pending = new Map<
    number,
    { requests: IncomingMessage[]; bodies: Buffer[][]; keepAlive: boolean[]; error: string | null; done: () => void }
  >();

  async start(): Promise<void> {
    // Server policies, not the parser's, are off: requireHostHeader, and the
    // 417 for an Expect other than 100-continue (a 'checkExpectation'
    // listener takes the request instead).
    const record = (req: IncomingMessage, res: ServerResponse) => {
      const entry = this.pending.get(req.socket.remotePort!);
      const body: Buffer[] = [];
      entry?.requests.push(req);
      entry?.bodies.push(body);
      // llhttp's keep-alive decision, before the response can change it.
      entry?.keepAlive.push(res.shouldKeepAlive);
      req.on('data', (chunk: Buffer) => body.push(chunk));
      // A declared length keeps an HTTP/1.0 keep-alive connection open (node
      // closes it after a response it cannot delimit), so node's parser sees
      // every byte, as the native one does.
      req.on('end', () => res.setHeader('Content-Length', 0).end());
    };
    this.server = createServer({ requireHostHeader: false }, record);
    this.server.on('checkExpectation', record);
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
      const entry = this.pending.get(socket.remotePort!);
      if (entry) entry.error = error.code ?? 'clientError';
      // After the request events still queued (bodies, ends) have run.
      setImmediate(() => socket.destroy());
    });
    this.server.on('connection', (socket: Socket) => {
      const port = socket.remotePort!;
      socket.on('close', () => this.pending.get(port)?.done());
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async run(c: Case): Promise<Outcome> {
    const socket = connect(this.port, '127.0.0.1');
    socket.on('error', () => {}); // The server may reset it after an error.
    socket.resume();
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const closed = new Promise<void>((resolve) =>
      this.pending.set(socket.localPort!, { requests: [], bodies: [], keepAlive: [], error: null, done: resolve }),
    );
    for (const piece of pieces(c)) socket.write(piece);
    socket.end();
    await closed;
    const entry = this.pending.get(socket.localPort!)!;
    this.pending.delete(socket.localPort!);
    socket.destroy();
    return {
      requests: entry.requests.map((req, i) => ({
        method: req.method!,
        target: req.url!,
        version: req.httpVersion,
        headers: req.rawHeaders,
        body: Buffer.concat(entry.bodies[i]!).toString('hex'),
        complete: req.complete,
        keepAlive: entry.keepAlive[i]!,
      })),
      error: entry.error,
      headerOverflow: entry.error === 'HPE_HEADER_OVERFLOW',
    };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---- comparing -----------------------------------------------------------

/**
 * Where the native parser follows issue 13 rather than llhttp. Each finds
 * the request node:http accepted and the native parser refused (its index in
 * node's requests), or -1: the requests before it must still agree, and
 * nothing after it is compared (the native parser stopped there).
 */
const DIVERGENCES: ReadonlyArray<{ reason: string; refusedAt: (native: Outcome, node: Outcome) => number }> = [
  {
    reason:
      'HTTP/0.9 and HTTP/2.0 request lines: llhttp accepts them, the native parser answers 505 ' +
      '(an HTTP/1.1 server can answer neither; the issue asks for 505 on an unsupported version)',
    refusedAt: (native, node) =>
      native.error?.startsWith('505') ? node.requests.findIndex((r) => r.version !== '1.0' && r.version !== '1.1') : -1,
  },
  {
    reason:
      'An empty Transfer-Encoding: llhttp frames the request as having no body, the native parser ' +
      'refuses it (no coding at all is not "chunked last", and a proxy may frame it otherwise)',
    refusedAt: (native, node) =>
      native.error?.includes('Transfer-Encoding') === true
        ? node.requests.findIndex((r) =>
            r.headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'transfer-encoding' && r.headers[i + 1] === ''),
          )
        : -1,
  },
];

/** The requests both must agree on: complete ones, up to the first that ends the connection. */
function comparable(outcome: Outcome, native: Outcome): { requests: Request[]; rejected: boolean } {
  const complete = outcome.requests.filter((r) => r.complete);
  // node refuses any bytes after a request that closes the connection
  // (HPE_CLOSED_CONNECTION); the native parser leaves that to the server.
  const closing = native.requests.findIndex((r) => r.complete && !r.keepAlive);
  if (closing >= 0 && complete.length > closing) {
    return { requests: complete.slice(0, closing + 1).map(strip), rejected: false };
  }
  return { requests: complete.map(strip), rejected: outcome.error !== null };
}
const strip = ({ method, target, version, headers, body, complete, keepAlive }: Request): Request => ({
  method,
  target,
  version,
  headers,
  body,
  complete,
  keepAlive,
});

/** Long runs of one character (huge heads) shown as a count, so the message stays readable. */
const abbreviate = (text: string) => text.replace(/(.)\1{15,}/g, (run, ch: string) => `${ch}<×${run.length}>`).slice(0, 3000);

function describeCase(seed: number, c: Case, native: Outcome, node: Outcome): string {
  return [
    `seed ${seed}, case ${c.index} (replay: FUZZ_SEED=${seed} FUZZ_CASES=${c.index + 1})`,
    `mutations: ${c.mutations.join(', ') || 'none'} (MUTATIONS indexes)`,
    `bytes (split at ${c.splits.join(', ') || 'nothing'}): ${abbreviate(JSON.stringify(c.bytes.toString('latin1')))}`,
    `native: ${abbreviate(JSON.stringify(native))}`,
    `node:   ${abbreviate(JSON.stringify(node))}`,
  ].join('\n');
}

/** fn over every item, at most `concurrency` at once; results in the items' order. */
export async function mapConcurrently<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

export interface Tally {
  accepted: number;
  rejected: number;
  divergences: Map<string, number>;
}

/**
 * Checks every case: `ours` (the native parser's or server's outcomes) must
 * agree with node's on accept/reject and on every request both complete,
 * except where a known divergence explains a refusal.
 */
export function compareOutcomes(seed: number, all: Case[], native: Outcome[], node: Outcome[]): Tally {
  const tally = { accepted: 0, rejected: 0, divergences: new Map<string, number>() };
  for (const c of all) {
    const ours = native[c.index]!;
    const theirs = node[c.index]!;
    const a = comparable(ours, ours);
    const b = comparable(theirs, ours);
    const context = describeCase(seed, c, ours, theirs);
    const divergence = a.rejected ? DIVERGENCES.find((d) => d.refusedAt(ours, theirs) === a.requests.length) : undefined;
    if (divergence) {
      expect(a.requests, `requests before a known divergence\n${context}`).toEqual(b.requests.slice(0, a.requests.length));
      tally.divergences.set(divergence.reason, (tally.divergences.get(divergence.reason) ?? 0) + 1);
      continue;
    }
    expect(a.rejected, `accept/reject\n${context}`).toBe(b.rejected);
    expect(a.requests, `requests\n${context}`).toEqual(b.requests);
    // Which error comes first differs (node checks some fields as they
    // end, the parser when the head ends): the status is compared where
    // the head's size is the only thing wrong.
    if (c.mutations.length > 0 && c.mutations.every((m) => m === HUGE_HEAD)) {
      expect(ours.headerOverflow, `431 from both\n${context}`).toBe(theirs.headerOverflow);
    }
    if (a.rejected) tally.rejected++;
    else tally.accepted++;
  }
  return tally;
}
