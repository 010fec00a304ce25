// One load run over several load generators. Each share (a worker thread
// with its own native-reactor loop, or this thread when there is one) gets
// its part of the connections and of the rate; all open their connections
// first and start the load together, so the measured windows line up.
// Worker threads rather than processes: each has its own isolate, heap and
// reactor (so its own core's worth of work), they start in milliseconds,
// share the parsed command line as plain data, and hand back their
// histograms (encoded, merged exactly) and counters by message; a thread
// that dies surfaces as an error here, with no process to reap.
import { Worker } from 'node:worker_threads';
import { Reactor } from 'native-reactor';
import { runLoad } from './engine.mjs';
import { encodeHistogram } from './stats.mjs';
import { makeWorkload } from './workloads.mjs';

/** The part of `config` that share `index` of `count` runs: connections and rate split as evenly as they go. */
export function shareOf(config, index, count) {
  const connections = Math.floor(config.connections / count) + (index < config.connections % count ? 1 : 0);
  const rate = config.rate > 0 ? (config.rate * connections) / config.connections : 0;
  return { ...config, connections, rate };
}

/** Runs one share on a reactor of its own; the result's histograms encoded. */
export async function runShare(config, hooks) {
  const reactor = new Reactor();
  try {
    const result = await runLoad(reactor, { ...config, workload: makeWorkload(config), churn: config.workload === 'churn' }, hooks);
    return {
      ...result,
      histogram: encodeHistogram(result.histogram),
      uncorrected: result.uncorrected ? encodeHistogram(result.uncorrected) : null,
    };
  } finally {
    reactor.close();
  }
}

/**
 * Runs `config` over config.workers shares; resolves with their results.
 * onTick(progress) gets the sum of the shares' latest progress.
 */
export async function runParallel(config, onTick = () => {}) {
  if (config.workers === 1) return [await runShare(config, { tick: onTick })];
  const latest = [];
  const tick = (index, progress) => {
    latest[index] = progress;
    const sum = (key) => latest.reduce((n, p) => n + (p?.[key] ?? 0), 0);
    onTick({ phase: progress.phase, replies: sum('replies'), completed: sum('completed'), errors: sum('errors') });
  };
  const workers = Array.from(
    { length: config.workers },
    (_, index) => new Worker(new URL('./load-worker.mjs', import.meta.url), { workerData: shareOf(config, index, config.workers) }),
  );
  let ready = 0;
  const results = workers.map(
    (worker, index) =>
      new Promise((resolve, reject) => {
        worker.on('message', (message) => {
          if (message.type === 'tick') tick(index, message.progress);
          else if (message.type === 'ready' && ++ready === workers.length) for (const w of workers) w.postMessage('go');
          else if (message.type === 'result') resolve(message.result);
        });
        worker.on('error', reject);
        worker.on('exit', (code) => reject(new Error(`load worker ${index} exited (${code}) before its result`)));
      }),
  );
  try {
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
