// How servers end, on every backend: the native HTTP server's close()
// resolves once the last connection has ended; drain() (a worker's stop, the
// bridge server's too) stops accepting but serves the connections accepted;
// listenHTTP({ fd }) and the bridge's listen({ fd }) serve a socket bound
// elsewhere.
import { closeSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStreamServer, Reactor, type HTTPResponse } from '../src/index.js';
import { nativeSockets } from '../src/native.js';
import { closeQuietly, codeOf, deferred, newReactor, rejectionCode } from './helpers.js';
import { eventually, GET, rawExchange, statuses } from './http-helpers.js';

/** A listening socket on 127.0.0.1 no reactor owns yet, and its port. */
function boundSocket(): { fd: number; port: number } {
  const fd = nativeSockets.listenSocket('127.0.0.1', 0, 64, false, false);
  expect(fd).toBeGreaterThanOrEqual(0);
  const address = nativeSockets.socketAddress(fd);
  if (typeof address === 'number') throw new Error(`socketAddress: ${address}`);
  return { fd, port: address.port };
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => closeQuietly(reactor));

  it('close() resolves when the response in progress has gone out and its connection ended', async () => {
    const held = deferred<HTTPResponse>();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_request, response) => held.resolve(response));
    const reply = rawExchange(server.address.port, [GET()]);
    const response = await held.promise;
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    response.end('late but whole');
    await closing;
    const { text } = await reply;
    expect(statuses(text)).toEqual([200]);
    expect(text.endsWith('late but whole')).toBe(true);
    expect(server.listener.listening).toBe(false);
  });

  it('close() resolves at once without connections, and when the reactor closes under it', async () => {
    const idle = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_request, response) => response.end());
    await idle.close();
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, () => {}); // never answers
    const reply = rawExchange(server.address.port, [GET()]);
    await eventually(() => reactor.stats().httpRequests === 1, 'the request arrived');
    const closing = server.close();
    reactor.close();
    await closing;
    expect((await reply).closed).toBe(true);
    expect(codeOf(() => server.close())).toBe('ERR_REACTOR_CLOSED');
  });

  it('drain() stops accepting, serves the request of a connection accepted before, then resolves', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_request, response) => response.end('served'));
    const port = server.address.port;
    const early = connect({ host: '127.0.0.1', port }).on('error', () => {}); // reset when the reactor closes
    await new Promise((resolve) => early.once('connect', resolve));
    await eventually(() => server.listener.connections === 1, 'the connection accepted');
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    // A client arriving now waits in the backlog: nothing takes it here.
    const late = connect({ host: '127.0.0.1', port }).on('error', () => {});
    await new Promise((resolve) => late.once('connect', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    expect(reactor.stats().accepted).toBe(1);
    // The early connection's request, sent after drain() began, is served.
    let text = '';
    early.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const ended = new Promise((resolve) => early.once('end', resolve));
    early.write(GET());
    await ended;
    early.end();
    expect(statuses(text)).toEqual([200]);
    expect(text.endsWith('served')).toBe(true);
    await draining;
    expect(server.listener.listening).toBe(false);
    expect(reactor.stats().accepted).toBe(1);
    late.destroy();
  });

  it('drain(): a keep-alive connection sending its next request is answered with Connection: close; one left idle closes after a second', async () => {
    const server = reactor.listenHTTP({ port: 0, host: '127.0.0.1' }, (_request, response) => response.end('served'));
    const port = server.address.port;
    const open = async () => {
      const socket = connect({ host: '127.0.0.1', port }).on('error', () => {});
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      const ended = new Promise<void>((resolve) => socket.once('end', resolve));
      socket.write(GET());
      await eventually(() => text.endsWith('served'), 'the first response');
      return { socket, ended, text: () => text };
    };
    const busy = await open();
    const idle = await open();
    expect(busy.text()).not.toContain('Connection: close');
    const started = Date.now();
    const draining = server.drain();
    // Not closed under the client: its next request gets an answer, and the close after it.
    busy.socket.write(GET());
    await busy.ended;
    busy.socket.end();
    expect(statuses(busy.text())).toEqual([200, 200]);
    expect(busy.text().split('HTTP/1.1 ')[2]).toContain('Connection: close\r\n');
    await idle.ended;
    idle.socket.end();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(statuses(idle.text())).toEqual([200]);
    await draining;
    expect(server.listener.listening).toBe(false);
  });

  it('listenHTTP({ fd }) serves a socket bound elsewhere and refuses contradicting options', async () => {
    const { fd, port } = boundSocket();
    expect(codeOf(() => reactor.listenHTTP({ fd, port: 0 }, () => {}))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenHTTP({ fd, host: '127.0.0.1' }, () => {}))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenHTTP({ fd: '3' } as never, () => {}))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.listenHTTP({}, () => {}))).toBe('ERR_SOCKET_BAD_PORT');
    const server = reactor.listenHTTP({ fd, keepAliveTimeoutMs: 1000 }, (_request, response) => response.end('adopted'));
    expect(server.address.port).toBe(port);
    const { text } = await rawExchange(port, [GET('/', 'Connection: close\r\n')]);
    expect(text.endsWith('adopted')).toBe(true);
    await server.close();
  });

  it('a bridge server listen({ fd }) serves a socket bound elsewhere', async () => {
    const { fd, port } = boundSocket();
    const server = createStreamServer(reactor, (stream) => stream.resume().end('hello'));
    expect(codeOf(() => server.listen({ fd, port: 1 }))).toBe('ERR_INVALID_ARG_VALUE');
    await new Promise<void>((resolve) => server.listen({ fd }, resolve));
    expect(server.address()?.port).toBe(port);
    const { text } = await rawExchange(port, []);
    expect(text).toBe('hello');
    await new Promise((resolve) => server.close(resolve));
  });

  it('a bridge server drain() stops accepting, serves the connection it has, closes when it ends', async () => {
    const server = createStreamServer(reactor, (stream) => stream.on('data', (data: Buffer) => stream.write(data)).on('end', () => stream.end()));
    expect(await rejectionCode(server.drain())).toBe('ERR_SERVER_NOT_RUNNING');
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve));
    const port = server.address()!.port;
    const early = connect({ host: '127.0.0.1', port }).on('error', () => {});
    await new Promise((resolve) => server.once('connection', resolve));
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    const late = connect({ host: '127.0.0.1', port }).on('error', () => {});
    await new Promise((resolve) => late.once('connect', resolve)); // queued in the backlog: the socket is open
    let echoed = '';
    early.on('data', (chunk: Buffer) => (echoed += chunk.toString()));
    const ended = new Promise((resolve) => early.once('end', resolve));
    early.end('still served');
    await ended;
    await draining;
    expect(echoed).toBe('still served');
    expect(drained).toBe(true);
    expect(server.listening).toBe(false);
    expect(reactor.stats().accepted).toBe(1);
    late.destroy();
  });

  it('a bridge server reports a descriptor it cannot adopt as an error event', async () => {
    const { fd } = boundSocket();
    closeSync(fd);
    const server = createStreamServer(reactor, () => {});
    const error = await new Promise<{ code?: string }>((resolve) => server.once('error', resolve).listen({ fd }));
    expect(error.code).toBe('EBADF');
  });
});
