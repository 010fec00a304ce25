// What people see: a progress bar while it runs, a table at the end and an
// HTML page with SVG charts in bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transportOf } from './scenarios.mjs';
import { kindOf, serverLabel } from './servers.mjs';
import { stormTable } from './storm.mjs';

// A bar redrawn in place on a terminal; elsewhere (a log, a pipe) one line
// at the end instead of one per step.
export class Progress {
  constructor(total, stream = process.stderr) {
    this.total = total;
    this.done = 0;
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.started = Date.now();
  }

  step(label) {
    if (this.tty) {
      const width = 30;
      const filled = Math.round((this.done / this.total) * width);
      this.stream.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.done}/${this.total} ${label}`);
    }
    this.done++;
  }

  finish() {
    if (this.tty) this.stream.write(`\r\x1b[K`);
    else this.stream.write(`${this.done}/${this.total} runs in ${((Date.now() - this.started) / 1000).toFixed(0)} s\n`);
  }
}

const fixed = (value, digits) => (value == null ? '—' : value.toFixed(digits));
const times = (value) => (value == null ? '—' : `${value.toFixed(2)}×`);
const count = (value) => (value == null ? '—' : Math.round(value).toLocaleString('en-US'));

/** The figure that matters per scenario kind: CPU per message/datagram/connection, or RSS per connection. */
export function unitOf(kind) {
  if (kind === 'idle') return 'B RSS/conn';
  if (kind === 'churn' || kind === 'idle-storm' || kind === 'storm') return 'µs CPU/conn';
  return kind === 'udp-echo' ? 'µs CPU/pkt' : 'µs CPU/msg';
}

/** Scenario kinds of the main table (throughput, cost and latency); the others have tables of their own. */
export const THROUGHPUT_KINDS = ['echo', 'idle', 'churn', 'udp-echo'];

const ms = (micros) => (micros == null ? '—' : (micros / 1000).toFixed(1));
const percent = (share) => (share == null ? '—' : `${(share * 100).toFixed(1)}%`);

/**
 * Lays out rows of cells under a header: the columns numbered in `left`
 * padded to the right (text), the others to the left (figures). A row may instead be `{ note: [a, b,
 * text] }`: the first two cells aligned, then free text (a server that did
 * not run, say).
 */
export function layout(header, rows, left = [0, 1]) {
  const cells = rows.filter((r) => Array.isArray(r));
  const widths = header.map((_, i) =>
    Math.max(header[i].length, ...cells.map((r) => r[i].length), ...(i < 2 ? rows.filter((r) => r.note).map((r) => r.note[i].length) : [])),
  );
  const line = (r) => r.map((cell, i) => (left.includes(i) ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  const note = ([a, b, text]) => `${a.padEnd(widths[0])}  ${b.padEnd(widths[1])}  ${text}`;
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => (r.note ? note(r.note) : line(r)))].join('\n');
}

/** A server's name in a scenario's rows: node:net or node:dgram, say, by the scenario's transport. */
const labelIn = (scenario, server) => serverLabel(server, transportOf(scenario));

/** Rows saying which servers did not run a scenario, and why. */
const skippedRows = (scenario) =>
  Object.entries(scenario.skipped ?? {}).map(([server, why]) => ({ note: [scenario.name, labelIn(scenario, server), `not run: ${why}`] }));

/** Rows for the servers of a UDP scenario that lost datagrams or echoed some late. */
const lossRows = (scenario) =>
  Object.entries(scenario.servers)
    .filter(([, s]) => s.datagrams?.lost || s.datagrams?.stale)
    .map(([server, s]) => {
      const { sent, lost, stale } = s.datagrams;
      const text = `lost ${count(lost)} of ${count(sent)} datagrams (${percent(sent ? lost / sent : null)}), ${count(stale)} of them echoed late`;
      return { note: [scenario.name, labelIn(scenario, server), text] };
    });

function throughputTable(list) {
  const header = ['scenario', 'server', 'throughput/s', 'cost', 'vs C', 'vs net', 'p50 µs', 'p99 µs', 'p99.9 µs', 'errors'];
  const rows = [];
  for (const scenario of list) {
    for (const [server, s] of Object.entries(scenario.servers)) {
      const idle = scenario.kind === 'idle';
      const cost = idle ? s.rssPerConn : s.cpuPerUnit;
      const figure = idle ? 'rssPerConn' : 'cpuPerUnit';
      rows.push([
        scenario.name,
        labelIn(scenario, server),
        idle ? '—' : count(s.throughput),
        `${fixed(cost, idle ? 0 : 2)} ${unitOf(scenario.kind)}`,
        times(s.vsC[figure]),
        times(s.vsNet[figure]),
        fixed(s.latency.p50, 0),
        fixed(s.latency.p99, 0),
        fixed(s.latency.p999, 0),
        String(s.errors),
      ]);
    }
    rows.push(...lossRows(scenario), ...skippedRows(scenario));
  }
  return layout(header, rows);
}

function reapTable(list) {
  const header = ['scenario', 'server', 'reaped', 'late p50 ms', 'p99 ms', 'max ms', 'on time', 'CPU ms/storm', 'kernel', 'µs CPU/conn', 'vs C', 'vs net', 'opened in ms', 'errors'];
  const rows = [];
  for (const scenario of list) {
    for (const [server, s] of Object.entries(scenario.servers)) {
      const r = s.reaping;
      rows.push([
        scenario.name,
        labelIn(scenario, server),
        r ? `${count(r.count)}/${count(r.conns)}` : '—',
        fixed(r?.p50, 1),
        fixed(r?.p99, 1),
        fixed(r?.max, 1),
        percent(r?.onTimeShare),
        fixed(r?.cpuMsPerStorm, 0),
        percent(r?.kernelShare).replace(/\.\d%$/, '%'),
        fixed(s.cpuPerUnit, 2),
        times(s.vsC.cpuPerUnit),
        times(s.vsNet.cpuPerUnit),
        fixed(r?.openMs, 0),
        String(s.errors),
      ]);
    }
    rows.push(...skippedRows(scenario));
  }
  const first = list[0];
  const deadline = first.idleTimeoutMs;
  const limit = deadline * first.tolerance;
  return [
    `Idle reaping (deadline ${deadline} ms): each connection sends one byte, then nothing. Late: when the client saw`,
    `the server end it, minus (sent + ${deadline} ms); on time: ≤ +${limit} ms (+${first.tolerance * 100}%). CPU: the server's, from just`,
    `before the first deadline until the last was reaped, per storm; kernel: its share spent in the kernel (10 ms ticks).`,
    `Target: all on time, ≤ 50 ms CPU per 10,000. Opened in: time to open them all (from ${deadline - 20} ms on, the CPU`,
    `window overlaps the opening).`,
    layout(header, rows),
  ].join('\n');
}

function capTable(list) {
  const header = ['scenario', 'server', 'over the cap', 'served', 'dropped', 'all done p50 ms', 'max ms', 'echo p50 ms', 'p99 ms', 'errors', 'how dropped'];
  const rows = [];
  for (const scenario of list) {
    for (const [server, s] of Object.entries(scenario.servers)) {
      const c = s.cap;
      const how = Object.entries(c?.dropReasons ?? {})
        .sort((a, b) => b[1] - a[1])
        .map(([reason, n]) => `${reason} ${n}`)
        .join(', ');
      rows.push([
        scenario.name,
        labelIn(scenario, server),
        scenario.policy?.[kindOf(server)] ?? '',
        c ? `${count(c.served)}/${count(c.clients)}` : '—',
        c ? count(c.dropped) : '—',
        fixed(c?.allDoneMs.p50, 1),
        fixed(c?.allDoneMs.max, 1),
        ms(s.latency.p50),
        ms(s.latency.p99),
        String(s.errors),
        how,
      ]);
    }
    rows.push(...skippedRows(scenario));
  }
  const first = list[0];
  return [
    `Connection cap: bursts of ${first.conns} clients arrive together at a server capped at ${first.server.maxConnections} connections; each sends`,
    `${first.size} bytes, waits for their echo and closes. All done: until every client of a burst was served or dropped.`,
    `Echo: from the burst's start to the client's echo.`,
    layout(header, rows, [0, 1, 2, 10]),
  ].join('\n');
}

/** The text report: the throughput table, then one table per other kind of scenario present. */
export function table(results) {
  const of = (test) => results.scenarios.filter((s) => test(s.kind));
  const sections = [];
  const main = of((k) => THROUGHPUT_KINDS.includes(k));
  if (main.length) sections.push(throughputTable(main));
  const storms = of((k) => k === 'idle-storm');
  if (storms.length) sections.push(reapTable(storms));
  const caps = of((k) => k === 'cap');
  if (caps.length) sections.push(capTable(caps));
  const connectStorms = of((k) => k === 'storm');
  if (connectStorms.length) {
    const { caption, header, rows } = stormTable(connectStorms, labelIn);
    sections.push([...caption, layout(header, rows)].join('\n'));
  }
  return sections.join('\n\n');
}

const COLORS = { reactor: '#2b7bb9', net: '#d9822b', c: '#6a6a6a', bun: '#c23b8c' };
// native-reactor's backends side by side: one blue each.
const BACKEND_COLORS = { epoll: '#2b7bb9', io_uring: '#1b4f8a', poll: '#5fa8e0', select: '#8cc4ee', kqueue: '#2b7bb9', auto: '#2b7bb9' };
const colorOf = (key) => (key.includes(':') ? BACKEND_COLORS[key.split(':')[1]] : COLORS[key]);

function barChart(results) {
  // Cost ratio to the C server per scenario (lower is better); idle uses node:net.
  const groups = results.scenarios.filter((s) => s.kind !== 'cap').map((scenario) => {
    const idle = scenario.kind === 'idle';
    const figure = idle ? 'rssPerConn' : 'cpuPerUnit';
    const base = idle ? 'vsNet' : 'vsC';
    return {
      label: `${scenario.name} (${idle ? 'vs node:net' : 'vs C'})`,
      bars: Object.entries(scenario.servers).map(([server, s]) => ({ server, label: labelIn(scenario, server), value: s[base][figure] })),
    };
  });
  const max = Math.max(1.2, ...groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)));
  const rowHeight = 18;
  const left = 220;
  const width = 820;
  const labelRoom = 170;
  let y = 30;
  const parts = [];
  for (const group of groups) {
    parts.push(`<text x="4" y="${y + 12}" font-size="12">${group.label}</text>`);
    for (const bar of group.bars) {
      const w = bar.value == null ? 0 : ((width - left - labelRoom) * bar.value) / max;
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 4}" fill="${colorOf(bar.server)}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + 11}" font-size="11">${bar.label} ${times(bar.value)}</text>`);
      y += rowHeight;
    }
    y += 8;
  }
  const one = left + (width - left - labelRoom) / max;
  parts.push(`<line x1="${one}" y1="20" x2="${one}" y2="${y}" stroke="#c00" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${one + 3}" y="16" font-size="11" fill="#c00">1.0×</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}">${parts.join('')}</svg>`;
}

/** Idle reaping: lateness p50 / p99 / max per server, ms, against the on-time limit. */
function reapChart(scenario) {
  const servers = Object.entries(scenario.servers).filter(([, s]) => s.reaping?.count);
  if (servers.length === 0) return '';
  const limit = scenario.idleTimeoutMs * scenario.tolerance;
  const points = ['p50', 'p99', 'max'];
  const max = Math.max(limit * 1.5, ...servers.flatMap(([, s]) => points.map((p) => s.reaping[p])));
  const left = 170;
  const width = 900;
  const room = 60;
  const scale = (v) => ((width - left - room) * Math.max(0, v)) / max;
  let y = 34;
  const parts = [`<text x="4" y="14" font-size="12">${scenario.name}: how late the server ended idle connections, ms after the ${scenario.idleTimeoutMs} ms deadline</text>`];
  for (const [server, s] of servers) {
    parts.push(`<text x="4" y="${y + 12}" font-size="12">${labelIn(scenario, server)}</text>`);
    for (const p of points) {
      const w = scale(s.reaping[p]);
      parts.push(`<text x="${left - 30}" y="${y + 11}" font-size="10">${p}</text>`);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="12" fill="${colorOf(server)}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + 10}" font-size="10">${s.reaping[p].toFixed(1)} ms</text>`);
      y += 15;
    }
    const e = s.reaping.fromEcho;
    const fromEcho = e?.count ? ` · from the echo instead: p50 ${fixed(e.p50, 1)}, p99 ${fixed(e.p99, 1)}, max ${fixed(e.max, 1)} ms` : '';
    parts.push(`<text x="${left}" y="${y + 10}" font-size="10" fill="#444">on time: ${percent(s.reaping.onTimeShare)} · CPU ${fixed(s.reaping.cpuMsPerStorm, 0)} ms per storm of ${count(s.reaping.conns / s.reaping.storms)}${fromEcho}</text>`);
    y += 22;
  }
  const at = left + scale(limit);
  parts.push(`<line x1="${at}" y1="22" x2="${at}" y2="${y}" stroke="#c00" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${at + 3}" y="30" font-size="10" fill="#c00">+${limit} ms</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 6}">${parts.join('')}</svg>`;
}

/** Connection cap: served and dropped clients per server. */
function capChart(scenario) {
  const servers = Object.entries(scenario.servers).filter(([, s]) => s.cap?.clients);
  if (servers.length === 0) return '';
  const left = 170;
  const width = 760;
  const room = 230;
  let y = 26;
  const parts = [`<text x="4" y="14" font-size="12">${scenario.name}: clients served (colour) and dropped (grey)</text>`];
  for (const [server, s] of servers) {
    const { served, dropped, clients } = s.cap;
    const ws = ((width - left - room) * served) / clients;
    const wd = ((width - left - room) * dropped) / clients;
    parts.push(`<text x="4" y="${y + 12}" font-size="12">${labelIn(scenario, server)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${ws.toFixed(1)}" height="14" fill="${colorOf(server)}"/>`);
    parts.push(`<rect x="${(left + ws).toFixed(1)}" y="${y}" width="${wd.toFixed(1)}" height="14" fill="#bbb"/>`);
    const label = `${count(served)} served, ${count(dropped)} dropped · ${scenario.policy?.[kindOf(server)] ?? ''}`;
    parts.push(`<text x="${(left + ws + wd + 4).toFixed(1)}" y="${y + 11}" font-size="10">${label}</text>`);
    y += 20;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 6}">${parts.join('')}</svg>`;
}

function latencyChart(scenario) {
  const points = ['p50', 'p99', 'p999'];
  const servers = Object.entries(scenario.servers).filter(([, s]) => s.latency.p50 != null);
  if (servers.length === 0) return '';
  const values = servers.flatMap(([, s]) => points.map((p) => Math.max(1, s.latency[p])));
  const low = Math.log10(Math.min(...values) / 1.5);
  const high = Math.log10(Math.max(...values) * 1.5);
  const width = 560;
  const height = 190;
  const x = (i) => 60 + i * ((width - 290) / (points.length - 1));
  const y = (v) => height - 25 - ((height - 60) * (Math.log10(Math.max(1, v)) - low)) / (high - low);
  const parts = [`<text x="4" y="14" font-size="12">${scenario.name}: latency, µs (log scale)</text>`];
  points.forEach((p, i) => parts.push(`<text x="${x(i) - 12}" y="${height - 6}" font-size="11">${p}</text>`));
  for (const v of [low, high].map((e) => 10 ** e)) {
    parts.push(`<text x="2" y="${y(v) + 4}" font-size="10">${Math.round(v)}</text>`);
  }
  servers.forEach(([server, s], k) => {
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(s.latency[p]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${path}" fill="none" stroke="${colorOf(server)}" stroke-width="2"/>`);
    const label = points.map((p) => s.latency[p]).join(' / ') + ' µs';
    parts.push(`<rect x="${width - 210}" y="${28 + k * 30}" width="10" height="10" fill="${colorOf(server)}"/>`);
    parts.push(`<text x="${width - 196}" y="${37 + k * 30}" font-size="11">${labelIn(scenario, server)}</text>`);
    parts.push(`<text x="${width - 196}" y="${50 + k * 30}" font-size="10" fill="#444">${label}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width + 20}" height="${height}">${parts.join('')}</svg>`;
}

const sectionOf = (results, kind, title, chart) => {
  const list = results.scenarios.filter((s) => s.kind === kind);
  return list.length ? `<h2>${title}</h2>\n${list.map(chart).join('\n')}` : '';
};

/** Writes results as JSON and an HTML page of charts; returns the HTML path. */
export function writeResults(results, dir) {
  mkdirSync(dir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(results, null, 2));
  const html = `<!doctype html><meta charset="utf-8"><title>native-reactor bench ${results.startedAt}</title>
<body style="font-family: sans-serif">
<h1>native-reactor benchmark</h1>
<p>${results.startedAt} · ${results.machine} · <code>${results.command}</code></p>
<h2>Server cost relative to the limit (lower is better)</h2>
${barChart(results)}
<h2>Latency distributions</h2>
${results.scenarios.filter((s) => s.kind !== 'idle').map(latencyChart).join('\n')}
${sectionOf(results, 'idle-storm', 'Idle reaping', reapChart)}
${sectionOf(results, 'cap', 'Connection caps', capChart)}
<h2>Table</h2><pre>${table(results).replace(/&/g, '&amp;').replace(/</g, '&lt;')}</pre>
</body>`;
  const file = join(dir, `bench-${stamp}.html`);
  writeFileSync(file, html);
  writeFileSync(join(dir, 'latest.html'), html);
  return file;
}
