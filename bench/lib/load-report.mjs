// The result of a native-reactor-bench run: the shares' figures merged (the
// histograms exactly, by adding their counts; throughputs summed), as the
// JSON object --json prints, as the text summary, and as one line.
import hdr from 'hdr-histogram-js';
import { ERROR_KINDS } from './engine.mjs';
import { mergeHistograms } from './stats.mjs';

/** Percentiles of a histogram in µs; nulls when it is empty. */
export function latencyOf(histogram) {
  const empty = histogram.totalCount === 0;
  const at = (p) => (empty ? null : histogram.getValueAtPercentile(p));
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    p9999: at(99.99),
    max: empty ? null : histogram.maxValue,
    mean: empty ? null : Math.round(histogram.mean * 10) / 10,
    stdev: empty ? null : Math.round(histogram.stdDeviation * 10) / 10,
  };
}

function merged(encoded) {
  const histogram = mergeHistograms(encoded);
  const latency = latencyOf(histogram);
  return { latency, histogram: hdr.encodeIntoCompressedBase64(histogram) };
}

/**
 * The load generator's own CPU over the measured window (all its threads:
 * each share reads the process's, so the largest is taken), and per good
 * reply: how close the generator itself came to being the limit.
 */
function generatorCpu(shares) {
  const cpuSeconds = Math.max(...shares.map((s) => s.cpuSeconds));
  const completed = shares.reduce((n, s) => n + s.completed, 0);
  return { cpuSeconds, cpuMicrosPerRequest: completed > 0 ? Math.round((cpuSeconds * 1e7) / completed) / 10 : null };
}

/** The JSON result of `config` (parsed command line) from its shares' results. */
export function summarize(config, shares) {
  const sum = (key) => shares.reduce((n, s) => n + s[key], 0);
  const errors = { total: 0 };
  for (const kind of ERROR_KINDS) {
    errors[kind] = shares.reduce((n, s) => n + s.errors[kind], 0);
    errors.total += errors[kind];
  }
  const corrected = merged(shares.map((s) => s.histogram));
  const result = {
    workload: config.workload,
    target: config.targetText,
    connections: config.connections,
    pipeline: config.pipeline,
    rate: config.rate > 0 ? config.rate : null,
    workers: config.workers,
    warmup: config.warmup,
    duration: config.duration,
    seconds: Math.max(...shares.map((s) => s.seconds)),
    requests: sum('completed'),
    throughput: shares.reduce((n, s) => n + (s.seconds > 0 ? s.completed / s.seconds : 0), 0),
    errors,
    // The headline percentiles (µs) at the top, as scripts read them; the rest in `latency`.
    p50: corrected.latency.p50,
    p99: corrected.latency.p99,
    p999: corrected.latency.p999,
    latency: corrected.latency,
    established: sum('established'),
    reconnects: sum('reconnects'),
    serverCloses: sum('serverCloses'),
    bytes: { sent: sum('bytesSent'), received: sum('bytesReceived') },
    generator: generatorCpu(shares),
    histogram: corrected.histogram,
  };
  if (config.rate > 0) {
    const uncorrected = merged(shares.map((s) => s.uncorrected));
    result.uncorrectedLatency = uncorrected.latency;
  }
  return result;
}

const n = (value) => Math.round(value).toLocaleString('en-US');
const micros = (value) => (value == null ? '—' : value >= 10_000 ? `${(value / 1000).toFixed(1)} ms` : `${n(value)} µs`);
export { n as formatCount, micros as formatMicros };

function latencyLine(label, latency) {
  const parts = ['p50', 'p90', 'p99', 'p999', 'p9999', 'max', 'mean'].map((p) => `${p} ${micros(latency[p])}`);
  return `  ${label.padEnd(11)}${parts.join('  ')}`;
}

/** A readable summary of a result, several lines. */
export function textSummary(result) {
  const mode = result.rate ? `open loop at ${n(result.rate)}/s` : 'closed loop';
  const errorParts = ERROR_KINDS.filter((k) => result.errors[k] > 0).map((k) => `${k} ${n(result.errors[k])}`);
  const lines = [
    `${result.workload} ${result.target}: ${result.connections} connections × pipeline ${result.pipeline}, ${mode}, ` +
      `${result.duration} s after ${result.warmup} s warm-up, ${result.workers} worker${result.workers > 1 ? 's' : ''}`,
    result.workload === 'churn'
      ? `  connections ${n(result.requests)} (connect, echo, close) in ${result.seconds.toFixed(2)} s: ${n(result.throughput)}/s`
      : `  requests   ${n(result.requests)} in ${result.seconds.toFixed(2)} s: ${n(result.throughput)}/s`,
    latencyLine(result.rate ? 'latency*' : 'latency', result.latency),
  ];
  if (result.uncorrectedLatency) {
    lines.push(latencyLine('uncorrected', result.uncorrectedLatency));
    lines.push('  * from each request\'s intended send time (coordinated omission corrected)');
  }
  const { cpuSeconds, cpuMicrosPerRequest } = result.generator;
  lines.push(`  generator  ${cpuSeconds.toFixed(2)} s CPU in the window${cpuMicrosPerRequest === null ? '' : `, ${cpuMicrosPerRequest} µs per reply`}`);
  lines.push(`  errors     ${n(result.errors.total)}${errorParts.length ? ` (${errorParts.join(', ')})` : ''}`);
  lines.push(
    `  connections ${n(result.established)} established, ${n(result.reconnects)} reopened` +
      (result.serverCloses ? ` (${n(result.serverCloses)} closed by the server as announced)` : ''),
  );
  return lines.join('\n');
}

/** One line: what a non-terminal gets instead of a progress bar. */
export function oneLine(result) {
  return `native-reactor-bench: ${n(result.requests)} requests in ${result.seconds.toFixed(2)} s, ${n(result.throughput)}/s, ` +
    `p99 ${micros(result.latency.p99)}, ${n(result.errors.total)} errors`;
}
