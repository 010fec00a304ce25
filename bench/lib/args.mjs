// Command-line options of `npm run bench`.
import { parseArgs } from 'node:util';

export const SERVER_NAMES = ['reactor', 'net', 'c', 'bun'];
export const BACKEND_CHOICES = ['auto', 'epoll', 'kqueue', 'poll', 'select', 'io_uring', 'all'];
export const USAGE = `usage: npm run bench -- [options]
  --quick              a short run (< 30 s): fewer connections, shorter rounds
  --json               print the results as JSON instead of a table
  --servers LIST       comma-separated: ${SERVER_NAMES.join(',')} (default: all); in UDP
                       scenarios net is node:dgram and c the C recvmmsg server;
                       bun is Bun.listen (TCP only), run where Bun is found:
                       $BUN, bun on PATH, or the bun devDependency
  --scenarios LIST     comma-separated scenario names (default: all; see --list)
  --list               print the scenario names and exit
  --duration SECONDS   measured seconds per server per scenario, split over the rounds
  --warmup SECONDS     unmeasured load before each measured round
  --rounds N           rounds per scenario; servers alternate order each round
                       (idle holds run once: memory needs no repeat; idle storms
                       twice, once with --quick)
  --backend LIST       native-reactor backend(s) for its server (default: auto);
                       several (epoll,io_uring) or all (every one available here)
                       run side by side as one server each
  --results DIR        where the HTML chart and JSON go (default: bench/results)
  --help
Besides ping-pong, idle holds and churn: idle-storm-10k (1k with --quick)
reaps connections idle for 1 s; cap-50at10 sends 50 clients at once to
servers capped at 10 connections; udp-echo-32x64-w4 echoes datagrams
(32 flows × 64 B, 4 in flight each; Linux: needs recvmmsg); storm-10k (1k)
connects back to back (bench/c/storm.c) and times how long all take.`;

/** Thrown for bad options; run.mjs prints the message and the usage. */
export class UsageError extends Error {}

function positiveNumber(value, name, { integer = false } = {}) {
  const n = Number(value);
  if (value === undefined || value === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  }
  return n;
}

/**
 * A whole number of at least `min` given as a command-line value (digits
 * only: "10", not "1e1", "-1" or "ten"), at most 2^31 - 1. Throws UsageError.
 */
export function wholeNumber(value, name, min = 0) {
  const n = /^\d+$/.test(value ?? '') ? Number(value) : Number.NaN;
  if (!(n >= min && n <= 0x7fffffff)) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${0x7fffffff}, got ${JSON.stringify(value ?? '')}`);
  }
  return n;
}

function list(value, allowed, name) {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} needs at least one name`);
  for (const item of items) {
    if (!allowed.includes(item)) throw new UsageError(`--${name}: unknown "${item}" (known: ${allowed.join(', ')})`);
  }
  return items;
}

/**
 * Parses argv (without node and the script). `scenarioNames` are the names
 * --scenarios may pick from.
 */
export function parseBenchArgs(argv, scenarioNames) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
        servers: { type: 'string' },
        scenarios: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        rounds: { type: 'string' },
        backend: { type: 'string' },
        results: { type: 'string' },
      },
    }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  const quick = values.quick;
  return {
    quick,
    json: values.json,
    list: values.list,
    help: values.help,
    servers: values.servers === undefined ? [...SERVER_NAMES] : list(values.servers, SERVER_NAMES, 'servers'),
    scenarios: values.scenarios === undefined ? [...scenarioNames] : list(values.scenarios, scenarioNames, 'scenarios'),
    duration: values.duration === undefined ? (quick ? 0.6 : 4) : positiveNumber(values.duration, 'duration'),
    warmup: values.warmup === undefined ? (quick ? 0.2 : 0.3) : positiveNumber(values.warmup, 'warmup'),
    rounds: values.rounds === undefined ? (quick ? 1 : 3) : positiveNumber(values.rounds, 'rounds', { integer: true }),
    backends: values.backend === undefined ? ['auto'] : list(values.backend, BACKEND_CHOICES, 'backend'),
    results: values.results ?? 'bench/results',
  };
}
