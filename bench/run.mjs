#!/usr/bin/env node
// `npm run bench`: native-reactor, node:net and a raw C epoll server side by
// side in one run (for UDP: native-reactor, node:dgram and a C recvmmsg
// server). Each server is its own process pinned to CPU 0, the load
// generator (bench/loadgen.mjs, built on native-reactor; bench/c/udp_load.c
// for UDP) to CPU 1. Rounds alternate the order of servers so drift of the
// machine hits all alike.
// A scenario runs only on the servers with a fair equivalent of what it
// measures (scenario.skip says why not); the report names the others.
import { spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { parseBenchArgs, USAGE, UsageError } from './lib/args.mjs';
import { bun } from './lib/bun.mjs';
import { buildC } from './lib/c-programs.mjs';
import { collect, collecting } from './lib/collect.mjs';
import { loadCommand, UDP_LOAD } from './lib/load.mjs';
import { cpuNanos, pinned, rssBytes, stopChild, systemCpuNanos } from './lib/proc.mjs';
import { Progress, table, writeResults } from './lib/report.mjs';
import { scenarioNames, scenarios, serversFor, transportOf } from './lib/scenarios.mjs';
import { C_SERVERS, kindOf, reactorHasUDP, serverCommand, serverKeys, serverLabel } from './lib/servers.mjs';
import { encodeBuckets, summarize, withRatios } from './lib/stats.mjs';
import { STORM_FIGURES, stormSummary, stormUnavailable } from './lib/storm.mjs';
import { Reactor } from '../dist/index.js';

const SETTLE_MS = 300; // let a server's memory settle before reading RSS
const START_TIMEOUT_MS = 10_000;
// Raw figures of the idle-storm, cap, UDP and storm scenarios, passed on to summarize().
const EXTRA_FIGURES = [
  ...['conns', 'deadlineMs', 'lateness', 'latenessFromEcho', 'openMs', 'windowMs', 'clients', 'dropped', 'dropReasons', 'burstMs'],
  ...['sent', 'losses', 'stale'],
  ...STORM_FIGURES,
];

function parse() {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  try {
    return parseBenchArgs(argv, scenarioNames(quick));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a server for `scenario` and resolves with its process and port once it prints "listening PORT". */
function startServer(name, scenario) {
  const transport = transportOf(scenario);
  const argv = serverCommand(name, scenario.server, transport);
  const [command, ...args] = pinned(scenario.kind === 'idle' ? collecting(kindOf(name), argv) : argv, 0);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${serverLabel(name, transport)} did not start: ${stderr}`));
    }, START_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const match = /^listening (\d+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve({ child, port: Number(match[1]), lines });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${serverLabel(name, transport)} exited (${code}): ${stderr}`));
    });
  });
}

/** One server, one round of one scenario. */
async function runRound(scenario, name, options, seconds) {
  const { child: server, port, lines: serverLines } = await startServer(name, scenario);
  const pid = server.pid;
  const config = { ...scenario, port, warmup: options.warmup, duration: seconds };
  const [command, ...args] = pinned(loadCommand(config), 1);
  const load = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const round = { units: 0, seconds: 0, cpuNanos: 0, errors: 0, histogram: null, rssPerConn: null, rssPerConnLessYoung: null };
  let cpuAtStart = 0;
  let systemAtStart = 0;
  let baseline = { rss: 0, young: 0 };
  // RSS once an idle hold's server has collected, and its young generation's
  // part of it (collect.mjs). The storm client waits at a baseline too.
  const collected = async () => {
    await delay(SETTLE_MS);
    const young = scenario.kind === 'idle' ? await collect(kindOf(name), server, serverLines) : 0;
    return { rss: rssBytes(pid), young };
  };
  try {
    await new Promise((resolve, reject) => {
      const bound = setTimeout(() => {
        load.kill('SIGKILL');
        reject(new Error('load generator overran its time bound'));
      }, (options.warmup + seconds + 90) * 1000);
      load.on('exit', () => clearTimeout(bound));
      const lines = createInterface({ input: load.stdout });
      const onMessage = async (message) => {
        switch (message.event) {
          case 'measure-start':
            cpuAtStart = cpuNanos(pid);
            systemAtStart = systemCpuNanos(pid);
            break;
          case 'measure-end':
            round.cpuNanos = cpuNanos(pid) - cpuAtStart;
            round.systemCpuNanos = systemCpuNanos(pid) - systemAtStart;
            break;
          case 'baseline':
            baseline = await collected();
            load.stdin.write('go\n');
            break;
          case 'held': {
            const held = await collected();
            if (message.conns > 0) {
              // The figure is all of the growth; without the young generation's
              // part it is a lower bound (V8 may count pages never touched).
              round.rssPerConn = (held.rss - baseline.rss) / message.conns;
              round.rssPerConnLessYoung = (held.rss - held.young - (baseline.rss - baseline.young)) / message.conns;
            }
            load.stdin.write('go\n');
            break;
          }
          case 'result':
            if (message.error) return reject(new Error(message.error));
            round.units = message.units;
            round.seconds = message.seconds;
            round.errors = message.errors;
            round.histogram = message.histogram ?? encodeBuckets(message.latencyBuckets);
            for (const key of EXTRA_FIGURES) if (message[key] !== undefined) round[key] = message[key];
            resolve();
            break;
        }
      };
      lines.on('line', (line) => onMessage(JSON.parse(line)).catch(reject));
      load.on('exit', (code) => code !== 0 && reject(new Error(`load generator exited with ${code}`)));
    });
  } finally {
    await stopChild(server);
    if (load.exitCode === null) load.kill('SIGKILL');
  }
  return round;
}

/**
 * What cannot run here, by transport and kind of server, and why (said once on
 * stderr): a C program that does not build, native-reactor without UDP yet,
 * Bun not installed.
 */
function unavailable(chosen, servers) {
  const kinds = new Set(servers.map(kindOf));
  const transports = new Set(chosen.map(transportOf));
  const missing = { tcp: {}, udp: {} };
  const note = (transport, kind, why) => {
    if (!kinds.has(kind) || missing[transport][kind]) return;
    missing[transport][kind] = why;
    process.stderr.write(`skipping ${serverLabel(kind, transport)} (${transport.toUpperCase()}): ${why}\n`);
  };
  for (const transport of transports) {
    const problem = kinds.has('c') ? buildC(C_SERVERS[transport]) : null;
    if (problem) note(transport, 'c', problem);
    if (kinds.has('bun') && bun().missing) note(transport, 'bun', bun().missing);
  }
  if (transports.has('udp')) {
    if (!reactorHasUDP(Reactor)) note('udp', 'reactor', 'this build of native-reactor has no listenUDP yet');
    const problem = buildC(UDP_LOAD);
    if (problem) for (const kind of kinds) note('udp', kind, `no UDP load generator: ${problem}`);
  }
  return missing;
}

const bunVersion = (servers) => (servers.includes('bun') && bun().version ? `, Bun ${bun().version}` : '');

async function main() {
  const options = parse();
  if (options.help) return void process.stdout.write(USAGE + '\n');
  const all = scenarios(options.quick);
  if (options.list) return void process.stdout.write(all.map((s) => s.name).join('\n') + '\n');
  const servers = serverKeys(options.servers, options.backends, Reactor.backends);
  const picked = all.filter((s) => options.scenarios.includes(s.name));
  const missing = unavailable(picked, servers);
  const chosen = picked.map((s) => ({ ...s, skip: { ...missing[transportOf(s)], ...stormUnavailable(s, servers), ...s.skip } }));
  const roundsOf = (scenario) => scenario.rounds ?? options.rounds;
  const progress = new Progress(chosen.reduce((n, s) => n + roundsOf(s) * serversFor(s, servers).length, 0));
  const results = {
    startedAt: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}${bunVersion(servers)}`,
    options,
    scenarios: [],
  };
  for (const scenario of chosen) {
    const running = serversFor(scenario, servers);
    const skipped = Object.fromEntries(servers.filter((s) => !running.includes(s)).map((s) => [s, scenario.skip[kindOf(s)]]));
    const rounds = Object.fromEntries(running.map((s) => [s, []]));
    const count = roundsOf(scenario);
    for (let r = 0; r < count; r++) {
      const order = r % 2 === 0 ? running : [...running].reverse();
      for (const name of order) {
        progress.step(`${scenario.name} · ${serverLabel(name, transportOf(scenario))} · round ${r + 1}/${count}`);
        try {
          rounds[name].push(await runRound(scenario, name, options, options.duration / count));
        } catch (error) {
          process.stderr.write(`\n${scenario.name} ${name}: ${error.message}\n`);
          rounds[name].push({ units: 0, seconds: 0, cpuNanos: 0, errors: 1 });
        }
      }
    }
    // The storm's figures are summarized beside the rest (stats.mjs is the bin's too, and
    // the bin ships without the side-by-side harness).
    const summaries = Object.fromEntries(running.map((s) => [s, withStorm(summarize(rounds[s]), rounds[s])]));
    const labels = Object.fromEntries(servers.map((s) => [s, serverLabel(s, transportOf(scenario))]));
    results.scenarios.push({ ...scenario, labels, servers: withRatios(summaries), skipped });
  }
  progress.finish();
  const html = writeResults(results, options.results);
  if (options.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  else process.stdout.write(`${table(results)}\n\nchart: ${html}\n`);
  const errors = results.scenarios.flatMap((s) => Object.values(s.servers)).reduce((n, s) => n + s.errors, 0);
  process.exitCode = errors > 0 ? 1 : 0;
}

function withStorm(summary, rounds) {
  if (rounds.some((r) => r.retransmitted !== undefined)) summary.storm = stormSummary(rounds);
  return summary;
}

await main();
