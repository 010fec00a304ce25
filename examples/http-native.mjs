#!/usr/bin/env node
// Answers every request, to any path, with 200 and the body "hello world",
// from the native HTTP/1.1 server (reactor.listenHTTP).
//   node examples/http-native.mjs --port 8080 [--host 127.0.0.1] [--backend epoll]
//        [--idle-timeout-ms N] [--max-connections N] [--workers N]
//
// --idle-timeout-ms   close a keep-alive connection idle for N ms between requests
//                     (default 60000; 0 keeps them forever)
// --max-connections   serve at most N connections at once; the others wait, parked
//                     without being read, and are served as served ones close
// --workers           N processes sharing the port (README: Workers on every core): the
//                     primary binds it, SIGHUP restarts the workers gracefully; default 1
//
// Prints "listening PORT" once every worker is ready; SIGINT/SIGTERM stop it gracefully.
// A bad option prints a message on stderr and exits with status 2.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Reactor, workerContext } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from './lib/options.mjs';
import { startWorkers } from './lib/workers.mjs';

export { UsageError };

const USAGE_CODES = /^ERR_(INVALID_ARG|OUT_OF_RANGE|SOCKET_BAD_PORT|REACTOR_BACKEND_UNAVAILABLE)/;

/** The command line (without node and the script) as reactor, listenHTTP and worker options. */
export function parseHttpArgs(argv) {
  const values = parseOptions(argv, {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string' },
    'idle-timeout-ms': { type: 'string', default: '60000' },
    'max-connections': { type: 'string' },
    workers: { type: 'string', default: '1' },
  });
  const port = whole(values, 'port', 0);
  if (port > 65535) throw new UsageError(`--port must be from 0 to 65535, got ${port}`);
  const limits = { keepAliveTimeoutMs: whole(values, 'idle-timeout-ms', 0) };
  const maxConnections = whole(values, 'max-connections', 1);
  if (maxConnections !== undefined) limits.maxConnections = maxConnections;
  return {
    reactor: values.backend ? { backend: values.backend } : {},
    listen: { port, host: values.host },
    limits,
    workers: whole(values, 'workers', 1, 1024),
  };
}

// A reactor and its server, on `fd` (a worker's socket) or bound here.
function serve(options, fd) {
  return orExit(() => {
    const reactor = new Reactor(options.reactor);
    const listen = fd === undefined ? { ...options.listen, ...options.limits } : { fd, ...options.limits };
    const server = reactor.listenHTTP(listen, (_request, response) => response.end('hello world'));
    return { reactor, server };
  });
}

// make()'s result; an error with a code (an unknown backend, a port in use)
// exits, with status 2 for a usage error.
function orExit(make) {
  try {
    return make();
  } catch (error) {
    if (typeof error?.code !== 'string') throw error;
    process.stderr.write(`http-native: ${error.message} (${error.code})\n`);
    process.exit(USAGE_CODES.test(error.code) ? 2 : 1);
  }
}

async function main() {
  let options;
  try {
    options = parseHttpArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`http-native: ${error.message}\n`);
    process.exit(2);
  }
  const context = workerContext();
  if (context !== null) {
    const { reactor, server } = serve(options, context.fd);
    context.ready({
      stats: () => reactor.stats(),
      drain: async () => {
        await server.drain();
        reactor.close();
      },
    });
  } else if (options.workers > 1) {
    orExit(() => new Reactor(options.reactor).close()); // an unknown backend is refused before any worker starts
    await startWorkers('http-native', import.meta.url, { workers: options.workers, ...options.listen });
  } else {
    const { reactor, server } = serve(options, undefined);
    process.stdout.write(`listening ${server.address.port}\n`);
    const stop = () => void server.close().then(() => reactor.close());
    process.once('SIGINT', stop).once('SIGTERM', stop);
  }
}

// Run as a program; imported (by tests), it only exports the parser.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
