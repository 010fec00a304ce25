// The load generator of a round: bench/loadgen.mjs (built on native-reactor)
// over TCP, the C program bench/c/udp_load.c over UDP, bench/c/storm.c for
// the connection storm. Both report in the
// same JSON lines on stdout (measure-start, measure-end, result).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cBinary } from './c-programs.mjs';
import { transportOf } from './scenarios.mjs';
import { stormCommand } from './storm.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The UDP load generator (bench/c/udp_load.c), as named for buildC. */
export const UDP_LOAD = 'udp_load';

/** The argv of the load generator for `config`: the scenario with its port, warmup and duration (s). */
export function loadCommand(config) {
  if (config.kind === 'storm') return stormCommand(config);
  if (transportOf(config) !== 'udp') return [process.execPath, join(root, 'bench', 'loadgen.mjs'), JSON.stringify(config)];
  const flags = { port: config.port, flows: config.flows, window: config.window, size: config.size, warmup: config.warmup, duration: config.duration };
  if (config.lossTimeoutMs !== undefined) flags['loss-timeout-ms'] = config.lossTimeoutMs;
  return [cBinary(UDP_LOAD), ...Object.entries(flags).flatMap(([name, value]) => [`--${name}`, String(value)])];
}
