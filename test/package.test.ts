// The package as a user gets it: `npm pack`, then `npm install <tarball>` in a
// fresh project.
// 1. With the Linux prebuild, on a machine with no compiler, make or Python
//    on PATH and no Node headers (an empty nodedir, a fresh HOME, so nothing
//    cached under ~/.cache/node-gyp), offline (the dependencies, node-gyp-build
//    and hdr-histogram-js with its own, come from npm's cache): the install
//    script finds the prebuild, nothing is compiled, an echo program runs on
//    it, and so does the bin (`npx native-reactor-bench --help`).
// 2. Without a matching prebuild, with the tools and headers there: the
//    install compiles the addon and nothing else.
// The install script runs (the test project lists native-reactor in
// `allowScripts`: recent npm 11 runs no dependency's install script otherwise).
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePrebuild, libc, npmCli, root } from './fixtures/pack-prebuild.mjs';

const linuxGlibc = process.platform === 'linux' && libc === 'glibc';
// What `npm install native-reactor` brings: its dependencies and theirs.
const RUNTIME_PACKAGES = ['node-gyp-build', 'hdr-histogram-js', '@assemblyscript/loader', 'base64-js', 'pako'];

/** bench/cli.mjs and the bench/ modules it imports, transitively: what the bin needs. */
function benchModules(): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(root, file), 'utf8');
    for (const [, spec] of text.matchAll(/(?:from |new URL\()'(\.{1,2}\/[^']+)'/g)) {
      const target = join(dirname(file), spec!);
      if (target.startsWith('bench/')) visit(target);
    }
  };
  visit('bench/cli.mjs');
  return [...seen].sort();
}
const prebuildEntry = `prebuilds/linux-${process.arch}/native-reactor.${libc}.node`;

// The environment less npm's own variables (we run under `npm test`) and
// anything that would point node-gyp-build elsewhere.
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^npm_/i.test(key) || /^NATIVE_REACTOR_/.test(key)) continue;
    if (['GYP_DEFINES', 'JOBS', 'PREBUILDS_ONLY', 'INIT_CWD', 'NODE_OPTIONS', 'VITEST', 'TEST'].includes(key)) continue;
    env[key] = value;
  }
  return env;
}

function which(tool: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, tool))) return join(dir, tool);
  }
  return undefined;
}

function check(result: SpawnSyncReturns<string>, what: string) {
  if (result.error || result.status !== 0) {
    throw new Error(
      `${what} failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result;
}

describe.skipIf(!linuxGlibc)('the npm package', () => {
  let work = '';
  let tarball = '';
  let bareTarball = '';
  let npmCache = '';
  const npm = linuxGlibc ? npmCli() : '';
  const npx = linuxGlibc ? join(dirname(npm), 'npx-cli.js') : '';
  const figures: string[] = [];

  function newProject(name: string) {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name, private: true, type: 'module', allowScripts: { 'native-reactor': true } }),
    );
    copyFileSync(join(root, 'scripts', 'smoke.mjs'), join(dir, 'smoke.mjs'));
    copyFileSync(join(root, 'test', 'fixtures', 'pack-loaded.mjs'), join(dir, 'loaded.mjs'));
    return dir;
  }

  function install(dir: string, file: string, env: Record<string, string>, timeout: number) {
    const started = performance.now();
    const result = spawnSync(
      process.execPath,
      [npm, 'install', file, '--offline', '--no-audit', '--no-fund', '--no-update-notifier', '--foreground-scripts'],
      { cwd: dir, env, encoding: 'utf8', timeout },
    );
    check(result, `npm install ${file}`);
    return { seconds: (performance.now() - started) / 1000, output: `${result.stdout}\n${result.stderr}` };
  }

  function runIn(dir: string, script: string, env: Record<string, string>) {
    return check(spawnSync(process.execPath, [script], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 }), script)
      .stdout;
  }

  beforeAll(() => {
    ensurePrebuild();
    work = mkdtempSync(join(tmpdir(), 'native-reactor-pack-'));
    const env = cleanEnv();
    // npm's cache as configured here; the runtime dependencies (at the
    // versions in node_modules) are put there if missing, so the installs
    // below can be --offline.
    npmCache = check(
      spawnSync(process.execPath, [npm, 'config', 'get', 'cache'], { cwd: root, env, encoding: 'utf8' }),
      'npm config get cache',
    ).stdout.trim();
    const specs = RUNTIME_PACKAGES.map((name) => {
      const manifest = join(root, 'node_modules', name, 'package.json');
      return `${name}@${(JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version}`;
    });
    check(
      spawnSync(process.execPath, [npm, 'cache', 'add', ...specs, '--prefer-offline'], {
        cwd: root,
        env,
        encoding: 'utf8',
        timeout: 60_000,
      }),
      'npm cache add (runtime dependencies)',
    );
    // The tarball (npm pack runs `prepare`: dist/ from src/).
    const packed = check(
      spawnSync(process.execPath, [npm, 'pack', '--pack-destination', work, '--json'], {
        cwd: root,
        env: { ...env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' },
        encoding: 'utf8',
        timeout: 60_000,
      }),
      'npm pack',
    );
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')))[0] as {
      filename: string;
      size: number;
      unpackedSize: number;
    };
    tarball = join(work, info.filename);
    figures.push(`tarball ${info.size} bytes (${info.unpackedSize} unpacked)`);
    figures.push(`prebuild ${statSync(join(root, prebuildEntry)).size} bytes`);
    // The same package without its prebuilds/.
    const unpacked = join(work, 'bare');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked]);
    rmSync(join(unpacked, 'package', 'prebuilds'), { recursive: true });
    bareTarball = join(work, 'native-reactor-bare.tgz');
    execFileSync('tar', ['-czf', bareTarball, '-C', unpacked, 'package']);
  }, 150_000);

  afterAll(() => {
    if (figures.length) console.log(`package: ${figures.join('; ')}`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds what a user needs and nothing else', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((file) => file.replace(/^package\//, ''));
    for (const file of ['package.json', 'README.md', 'LICENSE', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts', 'native/addon.cc', prebuildEntry]) {
      expect(files).toContain(file);
    }
    expect(files.filter((file) => file.startsWith('native/test') || file.startsWith('test/') || file.startsWith('build/'))).toEqual([]);
    // The bin and every module it imports, and nothing else of bench/ (the
    // side-by-side harness, its C programs and servers stay in the repository).
    expect(files.filter((file) => file.startsWith('bench/')).sort()).toEqual(benchModules());
    // Every source map's sources are in the package too.
    const dangling = files
      .filter((file) => /\.(js|ts)\.map$/.test(file))
      .flatMap((map) => {
        const text = execFileSync('tar', ['-xzOf', tarball, `package/${map}`], { encoding: 'utf8' });
        const sources = (JSON.parse(text) as { sources: string[] }).sources;
        return sources.map((source) => join(dirname(map), source)).filter((source) => !files.includes(source));
      });
    expect(dangling).toEqual([]);
  });

  it(
    'installs from the tarball with the prebuild: no compiler, no headers, offline, no compile',
    () => {
      const dir = newProject('with-prebuild');
      // A PATH with node and npm and a few basic tools only: no cc, g++,
      // make or python3.
      const bin = join(work, 'bin');
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, 'node'));
      symlinkSync(npm, join(bin, 'npm'));
      for (const tool of ['sh', 'bash', 'env', 'cat', 'ls', 'rm', 'mkdir', 'cp', 'mv', 'ln', 'chmod', 'uname', 'grep', 'sed', 'dirname', 'basename', 'readlink', 'true', 'false']) {
        const found = which(tool, process.env.PATH ?? '');
        if (found) symlinkSync(found, join(bin, tool));
      }
      for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python3', 'python']) {
        expect(which(tool, bin)).toBeUndefined();
      }
      const home = join(work, 'home');
      const headers = join(work, 'no-headers');
      mkdirSync(home);
      mkdirSync(headers);
      const env = {
        PATH: bin,
        HOME: home,
        TMPDIR: work,
        npm_config_nodedir: headers,
        npm_config_cache: npmCache,
      };
      const { seconds, output } = install(dir, tarball, env, 60_000);
      figures.push(`install with the prebuild ${seconds.toFixed(1)} s`);
      // The install script ran, and settled for the prebuild.
      expect(output).toMatch(/native-reactor@[^\n]* install\n> node-gyp-build/);
      expect(output).not.toMatch(/gyp info|gyp ERR|CXX\(target\)/);
      const installed = join(dir, 'node_modules', 'native-reactor');
      expect(existsSync(join(installed, 'build'))).toBe(false);
      expect(existsSync(join(home, '.cache', 'node-gyp'))).toBe(false);
      expect(readdirSync(join(dir, 'node_modules')).filter((name) => !name.startsWith('.')).sort()).toEqual(
        [...RUNTIME_PACKAGES.map((name) => name.split('/')[0]!), 'native-reactor'].filter((v, i, all) => all.indexOf(v) === i).sort(),
      );
      expect(seconds).toBeLessThan(15);

      expect(runIn(dir, 'smoke.mjs', env)).toMatch(/^smoke ok /);
      const loaded = JSON.parse(runIn(dir, 'loaded.mjs', env)) as { backends: string[]; loaded: string[] };
      expect(loaded.loaded).toEqual([join(installed, prebuildEntry)]);
      // The bin, as a user runs it.
      const help = check(
        spawnSync(process.execPath, [npx, '--no-install', 'native-reactor-bench', '--help'], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 }),
        'npx native-reactor-bench --help',
      );
      expect(help.stdout).toMatch(/^usage: native-reactor-bench WORKLOAD TARGET/);
      const bad = spawnSync(join(dir, 'node_modules', '.bin', 'native-reactor-bench'), ['echo', '127.0.0.1:1', '--conections', '3'], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--conections; did you mean --connections\?/);
    },
    90_000,
  );

  it(
    'compiles the addon only when no prebuild matches',
    () => {
      const dir = newProject('without-prebuild');
      const home = join(work, 'home-compile');
      mkdirSync(home);
      const env = {
        ...cleanEnv(),
        HOME: home,
        TMPDIR: work,
        npm_config_nodedir: process.env.npm_config_nodedir ?? join(dirname(process.execPath), '..'),
        npm_config_cache: npmCache,
      };
      // nice: the compile shares two cores with the rest of the suite.
      const started = performance.now();
      const result = spawnSync(
        'nice',
        ['-n', '10', process.execPath, npm, 'install', bareTarball, '--offline', '--no-audit', '--no-fund', '--no-update-notifier', '--foreground-scripts'],
        { cwd: dir, env, encoding: 'utf8', timeout: 150_000 },
      );
      check(result, 'npm install (no prebuild)');
      figures.push(`install compiling the addon ${((performance.now() - started) / 1000).toFixed(1)} s`);
      const output = `${result.stdout}\n${result.stderr}`;
      expect(output).toMatch(/CXX\(target\) Release\/obj\.target\/native_reactor\//);
      expect(output).not.toMatch(/native_tests|deny_io_uring/);
      const installed = join(dir, 'node_modules', 'native-reactor');
      expect(existsSync(join(installed, 'prebuilds'))).toBe(false);
      const release = readdirSync(join(installed, 'build', 'Release'));
      expect(release).toContain('native_reactor.node');
      expect(release.filter((file) => /native_tests|deny_io_uring/.test(file))).toEqual([]);

      expect(runIn(dir, 'smoke.mjs', env)).toMatch(/^smoke ok /);
      const loaded = JSON.parse(runIn(dir, 'loaded.mjs', env)) as { loaded: string[] };
      expect(loaded.loaded).toEqual([join(installed, 'build', 'Release', 'native_reactor.node')]);
    },
    160_000,
  );
});
