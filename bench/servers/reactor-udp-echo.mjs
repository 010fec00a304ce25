#!/usr/bin/env node
// native-reactor's UDP echo server for the bench: every datagram goes back to
// where it came from.
//   node bench/servers/reactor-udp-echo.mjs [--port 0] [--host 127.0.0.1] [--backend NAME]
// Prints "listening PORT backend=NAME" once bound; SIGINT/SIGTERM close it. A
// bad option prints a message on stderr and exits with status 2.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Reactor } from 'native-reactor';
import { UsageError, wholeNumber } from '../lib/args.mjs';

const USAGE_CODES = /^ERR_(INVALID_ARG|OUT_OF_RANGE|SOCKET_BAD_PORT|REACTOR_BACKEND_UNAVAILABLE)/;

/** Parses the command line (without node and the script): reactor and listenUDP options. Throws UsageError. */
export function parseUdpEchoArgs(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string', default: '0' },
        host: { type: 'string', default: '127.0.0.1' },
        backend: { type: 'string' },
      },
    }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  const port = wholeNumber(values.port, 'port');
  if (port > 65535) throw new UsageError(`--port must be from 0 to 65535, got ${port}`);
  return { reactor: values.backend ? { backend: values.backend } : {}, listen: { port, host: values.host } };
}

const echo = {
  datagramReceived(data, rinfo, socket) {
    socket.send(data, rinfo.port, rinfo.address);
  },
};

function main() {
  let options;
  try {
    options = parseUdpEchoArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`reactor-udp-echo: ${error.message}\n`);
    process.exit(2);
  }
  let reactor;
  let socket;
  try {
    reactor = new Reactor(options.reactor);
    socket = reactor.listenUDP(options.listen, echo);
  } catch (error) {
    // An option the reactor refuses (a backend not available here, say) is a
    // usage error too; EADDRINUSE and the like are not.
    if (typeof error?.code !== 'string') throw error;
    process.stderr.write(`reactor-udp-echo: ${error.message} (${error.code})\n`);
    process.exit(USAGE_CODES.test(error.code) ? 2 : 1);
  }
  process.stdout.write(`listening ${socket.address.port} backend=${reactor.backend}\n`);

  const stop = () => {
    if (!reactor.closed) reactor.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// Run as a program; imported (by the harness tests), it only exports the parser.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main();
