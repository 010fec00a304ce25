// The connection storm: N clients connect one after another as fast as a C
// client can (bench/c/storm.c: blocking connects back to back, each kept open
// until all are established), against servers listening with the same
// backlog (511). A server that falls behind overflows its accept queue; the
// kernel drops those SYNs and the clients wait a second for a retransmit.
// Figures: seconds to establish all N (median of the rounds, and the worst),
// connects that took over 900 ms (a retransmit), the kernel's ListenOverflows
// over the storm, and the server's CPU per connection.
import { buildC, cBinary } from './c-programs.mjs';
import { kindOf } from './servers.mjs';

/** The storm client, as named for buildC. */
export const STORM = 'storm';

/** The argv of the storm client for `config` (the scenario with its port); it waits for "go" on stdin. */
export const stormCommand = (config) => [cBinary(STORM), '--port', String(config.port), '--count', String(config.conns), '--wait', '1'];

/** Why `scenario` runs on none of `servers` here (the storm client does not build), by kind; {} when it runs. */
export function stormUnavailable(scenario, servers) {
  if (scenario.kind !== 'storm') return {};
  const problem = buildC(STORM);
  return problem ? Object.fromEntries(servers.map((s) => [kindOf(s), `no storm client: ${problem}`])) : {};
}

/** What run.mjs keeps of the client's result line, per round. */
export const STORM_FIGURES = ['retransmitted', 'listenOverflows', 'listenDrops', 'maxConnectMs', 'failed', 'lost'];

/** The storm figures of one server's rounds (each with `seconds`, `units` and STORM_FIGURES). */
export function stormSummary(rounds) {
  const times = Float64Array.from(rounds.map((r) => r.seconds)).sort();
  const total = (key) => rounds.reduce((sum, r) => sum + (r[key] ?? 0), 0);
  return {
    established: total('units'),
    medianSeconds: times.length ? times[Math.ceil(times.length / 2) - 1] : null,
    maxSeconds: times.length ? times[times.length - 1] : null,
    retransmitted: total('retransmitted'),
    listenOverflows: total('listenOverflows'),
    maxConnectMs: Math.max(0, ...rounds.map((r) => r.maxConnectMs ?? 0)),
  };
}

/**
 * The storm table's caption, header and rows: time to establish against the
 * C server's, retransmits, overflows, CPU per connection. `labelIn(scenario,
 * server)` names a server.
 */
export function stormTable(list, labelIn) {
  const header = ['scenario', 'server', 'established', 'median s', 'vs C', 'worst s', 'slowest ms', '> 900 ms', 'overflows', 'µs CPU/conn', 'errors'];
  const fixed = (value, digits) => (value == null ? '—' : value.toFixed(digits));
  const rows = [];
  for (const scenario of list) {
    const c = scenario.servers.c?.storm;
    for (const [server, s] of Object.entries(scenario.servers)) {
      const storm = s.storm;
      const vsC = storm?.medianSeconds && c?.medianSeconds ? storm.medianSeconds / c.medianSeconds : null;
      rows.push([
        scenario.name,
        labelIn(scenario, server),
        storm ? `${storm.established}/${scenario.conns * s.rounds}` : '—',
        fixed(storm?.medianSeconds, 3),
        vsC == null ? '—' : `${vsC.toFixed(2)}×`,
        fixed(storm?.maxSeconds, 3),
        fixed(storm?.maxConnectMs, 1),
        String(storm?.retransmitted ?? '—'),
        String(storm?.listenOverflows ?? '—'),
        fixed(s.cpuPerUnit, 1),
        String(s.errors),
      ]);
    }
  }
  const first = list[0];
  const caption = [
    `Connection storm: ${first.conns.toLocaleString('en-US')} blocking connects back to back (bench/c/storm.c), backlog 511 on every server,`,
    `each connection kept open until all are established. Median of ${first.rounds} round(s); > 900 ms: connects that waited for a SYN`,
    `retransmit; overflows: the kernel's ListenOverflows over the storms (this network namespace).`,
  ];
  return { caption, header, rows };
}
