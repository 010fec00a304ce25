// `npm run bench -- --quick` end to end: every server serves every scenario
// without an error. It asserts no speed: figures belong in BENCHMARKS.md.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runProcess } from './helpers.js';

// Bounded for a loaded 2-core machine: the quick run takes ~25 s alone, up to 50 s
// beside the rest of the suite. Run asynchronously: a worker blocked that long
// misses vitest's own calls. Bun, where installed, has a run of its own
// (bench-bun.test.ts): here it would add a third to the time.
it('a --quick run completes with no errors on any server', { timeout: 90_000 }, async () => {
  const results = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
  try {
    const run = await runProcess(process.execPath, ['bench/run.mjs', '--quick', '--json', '--servers', 'reactor,net,c', '--results', results], 85_000);
    expect(run.code, run.stderr).toBe(0);
    // Not a terminal: one progress line at the end, not one per run.
    expect(run.stderr.split('\n').filter((line) => / runs in \d+ s$/.test(line) || /^\[[#-]+\]/.test(line))).toEqual([expect.stringMatching(/^\d+\/\d+ runs in \d+ s$/)]);
    const report = JSON.parse(run.stdout);
    expect(report.scenarios.length).toBeGreaterThanOrEqual(5);
    for (const scenario of report.scenarios) {
      for (const [server, figures] of Object.entries<{ errors: number; units: number }>(scenario.servers)) {
        expect(figures.errors, `${scenario.name} ${server}`).toBe(0);
        expect(figures.units, `${scenario.name} ${server}`).toBeGreaterThan(0);
      }
    }
  } finally {
    rmSync(results, { recursive: true, force: true });
  }
});
