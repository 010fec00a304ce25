import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reactor, type ReactorError, type Transport } from '../src/index.js';
import { Collector, closeQuietly, deferred, newReactor } from './helpers.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const children: ChildProcess[] = [];

/** Runs `node fixture args`; killed (SIGKILL) if still running after `limitMs`. */
function runChild(name: string, args: string[], limitMs = 8000): Promise<ChildResult> {
  const start = performance.now();
  const child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: limitMs, killSignal: 'SIGKILL' });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - start }));
  });
}

/** Starts a child and resolves once it printed a line starting with `ready`. */
function startChild(name: string, args: string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('ready'));
      if (line !== undefined) resolve({ child, line });
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before ready: ${stdout} ${stderr}`)));
  });
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.each(Reactor.backends)('%s backend', (backend) => {
  it('the process exits by itself (code 0) after the last listener and connection close', async () => {
    const result = await runChild('child-roundtrip.mjs', [backend]);
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('round trip ok\nclosed cleanly\nexit 0 serverLost=true\n');
  });

  it('a pending callLater keeps the process alive until it fires, then lets it exit', async () => {
    const result = await runChild('child-timer.mjs', [backend, 'fire']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('fired late\n');
  });

  it('a cancelled call does not keep the process alive', async () => {
    const result = await runChild('child-timer.mjs', [backend, 'cancel'], 10_000);
    expect(result.code).toBe(0);
    expect(result.signal).toBeNull();
    expect(result.stdout).toBe('cancelled\n');
    expect(result.ms).toBeLessThan(10_000); // far less than the 60 s call
  });

  it('a reset call keeps the process alive until its new time', async () => {
    const result = await runChild('child-timer.mjs', [backend, 'reset']);
    expect(result.code).toBe(0);
    const match = /^fired after (\d+)\n$/.exec(result.stdout);
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBeGreaterThanOrEqual(119);
  });

  it('an unref()ed call does not keep the process alive; ref() makes it keep it again', async () => {
    const unrefd = await runChild('child-timer.mjs', [backend, 'unref'], 10_000);
    expect(unrefd.code).toBe(0);
    expect(unrefd.stdout).toBe("unref'd hasRef=false\n");
    expect(unrefd.ms).toBeLessThan(10_000); // far less than the 60 s call
    const rerefd = await runChild('child-timer.mjs', [backend, 'reref']);
    expect(rerefd.code).toBe(0);
    expect(rerefd.stdout).toBe('fired after ref\n');
  });

  it('reactor.close() with a listener open lets the process exit', async () => {
    const result = await runChild('child-listener.mjs', [backend, 'close']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('closed\n');
  });

  it('a process with a listener still open does not exit', async () => {
    const { child, line } = await startChild('child-listener.mjs', [backend, 'hold']);
    const port = Number(line.split(' ')[1]);
    // Here the time bound is the check: still running 300 ms after 'ready'.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    // And it still serves.
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('data', (d: Buffer) => {
        resolve(d.toString());
        socket.destroy();
      });
      socket.on('error', reject);
      socket.write('alive?');
    });
    expect(echoed).toBe('alive?');
    const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
  });

  it('an open accepted connection alone keeps the process alive', async () => {
    const { child } = await startChild('child-listener.mjs', [backend, 'connection']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(child.exitCode).toBeNull();
    child.kill('SIGKILL');
  });

  it('a reactor idle through garbage collections still delivers afterwards', { timeout: 10_000 }, async () => {
    // Nothing live: the core holds the binding's own reactor object (the async
    // resource of every batch) only weakly, and JavaScript holds a copy of it.
    const reactor = newReactor(backend);
    try {
      for (let i = 0; i < 3; i++) {
        gc!();
        await new Promise((resolve) => setImmediate(resolve));
      }
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        dataReceived: (data: Buffer, t: Transport) => t.write(data),
      }));
      const collector = new Collector();
      const client = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, collector);
      client.write('still here');
      expect((await collector.received(10)).toString()).toBe('still here');
    } finally {
      closeQuietly(reactor);
    }
  });

  it('a child mixing node:net, fs promises and the reactor works and exits by itself', async () => {
    const result = await runChild('child-mixed.mjs', [backend]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('mixed HELLO ok\n');
  });

  describe('beside node:net, fs and promises in this process', () => {
    let reactor: Reactor;
    let server: net.Server | undefined;
    beforeEach(() => {
      reactor = newReactor(backend);
    });
    afterEach(async () => {
      closeQuietly(reactor);
      if (server) await new Promise((resolve) => server!.close(resolve));
      server = undefined;
    });

    it('a node:net server and the reactor talk to each other; dataReceived follow-ups may await fs', async () => {
      const self = fileURLToPath(import.meta.url);
      const expected = (await readFile(self)).length;
      server = net.createServer((socket) => {
        socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
        socket.on('end', () => socket.end());
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));

      // Reactor client -> node:net server, follow-up awaits fs before replying.
      const result = deferred<string>();
      const lost = deferred<ReactorError | undefined>();
      const transport = await reactor.connectTCP({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, {
        dataReceived(data: Buffer, t: Transport) {
          void (async () => {
            const text = await readFile(self);
            result.resolve(`${data.toString()}:${text.length}`);
            t.end();
          })();
        },
        connectionLost: (reason) => lost.resolve(reason),
      });
      transport.write('hi');
      expect(await result.promise).toBe(`HI:${expected}`);
      expect(await lost.promise).toBeUndefined();

      // node:net client -> reactor listener whose reply is sent after an awaited read.
      const listener = reactor.listenTCP({ port: 0, host: '127.0.0.1' }, () => ({
        dataReceived(data: Buffer, t: Transport) {
          void readFile(self).then((text) => {
            t.write(`${data.toString()}=${text.length}`);
            t.close();
          });
        },
      }));
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(listener.address.port, '127.0.0.1');
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
        socket.write('q');
      });
      expect(answer).toBe(`q=${expected}`);

      // Promises continue after each batch: a promise chain per connection stays ordered.
      const order: string[] = [];
      const client = new Collector();
      const t = await reactor.connectTCP({ host: '127.0.0.1', port: listener.address.port }, client);
      await Promise.resolve().then(() => order.push('microtask after connect'));
      t.write('z');
      await client.lost.promise;
      order.push('lost');
      expect(order).toEqual(['microtask after connect', 'lost']);
      expect(client.bytes().toString()).toBe(`z=${expected}`);
    });
  });
});
