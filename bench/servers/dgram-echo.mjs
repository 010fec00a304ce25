// node:dgram echo server for comparison: every datagram is sent back to
// where it came from.
//   node dgram-echo.mjs PORT    binds 127.0.0.1:PORT (0: any), prints "listening PORT"
import dgram from 'node:dgram';
import { UsageError, wholeNumber } from '../lib/args.mjs';

let port;
try {
  if (process.argv.length > 3) throw new UsageError(`one argument (the port) expected, got ${process.argv.length - 2}`);
  port = wholeNumber(process.argv[2] ?? '0', 'port');
  if (port > 65535) throw new UsageError(`the port must be from 0 to 65535, got ${port}`);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`dgram-echo: ${error.message}\n`);
  process.exit(2);
}

const socket = dgram.createSocket('udp4');
socket.on('message', (data, rinfo) => socket.send(data, rinfo.port, rinfo.address));
socket.bind(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${socket.address().port}\n`);
});
const stop = () => socket.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
