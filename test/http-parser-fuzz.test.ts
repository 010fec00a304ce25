// Differential fuzzer for the native HTTP/1.1 request parser (issue 13):
// the same byte streams — valid requests with random methods, targets,
// headers and bodies, chunked bodies, pipelines, and mutations (bad
// characters, CL+TE, duplicate CL, obs-fold, bare LF, huge heads, bytes
// changed) split at random points — go to the parser (through the
// http_parse_probe test tool, built with the native tests) and to Node's own
// parser (llhttp, through a node:http server on loopback, written by a
// net socket). Both must agree on accept/reject, and on method, target,
// version, headers, body and keep-alive of every request they complete.
//
// The parser has no backend (bytes in, spans out), so this runs once, not
// once per backend; the server that feeds it from the read path will be
// tested per backend.
//
//   FUZZ_SEED=123 npx vitest run test/http-parser-fuzz.test.ts   # replay a seed
//   npm run fuzz:http        # 100,000 streams (FUZZ_CASES), needs `npm run build:tests` first
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareOutcomes, fuzzSettings, generateCase, mapConcurrently, NodeOracle, prng, probe, runProbe } from './http-fuzz-streams.js';

const { cases, seed } = fuzzSettings(2500);
// Streams in flight to node:http at once.
const CONCURRENCY = 24;

describe('native HTTP parser against node:http (llhttp)', () => {
  const oracle = new NodeOracle();
  beforeAll(async () => {
    if (!existsSync(probe)) throw new Error(`${probe} is missing: build it with \`npm run build:tests\``);
    await oracle.start();
  });
  afterAll(() => oracle.close());

  it(
    `agrees on ${cases} random streams (seed ${seed})`,
    async () => {
      const random = prng(seed);
      const all = Array.from({ length: cases }, (_, i) => generateCase(random, i));
      const native = await runProbe(all);
      expect(native.length).toBe(all.length);
      const node = await mapConcurrently(all, CONCURRENCY, (c) => oracle.run(c));

      const tally = compareOutcomes(seed, all, native, node);
      // A generator that stopped producing one side would make this pointless.
      expect(tally.accepted).toBeGreaterThan(cases / 5);
      expect(tally.rejected).toBeGreaterThan(cases / 10);
      console.log(
        `http-parser-fuzz: seed ${seed}, ${cases} streams: ${tally.accepted} accepted and ${tally.rejected} rejected by both` +
          [...tally.divergences].map(([reason, n]) => `; ${n} known divergence: ${reason}`).join(''),
      );
    },
    30_000 + cases * 20,
  );
});
