// The load generator, built on native-reactor itself. Run by bench/run.mjs as
//   node bench/loadgen.mjs '<json config>'
// Echo runs on the engine of native-reactor-bench (lib/engine.mjs); the
// other scenarios measure server behaviour that engine does not.
// It talks to the harness in JSON lines on stdout; for the idle scenario the
// harness answers "go" lines on stdin between steps (it reads the server's
// RSS at each step). Every phase is bounded in time.
import { createInterface } from 'node:readline';
import { Reactor } from 'native-reactor';
import { runLoad } from './lib/engine.mjs';
import { encodeHistogram, newHistogram } from './lib/stats.mjs';
import { echoWorkload } from './lib/workloads.mjs';

const config = JSON.parse(process.argv[2]);
const reactor = new Reactor();
const histogram = newHistogram();
const CONNECTS_IN_FLIGHT = 256; // stay well under the listen backlog
let errors = 0;

const say = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
const now = () => performance.now();
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

/**
 * Opens `count` connections, at most CONNECTS_IN_FLIGHT at a time. A
 * connection counts as in flight until connected, or, with `settled(index,
 * transport)`, until the promise it returns settles: a finished handshake
 * only means the kernel queued the connection, and a server slower to accept
 * than we are to connect overflows its listen backlog (SYNs dropped, retried
 * a second later).
 */
async function openConnections(count, makeProtocol, settled) {
  const transports = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      try {
        transports[index] = await reactor.connectTCP({ host: '127.0.0.1', port: config.port }, makeProtocol(index));
      } catch {
        errors++;
        continue;
      }
      if (settled) await settled(index, transports[index]);
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

/** N connections × S bytes × P in flight, closed loop: the engine of native-reactor-bench. */
async function echo() {
  const result = await runLoad(
    reactor,
    {
      target: { host: '127.0.0.1', port: config.port },
      workload: echoWorkload(config.size),
      connections: config.conns,
      pipeline: config.pipeline,
      rate: 0,
      warmup: config.warmup,
      duration: config.duration,
      timeout: 10,
      reset: false,
    },
    { phase: say },
  );
  histogram.add(result.histogram);
  for (const count of Object.values(result.errors)) errors += count;
  return { units: result.completed, seconds: result.seconds };
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

/**
 * N connections each send one byte, then stay silent; the server ends each
 * one `idleTimeoutMs` after it read that byte. Per connection: how late
 * (relative to when the byte was sent) the server's end arrived; also
 * relative to when its echo arrived, which leaves out how long the server
 * took to read the byte (the server's timer started between the two). The harness
 * reads the server's CPU from just before the first deadline until the last
 * connection was reaped.
 */
async function idleStorm() {
  const deadline = config.idleTimeoutMs;
  const one = Buffer.from('x');
  const sentAt = new Float64Array(config.conns).fill(Number.NaN);
  const reapedAt = new Float64Array(config.conns).fill(Number.NaN);
  const echoAt = new Float64Array(config.conns).fill(Number.NaN);
  const echoed = []; // per connection: resolved by its echo, or its end
  let reaped = 0;
  let expected = config.conns;
  let allReaped;
  const done = new Promise((resolve) => (allReaped = resolve));
  let windowStart = null;
  let windowTimer = null;
  let stopping = false;
  const onReaped = (i) => {
    if (stopping || Number.isNaN(sentAt[i]) || !Number.isNaN(reapedAt[i])) return;
    reapedAt[i] = now();
    echoed[i]?.();
    if (++reaped === expected) allReaped();
  };
  const protocol = (i) => ({
    connectionMade(transport) {
      if (windowTimer === null) {
        // Just before the first deadline.
        windowTimer = reactor.callLater(Math.max(0, deadline - 20), () => {
          windowStart = now();
          say('measure-start');
        });
      }
      sentAt[i] = now();
      transport.write(one);
    },
    dataReceived() {
      if (Number.isNaN(echoAt[i])) echoAt[i] = now();
      echoed[i]?.();
    },
    readConnectionLost(transport) {
      // The server ended it (FIN): reaped. Close our side so it can let go.
      onReaped(i);
      if (transport.state === 'open') transport.close();
    },
    connectionLost() {
      onReaped(i); // reset or closed without an end first
    },
  });
  const opened = now();
  // In flight until the server has accepted it and echoed its byte (or 5 s).
  const served = (i) => {
    if (!Number.isNaN(echoAt[i]) || !Number.isNaN(reapedAt[i])) return undefined;
    return new Promise((resolve) => {
      const bound = reactor.callLater(5000, resolve);
      echoed[i] = () => {
        echoed[i] = undefined;
        bound.cancel();
        resolve();
      };
    });
  };
  const transports = await openConnections(config.conns, protocol, served);
  const openMs = now() - opened;
  expected = transports.length;
  if (reaped >= expected) allReaped();
  // Bounded: every deadline has passed by far after this.
  await Promise.race([done, after((deadline + 10_000) / 1000)]);
  stopping = true;
  await after(0.01); // the server's last closes
  const windowEnd = now();
  if (windowStart === null) {
    windowTimer?.cancel(); // everything ended before the first deadline: no window
    say('measure-start');
  }
  say('measure-end');
  const lateness = [];
  const latenessFromEcho = [];
  const early = -deadline * config.tolerance;
  for (let i = 0; i < config.conns; i++) {
    if (Number.isNaN(reapedAt[i])) continue;
    const late = Math.round((reapedAt[i] - sentAt[i] - deadline) * 100) / 100;
    lateness.push(late);
    if (late < early) errors++; // ended (or reset) well before its deadline
    if (!Number.isNaN(echoAt[i])) latenessFromEcho.push(Math.round((reapedAt[i] - echoAt[i] - deadline) * 100) / 100);
  }
  errors += expected - reaped; // never reaped within the bound
  for (const t of transports) if (t.state === 'open' || t.state === 'closing') t.abort();
  return {
    units: reaped,
    seconds: 0,
    conns: expected,
    deadlineMs: deadline,
    lateness,
    latenessFromEcho,
    openMs: Math.round(openMs),
    windowMs: windowStart === null ? null : Math.round(windowEnd - windowStart),
  };
}

/**
 * Bursts of `conns` clients connecting together to a server with a connection cap;
 * each sends `size` bytes of its own, waits for them to come back, closes.
 * Served: the echo came back intact. Dropped: the server closed or reset the
 * connection (or refused it) before that. Latency: from the burst's start to
 * the echo.
 */
async function cap() {
  const BOUND_MS = 10_000; // per burst: a client still waiting then is an error
  const burstMs = [];
  const dropReasons = {};
  let served = 0;
  let dropped = 0;
  let clients = 0;
  const client = (burst, index, started) =>
    new Promise((settle) => {
      const message = Buffer.alloc(config.size);
      for (let k = 0; k < message.length; k++) message[k] = (burst * 131 + index * 7 + k) & 0xff;
      message.writeUInt16BE(burst, 0);
      message.writeUInt16BE(index, 2);
      const chunks = [];
      let received = 0;
      let outcome = null;
      let transport = null;
      const finish = (result) => {
        if (outcome !== null) return;
        outcome = result;
        bound.cancel();
        if (result === 'served') served++;
        else if (result.startsWith('dropped')) {
          dropped++;
          const reason = result.slice('dropped '.length);
          dropReasons[reason] = (dropReasons[reason] ?? 0) + 1;
        } else errors++;
        settle();
      };
      const bound = reactor.callLater(BOUND_MS, () => {
        finish('hung');
        if (transport && transport.state !== 'closed') transport.abort();
      });
      reactor
        .connectTCP({ host: '127.0.0.1', port: config.port }, {
          connectionMade(t) {
            transport = t;
            t.write(message);
          },
          dataReceived(data, t) {
            chunks.push(Buffer.from(data));
            received += data.length;
            if (received < config.size || outcome !== null) return;
            if (received === config.size && Buffer.concat(chunks).equals(message)) {
              histogram.recordValue(Math.max(1, Math.round((now() - started) * 1000)));
              finish('served');
              t.close();
            } else {
              process.stderr.write(`cap: client ${burst}/${index} got ${received} bytes back, not its own ${config.size}\n`);
              finish('corrupt');
              t.abort();
            }
          },
          connectionLost(reason) {
            finish(`dropped ${reason?.code ?? 'EOF'}`);
          },
        })
        .catch((error) => finish(`dropped ${error?.code ?? 'connect failed'}`));
    });
  say('measure-start');
  for (let b = 0; b < config.bursts; b++) {
    const started = now();
    await Promise.all(Array.from({ length: config.conns }, (_, i) => client(b, i, started)));
    burstMs.push(Math.round((now() - started) * 100) / 100);
    clients += config.conns;
    await after(config.pauseMs / 1000); // let the server close the last ones
  }
  say('measure-end');
  return { units: served, seconds: 0, clients, dropped, dropReasons, burstMs };
}

const scenarios = { echo, idle, churn, 'idle-storm': idleStorm, cap };
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
