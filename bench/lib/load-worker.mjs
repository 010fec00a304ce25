// A worker thread of parallel.mjs: runs its share of the load once told
// "go" (after every share has opened its connections).
import { parentPort, workerData } from 'node:worker_threads';
import { runShare } from './parallel.mjs';

const go = new Promise((resolve) => parentPort.once('message', resolve));
const result = await runShare(workerData, {
  ready() {
    parentPort.postMessage({ type: 'ready' });
    return go;
  },
  tick(progress) {
    parentPort.postMessage({ type: 'tick', progress });
  },
});
parentPort.postMessage({ type: 'result', result });
