// Latencies in µs, counted per microsecond in a flat array below FAST_LIMIT
// and folded into an HdrHistogram when read. hdr-histogram-js's recordValue
// takes a log2 and a pow per value, on the load generator's hot path (one
// per reply); an array increment does not. Values at or over FAST_LIMIT
// (rare, slow replies) go to the histogram at once. Exact: the histogram
// ends up with the same counts as if every value were recorded in it.
import { newHistogram } from './stats.mjs';

const FAST_LIMIT = 1 << 16; // 65.5 ms
const MAX_MICROS = 60_000_000; // the histogram's ceiling

export class LatencyRecorder {
  #counts = new Float64Array(FAST_LIMIT);
  #histogram = newHistogram();

  /** Records `ms` milliseconds (at least 1 µs, at most the histogram's ceiling). */
  record(ms) {
    const micros = Math.round(ms * 1000);
    if (micros < FAST_LIMIT) this.#counts[micros < 1 ? 1 : micros]++;
    else this.#histogram.recordValue(micros > MAX_MICROS ? MAX_MICROS : micros);
  }

  /** The HdrHistogram of everything recorded so far. */
  histogram() {
    const counts = this.#counts;
    for (let micros = 1; micros < FAST_LIMIT; micros++) {
      if (counts[micros] > 0) this.#histogram.recordValueWithCount(micros, counts[micros]);
    }
    counts.fill(0);
    return this.#histogram;
  }
}
