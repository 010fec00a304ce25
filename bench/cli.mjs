#!/usr/bin/env node
// native-reactor-bench: load for a server it did not start. See --help, and
// "Benchmarking your own server" in the README.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Reactor } from 'native-reactor';
import { parseCliArgs, USAGE, UsageError } from './lib/cli-args.mjs';
import { runStorm, stormLine, stormText } from './lib/connect-storm.mjs';
import { idleLine, idleText, runIdle } from './lib/idle-hold.mjs';
import { oneLine, summarize, textSummary } from './lib/load-report.mjs';
import { LiveProgress } from './lib/live-progress.mjs';
import { runParallel } from './lib/parallel.mjs';

function parse() {
  try {
    return parseCliArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`native-reactor-bench: ${error.message}\n(native-reactor-bench --help lists the flags)\n`);
    process.exit(2);
  }
}

/** Runs the storm or idle workload on a reactor of its own (one thread). */
async function runOnce(run, config) {
  const reactor = new Reactor();
  try {
    return await run(reactor, config);
  } finally {
    reactor.close();
  }
}

/** Runs the request workloads (echo, http, rr, churn) over config.workers threads. */
async function runRequests(config) {
  const progress = process.stderr.isTTY ? new LiveProgress(process.stderr, config.warmup + config.duration) : null;
  const shares = await runParallel(config, (p) => progress?.update(p));
  progress?.finish();
  return summarize(config, shares);
}

const config = parse();
if (config.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
// Resolved once here, not on every (re)connect.
if ('host' in config.target && isIP(config.target.host) === 0) {
  try {
    config.target.host = (await lookup(config.target.host)).address;
  } catch (error) {
    process.stderr.write(`native-reactor-bench: cannot resolve ${config.target.host}: ${error.code}\n`);
    process.exit(1);
  }
}
const [result, text, line] =
  config.workload === 'storm'
    ? [await runOnce(runStorm, config), stormText, stormLine]
    : config.workload === 'idle'
      ? [await runOnce(runIdle, config), idleText, idleLine]
      : [await runRequests(config), textSummary, oneLine];
if (!process.stderr.isTTY) process.stderr.write(line(result) + '\n');
process.stdout.write(config.json ? JSON.stringify(result) + '\n' : text(result) + '\n');
if (result.established === 0 && !(result.requests > 0)) {
  process.stderr.write(`native-reactor-bench: no connection to ${config.targetText} could be made\n`);
  process.exitCode = 1;
}
