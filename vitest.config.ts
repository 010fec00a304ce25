import { defineConfig } from 'vitest/config';

// What cannot apply on Windows: descriptor rlimits (emfile), fd numbers past
// FD_SETSIZE (fdceiling: Windows' select counts sockets instead; the native
// tests check that ceiling there), and the bench's process figures, read from
// /proc or ps (bench-smoke, bench-udp, bench-bun).
const posixOnly = ['test/emfile.test.ts', 'test/fdceiling.test.ts', 'test/bench-smoke.test.ts', 'test/bench-udp.test.ts', 'test/bench-bun.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...(process.platform === 'win32' ? posixOnly : [])],
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Network-heavy files compete for 2 cores; run at most two at once.
    // --expose-gc: the data-lifetime test collects garbage mid-transfer.
    poolOptions: { forks: { maxForks: 2, minForks: 1, execArgv: ['--expose-gc'] } },
  },
});
