// The client's end of the bridge: connectStream() gives an outgoing
// connection as a TransportStream, for node:http's createConnection, TLS
// (tls.connect({ socket })) or any Duplex-taking library.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectStream, createStreamServer, Reactor, type ReactorError } from '../src/index.js';
import { closeQuietly, codeOf, newReactor } from './helpers.js';
import { collect, HOST, sha256, suiteCertificate, within } from './stream-bridge-helpers.js';

const certificate = suiteCertificate('stream-bridge-connect-');

describe.each(Reactor.backends)('connectStream (%s)', (backend) => {
  let reactor: Reactor;
  const servers: net.Server[] = [];

  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => {
    closeQuietly(reactor);
    for (const server of servers.splice(0)) server.close();
  });

  async function listening(server: net.Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    return (server.address() as net.AddressInfo).port;
  }

  it("carries node:http's client (createConnection) to a plain node:http server", async () => {
    const port = await listening(http.createServer((req, res) => res.end(`hello ${req.url}`)));
    const stream = await connectStream(reactor, { host: HOST, port });
    expect(stream.remotePort).toBe(port);
    const body = await within(
      new Promise<string>((resolve, reject) => {
        const req = http.get({ host: HOST, port, path: '/over-the-bridge', createConnection: () => stream as unknown as net.Socket }, async (res) =>
          resolve((await collect(res)).toString()),
        );
        req.on('error', reject);
      }),
      5_000,
      'the response',
    );
    expect(body).toBe('hello /over-the-bridge');
  });

  it('speaks TLS on both ends of the bridge, bytes intact', async () => {
    const context = tls.createSecureContext({ cert: certificate.cert, key: certificate.key });
    const server = createStreamServer(reactor, (stream) => {
      const secure = new tls.TLSSocket(stream, { isServer: true, secureContext: context });
      secure.pipe(secure);
      secure.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const socket = await connectStream(reactor, { host: HOST, port: server.address()!.port });
    const client = tls.connect({ socket, ca: certificate.cert, servername: 'localhost' });
    const message = randomBytes(1024 * 1024);
    const echoed = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      client.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= message.length) resolve(Buffer.concat(chunks));
      });
      client.on('error', reject);
    });
    client.end(message);
    expect(sha256(await within(echoed, 15_000, 'the TLS echo'))).toBe(sha256(message));
    expect(client.authorized).toBe(true);
  });

  it('rejects with the connect error, and refuses bad options with codes', async () => {
    const port = await listening(net.createServer());
    servers.pop()!.close(); // a port nobody listens on now
    const refused = await connectStream(reactor, { host: HOST, port }).catch((error: ReactorError) => error.code);
    expect(refused).toBe('ECONNREFUSED');
    expect(codeOf(() => connectStream(reactor, { host: HOST, port, allowHalfOpne: true } as never))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => connectStream(reactor, { path: '/tmp/x', port: 1 }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => connectStream(reactor, { port, allowHalfOpen: 'yes' } as never))).toBe('ERR_INVALID_ARG_TYPE');
    await expect(connectStream(reactor, { host: HOST })).rejects.toMatchObject({ code: 'ERR_SOCKET_BAD_PORT' });
  });
});
