#!/usr/bin/env node
// Echoes every byte back on every connection.
//   node examples/echo-server.mjs --port 7000 [--host 127.0.0.1] [--backend epoll]
//        [--idle-timeout-ms N] [--max-connections N]
// Prints "listening PORT" once ready; SIGINT/SIGTERM close it.
import { parseArgs } from 'node:util';
import { Reactor } from 'native-reactor';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string' },
    'idle-timeout-ms': { type: 'string' },
    'max-connections': { type: 'string' },
  },
});

for (const option of ['idle-timeout-ms', 'max-connections']) {
  if (values[option] !== undefined) {
    process.stderr.write(`--${option} is not supported yet (it arrives with idle reaping and caps); ignoring it\n`);
  }
}

const reactor = new Reactor(values.backend ? { backend: values.backend } : {});

const echo = {
  // write() copies whatever the socket does not take, so the bytes are not
  // kept: the reactor may read into the same memory again.
  keepsData: false,
  dataReceived(data, transport) {
    transport.write(data);
  },
  // Half-close: finish echoing, then end our side too.
  readConnectionLost(transport) {
    transport.end();
  },
};

const listener = reactor.listenTCP({ port: Number(values.port), host: values.host }, () => echo);
process.stdout.write(`listening ${listener.address.port}\n`);

const stop = () => {
  if (!reactor.closed) reactor.close();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
