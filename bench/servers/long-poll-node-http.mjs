// The long-poll example's server on node:http, the peer of
// examples/long-poll/server.mjs in bench/long-poll.mjs: the same Redis
// mailbox and routes, only the HTTP server differs.
//   node bench/servers/long-poll-node-http.mjs --redis redis://127.0.0.1:P [--port 0] [--max-wait-ms 30000]
// Prints "listening PORT"; SIGTERM/SIGINT stop it.
import { createServer } from 'node:http';
import { parseOptions, wholeOption as whole } from '../../examples/lib/options.mjs';
import { Mailbox } from '../../examples/long-poll/mailbox.mjs';
import { longPollRoutes } from '../../examples/long-poll/routes.mjs';

const values = parseOptions(process.argv.slice(2), {
  port: { type: 'string', default: '0' },
  redis: { type: 'string' },
  'max-wait-ms': { type: 'string', default: '30000' },
});
const mailbox = await Mailbox.open(values.redis);
const handle = longPollRoutes(mailbox, { maxWaitMs: whole(values, 'max-wait-ms', 1) });
const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
  const gone = new AbortController();
  response.once('close', () => response.writableFinished || gone.abort());
  handle(request, response, gone.signal);
});
server.listen(whole(values, 'port', 0), '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = async () => {
  server.close();
  server.closeAllConnections();
  await mailbox.close();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
