// The second build: `npm run build:cmake` (cmake-js, CMakeLists.txt, against
// node-api-headers, offline) makes an addon that passes scripts/smoke.mjs on
// every backend, and the smoke run really loads that file. The whole suite
// runs against it with NATIVE_REACTOR_PREBUILD=build/cmake (README, cmake-js).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// node-gyp-build looks for build/Release/*.node under $NATIVE_REACTOR_PREBUILD.
const prebuildDir = join(root, 'build', 'cmake');
const addon = join(prebuildDir, 'build', 'Release', 'native_reactor.node');
const env = { ...process.env, NATIVE_REACTOR_PREBUILD: prebuildDir };

function output(run: SpawnSyncReturns<string>): string {
  return `status ${run.status} signal ${run.signal} error ${run.error?.message}\n${run.stdout}\n${run.stderr}`;
}

// `npm run build:cmake`, through the npm running the suite when there is one.
function npmRunBuildCmake(): SpawnSyncReturns<string> {
  // One compile job: the other test files run beside this one on 2 cores.
  const args = ['run', 'build:cmake', '--', '--parallel', '1'];
  const options = { cwd: root, encoding: 'utf8' as const, timeout: 240_000 };
  const npmCli = process.env.npm_execpath;
  if (npmCli && /\.[cm]?js$/.test(npmCli)) return spawnSync(process.execPath, [npmCli, ...args], options);
  return spawnSync('npm', args, { ...options, shell: process.platform === 'win32' });
}

// A preload that reports every native module the process loads.
const dlopenProbe =
  'data:text/javascript,' +
  encodeURIComponent(
    'const dlopen = process.dlopen;' +
      'process.dlopen = function (module, file, ...rest) {' +
      '  process.stderr.write(`dlopen ${file}\\n`);' +
      '  return dlopen.call(this, module, file, ...rest);' +
      '};',
  );

// The sanitizer run (scripts/test-asan.sh) preloads ASan into every process
// and is about the instrumented addon: no compiler runs under it.
describe.skipIf(process.env.NATIVE_REACTOR_SANITIZED)('cmake-js build', () => {
  beforeAll(() => {
    const build = npmRunBuildCmake();
    expect(build.status, `npm run build:cmake failed (is cmake installed?)\n${output(build)}`).toBe(0);
    expect(existsSync(addon), addon).toBe(true);
  }, 250_000);

  it('node-gyp-build resolves NATIVE_REACTOR_PREBUILD to it, with the backends of the node-gyp build', () => {
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        `const path = require('node-gyp-build').resolve(${JSON.stringify(root)});
         console.log(JSON.stringify({ path, backends: require(path).backends }));`,
      ],
      { cwd: root, env, encoding: 'utf8', timeout: 30_000 },
    );
    expect(probe.status, output(probe)).toBe(0);
    const { path, backends } = JSON.parse(probe.stdout) as { path: string; backends: string[] };
    expect(realpathSync(path)).toBe(realpathSync(addon));
    expect(backends).toContain('select');
    // The same conditions choose the backends in both builds.
    const gyp = join(root, 'build', 'Release', 'native_reactor.node');
    if (existsSync(gyp)) {
      const gypBackends = (createRequire(import.meta.url)(gyp) as { backends: string[] }).backends;
      expect([...backends].sort()).toEqual([...gypBackends].sort());
    }
  });

  it('passes scripts/smoke.mjs on every backend, loading only that file', () => {
    const smoke = spawnSync(process.execPath, ['--import', dlopenProbe, 'scripts/smoke.mjs'], {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(smoke.status, output(smoke)).toBe(0);
    expect(smoke.stdout).toMatch(/^smoke ok \S+ \(node v/m);
    const loaded = [...smoke.stderr.matchAll(/^dlopen (.+)$/gm)].map((match) => realpathSync(match[1]!));
    expect(loaded).toEqual([realpathSync(addon)]);
    const backends = /^smoke ok (\S+)/m.exec(smoke.stdout)![1]!.split(',');
    const built = (createRequire(import.meta.url)(addon) as { backends: string[] }).backends;
    expect(backends.sort()).toEqual([...built].sort());
  });
});
