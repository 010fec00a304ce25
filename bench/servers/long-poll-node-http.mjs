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
const mailbox = await Mailbox.open(values.redis, { maxWaitMs: whole(values, 'max-wait-ms', 1) });
const handle = longPollRoutes(mailbox);
// 'close' comes after the response ended too; cancelling an answered wait does nothing.
const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => handle(request, response, (cancel) => response.on('close', cancel)));
server.listen(whole(values, 'port', 0), '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = async () => {
  server.close();
  server.closeAllConnections();
  await mailbox.close();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
