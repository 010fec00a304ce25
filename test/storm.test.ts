// A connection storm with the default backlog: clients in another process
// connect back to back, each as soon as the previous one is established. Every
// one must be established (none refused or reset) and reach the server, which
// learns each client's index from its bytes. How fast is the bench's business
// (storm-10k); here only what arrived counts.
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type Protocol } from '../src/index.js';
import { closeQuietly, connectionsFor, deferred, newReactor, runProcess } from './helpers.js';

const CLIENT = fileURLToPath(new URL('./fixtures/storm-client.mjs', import.meta.url));

describe.each(Reactor.backends)('%s backend', (backend) => {
  // The clients' ends are in the other process: only the server's count here.
  const CLIENTS = connectionsFor(backend, 2000);
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it(`${CLIENTS} back-to-back connects are all established and all reach the server`, { timeout: 60_000 }, async () => {
    const indices: number[] = [];
    let made = 0;
    const reasons: unknown[] = [];
    const allLost = deferred();
    const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, (): Protocol => {
      const parts: Buffer[] = [];
      return {
        connectionMade: () => void made++,
        dataReceived: (data) => void parts.push(Buffer.from(data)),
        readConnectionLost: (transport) => {
          const message = Buffer.concat(parts);
          if (message.length === 4) indices.push(message.readUInt32BE(0));
          transport.close();
        },
        connectionLost: (reason) => {
          if (reasons.push(reason) === CLIENTS) allLost.resolve();
        },
      };
    });

    const result = await runProcess(process.execPath, [CLIENT, String(listener.address.port), String(CLIENTS)], 50_000);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ connected: CLIENTS, errors: {}, closed: CLIENTS });
    expect(made).toBe(CLIENTS);
    expect(indices.sort((a, b) => a - b)).toEqual(Array.from({ length: CLIENTS }, (_, i) => i));
    await allLost.promise;
    expect(reasons.filter((r) => r !== undefined)).toEqual([]);
    listener.close();
  });
});
