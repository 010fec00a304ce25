// The harness's C programs (bench/c/NAME.c: the C echo servers, the UDP load
// generator), compiled on demand into bench/.build/NAME.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const buildDir = join(root, 'bench', '.build');

/** Where the compiled program NAME is. */
export const cBinary = (name) => join(buildDir, name);

/**
 * Compiles bench/c/NAME.c with the system C compiler when the source is newer
 * than the program. Returns an error text or null.
 */
export function buildC(name) {
  const source = join(root, 'bench', 'c', `${name}.c`);
  const binary = cBinary(name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return null;
  mkdirSync(buildDir, { recursive: true });
  const compiler = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
  if (!compiler) return 'no C compiler (cc, gcc or clang) found';
  // Built aside, then renamed into place: harness runs started together never
  // run a half-written program.
  const partial = `${binary}.${process.pid}.partial`;
  try {
    execFileSync(compiler, ['-O2', '-o', partial, source], { stdio: 'pipe' });
    renameSync(partial, binary);
    return null;
  } catch (error) {
    rmSync(partial, { force: true });
    return `${compiler} failed on bench/c/${name}.c: ${error.stderr ?? error.message}`;
  }
}
