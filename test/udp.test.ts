import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type DatagramProtocol, type ReactorError, type RemoteInfo, type UDPSocket } from '../src/index.js';
import { closeQuietly, codeOf, deferred, hasFdDirectory, newReactor, openFds, runProcess } from './helpers.js';

/** A node:dgram peer that keeps what it hears; `received(n)` resolves once n arrived. */
class Peer {
  readonly messages: { data: Buffer; rinfo: dgram.RemoteInfo }[] = [];
  readonly socket: dgram.Socket;
  #waiters: { n: number; resolve: () => void }[] = [];

  static async open(type: 'udp4' | 'udp6', host: string): Promise<Peer> {
    const peer = new Peer(type);
    await new Promise<void>((resolve) => peer.socket.bind(0, host, resolve));
    return peer;
  }

  private constructor(type: 'udp4' | 'udp6') {
    this.socket = dgram.createSocket({ type, recvBufferSize: 4 * 1024 * 1024 });
    this.socket.on('message', (data, rinfo) => {
      this.messages.push({ data, rinfo });
      this.#waiters = this.#waiters.filter(({ n, resolve }) => (this.messages.length >= n ? (resolve(), false) : true));
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  received(n: number): Promise<void> {
    if (this.messages.length >= n) return Promise.resolve();
    const d = deferred();
    this.#waiters.push({ n, resolve: d.resolve });
    return d.promise;
  }

  /** Sends each datagram, resolving once the kernel took them all. */
  send(datagrams: Buffer[], port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let left = datagrams.length;
      for (const datagram of datagrams) {
        this.socket.send(datagram, port, host, (error) => {
          if (error) reject(error);
          else if (--left === 0) resolve();
        });
      }
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** Keeps every datagram a reactor socket receives, with a waiter like Peer's. */
class Inbox implements DatagramProtocol {
  readonly datagrams: { data: Buffer; rinfo: RemoteInfo }[] = [];
  readonly errors: ReactorError[] = [];
  readonly refusals: ReactorError[] = [];
  stopped = 0;
  #waiters: { n: number; resolve: () => void }[] = [];
  readonly stop = deferred();

  datagramReceived(data: Buffer, rinfo: RemoteInfo): void {
    this.datagrams.push({ data, rinfo });
    this.#waiters = this.#waiters.filter(({ n, resolve }) => (this.datagrams.length >= n ? (resolve(), false) : true));
  }

  socketError(error: ReactorError): void {
    this.errors.push(error);
    this.#wake();
  }

  connectionRefused(error: ReactorError): void {
    this.refusals.push(error);
    this.#wake();
  }

  stopProtocol(): void {
    this.stopped++;
    this.stop.resolve();
  }

  received(n: number): Promise<void> {
    if (this.datagrams.length >= n) return Promise.resolve();
    const d = deferred();
    this.#waiters.push({ n, resolve: d.resolve });
    return d.promise;
  }

  /** Resolves at the next error or refusal. */
  failure(): Promise<void> {
    const d = deferred();
    this.#onFailure.push(d.resolve);
    return d.promise;
  }

  #onFailure: (() => void)[] = [];
  #wake(): void {
    for (const resolve of this.#onFailure.splice(0)) resolve();
  }
}

const echo: DatagramProtocol = {
  datagramReceived(data, rinfo, socket) {
    socket.send(data, rinfo.port, rinfo.address);
  },
};

function numbered(count: number, size: (i: number) => number): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const datagram = randomBytes(Math.max(4, size(i)));
    datagram.writeUInt32BE(i, 0);
    return datagram;
  });
}

/** Same datagrams in the same order (toEqual on a thousand Buffers takes seconds). */
function sameDatagrams(got: Buffer[], expected: Buffer[]): boolean {
  return got.length === expected.length && got.every((datagram, i) => datagram.equals(expected[i]!));
}

describe.each(Reactor.backends)('%s backend', (backend) => {
  let reactor: Reactor;
  const peers: Peer[] = [];
  beforeEach(() => {
    reactor = newReactor(backend);
  });
  afterEach(() => {
    for (const peer of peers.splice(0)) peer.close();
    closeQuietly(reactor);
  });

  async function peer(type: 'udp4' | 'udp6' = 'udp4', host = type === 'udp4' ? '127.0.0.1' : '::1'): Promise<Peer> {
    const opened = await Peer.open(type, host);
    peers.push(opened);
    return opened;
  }

  it('echoes to a node:dgram client over IPv4: bytes intact, rinfo right', async () => {
    const seen: RemoteInfo[] = [];
    const socket = reactor.listenUDP(
      { port: 0, host: '127.0.0.1' },
      {
        datagramReceived(data, rinfo, socket) {
          seen.push(rinfo);
          socket.send(data, rinfo.port, rinfo.address);
        },
      },
    );
    expect(socket.address).toEqual({ address: '127.0.0.1', port: socket.address.port, family: 'IPv4' });
    expect(socket.address.port).toBeGreaterThan(0);
    const client = await peer();
    const datagrams = [randomBytes(1), randomBytes(1200), randomBytes(65_507), Buffer.alloc(0)];
    await client.send(datagrams, socket.address.port, '127.0.0.1');
    await client.received(datagrams.length);
    expect(sameDatagrams(client.messages.map((m) => m.data), datagrams)).toBe(true);
    expect(client.messages[0]!.rinfo).toMatchObject({ address: '127.0.0.1', port: socket.address.port, family: 'IPv4' });
    expect(seen).toEqual(datagrams.map((d) => ({ address: '127.0.0.1', family: 'IPv4', port: client.port, size: d.length })));
    socket.close();
  });

  it('echoes over IPv6 ::1', async () => {
    const socket = reactor.listenUDP({ port: 0, host: '::1' }, echo);
    expect(socket.address.family).toBe('IPv6');
    const client = await peer('udp6');
    const datagram = randomBytes(9000);
    await client.send([datagram], socket.address.port, '::1');
    await client.received(1);
    expect(client.messages[0]!.data.equals(datagram)).toBe(true);
    expect(client.messages[0]!.rinfo).toMatchObject({ address: '::1', port: socket.address.port, family: 'IPv6' });
    socket.close();
  });

  it("'::' hears IPv4 senders as IPv4-mapped IPv6 and replies to them", async () => {
    const inbox = new Inbox();
    const socket = reactor.listenUDP({ port: 0, host: '::' }, {
      datagramReceived(data, rinfo, s) {
        inbox.datagramReceived(data, rinfo);
        s.send(data, rinfo.port, rinfo.address);
      },
    });
    const client = await peer();
    await client.send([Buffer.from('mapped')], socket.address.port, '127.0.0.1');
    await client.received(1);
    expect(inbox.datagrams[0]!.rinfo).toEqual({ address: '::ffff:127.0.0.1', family: 'IPv6', port: client.port, size: 6 });
    expect(client.messages[0]!.data.toString()).toBe('mapped');
    socket.close();
  });

  it('a burst of 1,000 datagrams arrives intact, in order, in far fewer batches, and is echoed the same way', async () => {
    const inbox = new Inbox();
    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1', receiveBufferSize: 4 * 1024 * 1024 }, {
      datagramReceived(data, rinfo, s) {
        inbox.datagramReceived(data, rinfo);
        s.send(data, rinfo.port, rinfo.address);
      },
    });
    const client = await peer();
    const burst = numbered(1000, (i) => (i * 37) % 1400);
    // The whole burst waits in the kernel, then comes in as few batches as it can.
    socket.pause();
    await client.send(burst, socket.address.port, '127.0.0.1');
    const before = reactor.stats();
    socket.resume();
    await inbox.received(burst.length);
    const after = reactor.stats();
    expect(sameDatagrams(inbox.datagrams.map((d) => d.data), burst)).toBe(true);
    expect(after.records - before.records).toBeGreaterThanOrEqual(burst.length);
    expect(after.batches - before.batches).toBeLessThanOrEqual(burst.length / 16);
    await client.received(burst.length);
    expect(sameDatagrams(client.messages.map((m) => m.data), burst)).toBe(true);
    const stats = socket.stats();
    expect(stats).toMatchObject({ datagramsIn: 1000, datagramsOut: 1000, dropped: 0, errors: 0 });
    expect(stats.bytesIn).toBe(burst.reduce((sum, d) => sum + d.length, 0));
    socket.close();
  });

  it('connected mode: send(data) reaches the peer, others are filtered out, a refusal is ECONNREFUSED and the socket stays open', async () => {
    const inbox = new Inbox();
    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, inbox);
    const partner = await peer();
    const stranger = await peer();
    socket.connect(partner.port, '127.0.0.1');
    expect(socket.connected).toBe(true);
    expect(socket.remoteAddress).toEqual({ address: '127.0.0.1', port: partner.port, family: 'IPv4' });
    expect(socket.send('to the partner')).toBe(true);
    await partner.received(1);
    expect(partner.messages[0]!.data.toString()).toBe('to the partner');
    await stranger.send([Buffer.from('filtered')], socket.address.port, '127.0.0.1');
    await partner.send([Buffer.from('heard')], socket.address.port, '127.0.0.1');
    await inbox.received(1);
    expect(inbox.datagrams.map((d) => d.data.toString())).toEqual(['heard']);
    expect(codeOf(() => socket.send('x', partner.port, '127.0.0.1'))).toBe('ERR_SOCKET_DGRAM_IS_CONNECTED');
    expect(codeOf(() => socket.connect(partner.port))).toBe('ERR_SOCKET_DGRAM_IS_CONNECTED');

    // Nobody at the partner's port any more: the kernel's refusal comes back.
    const port = partner.port;
    partner.close();
    peers.splice(peers.indexOf(partner), 1);
    const refused = inbox.failure();
    socket.send('anyone?');
    await refused;
    expect(inbox.refusals).toHaveLength(1);
    expect(inbox.refusals[0]).toMatchObject({ code: 'ECONNREFUSED', syscall: 'recv', address: '127.0.0.1', port });
    expect(socket.closed).toBe(false);

    socket.disconnect();
    expect(socket.connected).toBe(false);
    expect(socket.remoteAddress).toBeUndefined();
    expect(codeOf(() => socket.send('x'))).toBe('ERR_SOCKET_DGRAM_NOT_CONNECTED');
    expect(codeOf(() => socket.disconnect())).toBe('ERR_SOCKET_DGRAM_NOT_CONNECTED');
    await stranger.send([Buffer.from('heard again')], socket.address.port, '127.0.0.1');
    await inbox.received(2);
    expect(inbox.datagrams[1]!.data.toString()).toBe('heard again');
    socket.close();
  });

  it('joins a multicast group over loopback, and leaves it', async () => {
    const group = '239.255.71.3';
    const inbox = new Inbox();
    const member = reactor.listenUDP({ port: 0, host: '0.0.0.0', reuseAddress: true }, inbox);
    member.addMembership(group, '127.0.0.1');
    expect(codeOf(() => member.addMembership(group, '127.0.0.1'))).toBe('EADDRINUSE');
    const sender = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, inbox);
    sender.setMulticastInterface('127.0.0.1');
    sender.setMulticastLoopback(true);
    sender.setMulticastTTL(1);
    expect(sender.send('to the group', member.address.port, group)).toBe(true);
    await inbox.received(1);
    expect(inbox.datagrams[0]!.data.toString()).toBe('to the group');
    expect(inbox.datagrams[0]!.rinfo).toMatchObject({ address: '127.0.0.1', port: sender.address.port });
    member.dropMembership(group, '127.0.0.1');
    expect(codeOf(() => member.dropMembership(group, '127.0.0.1'))).toBe('EADDRNOTAVAIL');
    // Source-specific: only that source's datagrams to the group.
    member.addSourceSpecificMembership('127.0.0.1', '232.1.2.4', '127.0.0.1');
    sender.send('from the source', member.address.port, '232.1.2.4');
    await inbox.received(2);
    expect(inbox.datagrams[1]!.data.toString()).toBe('from the source');
    member.dropSourceSpecificMembership('127.0.0.1', '232.1.2.4', '127.0.0.1');
    expect(codeOf(() => member.addMembership('127.0.0.1'))).toBe('EINVAL'); // not a group
    member.close();
    sender.close();
  });

  it('broadcast needs setBroadcast: without it the send fails with EACCES, reported to socketError', async () => {
    const inbox = new Inbox();
    const listener = reactor.listenUDP({ port: 0, host: '0.0.0.0' }, inbox);
    const senderInbox = new Inbox();
    const sender = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, senderInbox);
    const failed = senderInbox.failure();
    expect(sender.send('all', listener.address.port, '127.255.255.255')).toBe(false);
    await failed;
    expect(senderInbox.errors[0]).toMatchObject({ code: 'EACCES', syscall: 'send' });
    sender.setBroadcast(true);
    expect(sender.send('all', listener.address.port, '127.255.255.255')).toBe(true);
    await inbox.received(1);
    expect(inbox.datagrams[0]!.data.toString()).toBe('all');
    sender.setTTL(64);
    expect(sender.stats()).toMatchObject({ datagramsOut: 1, errors: 1 });
    listener.close();
    sender.close();
  });

  it('pause() inside datagramReceived holds the rest of the batch; resume() delivers everything in order', async () => {
    const received: string[] = [];
    let atResume = -1;
    const resumed = deferred();
    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, {
      datagramReceived(data, _rinfo, s) {
        received.push(data.toString());
        if (received.length === 3) {
          s.pause();
          setImmediate(() => {
            atResume = received.length; // nothing arrived while paused
            s.resume();
            resumed.resolve();
          });
        }
        if (received.length === 10) done.resolve();
      },
    });
    const done = deferred();
    const client = await peer();
    const burst = Array.from({ length: 10 }, (_, i) => Buffer.from(`datagram ${i}`));
    socket.pause(); // so the ten arrive in one batch
    expect(socket.isPaused).toBe(true);
    await client.send(burst, socket.address.port, '127.0.0.1');
    socket.resume();
    await resumed.promise;
    await done.promise;
    expect(atResume).toBe(3);
    expect(received).toEqual(burst.map(String));
    expect(socket.isPaused).toBe(false);
    socket.close();
  });

  it('a throwing datagramReceived goes to onError and the socket keeps receiving', async () => {
    const errors: unknown[] = [];
    const local = newReactor(backend, { onError: (error) => errors.push(error) });
    try {
      const inbox = new Inbox();
      const socket = local.listenUDP({ port: 0, host: '127.0.0.1' }, {
        datagramReceived(data, rinfo) {
          if (data.toString() === 'boom') throw new Error('boom');
          inbox.datagramReceived(data, rinfo);
        },
      });
      const client = await peer();
      await client.send([Buffer.from('boom'), Buffer.from('after')], socket.address.port, '127.0.0.1');
      await inbox.received(1);
      expect(inbox.datagrams[0]!.data.toString()).toBe('after');
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error).message).toBe('boom');
      expect(socket.closed).toBe(false);
    } finally {
      closeQuietly(local);
    }
  });

  it('refuses bad arguments with codes', async () => {
    const protocol = new Inbox();
    expect(codeOf(() => reactor.listenUDP({ port: 0, reuseport: true } as never, protocol))).toBe('ERR_INVALID_ARG_VALUE');
    expect(() => reactor.listenUDP({ port: 0, reuseport: true } as never, protocol)).toThrow(/did you mean "reusePort"/);
    expect(codeOf(() => reactor.listenUDP({ port: -1 }, protocol))).toBe('ERR_SOCKET_BAD_PORT');
    expect(codeOf(() => reactor.listenUDP({ port: 65536 }, protocol))).toBe('ERR_SOCKET_BAD_PORT');
    expect(codeOf(() => reactor.listenUDP({ port: 0, host: 'example.com' }, protocol))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => reactor.listenUDP({ port: 0, receiveBufferSize: -1 }, protocol))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => reactor.listenUDP({ port: 0, ipv6Only: 1 } as never, protocol))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => reactor.listenUDP({ port: 0 }, {} as never))).toBe('ERR_INVALID_ARG_TYPE');
    const nearMiss = { datagramReceived() {}, datagramRecieved() {} };
    expect(() => reactor.listenUDP({ port: 0 }, nearMiss)).toThrow(/did you mean "datagramReceived"/);
    expect(codeOf(() => reactor.listenUDP({ port: 0 }, { datagramReceived() {}, stopProtocol: 1 } as never))).toBe('ERR_INVALID_ARG_TYPE');

    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, protocol);
    expect(codeOf(() => reactor.listenUDP({ port: socket.address.port, host: '127.0.0.1' }, protocol))).toBe('EADDRINUSE');
    expect(codeOf(() => socket.send('x', 0, '127.0.0.1'))).toBe('ERR_SOCKET_BAD_PORT');
    expect(codeOf(() => socket.send('x', 1.5))).toBe('ERR_SOCKET_BAD_PORT');
    expect(codeOf(() => socket.send(42 as never, 9))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => socket.send('x', 9, 'example.com'))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => socket.send('x', 9, '::1'))).toBe('EAFNOSUPPORT');
    expect(codeOf(() => socket.send('x'))).toBe('ERR_SOCKET_DGRAM_NOT_CONNECTED');
    expect(codeOf(() => socket.setTTL(0))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => socket.setMulticastTTL(256))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => socket.setBroadcast('yes' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => socket.setMulticastInterface('nowhere'))).toBe('EINVAL');
    expect(codeOf(() => socket.addMembership(''))).toBe('ERR_INVALID_ARG_VALUE');
    socket.close();
  });

  it('close() twice is a no-op, stopProtocol runs once, later calls throw ERR_SOCKET_CLOSED', async () => {
    const inbox = new Inbox();
    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, inbox);
    socket.close();
    socket.close();
    expect(socket.closed).toBe(true);
    await inbox.stop.promise;
    await new Promise((resolve) => setImmediate(resolve));
    expect(inbox.stopped).toBe(1);
    expect(codeOf(() => socket.send('x', 9))).toBe('ERR_SOCKET_CLOSED');
    expect(codeOf(() => socket.pause())).toBe('ERR_SOCKET_CLOSED');
    expect(codeOf(() => socket.stats())).toBe('ERR_SOCKET_CLOSED');
    // The port is free again.
    const again = reactor.listenUDP({ port: socket.address.port, host: '127.0.0.1' }, inbox);
    again.close();
  });

  it('reactor.close() and shutdown() close UDP sockets and run stopProtocol', async () => {
    const inbox = new Inbox();
    const socket = reactor.listenUDP({ port: 0, host: '127.0.0.1' }, inbox);
    const result = await reactor.shutdown();
    expect(result).toEqual({ closed: 0, aborted: 0 });
    expect(socket.closed).toBe(true);
    await inbox.stop.promise;

    const other = newReactor(backend);
    const second = new Inbox();
    const open = other.listenUDP({ port: 0, host: '127.0.0.1' }, second);
    other.close();
    expect(open.closed).toBe(true);
    expect(codeOf(() => open.send('x', 9))).toBe('ERR_REACTOR_CLOSED');
    open.close(); // still a no-op
    await second.stop.promise;
    expect(second.stopped).toBe(1);
  });

  it.runIf(hasFdDirectory)('opening and closing sockets leaks no descriptor', () => {
    const before = openFds();
    const sockets: UDPSocket[] = [];
    for (let i = 0; i < 20; i++) sockets.push(reactor.listenUDP({ port: 0, host: i % 2 ? '::1' : '127.0.0.1' }, echo));
    expect(openFds()).toBe(before + 20);
    for (const socket of sockets) {
      socket.send('queued', 9, socket.address.family === 'IPv6' ? '::1' : '127.0.0.1');
      socket.close();
    }
    expect(openFds()).toBe(before);
  });

  it('an open socket keeps the process alive and closing it lets the process exit', async () => {
    const result = await runProcess(process.execPath, ['test/fixtures/child-udp.mjs', backend], 20_000);
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('received hello\nclosed\n');
  });
});
