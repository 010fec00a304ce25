// The bridge examples run with plain node (the built package): each prints
// "listening PORT", answers any path with 200 "hello world", and exits on
// SIGTERM; a bad option exits with status 2.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { type Certificate, curl, HOST, makeCertificate, within } from './stream-bridge-helpers.js';

let certificate: Certificate;

beforeAll(() => {
  certificate = makeCertificate('stream-bridge-examples-');
});

afterAll(() => certificate.remove());

/** Starts an example; resolves with the port it printed. */
function start(args: string[]): { child: ChildProcess; port: Promise<number>; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const port = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /^listening (\d+)\n/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening: ${output}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, port, exited, stderr: () => errors };
}

describe.each(Reactor.backends)('bridge examples (%s)', (backend) => {
  it('http-bridge.mjs answers any path with hello world, in one or two workers', async () => {
    for (const workers of ['1', '2']) {
      const example = start(['examples/http-bridge.mjs', '--port', '0', '--backend', backend, '--workers', workers, '--idle-timeout-ms', '5000']);
      try {
        const port = await within(example.port, 10_000, 'listening');
        const reply = await curl(['--include', `http://${HOST}:${port}/any/path?x=1`]);
        expect(reply.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello world$/);
        example.child.kill('SIGTERM');
        expect(await within(example.exited, 10_000, 'the exit')).toBe(0);
      } finally {
        example.child.kill('SIGKILL');
      }
    }
  });

  it('https-bridge.mjs answers over TLS with the given certificate', async () => {
    const cert = certificate.certPath;
    const example = start(['examples/https-bridge.mjs', '--port', '0', '--backend', backend, '--cert', cert, '--key', certificate.keyPath, '--max-connections', '4']);
    try {
      const port = await within(example.port, 10_000, 'listening');
      const reply = await curl(['--cacert', cert, '--write-out', ' %{http_code}', `https://${HOST}:${port}/`]);
      expect(reply.toString()).toBe('hello world 200');
      example.child.kill('SIGTERM');
      expect(await within(example.exited, 10_000, 'the exit')).toBe(0);
    } finally {
      example.child.kill('SIGKILL');
    }
  });

  it('refuses a bad option with status 2', async () => {
    const missing = start(['examples/https-bridge.mjs', '--port', '0', '--backend', backend]);
    missing.port.catch(() => undefined);
    expect(await within(missing.exited, 10_000, 'the exit')).toBe(2);
    expect(missing.stderr()).toContain('--cert is required');
    const bad = start(['examples/http-bridge.mjs', '--workers', 'many', '--backend', backend]);
    bad.port.catch(() => undefined);
    expect(await within(bad.exited, 10_000, 'the exit')).toBe(2);
    expect(bad.stderr()).toContain('--workers must be a whole number');
  });
});
