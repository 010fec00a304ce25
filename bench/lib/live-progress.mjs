// The progress bar of native-reactor-bench, redrawn in place on a terminal.
// Callers make one only for a TTY: a pipe or a file gets no progress lines.
export class LiveProgress {
  constructor(stream, totalSeconds) {
    this.stream = stream;
    this.totalSeconds = totalSeconds;
    this.started = performance.now();
    this.last = { at: this.started, replies: 0 };
    this.rate = 0;
  }

  update({ phase, replies, errors }) {
    const t = performance.now();
    if (t - this.last.at >= 500) {
      this.rate = ((replies - this.last.replies) * 1000) / (t - this.last.at);
      this.last = { at: t, replies };
    }
    const elapsed = Math.min(this.totalSeconds, (t - this.started) / 1000);
    const width = 30;
    const filled = Math.round((elapsed / this.totalSeconds) * width);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
    const label = phase === 'warmup' ? 'warm-up' : phase;
    const line = `${bar} ${elapsed.toFixed(1)}/${this.totalSeconds} s ${label}  ${Math.round(this.rate).toLocaleString('en-US')} replies/s  ${errors} errors`;
    this.stream.write(`\r\x1b[K${line}`);
  }

  finish() {
    this.stream.write('\r\x1b[K');
  }
}
