#!/usr/bin/env node
// Echoes every byte back on every connection.
//   node examples/echo-server.mjs --port 7000 [--host 127.0.0.1] [--backend epoll]
//        [--idle-timeout-ms N] [--max-connections N] [--queue-limit N] [--queue-timeout-ms N]
//
// --idle-timeout-ms   end a connection that has sent nothing for N ms (default 900000,
//                     15 minutes; 0 keeps idle connections forever)
// --max-connections   serve at most N connections at once; the others wait, parked in a
//                     FIFO queue without being read, and are served (bytes intact) as
//                     served ones close (default: no cap)
// --queue-limit       park at most N connections; more are closed (default 1024; 0: none)
// --queue-timeout-ms  close a connection parked longer than N ms (default 0: wait forever)
//
// Prints "listening PORT backend=NAME" once ready; SIGINT/SIGTERM close it. A bad option prints a
// message on stderr and exits with status 2.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Reactor } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from './lib/options.mjs';

export { UsageError };

const USAGE_CODES = /^ERR_(INVALID_ARG|OUT_OF_RANGE|SOCKET_BAD_PORT|REACTOR_BACKEND_UNAVAILABLE)/;

/**
 * Parses the command line (without node and the script) into the reactor
 * options and the listener options of listenTCP. Throws UsageError.
 */
export function parseEchoArgs(argv) {
  const values = parseOptions(argv, {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string' },
    'idle-timeout-ms': { type: 'string', default: '900000' },
    'max-connections': { type: 'string' },
    'queue-limit': { type: 'string' },
    'queue-timeout-ms': { type: 'string' },
  });
  const port = whole(values, 'port', 0);
  if (port > 65535) throw new UsageError(`--port must be from 0 to 65535, got ${port}`);
  /** @type {{ port: number, host: string, idleTimeoutMs: number, maxConnections?: number, queue?: { limit?: number, timeoutMs?: number } }} */
  const listen = { port, host: values.host, idleTimeoutMs: whole(values, 'idle-timeout-ms', 0) };
  const maxConnections = whole(values, 'max-connections', 1);
  if (maxConnections !== undefined) listen.maxConnections = maxConnections;
  const queue = {};
  const limit = whole(values, 'queue-limit', 0);
  const timeoutMs = whole(values, 'queue-timeout-ms', 0);
  if (limit !== undefined) queue.limit = limit;
  if (timeoutMs !== undefined) queue.timeoutMs = timeoutMs;
  if (Object.keys(queue).length > 0) listen.queue = queue;
  return { reactor: values.backend ? { backend: values.backend } : {}, listen };
}

const echo = {
  // write() copies whatever the socket does not take, so the bytes are not
  // kept: the reactor may read into the same memory again.
  keepsData: false,
  dataReceived(data, transport) {
    transport.write(data);
  },
  // Half-close: finish echoing, then end our side too.
  readConnectionLost(transport) {
    transport.end();
  },
};

function main() {
  let options;
  try {
    options = parseEchoArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`echo-server: ${error.message}\n`);
    process.exit(2);
  }
  let reactor;
  let listener;
  try {
    reactor = new Reactor(options.reactor);
    listener = reactor.listenTCP(options.listen, () => echo);
  } catch (error) {
    // An option the reactor refuses (a backend not available here, say) is a
    // usage error too; EADDRINUSE and the like are not.
    if (typeof error?.code !== 'string') throw error;
    process.stderr.write(`echo-server: ${error.message} (${error.code})\n`);
    process.exit(USAGE_CODES.test(error.code) ? 2 : 1);
  }
  process.stdout.write(`listening ${listener.address.port} backend=${reactor.backend}\n`);

  const stop = () => {
    if (!reactor.closed) reactor.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// Run as a program; imported (by the harness tests), it only exports the parser.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main();
