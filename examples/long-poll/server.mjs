#!/usr/bin/env node
// Long-polling backed by Redis, on the native HTTP server (see README.md):
//   node examples/long-poll/server.mjs --port 8080 --redis redis://127.0.0.1:6379
//        [--host 127.0.0.1] [--workers N] [--max-wait-ms 30000] [--backend epoll]
//
//   GET  /poll?uid=U      held until a message for U arrives (200, the message),
//                         or --max-wait-ms passed (204)
//   POST /publish?uid=U   the body is the message (at most 64 KiB): 202
//
// --workers N   N worker processes (runWorkers) share the port; SIGHUP restarts
//               them gracefully (new ones serve before the old ones drain).
//               Default 1: this process serves alone.
//
// Prints "listening PORT" once every worker is ready; SIGINT/SIGTERM answer the
// held polls with 204 and stop (a poll answered so goes again, to a worker still
// serving). A bad option prints a message on stderr and exits with status 2.
import { Reactor, workerContext } from 'native-reactor';
import { parseOptions, UsageError, wholeOption as whole } from '../lib/options.mjs';
import { startWorkers } from '../lib/workers.mjs';
import { Mailbox } from './mailbox.mjs';
import { longPollRoutes, MAX_MESSAGE_BYTES } from './routes.mjs';

const USAGE_CODES = /^ERR_(INVALID_ARG|OUT_OF_RANGE|SOCKET_BAD_PORT|REACTOR_BACKEND_UNAVAILABLE)/;
// Held polls are answered at once on a stop; this bounds the rest (responses going out).
const STOP_TIMEOUT_MS = 10_000;

/** The command line (without node and the script) as the server's options. Throws UsageError. */
function parseLongPollArgs(argv) {
  const values = parseOptions(argv, {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    redis: { type: 'string' },
    'max-wait-ms': { type: 'string', default: '30000' },
    workers: { type: 'string', default: '1' },
    backend: { type: 'string' },
  });
  const port = whole(values, 'port', 0);
  if (port > 65535) throw new UsageError(`--port must be from 0 to 65535, got ${port}`);
  if (values.redis === undefined) throw new UsageError('--redis redis://HOST:PORT is required');
  if (!/^rediss?:\/\//.test(values.redis)) throw new UsageError(`--redis must be a redis:// URL, got ${JSON.stringify(values.redis)}`);
  return {
    reactor: values.backend ? { backend: values.backend } : {},
    listen: { port, host: values.host, maxBodyBytes: MAX_MESSAGE_BYTES },
    redis: values.redis,
    maxWaitMs: whole(values, 'max-wait-ms', 1),
    workers: whole(values, 'workers', 1, 1024),
  };
}

/**
 * Serves in this process, on `listen` (a port, or a worker's fd). Resolves
 * with the port, stats() (the reactor's, and the polls held) and drain():
 * stops accepting, answers the held polls (204), and resolves once every
 * connection has ended.
 */
async function serve(options, listen = options.listen) {
  const mailbox = await Mailbox.open(options.redis, { maxWaitMs: options.maxWaitMs });
  const reactor = new Reactor(options.reactor);
  const handle = longPollRoutes(mailbox);
  const server = reactor.listenHTTP(listen, (request, response) => handle(request, response, (cancel) => request.on('aborted', cancel)));
  let draining;
  const drain = () =>
    (draining ??= (async () => {
      const drained = server.drain();
      // Held polls answered, the connections' other requests (publishes too) served, then Redis closed.
      await mailbox.stopWaiting();
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref())]);
      await mailbox.close();
      reactor.close();
    })());
  return { port: server.address.port, stats: () => ({ ...reactor.stats(), waiting: mailbox.waiting }), drain };
}

async function runWorker(context, options) {
  const { stats, drain } = await serve(options, { fd: context.fd, maxBodyBytes: MAX_MESSAGE_BYTES });
  context.ready({ stats, drain });
}

async function runAlone(options) {
  const { port, drain } = await serve(options);
  const stop = () => void drain();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.write(`listening ${port}\n`);
}

function fail(error) {
  if (error instanceof UsageError || USAGE_CODES.test(error?.code)) {
    process.stderr.write(`long-poll: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`long-poll: ${error?.message ?? error}${error?.code ? ` (${error.code})` : ''}\n`);
  process.exit(1);
}

async function main() {
  const options = parseLongPollArgs(process.argv.slice(2));
  const context = workerContext();
  if (context !== null) await runWorker(context, options);
  else if (options.workers > 1) await startWorkers('long-poll', import.meta.url, { workers: options.workers, port: options.listen.port, host: options.listen.host });
  else await runAlone(options);
}

main().catch(fail);
