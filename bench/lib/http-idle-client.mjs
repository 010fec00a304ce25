// Opens N keep-alive connections to an HTTP server, K GETs on each (default
// 1; each response read before the next request), then holds them idle until
// stdin closes. Prints "holding N" once every connection had its responses. For bench/http.mjs's
// idle-memory figure; run as its own process so that its memory is not the
// server's.
import { connect } from 'node:net';

const [port, count, requestsEach = 1] = process.argv.slice(2).map(Number);
const REQUEST = 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n';
const AT_ONCE = 200; // connections being opened at a time, within the listen backlog
let answered = 0;
let started = 0;
const sockets = [];

function open() {
  if (started >= count) return;
  started++;
  const socket = connect({ port, host: '127.0.0.1' }, () => socket.write(REQUEST));
  sockets.push(socket);
  let text = '';
  let responses = 0;
  const onData = (data) => {
    text += data.toString('latin1');
    if (!text.endsWith('hello world')) return;
    text = '';
    if (++responses < requestsEach) {
      socket.write(REQUEST);
      return;
    }
    socket.off('data', onData);
    answered++;
    if (answered === count) process.stdout.write(`holding ${count}\n`);
    open();
  };
  socket.on('data', onData);
  socket.on('error', (error) => {
    process.stderr.write(`connection failed: ${error.message}\n`);
    process.exit(1);
  });
}

for (let i = 0; i < AT_ONCE; i++) open();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
