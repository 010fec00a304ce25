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
// --workers           N processes sharing the port (SO_REUSEPORT; Linux spreads the
//                     connections over them); default 1
//
// Prints "listening PORT" once every worker is ready; SIGINT/SIGTERM stop it. A bad
// option prints a message on stderr and exits with status 2.
import { fork } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Reactor } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from './lib/options.mjs';

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
  const listen = { port, host: values.host, keepAliveTimeoutMs: whole(values, 'idle-timeout-ms', 0) };
  const maxConnections = whole(values, 'max-connections', 1);
  if (maxConnections !== undefined) listen.maxConnections = maxConnections;
  const workers = whole(values, 'workers', 1);
  if (workers > 1) listen.reusePort = true;
  return { reactor: values.backend ? { backend: values.backend } : {}, listen, workers };
}

function serve(options) {
  let reactor;
  let server;
  try {
    reactor = new Reactor(options.reactor);
    server = reactor.listenHTTP(options.listen, (_request, response) => response.end('hello world'));
  } catch (error) {
    if (typeof error?.code !== 'string') throw error;
    process.stderr.write(`http-native: ${error.message} (${error.code})\n`);
    process.exit(USAGE_CODES.test(error.code) ? 2 : 1);
  }
  const stop = () => {
    if (!reactor.closed) reactor.close();
    if (process.connected) process.disconnect();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  return server.address.port;
}

// The first worker binds (port 0: a free one), the others join its port.
function startWorkers(options) {
  const children = [];
  const stopAll = () => children.forEach((child) => child.kill('SIGTERM'));
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  const start = (port, index) =>
    new Promise((resolve) => {
      const child = fork(fileURLToPath(import.meta.url), process.argv.slice(2), {
        env: { ...process.env, HTTP_NATIVE_WORKER_PORT: String(port) },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      children.push(child);
      child.once('message', (message) => resolve(message.port));
      child.once('exit', (code) => {
        if (index === 0 || code) process.exitCode = code ?? 1;
        stopAll();
      });
    });
  return (async () => {
    const port = await start(options.listen.port, 0);
    await Promise.all(Array.from({ length: options.workers - 1 }, (_, i) => start(port, i + 1)));
    process.stdout.write(`listening ${port}\n`);
  })();
}

function main() {
  let options;
  try {
    options = parseHttpArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`http-native: ${error.message}\n`);
    process.exit(2);
  }
  const workerPort = process.env.HTTP_NATIVE_WORKER_PORT;
  if (workerPort !== undefined) {
    options.listen.port = Number(workerPort);
    process.send({ port: serve(options) });
  } else if (options.workers > 1) {
    void startWorkers(options);
  } else {
    process.stdout.write(`listening ${serve(options)}\n`);
  }
}

// Run as a program; imported (by tests), it only exports the parser.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) main();
