import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';

// build/Release/deny_io_uring runs a command with io_uring_setup refused by a
// seccomp filter, as a hardened container (EPERM) or a kernel without
// io_uring (ENOSYS) would.
const denyTool = fileURLToPath(new URL('../build/Release/deny_io_uring', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/child-fallback.mjs', import.meta.url));

interface Report {
  reports: { backend: string; fallback: { requested: string; code: string } | null; echoed: string }[];
  backends: string[];
  warnings: { code: string; message: string }[];
}

function runRefused(refusal: string, args: string[], env: NodeJS.ProcessEnv = process.env): Report {
  const run = spawnSync(denyTool, [refusal, process.execPath, fixture, ...args], { encoding: 'utf8', timeout: 10_000, env });
  expect(run.stderr).not.toContain('deny_io_uring:');
  expect(run.status).toBe(0);
  return JSON.parse(run.stdout) as Report;
}

describe('io_uring refused by the kernel at run time', () => {
  if (!Reactor.backends.includes('io_uring')) {
    // This build or machine has no io_uring at all: asking for it is an error, not a fallback.
    it('asking for io_uring where it is not built or creatable throws ERR_REACTOR_BACKEND_UNAVAILABLE', () => {
      expect(() => new Reactor({ backend: 'io_uring' })).toThrow(expect.objectContaining({ code: 'ERR_REACTOR_BACKEND_UNAVAILABLE' }) as Error);
    });
    return;
  }

  it('the refusal tool is built beside the addon', () => {
    expect(existsSync(denyTool)).toBe(true);
  });

  it.each(['EPERM', 'ENOSYS'])('%s: falls back to epoll, says so once per process, and serves', (refusal) => {
    const result = runRefused(refusal, ['io_uring']);
    expect(result.reports).toEqual([
      { backend: 'epoll', fallback: { requested: 'io_uring', code: refusal }, echoed: 'ping' },
      { backend: 'epoll', fallback: { requested: 'io_uring', code: refusal }, echoed: 'ping' },
    ]);
    expect(result.warnings).toEqual([{ code: 'NATIVE_REACTOR_BACKEND_FALLBACK', message: `io_uring is unavailable (${refusal}); using epoll` }]);
    // A ring cannot be made, so io_uring is not offered.
    expect(result.backends).not.toContain('io_uring');
    expect(result.backends[0]).toBe('epoll');
  });

  it('NATIVE_REACTOR_BACKEND=io_uring falls back the same way', () => {
    const result = runRefused('EPERM', [], { ...process.env, NATIVE_REACTOR_BACKEND: 'io_uring' });
    expect(result.reports.map((r) => [r.backend, r.fallback?.code])).toEqual([
      ['epoll', 'EPERM'],
      ['epoll', 'EPERM'],
    ]);
    expect(result.warnings).toHaveLength(1);
  });

  it('other backends under the same refusal run as asked, with no fallback and no warning', () => {
    for (const backend of ['epoll', 'poll', 'select']) {
      const result = runRefused('EPERM', [backend]);
      expect(result.reports.map((r) => [r.backend, r.fallback, r.echoed])).toEqual([
        [backend, null, 'ping'],
        [backend, null, 'ping'],
      ]);
      expect(result.warnings).toEqual([]);
    }
  });

  it('without a refusal, io_uring runs and reports no fallback', () => {
    const reactor = new Reactor({ backend: 'io_uring' });
    try {
      expect(reactor.backend).toBe('io_uring');
      expect(reactor.backendFallback).toBeUndefined();
    } finally {
      reactor.close();
    }
  });
});
