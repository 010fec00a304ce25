#!/usr/bin/env node
// node:http over the streams bridge: every request to any path gets 200 "hello world".
//   node examples/http-bridge.mjs --port 8080 [--host 127.0.0.1] [--backend NAME] [--workers N]
//        [--idle-timeout-ms N] [--max-connections N]
//
// --workers           N processes sharing the port (README: Workers on every core); SIGHUP
//                     restarts them gracefully; default 1
// --idle-timeout-ms   close a connection that sent nothing for N ms (default 60000; 0: never);
//                     between requests node:http's own keepAliveTimeout (5 s) applies
// --max-connections   serve at most N connections at once (per worker); the others wait
//                     their turn in a FIFO queue, bytes intact
//
// Prints "listening PORT" once every worker is ready; SIGINT/SIGTERM stop it gracefully. A bad
// option exits with status 2.
import http from 'node:http';
import { runBridgeExample } from './lib/bridge-example.mjs';

const hello = (_request, response) => response.end('hello world');

await runBridgeExample('http-bridge', import.meta.url, () => http.createServer(hello));
