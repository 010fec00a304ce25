import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { runProcess, type ProcessResult } from './helpers.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

interface EchoResult {
  intact: boolean;
  length: number;
  reason: string | null;
  backend: string;
}

function exitOf(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    worker.once('exit', resolve);
    worker.once('error', reject);
  });
}

function firstMessage<T>(worker: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  const workers: Worker[] = [];
  afterEach(async () => {
    // Only workers that failed to end by themselves are still running here.
    await Promise.all(workers.splice(0).filter((w) => w.threadId !== -1).map((w) => w.terminate()));
  });

  it('a reactor inside a worker thread round-trips bytes and the worker exits by itself with code 0', async () => {
    const worker = new Worker(fixture('worker-echo.mjs'), { workerData: { backend, size: 300_000 } });
    workers.push(worker);
    const exited = exitOf(worker);
    const result = await firstMessage<EchoResult>(worker);
    expect(result).toEqual({ intact: true, length: 300_000, reason: null, backend });
    expect(await exited).toBe(0);
  });

  it('four workers with their own reactors run at once', async () => {
    const runs = Array.from({ length: 4 }, (_, i) => {
      const worker = new Worker(fixture('worker-echo.mjs'), { workerData: { backend, size: 100_000 + i } });
      workers.push(worker);
      return Promise.all([firstMessage<EchoResult>(worker), exitOf(worker)]);
    });
    const results = await Promise.all(runs);
    expect(results.map(([r, code]) => [r.intact, r.length, code])).toEqual([
      [true, 100_000, 0],
      [true, 100_001, 0],
      [true, 100_002, 0],
      [true, 100_003, 0],
    ]);
  });

  // terminate() runs in a child process: if it takes the process down, only
  // the child dies and this test reports it, instead of the test runner dying.
  it.each(['idle', 'traffic'])(
    'terminate() of workers with an open listener and a connection (%s) does not crash the parent',
    async (mode) => {
      const result = await runParent([backend, '8', mode]);
      expect({ code: result.code, signal: result.signal, stderr: result.stderr.split('\n').slice(0, 3).join('\n') }).toEqual({
        code: 0,
        signal: null,
        stderr: '',
      });
      expect(result.stdout).toBe('parent ok 8\n');
    },
  );
});

function runParent(args: string[]): Promise<ProcessResult> {
  return runProcess(process.execPath, [fileURLToPath(fixture('terminate-parent.mjs')), ...args], 15_000);
}
