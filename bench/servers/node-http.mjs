#!/usr/bin/env node
// Plain node:http answering every request with 200 "hello world": the
// baseline of bench/http-bridge.mjs. Prints "listening PORT"; SIGTERM stops it.
import http from 'node:http';

const server = http.createServer((_request, response) => response.end('hello world'));
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
