// The differential fuzzer's streams (test/http-fuzz-streams.ts) through the
// native HTTP server itself, on every backend: what its handler receives
// (method, target, version, raw headers, body, keep-alive, request by
// request) and what it refuses must agree with node:http, as the parser's
// must (test/http-parser-fuzz.test.ts). Each stream goes over its own
// loopback connection to its own listener, split where the generator split
// it; the parser's own verdict (the probe) says when the server is done
// with it: after as many answers as requests it completes, or at its close
// (a refusal, a request that ends the connection, an upgrade).
//
//   FUZZ_SEED=123 FUZZ_CASES=2000 npx vitest run test/http-server-fuzz.test.ts
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { type Case, compareOutcomes, fuzzSettings, generateCase, mapConcurrently, NodeOracle, type Outcome, pieces, prng, probe, type Request, runProbe } from './http-fuzz-streams.js';
import { closeQuietly, newReactor } from './helpers.js';
import { statuses } from './http-helpers.js';

const { cases, seed } = fuzzSettings(1500);
const CONCURRENCY = 16;
const CASE_TIMEOUT_MS = 5000;

/** Final responses' statuses (100 Continue is an interim one). */
const finals = (text: string) => statuses(text).filter((status) => status !== 100);

/** One stream through a fresh listener; resolves with what the server made of it. */
async function throughServer(reactor: Reactor, c: Case, expected: Outcome): Promise<Outcome> {
  const requests: (Request & { chunks: Buffer[] })[] = [];
  const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1', maxBodyBytes: Infinity }, (req, res) => {
    const request = {
      method: req.method,
      target: req.url,
      version: req.httpVersion,
      headers: req.rawHeaders,
      body: '',
      complete: false,
      keepAlive: req.keepAlive,
      chunks: [] as Buffer[],
    };
    requests.push(request);
    req.on('data', (chunk: Buffer) => request.chunks.push(chunk));
    req.on('end', () => {
      request.complete = true;
      res.end();
    });
  });
  const complete = expected.requests.filter((r) => r.complete).length;
  // The server closes after a refusal, an upgrade, or a request that does not keep the connection.
  const closes = (expected.error !== null && expected.error !== 'incomplete') || expected.requests.some((r) => r.complete && !r.keepAlive);
  let text = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ port: server.address.port, host: '127.0.0.1' });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`case ${c.index}: no verdict within ${CASE_TIMEOUT_MS} ms; got ${JSON.stringify(text.slice(0, 500))}`));
      }, CASE_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      };
      socket.on('connect', () => {
        for (const piece of pieces(c)) socket.write(piece);
      });
      socket.on('data', (data: Buffer) => {
        text += data.toString('latin1');
        if (!closes && finals(text).length >= complete) finish();
      });
      socket.on('error', () => undefined); // a reset after a refusal
      socket.on('close', finish);
      if (!closes && complete === 0) socket.once('connect', () => setImmediate(finish));
    });
  } finally {
    server.close();
  }
  const refused = finals(text).find((status) => status !== 200);
  return {
    requests: requests.map(({ chunks, ...request }) => ({ ...request, body: Buffer.concat(chunks).toString('hex') })),
    // The reason is the parser's (the probe's) when the server answered its status.
    error: refused === undefined ? expected.error : expected.error?.startsWith(String(refused)) ? expected.error : `${refused} from the server`,
    headerOverflow: refused === 431,
  };
}

describe('the native HTTP server against node:http (llhttp)', () => {
  const oracle = new NodeOracle();
  const all: Case[] = [];
  let native: Outcome[] = [];
  let node: Outcome[] = [];
  beforeAll(async () => {
    if (!existsSync(probe)) throw new Error(`${probe} is missing: build it with \`npm run build:tests\``);
    await oracle.start();
    const random = prng(seed);
    for (let i = 0; i < cases; i++) all.push(generateCase(random, i));
    native = await runProbe(all);
    node = await mapConcurrently(all, CONCURRENCY, (c) => oracle.run(c));
  }, 60_000);
  afterAll(() => oracle.close());

  it.each(Reactor.backends)(
    `agrees on ${cases} random streams (seed ${seed}) on %s`,
    async (backend) => {
      const reactor = newReactor(backend);
      try {
        const served = await mapConcurrently(all, CONCURRENCY, (c, i) => throughServer(reactor, c, native[i]!));
        const tally = compareOutcomes(seed, all, served, node);
        expect(tally.accepted).toBeGreaterThan(cases / 5);
        expect(tally.rejected).toBeGreaterThan(cases / 10);
        console.log(`http-server-fuzz (${backend}): seed ${seed}, ${cases} streams: ${tally.accepted} accepted and ${tally.rejected} rejected by both`);
      } finally {
        closeQuietly(reactor);
      }
    },
    60_000 + cases * 50,
  );
});
