// What the harness measures. Echo: N connections ping-pong S-byte messages
// with P in flight each. Idle: N connections held open (RSS per connection).
// Churn: connect, one round trip, close, K at a time.
// Storm: N blocking connects back to back from a C client (storm.mjs).
// Idle storm: N connections each send one byte and then stay silent; the
// server reaps them after `idleTimeoutMs` (how late, at what CPU cost).
// Cap: bursts of `conns` clients arriving together at a server capped at
// `maxConnections`, each wanting one echo (who is served, who is dropped).
// UDP echo: F flows (sockets) each keep W datagrams of S bytes in flight;
// driven by the C load generator bench/c/udp_load.c, as a load generator in
// JavaScript could not keep up with the C server. F × W stays at half of the
// 256 datagrams of 64 B that a default Linux receive buffer (208 KiB) holds,
// so no server loses datagrams to a full queue by design; a datagram not
// echoed within `lossTimeoutMs` is counted lost and replaced.
//
// `server` holds the server's settings for the scenario (flags of the server
// processes, see servers.mjs); the throughput scenarios run every server with
// no idle timeout and no cap, so all do the same work; the idle hold runs all
// with a 15-minute idle timeout. `skip` may name servers
// with no fair equivalent of a scenario, and why (Bun over UDP; the C server
// reaps idle connections and caps too; run.mjs adds the servers that cannot
// run here); `policy` says what each does over the cap. `transport` is 'tcp'
// unless given.
import { kindOf } from './servers.mjs';

export function scenarios(quick) {
  const many = quick ? 1000 : 10000;
  return [
    { name: 'echo-100x64', kind: 'echo', conns: 100, size: 64, pipeline: 1 },
    { name: `echo-${many / 1000}kx64`, kind: 'echo', conns: many, size: 64, pipeline: 1 },
    { name: 'echo-50x16k', kind: 'echo', conns: 50, size: 16384, pipeline: 1 },
    { name: 'echo-100x64-p8', kind: 'echo', conns: 100, size: 64, pipeline: 8 },
    // Held with idle reaping on (15 min, the example's default), as a server
    // holding many idle connections should run; every server pays for its timers.
    { name: `idle-${many / 1000}k`, kind: 'idle', conns: many, rounds: 1, server: { idleTimeoutMs: 900000 } },
    { name: 'churn-50', kind: 'churn', conns: 50, size: 64 },
    // Median of 5: one SYN retransmit (1 s) in a round outweighs all else.
    { name: `storm-${many / 1000}k`, kind: 'storm', conns: many, rounds: quick ? 1 : 5 },
    {
      name: `idle-storm-${many / 1000}k`,
      kind: 'idle-storm',
      conns: many,
      idleTimeoutMs: 1000,
      tolerance: 0.05,
      rounds: quick ? 1 : 2,
      server: { idleTimeoutMs: 1000 },
    },
    {
      name: 'cap-50at10',
      kind: 'cap',
      conns: 50,
      size: 64,
      bursts: quick ? 4 : 12,
      pauseMs: 30,
      server: { maxConnections: 10 },
      policy: {
        reactor: 'parks the rest (FIFO)',
        net: 'server.maxConnections: drops',
        c: 'stops accepting (kernel backlog)',
        bun: 'no cap in Bun.listen: resets at once',
      },
    },
    {
      name: 'udp-echo-32x64-w4',
      kind: 'udp-echo',
      transport: 'udp',
      flows: 32,
      size: 64,
      window: 4,
      lossTimeoutMs: 1000,
      skip: { bun: 'Bun is measured over TCP (Bun.listen) only' },
    },
  ];
}

/** 'tcp' or 'udp'. */
export const transportOf = (scenario) => scenario.transport ?? 'tcp';

export const scenarioNames = (quick) => scenarios(quick).map((s) => s.name);

/** The servers of `servers` that run `scenario` (the others have no fair equivalent). */
export const serversFor = (scenario, servers) => servers.filter((s) => !scenario.skip?.[kindOf(s)]);
