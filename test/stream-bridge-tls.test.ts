// HTTPS over the streams bridge: node:https's server fed TransportStreams
// (tls.TLSSocket wraps them unmodified), with a certificate made by openssl
// at test time, served to curl and to node:https; and TLS for a protocol of
// one's own (an echo) through tls.TLSSocket directly.
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStreamServer, Reactor } from '../src/index.js';
import { closeQuietly, newReactor } from './helpers.js';
import { collect, curl, HOST, serveHttp, sha256, suiteCertificate, within } from './stream-bridge-helpers.js';

const certificate = suiteCertificate('stream-bridge-tls-');

describe.each(Reactor.backends)('streams bridge, TLS (%s)', (backend) => {
  let reactor: Reactor;

  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('serves HTTPS to curl, keep-alive, a large body intact', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const server = https.createServer({ cert: certificate.cert, key: certificate.key }, (req, res) => res.end(req.url === '/big' ? body : 'hello world'));
    const { port, streams } = await serveHttp(reactor, () => undefined, {}, server);
    const caFile = certificate.certPath;
    const hello = await curl(['--cacert', caFile, `https://${HOST}:${port}/`, `https://${HOST}:${port}/again`]);
    expect(hello.toString()).toBe('hello worldhello world');
    expect(streams).toHaveLength(1); // one TLS connection, two requests
    const big = await curl(['--cacert', caFile, `https://${HOST}:${port}/big`]);
    expect(sha256(big)).toBe(sha256(body));
  });

  it('serves HTTPS to node:https, uploads both ways intact', async () => {
    const server = https.createServer({ cert: certificate.cert, key: certificate.key }, async (req, res) => res.end(sha256(await collect(req))));
    const { port } = await serveHttp(reactor, () => undefined, {}, server);
    const upload = randomBytes(1024 * 1024 + 3);
    const agent = new https.Agent({ ca: certificate.cert, keepAlive: true, maxSockets: 1 });
    const post = () =>
      new Promise<string>((resolve, reject) => {
        const req = https.request({ host: HOST, port, method: 'POST', path: '/', agent }, async (res) => resolve((await collect(res)).toString()));
        req.on('error', reject);
        req.end(upload);
      });
    const replies = await within(Promise.all([post(), post(), post()]), 15_000, 'node:https');
    agent.destroy();
    expect(replies).toEqual(Array(3).fill(sha256(upload)));
  });

  it('carries TLS for any protocol: tls.TLSSocket over a TransportStream', async () => {
    const context = tls.createSecureContext({ cert: certificate.cert, key: certificate.key });
    const server = createStreamServer(reactor, (stream) => {
      const secure = new tls.TLSSocket(stream, { isServer: true, secureContext: context });
      secure.pipe(secure); // an echo, encrypted
      secure.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const message = randomBytes(512 * 1024);
    const client = tls.connect({ host: HOST, port: server.address()!.port, ca: certificate.cert, servername: 'localhost' });
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
    client.write(message);
    expect(sha256(await within(echoed, 15_000, 'the TLS echo'))).toBe(sha256(message));
    expect(client.authorized).toBe(true);
    client.destroy();
  });
});
