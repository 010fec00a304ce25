// The idle hold's reading of a garbage-collected server: RSS read after the
// server collected its garbage, so the figure does not depend on whether
// garbage was reclaimed before or after the reading; the young generation's
// resident size comes with it, for a second figure without it (its growth
// from 1 to 2 MB per semispace lands before or inside the hold by chance;
// BENCHMARKS.md, idle memory). The server side is
// bench/servers/collect-on-signal.cjs, preloaded.
import { fileURLToPath } from 'node:url';

const PRELOAD = fileURLToPath(new URL('../servers/collect-on-signal.cjs', import.meta.url));
const COLLECT_TIMEOUT_MS = 10_000;

/** `argv` of a server of `kind`, made to collect when asked; the C server has nothing to collect. */
export function collecting(kind, argv) {
  const [runtime, ...rest] = argv;
  if (kind === 'reactor' || kind === 'net') return [runtime, '--expose-gc', '--require', PRELOAD, ...rest];
  if (kind === 'bun') return [runtime, '--preload', PRELOAD, ...rest];
  return argv;
}

/**
 * Asks a server started with collecting() to collect; resolves with the bytes
 * its young generation holds resident (0 for the C server, which is not asked).
 */
export function collect(kind, child, lines) {
  if (kind === 'c') return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${kind} server did not collect`)), COLLECT_TIMEOUT_MS);
    const onLine = (line) => {
      const match = /^collected (\d+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      lines.off('line', onLine);
      resolve(Number(match[1]));
    };
    lines.on('line', onLine);
    child.kill('SIGUSR2');
  });
}
