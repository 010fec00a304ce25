// Figures from raw measurements: per-message CPU, ratios, merged latency histograms.
import hdr from 'hdr-histogram-js';

/** A latency histogram in microseconds, 1 µs .. 60 s, 3 significant digits. */
export function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export const encodeHistogram = (histogram) => hdr.encodeIntoCompressedBase64(histogram);

/**
 * A histogram given as [µs, count] pairs (the C load generator's buckets, by
 * their middle values), encoded like encodeHistogram; null when empty.
 */
export function encodeBuckets(buckets) {
  if (!buckets?.length) return null;
  const histogram = newHistogram();
  for (const [micros, count] of buckets) histogram.recordValueWithCount(Math.max(1, micros), count);
  const encoded = encodeHistogram(histogram);
  histogram.destroy?.();
  return encoded;
}

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

/** The value at quantile q (0..1) of ascending `sorted` values (nearest rank), or null if empty. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Idle reaping: `lateness` holds, per reaped connection, how many ms after its
 * deadline the load generator saw the server end it (negative: before it).
 * "On time" means no later than the deadline plus `tolerance` of it (+5% of
 * 1000 ms = 50 ms).
 */
export function latenessSummary(lateness, deadlineMs, tolerance = 0.05) {
  const sorted = Float64Array.from(lateness).sort();
  const limitMs = deadlineMs * tolerance;
  let onTime = 0;
  for (const v of sorted) if (v <= limitMs) onTime++;
  return {
    deadlineMs,
    limitMs,
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : null,
    min: sorted.length ? sorted[0] : null,
    onTime,
    onTimeShare: sorted.length ? onTime / sorted.length : null,
  };
}

/**
 * A connection cap: rounds of bursts of clients that each want one echo.
 * `served` got their echo intact, `dropped` were closed or reset by the server
 * (or refused) before it; `burstMs` is, per burst, the time until every client
 * was done either way.
 */
export function capSummary(rounds) {
  const total = (key) => rounds.reduce((sum, r) => sum + (r[key] ?? 0), 0);
  const burstMs = Float64Array.from(rounds.flatMap((r) => r.burstMs ?? [])).sort();
  const dropReasons = {};
  for (const r of rounds) {
    for (const [reason, n] of Object.entries(r.dropReasons ?? {})) dropReasons[reason] = (dropReasons[reason] ?? 0) + n;
  }
  return {
    clients: total('clients'),
    served: total('units'),
    dropped: total('dropped'),
    dropReasons,
    bursts: burstMs.length,
    allDoneMs: { p50: quantile(burstMs, 0.5), max: burstMs.length ? burstMs[burstMs.length - 1] : null },
  };
}

/** Sums the rounds of one server in one scenario into its figures. */
export function summarize(rounds) {
  const total = (key) => rounds.reduce((sum, r) => sum + (r[key] ?? 0), 0);
  const seconds = total('seconds');
  const units = total('units');
  const cpuNanos = total('cpuNanos');
  const histogram = mergeHistograms(rounds.map((r) => r.histogram).filter(Boolean));
  const mean = (figure) => {
    const values = rounds.map((r) => r[figure]).filter((v) => v != null);
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  /** @type {Record<string, any>} */
  const summary = {
    rounds: rounds.length,
    errors: total('errors'),
    units,
    seconds,
    throughput: seconds > 0 ? units / seconds : null,
    cpuPerUnit: cpuMicrosPer(cpuNanos, units),
    latency: percentiles(histogram),
    rssPerConn: mean('rssPerConn'),
    rssPerConnLessYoung: mean('rssPerConnLessYoung'),
  };
  const storms = rounds.filter((r) => r.lateness);
  if (storms.length) {
    summary.reaping = {
      ...latenessSummary(storms.flatMap((r) => r.lateness), storms[0].deadlineMs),
      // The same from when the echo of the byte arrived: leaves out the server's delay in reading it.
      fromEcho: latenessSummary(storms.flatMap((r) => r.latenessFromEcho ?? []), storms[0].deadlineMs),
      storms: storms.length,
      conns: total('conns'),
      // Server CPU from just before the first deadline until the last connection was reaped, per storm.
      cpuMsPerStorm: cpuNanos / 1e6 / storms.length,
      // Of which in the kernel (10 ms ticks: coarse): TCP teardown is paid here.
      kernelShare: cpuNanos > 0 ? Math.min(1, total('systemCpuNanos') / cpuNanos) : null,
      windowMs: Math.max(...storms.map((r) => r.windowMs ?? 0)),
      openMs: Math.max(...storms.map((r) => r.openMs ?? 0)),
    };
  }
  if (rounds.some((r) => r.burstMs)) summary.cap = capSummary(rounds);
  // UDP: datagrams sent in the measured windows, given up as lost (unanswered
  // within the loss timeout) and echoed after that (stale).
  if (rounds.some((r) => r.losses !== undefined)) summary.datagrams = { sent: total('sent'), lost: total('losses'), stale: total('stale') };
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
