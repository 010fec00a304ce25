// npm run prebuild [-- --if-stale] [-- --linux-only]
//
// Builds the redistributable addon for this platform and architecture with
// prebuildify (Node-API, stripped) into prebuilds/<platform>-<arch>/, where
// node-gyp-build looks before it compiles anything. Only the addon is built
// (binding.gyp's build_tests stays 0) and with portable=1: on Linux liburing,
// libstdc++ and libgcc are linked in and glibc symbols pinned to <= 2.28 (see
// native/glibc_compat.c), so the binary loads on any glibc >= 2.28 system
// without liburing or a new libstdc++. On Linux the file is tagged with the C
// library (native-reactor.glibc.node, native-reactor.musl.node), so a glibc
// build is never picked on musl and both can ship side by side.
//
// Nothing is downloaded: the one target is the running Node's version, and the
// headers are the installed ones ($npm_config_nodedir, else the include/node
// beside this node binary, as /usr/include/node with /usr/bin/node).
//
// The build runs in a copy of binding.gyp and native/ (without native/test)
// under build/prebuild/, so build/Release, what `npm test` and a developer
// load, is left alone. --if-stale skips the build when the prebuild was made
// from the same sources, flags and Node version. --linux-only does nothing
// elsewhere (npm test uses it: only the Linux tests read the prebuild).
// Run it through npm, which puts its bundled node-gyp on PATH.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const ifStale = args.includes('--if-stale');
if (args.includes('--linux-only') && process.platform !== 'linux') process.exit(0);

const libc =
  process.platform === 'linux' ? (existsSync('/etc/alpine-release') ? 'musl' : 'glibc') : undefined;
const stage = join(root, 'build', 'prebuild');
const lock = join(root, 'build', 'prebuild.lock');
const outDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const name = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name;
// prebuildify's naming: the package's name, then the tags (--tag-libc).
const output = join(outDir, `${name}${libc ? `.${libc}` : ''}.node`);

function log(message) {
  console.log(`prebuild: ${message}`);
}

// What the build reads: binding.gyp and native/ less its tests.
function inputs() {
  const files = ['binding.gyp'];
  for (const file of readdirSync(join(root, 'native')).sort()) {
    if (statSync(join(root, 'native', file)).isFile()) files.push(`native/${file}`);
  }
  return files;
}

function fingerprint(files) {
  const hash = createHash('sha256');
  hash.update(`node ${process.version} ${process.platform} ${process.arch} ${libc}\n`);
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const file of files) {
    hash.update(`\0${file}\0`);
    hash.update(readFileSync(join(root, file)));
  }
  return hash.digest('hex');
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

// One build at a time (two test files may ask at once): a lock directory,
// taken over when the process that holds it is gone.
function acquireLock() {
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    let holder = 0;
    try {
      holder = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    } catch {}
    let alive = false;
    if (holder) {
      try {
        process.kill(holder, 0);
        alive = true;
      } catch (error) {
        alive = error.code === 'EPERM';
      }
    }
    if (holder && !alive) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`prebuild: ${lock} held by pid ${holder} for 5 min`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
}

// npm's bundled node-gyp, as `npm run` provides it: prebuildify runs
// `node-gyp` from PATH (npm's wrapper, which runs $npm_config_node_gyp).
// Outside npm (node scripts/prebuild.mjs), the same, found beside npm.
function nodeGypEnv() {
  if (process.env.npm_config_node_gyp) return {};
  const candidates = [
    process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'),
    join(dirname(process.execPath), 'node_modules', 'npm'),
  ].filter(Boolean);
  for (const npm of candidates) {
    const script = join(npm, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    const bin = join(npm, 'node_modules', '@npmcli', 'run-script', 'lib', 'node-gyp-bin');
    if (existsSync(script) && existsSync(bin)) {
      return { npm_config_node_gyp: script, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` };
    }
  }
  return {};
}

function nodeHeaders() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  throw new Error(
    'prebuild: no Node headers found; set npm_config_nodedir to a Node installation or headers directory',
  );
}

const files = inputs();
const stampFile = join(stage, 'stamp.json');
function upToDate(print) {
  if (!existsSync(output) || !existsSync(stampFile)) return false;
  try {
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
    if (stamp.inputs === fingerprint(files) && stamp.output === sha256(output)) {
      if (print) log(`${relative(root, output)} is up to date`);
      return true;
    }
  } catch {}
  return false;
}

if (ifStale && upToDate(true)) process.exit(0);
acquireLock();
let status;
try {
  // Someone else may have built it while we waited.
  status = ifStale && upToDate(true) ? 0 : build();
} finally {
  rmSync(lock, { recursive: true, force: true });
}
process.exit(status);

function build() {
  const started = Date.now();
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'native'), { recursive: true });
  for (const file of files) copyFileSync(join(root, file), join(stage, file));
  // prebuildify reads the name from here.
  writeFileSync(join(stage, 'package.json'), JSON.stringify({ name, private: true }) + '\n');

  const require = createRequire(import.meta.url);
  const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  const gypDefines = [process.env.GYP_DEFINES, 'build_tests=0', 'portable=1', libc && `portable_libc=${libc}`]
    .filter(Boolean)
    .join(' ');
  const argv = [
    prebuildify,
    '--napi',
    '--strip',
    '--target',
    process.versions.node,
    '--cwd',
    stage,
    '--out',
    root,
    ...(libc ? ['--tag-libc'] : []),
  ];
  log(`node ${argv.map((arg) => relative(root, arg) || arg).join(' ')} (GYP_DEFINES="${gypDefines}")`);
  const result = spawnSync(process.execPath, argv, {
    cwd: stage,
    stdio: 'inherit',
    env: {
      ...process.env,
      ...nodeGypEnv(),
      npm_config_nodedir: nodeHeaders(),
      GYP_DEFINES: gypDefines,
      // node-gyp's make runs one job per core.
      JOBS: process.env.JOBS ?? 'max',
    },
  });
  if (result.status !== 0) {
    console.error(`prebuild: prebuildify failed (${result.error?.message ?? `exit ${result.status}`})`);
    return 1;
  }
  if (!existsSync(output)) {
    console.error(`prebuild: ${relative(root, output)} was not made`);
    return 1;
  }
  // It must load here, in this node.
  const binding = require(output);
  writeFileSync(
    stampFile,
    JSON.stringify({ inputs: fingerprint(files), output: sha256(output), node: process.version }) + '\n',
  );
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  log(
    `${relative(root, output)}: ${statSync(output).size} bytes, backends ${binding.backends.join(',')} (${seconds} s)`,
  );
  return 0;
}
