// node:net echo server for comparison:
//   node net-echo.mjs PORT [--idle-timeout-ms N] [--max-connections N]
// prints "listening PORT". --idle-timeout-ms ends a connection idle that long
// (socket.setTimeout); --max-connections sets server.maxConnections, over
// which node:net closes new connections at once (it has no queue).
import net from 'node:net';
import { parseArgs } from 'node:util';
import { UsageError, wholeNumber } from '../lib/args.mjs';

let port;
let idleTimeoutMs;
let maxConnections;
try {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'idle-timeout-ms': { type: 'string' }, 'max-connections': { type: 'string' } },
  });
  port = wholeNumber(positionals[0] ?? '0', 'port');
  idleTimeoutMs = values['idle-timeout-ms'] === undefined ? 0 : wholeNumber(values['idle-timeout-ms'], 'idle-timeout-ms');
  maxConnections = values['max-connections'] === undefined ? undefined : wholeNumber(values['max-connections'], 'max-connections', 1);
} catch (error) {
  if (!(error instanceof UsageError) && error.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw error;
  process.stderr.write(`net-echo: ${error.message}\n`);
  process.exit(2);
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  if (idleTimeoutMs) socket.setTimeout(idleTimeoutMs, () => socket.end());
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => {}); // resets from the load generator are expected
});
if (maxConnections !== undefined) server.maxConnections = maxConnections;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
