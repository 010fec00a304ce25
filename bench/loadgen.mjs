// The load generator, built on native-reactor itself. Run by bench/run.mjs as
//   node bench/loadgen.mjs '<json config>'
// It talks to the harness in JSON lines on stdout; for the idle scenario the
// harness answers "go" lines on stdin between steps (it reads the server's
// RSS at each step). Every phase is bounded in time.
import { createInterface } from 'node:readline';
import { Reactor } from 'native-reactor';
import { encodeHistogram, newHistogram } from './lib/stats.mjs';

const config = JSON.parse(process.argv[2]);
const reactor = new Reactor();
const histogram = newHistogram();
const CONNECTS_IN_FLIGHT = 256; // stay well under the listen backlog
let errors = 0;

const say = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
const now = () => performance.now();
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

/** Opens `count` connections, at most CONNECTS_IN_FLIGHT at a time. */
async function openConnections(count, makeProtocol) {
  const transports = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      try {
        transports[index] = await reactor.connectTCP({ host: '127.0.0.1', port: config.port }, makeProtocol(index));
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTS_IN_FLIGHT, count) }, worker));
  return transports.filter(Boolean);
}

const after = (seconds) => new Promise((resolve) => reactor.callLater(seconds * 1000, resolve));

// The measured window shared by the timed scenarios: warm up, measure, stop.
const phase = { measuring: false, stopping: false, completed: 0 };

/** Counts one unit of work that started at `startedAt` (ms) if it ended inside the window. */
function complete(startedAt) {
  if (!phase.measuring) return;
  phase.completed++;
  histogram.recordValue(Math.max(1, Math.round((now() - startedAt) * 1000)));
}

/** Runs the warm-up and the measured window; resolves with its length in seconds. */
async function measure() {
  await after(config.warmup);
  phase.measuring = true;
  const started = now();
  say('measure-start');
  await after(config.duration);
  phase.measuring = false;
  const seconds = (now() - started) / 1000;
  say('measure-end');
  phase.stopping = true;
  return seconds;
}

/** N connections × S bytes × P in flight; latency per message. */
async function echo() {
  const message = Buffer.alloc(config.size, 0x61);
  const protocol = () => {
    const sentAt = [];
    let received = 0;
    return {
      connectionMade(transport) {
        this.send = () => {
          sentAt.push(now());
          transport.write(message);
        };
      },
      dataReceived(data) {
        received += data.length;
        while (received >= config.size) {
          received -= config.size;
          complete(sentAt.shift());
          if (!phase.stopping) this.send();
        }
      },
      connectionLost() {
        if (!phase.stopping) errors++;
      },
    };
  };
  const protocols = [];
  const transports = await openConnections(config.conns, (i) => (protocols[i] = protocol()));
  for (const p of protocols) for (let k = 0; k < config.pipeline; k++) p?.send?.();
  const seconds = await measure();
  for (const t of transports) if (t.state === 'open') t.abort();
  return { units: phase.completed, seconds };
}

/** Holds N connections open, each after one round trip; the harness reads RSS. */
async function idle() {
  const roundTrip = (onDone) => ({
    connectionMade(transport) {
      transport.write('x');
    },
    dataReceived() {
      onDone();
    },
    connectionLost() {},
  });
  const openAll = async (count) => {
    let done = 0;
    let finished;
    const allEchoed = new Promise((resolve) => (finished = resolve));
    const transports = await openConnections(count, () => roundTrip(() => ++done === count && finished()));
    if (transports.length === count) await Promise.race([allEchoed, after(10)]);
    return transports;
  };
  // Warm the server up so its baseline already holds what any connection costs once.
  for (const t of await openAll(200)) t.close();
  say('baseline');
  await nextLine();
  const held = await openAll(config.conns);
  say('held', { conns: held.length });
  await nextLine();
  for (const t of held) if (t.state === 'open') t.abort();
  return { units: held.length, seconds: 0 };
}

/** K loops of: connect, one round trip, close. */
async function churn() {
  const message = Buffer.alloc(config.size, 0x62);
  const loop = async () => {
    while (!phase.stopping) {
      const started = now();
      let lost;
      const closed = new Promise((resolve) => (lost = resolve));
      let received = 0;
      try {
        await reactor.connectTCP({ host: '127.0.0.1', port: config.port }, {
          connectionMade(transport) {
            transport.write(message);
          },
          dataReceived(data, transport) {
            received += data.length;
            if (received >= config.size) transport.close();
          },
          connectionLost(reason) {
            if (reason) errors++;
            lost();
          },
        });
      } catch {
        errors++;
        continue;
      }
      await closed;
      complete(started);
    }
  };
  const loops = Array.from({ length: config.conns }, loop);
  const seconds = await measure();
  await Promise.all(loops);
  return { units: phase.completed, seconds };
}

const scenarios = { echo, idle, churn };
const deadline = reactor.callLater((config.warmup + config.duration + 60) * 1000, () => {
  say('result', { error: 'load generator timed out' });
  process.exit(1);
});
const result = await scenarios[config.kind]();
deadline.cancel();
say('result', { ...result, errors, histogram: histogram.totalCount ? encodeHistogram(histogram) : null });
lines.close();
reactor.close();
process.exit(0); // stdin may still hold the loop; stdout to a pipe is synchronous on Linux
