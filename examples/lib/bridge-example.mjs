// What the bridge examples share: the command line, the workers (threads
// sharing the port with SO_REUSEPORT, one reactor each) and the server made
// of a node:http (or https) server fed by a StreamServer.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createStreamServer, Reactor } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from './options.mjs';

export { UsageError };


/**
 * Parses the command line (without node and the script). `extra` are more
 * string options of the example's own (`required` lists those it needs).
 * Throws UsageError.
 */
export function parseBridgeArgs(argv, extra = {}, required = []) {
  const values = parseOptions(argv, {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string' },
    workers: { type: 'string', default: '1' },
    'idle-timeout-ms': { type: 'string', default: '60000' },
    'max-connections': { type: 'string' },
    ...Object.fromEntries(Object.keys(extra).map((name) => [name, { type: 'string' }])),
  });
  for (const name of required) if (values[name] === undefined) throw new UsageError(`--${name} is required`);
  const limits = { idleTimeoutMs: whole(values, 'idle-timeout-ms', 0) };
  const maxConnections = whole(values, 'max-connections', 1);
  if (maxConnections !== undefined) limits.maxConnections = maxConnections;
  return {
    port: whole(values, 'port', 0, 65535),
    host: values.host,
    backend: values.backend,
    workers: whole(values, 'workers', 1, 256),
    limits,
    extra: Object.fromEntries(Object.keys(extra).map((name) => [name, values[name]])),
  };
}

/** Serves `makeServer(extra)` (a node:http or https Server) over the bridge; resolves with the bound port. */
function serve(options, makeServer, reusePort) {
  const reactor = new Reactor(options.backend ? { backend: options.backend } : {});
  const httpServer = makeServer(options.extra);
  const bridge = createStreamServer(reactor, options.limits, (stream) => httpServer.emit('connection', stream));
  const stop = () => bridge.close(() => reactor.close());
  return new Promise((resolve, reject) => {
    bridge.once('error', reject);
    bridge.listen({ port: options.port, host: options.host, reusePort }, () => resolve({ port: bridge.address().port, stop }));
  });
}

/**
 * The example's main: parses the command line, serves in this thread or in
 * `--workers` threads, prints `listening PORT` once every one listens, and
 * stops on SIGINT/SIGTERM. A bad option exits with status 2.
 */
export async function runBridgeExample(name, scriptUrl, makeServer, extra = {}, required = []) {
  if (!isMainThread) {
    const { port, stop } = await serve(workerData, makeServer, true);
    parentPort.postMessage(port);
    parentPort.once('message', stop);
    return;
  }
  let options;
  try {
    options = parseBridgeArgs(process.argv.slice(2), extra, required);
    makeServer(options.extra).close(); // a missing certificate file is a usage error too
  } catch (error) {
    if (!(error instanceof UsageError) && error?.code !== 'ENOENT') throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(2);
  }
  if (options.workers === 1) {
    const { port, stop } = await serve(options, makeServer, false);
    process.stdout.write(`listening ${port}\n`);
    process.once('SIGINT', stop).once('SIGTERM', stop);
    return;
  }
  // The first worker binds (port 0: picks one); the others share its port.
  const start = (port) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL(scriptUrl), { workerData: { ...options, port } });
      worker.once('message', (bound) => resolve({ worker, port: bound })).once('error', reject);
    });
  const first = await start(options.port);
  const rest = await Promise.all(Array.from({ length: options.workers - 1 }, () => start(first.port)));
  const workers = [first, ...rest].map((started) => started.worker);
  process.stdout.write(`listening ${first.port}\n`);
  const stop = () => workers.forEach((worker) => worker.postMessage('stop'));
  process.once('SIGINT', stop).once('SIGTERM', stop);
}
