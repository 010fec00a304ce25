// The published declarations as a consumer sees them: tsc over the fixtures in
// test/types/ (an ESM and a CommonJS consumer importing "native-reactor" by
// self-reference, so through package.json "exports" to dist/*.d.ts), with
// exactOptionalPropertyTypes and library checks on. Each `@ts-expect-error`
// line there must fail to compile: wrong option types, internal members.
// Needs the build (`tsc -p tsconfig.build.json`, run by `npm test` first).
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function newest(dir: string, suffix: string): number {
  return Math.max(...readdirSync(dir).filter((f) => f.endsWith(suffix)).map((f) => statSync(join(dir, f)).mtimeMs));
}

describe('published types', () => {
  it('dist/ is built from the current src/', () => {
    const built = newest(dist, '.d.ts');
    expect(built, 'dist/*.d.ts older than src/*.ts: run `npx tsc -p tsconfig.build.json`').toBeGreaterThanOrEqual(newest(join(root, 'src'), '.ts'));
  });

  it('the fixtures compile against dist/*.d.ts, and what must not compile does not', { timeout: 60_000 }, async () => {
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(process.execPath, [tsc, '-p', join(root, 'test/types/tsconfig.json'), '--pretty', 'false'], { cwd: root }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it('the declarations hold no internal member or binding type', () => {
    for (const file of readdirSync(dist).filter((f) => f.endsWith('.d.ts'))) {
      const text = readFileSync(join(dist, file), 'utf8');
      expect(text, file).not.toMatch(/@internal|NativeReactor|nativeBackends|createNativeReactor|TransportHost|ListenerHost|TimerHost/);
      expect(text, file).not.toMatch(/^\s*(?:readonly )?(?:native|id|protocol|factory|writeLimits)\??:/m);
    }
  });
});
