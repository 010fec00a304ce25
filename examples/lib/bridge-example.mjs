// What the bridge examples share: the command line, the workers (processes
// sharing the port: lib/workers.mjs) and the server made of a node:http (or
// https) server fed by a StreamServer.
import { createStreamServer, Reactor, workerContext } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from './options.mjs';
import { startWorkers } from './workers.mjs';

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

/**
 * Serves `makeServer(extra)` (a node:http or https Server) over the bridge, on
 * `fd` (a worker's socket) or bound here; resolves with the bound port and
 * `stop()`, which resolves once every connection has ended.
 */
function serve(options, makeServer, fd) {
  const reactor = new Reactor(options.backend ? { backend: options.backend } : {});
  const httpServer = makeServer(options.extra);
  const bridge = createStreamServer(reactor, options.limits, (stream) => httpServer.emit('connection', stream));
  const stop = () =>
    new Promise((resolve) => {
      bridge.close(() => {
        reactor.close();
        resolve();
      });
      httpServer.closeIdleConnections(); // the keep-alive ones; the others close after their response
    });
  return new Promise((resolve, reject) => {
    bridge.once('error', reject);
    bridge.listen(fd === undefined ? { port: options.port, host: options.host } : { fd }, () => resolve({ port: bridge.address().port, reactor, stop }));
  });
}

/**
 * The example's main: parses the command line, serves in this process or in
 * `--workers` processes, prints `listening PORT` once every one listens, and
 * stops on SIGINT/SIGTERM (SIGHUP restarts the workers). A bad option exits
 * with status 2.
 */
export async function runBridgeExample(name, scriptUrl, makeServer, extra = {}, required = []) {
  let options;
  try {
    options = parseBridgeArgs(process.argv.slice(2), extra, required);
    makeServer(options.extra).close(); // a missing certificate file is a usage error too
  } catch (error) {
    if (!(error instanceof UsageError) && error?.code !== 'ENOENT') throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(2);
  }
  const context = workerContext();
  if (context !== null) {
    const { reactor, stop } = await serve(options, makeServer, context.fd);
    context.ready({ stats: () => reactor.stats(), drain: stop });
  } else if (options.workers > 1) {
    await startWorkers(name, scriptUrl, options);
  } else {
    const { port, stop } = await serve(options, makeServer, undefined);
    process.stdout.write(`listening ${port}\n`);
    process.once('SIGINT', stop).once('SIGTERM', stop);
  }
}
