// Bun.listen echo server for comparison (run with Bun, not Node):
//   bun bun-echo.mjs PORT [--idle-timeout-ms N] [--max-connections N]
// prints "listening PORT". --idle-timeout-ms ends a connection idle that long
// with socket.timeout(), Bun's own idle timer: it takes whole seconds (N is
// rounded up) and fires on 4-second ticks (a 1 s timeout ends connections
// after about 4 s); --max-connections: Bun.listen has no cap, so a
// connection opened over it is reset at once (node:net drops them too).
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
  process.stderr.write(`bun-echo: ${error.message}\n`);
  process.exit(2);
}

const idleSeconds = Math.ceil(idleTimeoutMs / 1000);
let open = 0;

// socket.write() takes what the kernel accepts and returns that count; the
// rest waits in socket.data.pending (copied: Bun may reuse the read buffer)
// until drain, so bytes stay in order under backpressure.
function send(socket, bytes) {
  const written = socket.write(bytes);
  if (written < bytes.length) socket.data.pending.push(Buffer.from(bytes.subarray(Math.max(written, 0))));
}

const server = Bun.listen({
  hostname: '127.0.0.1',
  port,
  socket: {
    open(socket) {
      open++;
      socket.data = { pending: [] };
      if (maxConnections !== undefined && open > maxConnections) return void socket.terminate();
      socket.setNoDelay(true);
      if (idleSeconds) socket.timeout(idleSeconds);
    },
    data(socket, bytes) {
      if (socket.data.pending.length > 0) socket.data.pending.push(Buffer.from(bytes));
      else send(socket, bytes);
    },
    drain(socket) {
      const { pending } = socket.data;
      while (pending.length > 0) {
        const bytes = pending.shift();
        const written = socket.write(bytes);
        if (written < bytes.length) {
          pending.unshift(bytes.subarray(Math.max(written, 0)));
          return;
        }
      }
    },
    timeout(socket) {
      socket.end();
    },
    close() {
      open--;
    },
    error() {}, // resets from the load generator are expected
  },
});
process.stdout.write(`listening ${server.port}\n`);
const stop = () => {
  server.stop(true);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
