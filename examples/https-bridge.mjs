#!/usr/bin/env node
// HTTPS (node:https) over the streams bridge: every request to any path gets 200 "hello world".
//   node examples/https-bridge.mjs --port 8443 --cert cert.pem --key key.pem [--host 127.0.0.1]
//        [--backend NAME] [--workers N] [--idle-timeout-ms N] [--max-connections N]
//
// A certificate for a try:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
//     -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout key.pem -out cert.pem
//   curl --cacert cert.pem https://127.0.0.1:8443/
// The other options are http-bridge.mjs's. Prints "listening PORT" once ready.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { runBridgeExample } from './lib/bridge-example.mjs';

const hello = (_request, response) => response.end('hello world');

await runBridgeExample(
  'https-bridge',
  import.meta.url,
  ({ cert, key }) => https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, hello),
  { cert: true, key: true },
  ['cert', 'key'],
);
