// What people see: a progress bar while it runs, a table at the end and an
// HTML page with SVG charts in bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVER_LABELS } from './servers.mjs';

export class Progress {
  constructor(total, stream = process.stderr) {
    this.total = total;
    this.done = 0;
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
  }

  step(label) {
    const width = 30;
    const filled = Math.round((this.done / this.total) * width);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.done}/${this.total} ${label}`;
    if (this.tty) this.stream.write(`\r\x1b[K${bar}`);
    else this.stream.write(bar + '\n');
    this.done++;
  }

  finish() {
    if (this.tty) this.stream.write(`\r\x1b[K`);
  }
}

const fixed = (value, digits) => (value == null ? '—' : value.toFixed(digits));
const times = (value) => (value == null ? '—' : `${value.toFixed(2)}×`);
const count = (value) => (value == null ? '—' : Math.round(value).toLocaleString('en-US'));

/** The figure that matters per scenario kind: CPU per message/connection, or RSS per connection. */
export function unitOf(kind) {
  return kind === 'idle' ? 'B RSS/conn' : kind === 'churn' ? 'µs CPU/conn' : 'µs CPU/msg';
}

export function table(results) {
  const header = ['scenario', 'server', 'throughput/s', 'cost', 'vs C', 'vs net', 'p50 µs', 'p99 µs', 'p99.9 µs', 'errors'];
  const rows = [header];
  for (const scenario of results.scenarios) {
    for (const [server, s] of Object.entries(scenario.servers)) {
      const idle = scenario.kind === 'idle';
      const cost = idle ? s.rssPerConn : s.cpuPerUnit;
      const figure = idle ? 'rssPerConn' : 'cpuPerUnit';
      rows.push([
        scenario.name,
        SERVER_LABELS[server],
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
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const COLORS = { reactor: '#2b7bb9', net: '#d9822b', c: '#6a6a6a' };

function barChart(results) {
  // Cost ratio to the C server per scenario (lower is better); idle uses node:net.
  const groups = results.scenarios.map((scenario) => {
    const idle = scenario.kind === 'idle';
    const figure = idle ? 'rssPerConn' : 'cpuPerUnit';
    const base = idle ? 'vsNet' : 'vsC';
    return {
      label: `${scenario.name} (${idle ? 'vs node:net' : 'vs C'})`,
      bars: Object.entries(scenario.servers).map(([server, s]) => ({ server, value: s[base][figure] })),
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
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 4}" fill="${COLORS[bar.server]}"/>`);
      parts.push(`<text x="${left + w + 4}" y="${y + 11}" font-size="11">${SERVER_LABELS[bar.server]} ${times(bar.value)}</text>`);
      y += rowHeight;
    }
    y += 8;
  }
  const one = left + (width - left - labelRoom) / max;
  parts.push(`<line x1="${one}" y1="20" x2="${one}" y2="${y}" stroke="#c00" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${one + 3}" y="16" font-size="11" fill="#c00">1.0×</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}">${parts.join('')}</svg>`;
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
    parts.push(`<path d="${path}" fill="none" stroke="${COLORS[server]}" stroke-width="2"/>`);
    const label = points.map((p) => s.latency[p]).join(' / ') + ' µs';
    parts.push(`<rect x="${width - 210}" y="${28 + k * 30}" width="10" height="10" fill="${COLORS[server]}"/>`);
    parts.push(`<text x="${width - 196}" y="${37 + k * 30}" font-size="11">${SERVER_LABELS[server]}</text>`);
    parts.push(`<text x="${width - 196}" y="${50 + k * 30}" font-size="10" fill="#444">${label}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width + 20}" height="${height}">${parts.join('')}</svg>`;
}

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
<h2>Table</h2><pre>${table(results).replace(/&/g, '&amp;').replace(/</g, '&lt;')}</pre>
</body>`;
  const file = join(dir, `bench-${stamp}.html`);
  writeFileSync(file, html);
  writeFileSync(join(dir, 'latest.html'), html);
  return file;
}
