// The package by its name, as a dependency sees it (dist/, through
// package.json "exports"), in child processes of this Node:
// - scripts/smoke.mjs: import, listen, connect, echo, close on every backend;
// - require('native-reactor') from a CommonJS file. The package is ESM only:
//   require() loads it through require(esm), on by default from Node 20.19
//   and 22.12 (hence engines "^20.19.0 || >=22.12.0"). One module instance
//   serves require() and import alike, so there is no dual-package hazard.
//   It breaks if the module graph ever gets a top-level await
//   (ERR_REQUIRE_ASYNC_MODULE): this test is what says so.
// Needs the build (`tsc -p tsconfig.build.json`, run by `npm test` first).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// Node 22.12 alone still warns on require(esm) (not 20.19+, not 22.13+).
const withoutRequireEsmWarning = (stderr: string): string =>
  stderr.replace(/^.*ExperimentalWarning: CommonJS module .* is loading ES Module .*\n(?:Support for loading ES Module.*\n)?(?:\(Use `node --trace-warnings.*\n)?/m, '');

const CONSUMER = `'use strict';
const nativeReactor = require('native-reactor');
const { Reactor, ReactorError, BACKEND_NAMES } = nativeReactor;

async function main() {
  const esm = await import('native-reactor');
  const sameInstance = esm.Reactor === Reactor && esm.ReactorError === ReactorError;
  const reactor = new Reactor();
  const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
    dataReceived: (data, transport) => transport.write(data),
  }));
  const echoed = await new Promise((resolve, reject) => {
    reactor
      .connectTCP({ port: listener.address.port, host: '127.0.0.1' }, {
        dataReceived(data, transport) {
          transport.close();
          resolve(data.toString());
        },
      })
      .then((transport) => transport.write('from require()'), reject);
  });
  let code;
  try {
    new Reactor({ backend: 'nope' });
  } catch (error) {
    code = error instanceof ReactorError ? error.code : 'not a ReactorError';
  }
  const backend = reactor.backend;
  reactor.close();
  console.log(JSON.stringify({
    exports: Object.keys(nativeReactor).sort(),
    esmExports: Object.keys(esm).sort(),
    sameInstance,
    backends: Reactor.backends,
    backendNames: BACKEND_NAMES,
    backend,
    echoed,
    code,
  }));
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

describe('the package by its name', () => {
  const home = mkdtempSync(join(tmpdir(), 'native-reactor-cjs-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('scripts/smoke.mjs echoes on every backend under this Node', async () => {
    const result = await run([join(root, 'scripts/smoke.mjs')], root);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^smoke ok [\w,]+ \(node v/);
    expect(result.code).toBe(0);
  });

  it("require('native-reactor') from a CommonJS file, installed as a dependency: the ESM module itself, working", async () => {
    mkdirSync(join(home, 'node_modules'));
    // A junction on Windows (no privilege needed), a symlink elsewhere.
    symlinkSync(root, join(home, 'node_modules', 'native-reactor'), 'junction');
    writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    writeFileSync(join(home, 'consumer.cjs'), CONSUMER);
    const result = await run(['consumer.cjs'], home);
    expect(withoutRequireEsmWarning(result.stderr)).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.exports).toEqual([
      'BACKEND_NAMES',
      'DelayedCall',
      'HTTPRequest',
      'HTTPResponse',
      'HTTPServer',
      'Listener',
      'Reactor',
      'ReactorError',
      'SD_LISTEN_FDS_START',
      'StreamServer',
      'Transport',
      'TransportStream',
      'UDPSocket',
      'Watcher',
      'WorkerContext',
      'Workers',
      'connectStream',
      'createStreamServer',
      'runWorkers',
      'streamFactory',
      'systemdListenFds',
      'workerContext',
    ]);
    expect(report.esmExports).toEqual(report.exports);
    expect(report.sameInstance).toBe(true);
    expect(report.backends.length).toBeGreaterThan(0);
    expect(report.backend).toBe(report.backends[0]);
    expect(report.echoed).toBe('from require()');
    expect(report.code).toBe('ERR_INVALID_ARG_VALUE');
  });
});
