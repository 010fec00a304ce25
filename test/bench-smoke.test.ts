// `npm run bench -- --quick` end to end: every server serves every scenario
// without an error. It asserts no speed: figures belong in BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('a --quick run completes with no errors on any server', { timeout: 60_000 }, () => {
  const results = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
  try {
    const run = spawnSync(process.execPath, ['bench/run.mjs', '--quick', '--json', '--results', results], {
      encoding: 'utf8',
      timeout: 55_000,
    });
    expect(run.status, run.stderr).toBe(0);
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
