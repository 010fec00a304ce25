// Figures from raw measurements: per-message CPU, ratios, merged latency histograms.
import hdr from 'hdr-histogram-js';

/** A latency histogram in microseconds, 1 µs .. 60 s, 3 significant digits. */
export function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export const encodeHistogram = (histogram) => hdr.encodeIntoCompressedBase64(histogram);

/** Merges encoded histograms (one per round) into one. */
export function mergeHistograms(encoded) {
  const merged = newHistogram();
  for (const text of encoded) {
    const part = hdr.decodeFromCompressedBase64(text);
    merged.add(part);
    part.destroy?.();
  }
  return merged;
}

export function percentiles(histogram) {
  if (histogram.totalCount === 0) return { p50: null, p99: null, p999: null, max: null };
  return {
    p50: histogram.getValueAtPercentile(50),
    p99: histogram.getValueAtPercentile(99),
    p999: histogram.getValueAtPercentile(99.9),
    max: histogram.maxValue,
  };
}

/** a / b, or null when either is missing or b is not positive (no meaningful ratio). */
export function ratio(a, b) {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return null;
  return a / b;
}

/** Server CPU microseconds per unit of work (message or connection). */
export function cpuMicrosPer(cpuNanos, units) {
  if (!(units > 0)) return null;
  return cpuNanos / 1000 / units;
}

/** Sums the rounds of one server in one scenario into its figures. */
export function summarize(rounds) {
  const total = (key) => rounds.reduce((sum, r) => sum + (r[key] ?? 0), 0);
  const seconds = total('seconds');
  const units = total('units');
  const cpuNanos = total('cpuNanos');
  const histogram = mergeHistograms(rounds.map((r) => r.histogram).filter(Boolean));
  const rss = rounds.map((r) => r.rssPerConn).filter((v) => v != null);
  const summary = {
    rounds: rounds.length,
    errors: total('errors'),
    units,
    seconds,
    throughput: seconds > 0 ? units / seconds : null,
    cpuPerUnit: cpuMicrosPer(cpuNanos, units),
    latency: percentiles(histogram),
    rssPerConn: rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : null,
  };
  histogram.destroy?.();
  return summary;
}

/** Adds ratios to the C limit and to node:net for every figure of every server. */
export function withRatios(byServer) {
  const c = byServer.c;
  const net = byServer.net;
  const figures = ['throughput', 'cpuPerUnit', 'rssPerConn'];
  /** @type {Record<string, any>} */
  const out = {};
  for (const [name, summary] of Object.entries(byServer)) {
    const vsC = {};
    const vsNet = {};
    for (const figure of figures) {
      vsC[figure] = ratio(summary[figure], c?.[figure]);
      vsNet[figure] = ratio(summary[figure], net?.[figure]);
    }
    for (const p of ['p50', 'p99', 'p999']) {
      vsC[p] = ratio(summary.latency[p], c?.latency[p]);
      vsNet[p] = ratio(summary.latency[p], net?.latency[p]);
    }
    out[name] = { ...summary, vsC, vsNet };
  }
  return out;
}
