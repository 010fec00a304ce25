// Where Bun is, to run its Bun.listen echo server as a peer: $BUN, else `bun`
// on PATH (npm run puts node_modules/.bin there), else the binary the `bun`
// devDependency installed (node_modules/bun/bin/bun.exe once its postinstall
// ran, node_modules/@oven/bun-PLATFORM-ARCH/bin/bun when it did not).
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const exe = process.platform === 'win32' ? '.exe' : '';
// @oven's package names: bun-linux-x64, bun-darwin-aarch64, bun-windows-x64, ...
const ovenPackage = `bun-${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch === 'arm64' ? 'aarch64' : process.arch}`;

const executable = (path) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The first Bun binary among $BUN, PATH and `modules` (a node_modules
 * directory), or null; `via` says where from.
 * @param {NodeJS.ProcessEnv} [env]
 * @param {string} [modules]
 */
export function locateBun(env = process.env, modules = join(root, 'node_modules')) {
  if (env.BUN) return { path: env.BUN, via: '$BUN' };
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const path = join(dir, `bun${exe}`);
    if (executable(path)) return { path, via: 'PATH' };
  }
  for (const path of [join(modules, 'bun', 'bin', 'bun.exe'), join(modules, '@oven', ovenPackage, 'bin', `bun${exe}`)]) {
    if (executable(path)) return { path, via: 'node_modules' };
  }
  return null;
}

/**
 * Bun, checked to run here: { path, version } or { missing: why } (the note
 * printed when the harness skips it). A $BUN that does not run is not
 * replaced by another Bun: the note says so.
 * @param {NodeJS.ProcessEnv} [env]
 * @param {string} [modules] the node_modules directory to look in
 * @returns {{ path: string, version: string, missing?: undefined } | { missing: string, path?: undefined, version?: undefined }}
 */
export function findBun(env = process.env, modules = undefined) {
  const found = locateBun(env, modules);
  if (!found) {
    return { missing: 'Bun not found ($BUN, bun on PATH, or `npm install` of the bun devDependency on a platform it ships for)' };
  }
  const run = spawnSync(found.path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const version = run.status === 0 ? run.stdout.trim() : '';
  if (!/^\d+\.\d+/.test(version)) {
    const why = run.error?.message ?? (run.stderr.trim().split('\n')[0] || `exit status ${run.status}`);
    return { missing: `Bun from ${found.via} (${found.path}) does not run: ${why}` };
  }
  return { path: found.path, version };
}

let cached;
/** findBun() for this process, looked up once. */
export const bun = () => (cached ??= findBun());
