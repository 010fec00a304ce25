// The load engine, built on native-reactor: N connections to a target it did
// not start, each with up to `pipeline` requests in flight, driven either
// closed-loop (a reply sends the next request) or open-loop at a constant
// `rate` (requests per second in all). Open-loop follows wrk2: each
// connection has its own schedule at rate/N, a request is sent once its
// intended time has come and a pipeline slot is free, and its latency runs
// from the intended time, not from when it could be sent; so a server that
// stalls is charged for every request the stall delayed (no coordinated
// omission). `uncorrected` holds the latency from the actual send, the
// figure a closed-loop tool reports.
//
// Errors are counted once per event, by kind. A connection that is lost
// while the load runs is opened again (a failed connect is retried after
// RETRY_MS); its requests in flight are lost, and its open-loop schedule
// runs on, so the requests it missed are sent late and charged for it.
// At the end no new request is sent, the ones in flight are awaited (at most
// DRAIN_MS), and every connection is closed with a FIN (or reset: `reset`).
//
// With `churn` each connection carries one request: after its reply the
// connection is closed (FIN) and opened again, and the latency runs from the
// start of its connect (closed loop) or its intended time (open loop).
import { ReplyError } from './reply-error.mjs';
import { LatencyRecorder } from './latency-recorder.mjs';

export const ERROR_KINDS = ['connectRefused', 'connectTimeout', 'connect', 'reset', 'closed', 'timeout', 'badReply', 'badStatus'];

const CONNECTS_IN_FLIGHT = 256; // stay well under a listen backlog
const RETRY_MS = 100;
const SWEEP_MS = 100; // request timeouts and progress
const DRAIN_MS = 2000;
const CLOSE_MS = 2000;
// Timers fire in whole milliseconds, often late by one: an open-loop request
// due within this much is sent now. Its latency then runs from when it was
// actually sent (never from before it left), so sending early hides nothing.
const SEND_AHEAD_MS = 1;

const now = () => performance.now();

/** The error kind of a failed connect. */
export function connectErrorKind(error) {
  if (error?.code === 'ECONNREFUSED') return 'connectRefused';
  if (error?.code === 'ETIMEDOUT') return 'connectTimeout';
  return 'connect';
}

/** The error kind of a connection lost with `reason` (undefined: the server closed it). */
function lostKind(reason) {
  if (reason === undefined) return 'closed';
  if (reason.code === 'ETIMEDOUT') return 'timeout';
  return ['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(reason.code) ? 'reset' : 'closed';
}

/**
 * Runs the load on `reactor`. `config`: target ({host, port} or {path}),
 * workload (see workloads.mjs), connections, pipeline, rate (0: closed loop),
 * warmup, duration and timeout (seconds), reset. `hooks`: ready() is awaited
 * once the connections are open, before any request (several engines start
 * together); phase(name) is told 'measure-start' and 'measure-end';
 * tick(progress) is called every SWEEP_MS.
 */
export async function runLoad(reactor, config, hooks = {}) {
  const { workload, pipeline, rate, target, churn = false } = config;
  const request = workload.request;
  const timeoutMs = config.timeout * 1000;
  const intervalMs = rate > 0 ? (config.connections / rate) * 1000 : 0;
  const errors = Object.fromEntries(ERROR_KINDS.map((kind) => [kind, 0]));
  const latencies = new LatencyRecorder();
  const uncorrected = rate > 0 ? new LatencyRecorder() : null;
  let phase = 'connecting'; // then 'warmup', 'measuring', 'stopping'
  let completed = 0;
  let replies = 0;
  let reconnects = 0;
  let serverCloses = 0;
  let inFlight = 0;
  let open = 0;
  let bytesSent = 0;
  let bytesReceived = 0;
  let settled = null; // resolves the wait of the stopping phase
  const running = () => phase === 'warmup' || phase === 'measuring';
  const errorCount = () => Object.values(errors).reduce((a, b) => a + b, 0);
  const count = (kind) => {
    if (phase !== 'stopping') errors[kind]++;
  };
  const checkSettled = () => {
    if (settled && inFlight === 0 && settled.until === 'drained') settled.resolve();
    if (settled && open === 0 && settled.until === 'closed') settled.resolve();
  };

  const connect = (protocol) =>
    'path' in target
      ? reactor.connectUnix({ path: target.path, timeoutMs }, protocol)
      : reactor.connectTCP({ host: target.host, port: target.port, timeoutMs }, protocol);

  const conns = Array.from({ length: config.connections }, (_, index) => ({
    index,
    transport: null,
    reader: null,
    // The requests in flight, a ring of `pipeline` slots from `oldest`: when
    // each was due and when it was sent (ms). Typed arrays: nothing is
    // allocated per request.
    intended: new Float64Array(pipeline),
    sentAt: new Float64Array(pipeline),
    oldest: 0,
    pending: 0,
    next: 0, // open loop: when the next request is due
    timer: null,
    dropped: false, // lost on purpose, its error already counted
    dialedAt: 0, // churn: when its connect began
    done: false, // churn: its one reply came, it is closing
  }));

  /** Sends a request due at `intended`, at `t` (ms). */
  function send(conn, intended, t) {
    let slot = conn.oldest + conn.pending++;
    if (slot >= pipeline) slot -= pipeline;
    conn.intended[slot] = intended;
    conn.sentAt[slot] = t;
    inFlight++;
    bytesSent += request.length;
    conn.transport.write(request);
  }

  /** Sends what conn may send at `t` (ms, now). */
  function pump(conn, t) {
    if (!running() || conn.transport === null || conn.reader.closing || conn.done) return;
    if (rate === 0) {
      while (conn.pending < pipeline) send(conn, churn ? conn.dialedAt : t, t);
      return;
    }
    while (conn.pending < pipeline && conn.next <= t + SEND_AHEAD_MS) {
      send(conn, conn.next, t);
      conn.next += intervalMs;
    }
    if (conn.pending < pipeline && conn.timer === null) {
      conn.timer = reactor.callLater(conn.next - t - SEND_AHEAD_MS, () => {
        conn.timer = null;
        pump(conn, now());
      });
    }
  }

  /** Ends a connection whose error is counted already; it is opened again. */
  function drop(conn) {
    const transport = conn.transport;
    conn.transport = null;
    conn.dropped = true;
    transport.abort();
  }

  function reply(conn, kind) {
    if (conn.transport === null) return; // dropped in this same read
    if (conn.pending === 0) {
      count('badReply'); // a reply to nothing
      return drop(conn);
    }
    const intended = conn.intended[conn.oldest];
    const sentAt = conn.sentAt[conn.oldest];
    if (++conn.oldest === pipeline) conn.oldest = 0;
    conn.pending--;
    inFlight--;
    replies++;
    const t = now();
    if (kind !== null) count(kind);
    else if (phase === 'measuring') {
      completed++;
      latencies.record(t - (intended < sentAt ? intended : sentAt));
      if (uncorrected) uncorrected.record(t - sentAt);
    }
    if (phase === 'stopping') checkSettled();
    else if (churn) {
      conn.done = true;
      conn.transport.close();
    } else pump(conn, t);
  }

  function lost(conn, reason) {
    const wasDropped = conn.dropped;
    // A reply framed by the end of the connection is complete now.
    if (!wasDropped && reason === undefined && conn.transport !== null) conn.reader.end?.((kind) => reply(conn, kind));
    // The server said it would close (Connection: close): what it left unanswered is not an error.
    const announced = !wasDropped && conn.reader !== null && conn.reader.closing;
    if (announced && phase !== 'stopping') serverCloses++;
    const unanswered = conn.pending;
    conn.transport = null;
    conn.dropped = false;
    conn.done = false;
    conn.oldest = 0;
    conn.pending = 0;
    inFlight -= unanswered;
    open--;
    checkSettled();
    if (phase === 'stopping' || phase === 'connecting') return;
    if (!wasDropped && (reason !== undefined || (unanswered > 0 && !announced))) count(lostKind(reason));
    reconnects++;
    dial(conn);
  }

  /** Opens conn's connection; resolves true once connected, false if that failed. */
  function dial(conn) {
    const reader = workload.newReader();
    conn.dialedAt = now();
    const onReply = (kind) => reply(conn, kind);
    return connect({
      keepsData: false,
      connectionMade(transport) {
        conn.transport = transport;
        conn.reader = reader;
        open++;
        pump(conn, now());
      },
      dataReceived(data) {
        bytesReceived += data.length;
        try {
          reader.feed(data, onReply);
        } catch (error) {
          if (!(error instanceof ReplyError)) throw error;
          count(error.kind);
          if (conn.transport !== null) drop(conn);
        }
      },
      connectionLost(reason) {
        lost(conn, reason);
      },
    }).then(
      () => true,
      (error) => {
        count(connectErrorKind(error));
        if (running()) reactor.callLater(RETRY_MS, () => running() && dial(conn));
        return false;
      },
    );
  }

  const after = (ms) => new Promise((resolve) => reactor.callLater(ms, resolve));
  const waitFor = (until, ms) =>
    new Promise((resolve) => {
      const bound = reactor.callLater(ms, resolve);
      settled = {
        until,
        resolve: () => {
          bound.cancel();
          resolve();
        },
      };
      checkSettled();
    }).finally(() => (settled = null));

  // Open every connection, CONNECTS_IN_FLIGHT at a time.
  let nextToDial = 0;
  const connected = new Array(conns.length).fill(false);
  const dialer = async () => {
    while (nextToDial < conns.length) {
      const conn = conns[nextToDial++];
      connected[conn.index] = await dial(conn);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTS_IN_FLIGHT, conns.length) }, dialer));
  const established = connected.filter(Boolean).length;
  await hooks.ready?.(established);

  const sweep = () => {
    const t = now();
    for (const conn of conns) {
      if (conn.transport !== null && conn.pending > 0 && t - conn.sentAt[conn.oldest] > timeoutMs) {
        count('timeout');
        drop(conn);
      }
    }
    hooks.tick?.({ phase, replies, completed, errors: errorCount() });
    sweeper = reactor.callLater(SWEEP_MS, sweep);
  };
  let sweeper = reactor.callLater(SWEEP_MS, sweep);

  phase = 'warmup';
  const started = now();
  for (const conn of conns) {
    // Each connection's schedule starts at its own offset: rate/N apart, not all at once.
    conn.next = started + (conn.index * intervalMs) / conns.length;
    if (conn.transport !== null) pump(conn, now());
    else dial(conn); // its first connect failed, or it was lost meanwhile
  }
  await after(config.warmup * 1000);
  phase = 'measuring';
  hooks.phase?.('measure-start');
  const measureStart = now();
  const cpuStart = process.cpuUsage();
  await after(config.duration * 1000);
  phase = 'stopping';
  const seconds = (now() - measureStart) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  hooks.phase?.('measure-end');
  sweeper.cancel();
  for (const conn of conns) conn.timer?.cancel();

  await waitFor('drained', Math.min(DRAIN_MS, timeoutMs));
  for (const conn of conns) {
    if (conn.transport === null) continue;
    if (config.reset) conn.transport.abort();
    else conn.transport.close();
  }
  await waitFor('closed', CLOSE_MS);
  for (const conn of conns) conn.transport?.abort();
  return {
    completed,
    seconds,
    errors,
    histogram: latencies.histogram(),
    uncorrected: uncorrected?.histogram() ?? null,
    established,
    reconnects,
    serverCloses,
    cpuSeconds: (cpu.user + cpu.system) / 1e6, // the whole process's, over the measured window
    bytesSent,
    bytesReceived,
  };
}
