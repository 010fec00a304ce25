// node:http answering every request with 200 "hello world": the bench's
// baseline for the native HTTP server (bench/http.mjs). Prints "listening PORT".
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
const server = createServer((_request, response) => response.end('hello world'));
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
