// Descriptors numbered 1024 and above: select cannot put them in an fd_set,
// so it refuses such sockets cleanly (an accepted one with the listener's
// overflow policy, a connect with EMFILE) and goes on serving everyone else;
// every other backend simply serves them.
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { Collector, closeQuietly, deferred, echoProtocol, newReactor, rejectionCode } from './helpers.js';

const HOST = '127.0.0.1';
const FD_SETSIZE = 1024;

/** Opens /dev/null until the next descriptor is past FD_SETSIZE; returns them. */
function fillPastCeiling(): number[] {
  const fds: number[] = [];
  for (;;) {
    const fd = openSync('/dev/null', 'r');
    fds.push(fd);
    if (fd > FD_SETSIZE + 8) return fds;
  }
}

/** A node:net client's round trip: resolves with what came back before the close. */
function netRoundTrip(port: number, text: string): Promise<{ echoed: string; error: string | undefined }> {
  return new Promise((resolve) => {
    let echoed = '';
    let error: string | undefined;
    const socket = net.connect({ host: HOST, port }, () => socket.write(text));
    socket.on('data', (d) => {
      echoed += d.toString();
      if (echoed.length >= text.length) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    socket.on('close', () => resolve({ echoed, error }));
  });
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  let filler: number[] = [];
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => {
    for (const fd of filler.splice(0)) closeSync(fd);
    closeQuietly(reactor);
  });

  it('sockets numbered past FD_SETSIZE: select refuses them cleanly and keeps serving; the others serve them', async () => {
    const listener = reactor.listenTCP({ port: 0, host: HOST }, () => echoProtocol());
    const port = listener.address.port;
    // A connection made while descriptors are low.
    const early = new Collector();
    const earlyT = await reactor.connectTCP({ host: HOST, port }, early);

    filler = fillPastCeiling();
    const late = await netRoundTrip(port, 'late');
    const connect = reactor.connectTCP({ host: HOST, port }, new Collector());

    if (backend === 'select') {
      expect(late.echoed).toBe(''); // refused: closed without a byte
      expect(await rejectionCode(connect)).toBe('EMFILE');
      expect(reactor.stats().rejected).toBe(1);
    } else {
      expect(late).toEqual({ echoed: 'late', error: undefined });
      (await connect).close();
    }
    // The early connection is served all along.
    earlyT.write('still here');
    expect((await early.received(10)).toString()).toBe('still here');

    // Descriptors free again: select serves new connections too.
    for (const fd of filler.splice(0)) closeSync(fd);
    expect(await netRoundTrip(port, 'again')).toEqual({ echoed: 'again', error: undefined });
    const lost = deferred<void>();
    early.lost.promise.then(() => lost.resolve());
    earlyT.close();
    await lost.promise;
  });
});
