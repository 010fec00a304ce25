// Runs the native (C++) unit tests built by `npm run build:tests` (or
// `npm run build:native`; `npm test` runs it first) — build/Release/native_tests,
// not built by `npm install` — once per available backend and exits non-zero
// if any run failed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binary = join(root, 'build', 'Release', process.platform === 'win32' ? 'native_tests.exe' : 'native_tests');

if (!existsSync(binary)) {
  console.error(`native-test: ${binary} is missing; build it first with \`npm run build:tests\`.`);
  process.exit(1);
}

// Once per backend this build has here: the loop tests run on the backend
// named by $NATIVE_REACTOR_BACKEND.
const require = createRequire(import.meta.url);
const { backends } = require(join(root, 'build', 'Release', 'native_reactor.node'));
let failed = false;
for (const backend of backends) {
  console.log(`native-test: backend ${backend}`);
  const result = spawnSync(binary, process.argv.slice(2), {
    cwd: root,
    stdio: 'inherit',
    timeout: 60_000,
    env: { ...process.env, NATIVE_REACTOR_BACKEND: backend },
  });
  if (result.error) {
    const reason = result.error.code === 'ETIMEDOUT' ? 'timed out after 60 s' : result.error.message;
    console.error(`native-test: native_tests (${backend}) ${reason}`);
    failed = true;
  } else if (result.signal) {
    console.error(`native-test: native_tests (${backend}) was killed by ${result.signal}`);
    failed = true;
  } else if (result.status !== 0) {
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
