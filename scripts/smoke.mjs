// A smoke test of an installed or prebuilt native-reactor: on every backend
// this binary has, listen, connect, echo 64 KiB, close. Prints
// "smoke ok BACKENDS (node VERSION)" and exits 0; anything else exits 1.
// Imports the package by its name, so it checks what `npm install` (or this
// repository's own build, by self-reference) provides.
import { Reactor } from 'native-reactor';

const deadline = setTimeout(() => fail(new Error('no echo within 10 s')), 10_000);
deadline.unref();

function fail(error) {
  console.error(`smoke FAILED: ${error?.stack ?? error}`);
  process.exit(1);
}

async function echoOn(backend) {
  const reactor = new Reactor({ backend });
  const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
    dataReceived: (data, transport) => transport.write(data),
  }));
  const payload = Buffer.alloc(64 * 1024, backend);
  const chunks = [];
  let received = 0;
  const lost = new Promise((resolve) => {
    reactor
      .connectTCP({ host: '127.0.0.1', port: listener.address.port }, {
        dataReceived(data, transport) {
          chunks.push(Buffer.from(data));
          received += data.length;
          if (received >= payload.length) transport.close();
        },
        connectionLost: (reason) => resolve(reason),
      })
      .then((transport) => transport.write(payload), fail);
  });
  const reason = await lost;
  reactor.close();
  if (reason !== undefined) throw new Error(`${backend}: lost with ${reason.code}`);
  if (!Buffer.concat(chunks).equals(payload)) throw new Error(`${backend}: echo differs`);
}

try {
  for (const backend of Reactor.backends) await echoOn(backend);
  console.log(`smoke ok ${Reactor.backends.join(',')} (node ${process.version})`);
} catch (error) {
  fail(error);
}
