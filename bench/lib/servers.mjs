// The servers under comparison, each started as its own process.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cSource = join(root, 'bench', 'c', 'echo_server.c');
const cBinary = join(root, 'bench', '.build', 'echo_server');

const LABELS = { reactor: 'native-reactor', net: 'node:net', c: 'C epoll' };

// A server is named by a key: 'reactor', 'net', 'c', or 'reactor:BACKEND'
// when several native-reactor backends run side by side.
export const kindOf = (key) => key.split(':')[0];
const backendOf = (key) => key.split(':')[1];

export function serverLabel(key) {
  const backend = backendOf(key);
  return backend ? `${LABELS[kindOf(key)]} ${backend}` : LABELS[key];
}

/**
 * The server keys for `servers` (kinds) and `backends` (native-reactor's; 'all'
 * expands to `available`): one native-reactor server per backend when there
 * are several, else plain 'reactor' run on that one backend.
 */
export function serverKeys(servers, backends, available) {
  const chosen = [...new Set(backends.flatMap((b) => (b === 'all' ? available : [b])))];
  return servers.flatMap((s) => (s === 'reactor' && (chosen.length > 1 || chosen[0] !== 'auto') ? chosen.map((b) => `reactor:${b}`) : [s]));
}

/** Compiles the C server with the system compiler when its source is newer. Returns an error text or null. */
export function buildCServer() {
  if (existsSync(cBinary) && statSync(cBinary).mtimeMs >= statSync(cSource).mtimeMs) return null;
  mkdirSync(dirname(cBinary), { recursive: true });
  const compiler = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
  if (!compiler) return 'no C compiler (cc, gcc or clang) found';
  try {
    execFileSync(compiler, ['-O2', '-o', cBinary, cSource], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `${compiler} failed: ${error.stderr}`;
  }
}

/**
 * The argv that starts `name` listening on an ephemeral port. `settings` are
 * the scenario's server settings: `idleTimeoutMs` (ms; 0 or absent: none) and
 * `maxConnections` (absent: no cap). native-reactor's example defaults to a
 * 15-minute idle timeout; it is turned off unless asked for, as the other
 * servers have none.
 */
export function serverCommand(key, settings = {}) {
  const idle = settings.idleTimeoutMs ?? 0;
  const cap = settings.maxConnections;
  switch (kindOf(key)) {
    case 'reactor':
      return [
        process.execPath,
        join(root, 'examples', 'echo-server.mjs'),
        ...['--port', '0', '--backend', backendOf(key) ?? 'auto', '--idle-timeout-ms', String(idle)],
        ...(cap === undefined ? [] : ['--max-connections', String(cap)]),
      ];
    case 'net':
      return [
        process.execPath,
        join(root, 'bench', 'servers', 'net-echo.mjs'),
        '0',
        ...(idle ? ['--idle-timeout-ms', String(idle)] : []),
        ...(cap === undefined ? [] : ['--max-connections', String(cap)]),
      ];
    case 'c': // echo_server PORT [MAX [IDLE_MS]], MAX 0: no cap
      if (!idle) return [cBinary, '0', ...(cap === undefined ? [] : [String(cap)])];
      return [cBinary, '0', String(cap ?? 0), String(idle)];
    default:
      throw new Error(`unknown server ${key}`);
  }
}
