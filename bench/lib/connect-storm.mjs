// The `storm` workload of native-reactor-bench: `connections` connects to a
// server, back to back (`concurrency` in flight; 1 is what a client doing
// blocking connects one after another does) or open loop at `rate` connects
// per second, each connection kept open until every connect has settled, so
// the server holds them all as a real burst would leave it. A server slow to
// accept overflows its listen queue: the kernel drops SYNs and those clients
// wait for a retransmit (1 s, then 3 s), which shows in the connect
// latencies. At `rate`, a connect's latency runs from its due time, so
// connects the generator started late are charged for it (as wrk2 does for
// requests). Pure JavaScript on native-reactor: the bin needs no compiler.
import { connectErrorKind } from './engine.mjs';
import { formatCount as n, formatMicros as micros, latencyOf } from './load-report.mjs';
import { encodeHistogram, newHistogram } from './stats.mjs';

const CLOSE_MS = 2000;
const MAX_MICROS = 60_000_000;
const now = () => performance.now();
const record = (histogram, ms) => histogram.recordValue(Math.min(MAX_MICROS, Math.max(1, Math.round(ms * 1000))));

const CONNECT_KINDS = ['connectRefused', 'connectTimeout', 'connect'];

/** Runs the storm on `reactor`; resolves with the --json result. */
export async function runStorm(reactor, config) {
  const { connections: count, concurrency, rate, target } = config;
  const timeoutMs = config.timeout * 1000;
  const histogram = newHistogram();
  const uncorrected = rate > 0 ? newHistogram() : null; // from each connect's actual start
  const errors = { total: 0, ...Object.fromEntries(CONNECT_KINDS.map((k) => [k, 0])), closed: 0, reset: 0 };
  const errorCodes = {};
  const transports = [];
  let open = 0;
  let stormOver = false;
  let onAllClosed = null;
  let lastEstablished = 0;

  const count1 = (kind) => {
    errors[kind]++;
    errors.total++;
  };
  const protocol = () => ({
    keepsData: false,
    dataReceived() {},
    connectionLost(reason) {
      open--;
      // Lost before the storm ended: the server closed or reset what it had accepted
    // (a server out of descriptors or at its connection limit does).
      if (!stormOver) count1(reason?.code === 'ECONNRESET' ? 'reset' : 'closed');
      if (open === 0) onAllClosed?.();
    },
  });
  const connect = () =>
    'path' in target
      ? reactor.connectUnix({ path: target.path, timeoutMs }, protocol())
      : reactor.connectTCP({ host: target.host, port: target.port, timeoutMs }, protocol());

  /** One connect, charged from `due` (ms) or from its start if that is earlier. */
  const connectOne = (due) => {
    const begun = now();
    return connect().then(
      (transport) => {
        const t = now();
        record(histogram, t - Math.min(due, begun));
        if (uncorrected) record(uncorrected, t - begun);
        transports.push(transport);
        open++;
        lastEstablished = t;
      },
      (error) => {
        const kind = connectErrorKind(error);
        count1(kind);
        const code = error?.code ?? 'unknown';
        errorCodes[code] = (errorCodes[code] ?? 0) + 1;
      },
    );
  };

  const started = now();
  if (rate > 0) {
    const intervalMs = 1000 / rate;
    const pending = [];
    await new Promise((resolve) => {
      let next = 0;
      const startDue = () => {
        const t = now();
        while (next < count && started + next * intervalMs <= t + 1) pending.push(connectOne(started + next++ * intervalMs));
        if (next < count) reactor.callLater(started + next * intervalMs - t - 1, startDue);
        else resolve();
      };
      startDue();
    });
    await Promise.all(pending);
  } else {
    let next = 0;
    const dialer = async () => {
      while (next < count) {
        next++;
        await connectOne(now());
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, dialer));
  }
  stormOver = true;
  const established = transports.length;
  const seconds = ((established > 0 ? lastEstablished : now()) - started) / 1000;

  const closed = new Promise((resolve) => {
    onAllClosed = resolve;
    if (open === 0) resolve();
  });
  for (const transport of transports) {
    if (config.reset) transport.abort();
    else transport.close();
  }
  await Promise.race([closed, new Promise((resolve) => reactor.callLater(CLOSE_MS, resolve))]);
  for (const transport of transports) transport.abort();

  const latency = latencyOf(histogram);
  const connectsPerSecond = seconds > 0 ? established / seconds : 0;
  return {
    workload: 'storm',
    target: config.targetText,
    connections: count,
    concurrency: rate > 0 ? null : concurrency,
    rate: rate > 0 ? rate : null,
    established,
    seconds,
    throughput: connectsPerSecond,
    connectsPerSecond,
    errors,
    errorCodes,
    p50: latency.p50,
    p99: latency.p99,
    p999: latency.p999,
    latency,
    ...(uncorrected ? { uncorrectedLatency: latencyOf(uncorrected) } : {}),
    histogram: encodeHistogram(histogram),
  };
}

/** A readable summary of a storm result. */
export function stormText(result) {
  const how = result.rate ? `at ${n(result.rate)}/s` : `${result.concurrency} in flight`;
  const codes = Object.entries(result.errorCodes).map(([code, k]) => `${code} ${n(k)}`);
  const kinds = Object.entries(result.errors).filter(([k, v]) => k !== 'total' && v > 0).map(([k, v]) => `${k} ${n(v)}`);
  return [
    `storm ${result.target}: ${n(result.connections)} connects, ${how}`,
    `  established ${n(result.established)} in ${result.seconds.toFixed(3)} s: ${n(result.connectsPerSecond)} connects/s`,
    `  connect    ${['p50', 'p90', 'p99', 'p999', 'max'].map((p) => `${p} ${micros(result.latency[p])}`).join('  ')}`,
    `  errors     ${n(result.errors.total)}${kinds.length ? ` (${kinds.join(', ')})` : ''}${codes.length ? `; failed connects by code: ${codes.join(', ')}` : ''}`,
  ].join('\n');
}

/** One line: what a non-terminal gets at the end. */
export const stormLine = (result) =>
  `native-reactor-bench: ${n(result.established)}/${n(result.connections)} established in ${result.seconds.toFixed(3)} s, ` +
  `p99 ${micros(result.p99)}, ${n(result.errors.total)} errors`;
