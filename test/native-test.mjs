// Runs the native (C++) unit tests built by `npm run build:native`
// (build/Release/native_tests) and exits with their status.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binary = join(root, 'build', 'Release', process.platform === 'win32' ? 'native_tests.exe' : 'native_tests');

if (!existsSync(binary)) {
  console.error(`native-test: ${binary} is missing; build it first with \`npm run build:native\`.`);
  process.exit(1);
}

const result = spawnSync(binary, process.argv.slice(2), { cwd: root, stdio: 'inherit', timeout: 60_000 });

if (result.error) {
  const reason = result.error.code === 'ETIMEDOUT' ? 'timed out after 60 s' : result.error.message;
  console.error(`native-test: native_tests ${reason}`);
  process.exit(1);
}
if (result.signal) {
  console.error(`native-test: native_tests was killed by ${result.signal}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
