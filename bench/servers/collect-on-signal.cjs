// Preloaded into the bench's JavaScript servers for the idle hold (node
// --require, bun --preload): on SIGUSR2 the server collects its garbage now
// and prints one line, `collected YOUNG`, where YOUNG is the bytes V8's young
// generation holds resident (0 under Bun, whose collector has none). The
// harness then reads the server's RSS, not depending on when a collector
// last ran (bench/run.mjs).
'use strict';

const v8 = require('node:v8');

function collect() {
  if (typeof Bun !== 'undefined') {
    Bun.gc(true);
    return 0;
  }
  globalThis.gc();
  const young = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  return young ? young.physical_space_size : 0;
}

process.on('SIGUSR2', () => process.stdout.write(`collected ${collect()}\n`));
