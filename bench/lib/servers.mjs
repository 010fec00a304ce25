// The servers under comparison, each started as its own process. A scenario
// speaks TCP or UDP (its transport); each kind of server has an echo server
// for each: native-reactor's, Node's own (node:net, node:dgram) and C's; and
// over TCP Bun's (Bun.listen), where Bun is installed.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bun } from './bun.mjs';
import { cBinary } from './c-programs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const LABELS = {
  tcp: { reactor: 'native-reactor', net: 'node:net', c: 'C epoll', bun: 'Bun' },
  udp: { reactor: 'native-reactor', net: 'node:dgram', c: 'C recvmmsg', bun: 'Bun' },
};

/** The C echo server (bench/c/NAME.c) of each transport. */
export const C_SERVERS = { tcp: 'echo_server', udp: 'udp_echo' };

// A server is named by a key: 'reactor', 'net', 'c', 'bun', or 'reactor:BACKEND'
// when several native-reactor backends run side by side.
export const kindOf = (key) => key.split(':')[0];
const backendOf = (key) => key.split(':')[1];

/** What a server is called in reports: 'net' is node:net over TCP, node:dgram over UDP. */
export function serverLabel(key, transport = 'tcp') {
  const label = LABELS[transport][kindOf(key)];
  const backend = backendOf(key);
  return backend ? `${label} ${backend}` : label;
}

/** Whether this build of native-reactor has UDP (Reactor#listenUDP). */
export const reactorHasUDP = (Reactor) => typeof Reactor.prototype.listenUDP === 'function';

/**
 * The server keys for `servers` (kinds) and `backends` (native-reactor's; 'all'
 * expands to `available`): one native-reactor server per backend when there
 * are several, else plain 'reactor' run on that one backend.
 */
export function serverKeys(servers, backends, available) {
  const chosen = [...new Set(backends.flatMap((b) => (b === 'all' ? available : [b])))];
  return servers.flatMap((s) => (s === 'reactor' && (chosen.length > 1 || chosen[0] !== 'auto') ? chosen.map((b) => `reactor:${b}`) : [s]));
}

/**
 * The argv that starts `key` listening on an ephemeral port over `transport`.
 * `settings` are the scenario's server settings (TCP only): `idleTimeoutMs`
 * (ms; 0 or absent: none) and `maxConnections` (absent: no cap).
 * native-reactor's example defaults to a 15-minute idle timeout; it is turned
 * off unless asked for, as the other servers have none.
 */
export function serverCommand(key, settings = {}, transport = 'tcp') {
  if (transport === 'udp') return udpServerCommand(key);
  const idle = settings.idleTimeoutMs ?? 0;
  const cap = settings.maxConnections;
  const c = cBinary(C_SERVERS.tcp);
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
      if (!idle) return [c, '0', ...(cap === undefined ? [] : [String(cap)])];
      return [c, '0', String(cap ?? 0), String(idle)];
    case 'bun': {
      const found = bun();
      if (found.missing) throw new Error(found.missing);
      return [
        found.path,
        join(root, 'bench', 'servers', 'bun-echo.mjs'),
        '0',
        ...(idle ? ['--idle-timeout-ms', String(idle)] : []),
        ...(cap === undefined ? [] : ['--max-connections', String(cap)]),
      ];
    }
    default:
      throw new Error(`unknown server ${key}`);
  }
}

function udpServerCommand(key) {
  switch (kindOf(key)) {
    case 'reactor':
      return [process.execPath, join(root, 'bench', 'servers', 'reactor-udp-echo.mjs'), '--port', '0', '--backend', backendOf(key) ?? 'auto'];
    case 'net':
      return [process.execPath, join(root, 'bench', 'servers', 'dgram-echo.mjs'), '0'];
    case 'c': // udp_echo PORT
      return [cBinary(C_SERVERS.udp), '0'];
    default:
      throw new Error(`unknown server ${key}`);
  }
}
