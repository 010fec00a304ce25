// The `idle` workload of native-reactor-bench: open `connections`
// connections, send nothing, and hold them for `duration` seconds after the
// last one is open. What it reports is what the server did with them: how
// many it closed, when (each connection's lifetime, from its connect to its
// end), and how — a FIN (a clean close) or a reset. Whatever the server
// sends meanwhile is counted and dropped. The rest are closed at the end
// with a FIN (or a reset: `reset`).
import { connectErrorKind } from './engine.mjs';
import { formatCount as n, formatMicros as micros, latencyOf } from './load-report.mjs';
import hdr from 'hdr-histogram-js';
import { encodeHistogram } from './stats.mjs';

const CONNECTS_IN_FLIGHT = 256; // stay well under a listen backlog
const CLOSE_MS = 2000;
const BINS = 10; // closedWhen: counts per tenth of the hold
const MAX_MICROS = 24 * 3600 * 1_000_000;
const now = () => performance.now();

/** Runs the hold on `reactor`; resolves with the --json result. */
export async function runIdle(reactor, config) {
  const { connections: count, target } = config;
  const timeoutMs = config.timeout * 1000;
  const holdMs = config.duration * 1000;
  const lifetimes = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_MICROS, numberOfSignificantValueDigits: 3 });
  const errors = { total: 0, connectRefused: 0, connectTimeout: 0, connect: 0 };
  const closedByServer = { total: 0, fin: 0, reset: 0, other: 0 };
  const closedWhen = Array.from({ length: BINS }, (_, i) => ({ untilSeconds: (config.duration * (i + 1)) / BINS, fin: 0, reset: 0, other: 0 }));
  const transports = new Set();
  let holding = true;
  let bytesReceived = 0;
  let onAllClosed = null;

  const protocol = () => {
    let openedAt = 0;
    return {
      keepsData: false,
      connectionMade(transport) {
        openedAt = now();
        transports.add(transport);
      },
      dataReceived(data) {
        bytesReceived += data.length;
      },
      connectionLost(reason, transport) {
        transports.delete(transport);
        if (holding) {
          const lifeMs = now() - openedAt;
          const how = reason === undefined ? 'fin' : reason.code === 'ECONNRESET' ? 'reset' : 'other';
          closedByServer.total++;
          closedByServer[how]++;
          lifetimes.recordValue(Math.min(MAX_MICROS, Math.max(1, Math.round(lifeMs * 1000))));
          closedWhen[Math.min(BINS - 1, Math.floor((lifeMs / holdMs) * BINS))][how]++;
        }
        if (transports.size === 0) onAllClosed?.();
      },
    };
  };
  const connect = () =>
    'path' in target
      ? reactor.connectUnix({ path: target.path, timeoutMs }, protocol())
      : reactor.connectTCP({ host: target.host, port: target.port, timeoutMs }, protocol());

  let next = 0;
  let established = 0;
  const dialer = async () => {
    while (next < count) {
      next++;
      try {
        await connect();
        established++;
      } catch (error) {
        errors[connectErrorKind(error)]++;
        errors.total++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTS_IN_FLIGHT, count) }, dialer));
  await new Promise((resolve) => reactor.callLater(holdMs, resolve));
  holding = false;
  const held = transports.size;

  const closed = new Promise((resolve) => {
    onAllClosed = resolve;
    if (transports.size === 0) resolve();
  });
  for (const transport of transports) {
    if (config.reset) transport.abort();
    else transport.close();
  }
  await Promise.race([closed, new Promise((resolve) => reactor.callLater(CLOSE_MS, resolve))]);
  for (const transport of transports) transport.abort();

  const latency = latencyOf(lifetimes);
  return {
    workload: 'idle',
    target: config.targetText,
    connections: count,
    duration: config.duration,
    established,
    held,
    closedByServer,
    closedWhen,
    throughput: null,
    errors,
    // Lifetimes (µs) of the connections the server closed.
    p50: latency.p50,
    p99: latency.p99,
    p999: latency.p999,
    latency,
    bytes: { received: bytesReceived },
    histogram: encodeHistogram(lifetimes),
  };
}

/** A readable summary of an idle result. */
export function idleText(result) {
  const c = result.closedByServer;
  const lines = [
    `idle ${result.target}: ${n(result.connections)} connections held ${result.duration} s`,
    `  established ${n(result.established)}; still open at the end ${n(result.held)}`,
    `  closed by the server ${n(c.total)} (FIN ${n(c.fin)}, reset ${n(c.reset)}, other ${n(c.other)})`,
  ];
  if (c.total > 0) {
    lines.push(`  lifetimes  ${['p50', 'p90', 'p99', 'max'].map((p) => `${p} ${micros(result.latency[p])}`).join('  ')}`);
    const bins = result.closedWhen.filter((b) => b.fin + b.reset + b.other > 0);
    lines.push(`  closed at  ${bins.map((b) => `≤${b.untilSeconds} s: ${n(b.fin + b.reset + b.other)}`).join(', ')}`);
  }
  if (result.errors.total) lines.push(`  errors     ${n(result.errors.total)} connects failed`);
  return lines.join('\n');
}

/** One line: what a non-terminal gets at the end. */
export const idleLine = (result) =>
  `native-reactor-bench: ${n(result.established)} held, ${n(result.closedByServer.total)} closed by the server, ${n(result.errors.total)} errors`;
