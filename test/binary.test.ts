// The Linux prebuild (prebuilds/linux-<arch>/, `npm run prebuild`) must load
// on a bare glibc >= 2.28 system: no liburing, no libstdc++/libgcc_s of its
// own (an older one, or none), so only glibc's own libraries NEEDED and no
// symbol version above GLIBC_2.28. Read from the binary itself with binutils
// (readelf -d, objdump -T / -p; .ci/run installs them).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensurePrebuild, libc, root } from './fixtures/pack-prebuild.mjs';

const linuxGlibc = process.platform === 'linux' && libc === 'glibc';

// glibc's own libraries (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ...).
const allowedNeeded = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux[-\w]*\.so\.\d+)$/;

function run(tool: string, args: string[]): string {
  return execFileSync(tool, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

// 2.28 → [2, 28]; 2.2.5 → [2, 2, 5].
function newerThan(version: string, limit: number[]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < Math.max(parts.length, limit.length); i++) {
    const a = parts[i] ?? 0;
    const b = limit[i] ?? 0;
    if (a !== b) return a > b;
  }
  return false;
}

describe.skipIf(!linuxGlibc)('the Linux prebuild', () => {
  let binary = '';
  beforeAll(() => {
    binary = ensurePrebuild();
  }, 240_000);

  it('exists and is a stripped shared object', () => {
    expect(existsSync(binary)).toBe(true);
    const header = run('readelf', ['-h', binary]);
    expect(header).toMatch(/Type:\s+DYN/);
    expect(run('readelf', ['-S', binary])).not.toMatch(/\.symtab/);
  });

  it('NEEDS only glibc: no liburing, libstdc++ or libgcc_s, no RPATH', () => {
    const dynamic = run('readelf', ['-d', binary]);
    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    expect(needed).toContain('libc.so.6');
    expect(needed.filter((lib) => !allowedNeeded.test(lib!))).toEqual([]);
    expect(dynamic).not.toMatch(/\((RPATH|RUNPATH)\)/);
  });

  it('asks for no glibc symbol version above 2.28 and no GLIBCXX/CXXABI/GCC version', () => {
    // libstdc++ and libgcc are linked in: none of their versions may remain.
    const tooNew = (name: string, version: string) => name !== 'GLIBC' || newerThan(version, [2, 28]);
    // Symbol by symbol (objdump -T) ...
    const symbols = run('objdump', ['-T', binary]).split('\n');
    const versioned = symbols.flatMap((line) => {
      const match = /\b(GLIBC|GLIBCXX|CXXABI|GCC)_([0-9][0-9.]*)\b/.exec(line);
      return match ? [{ name: match[1]!, version: match[2]!, symbol: line.trim().split(/\s+/).pop() }] : [];
    });
    expect(versioned.length).toBeGreaterThan(10);
    expect(versioned.filter((v) => tooNew(v.name, v.version))).toEqual([]);
    // ... and the version requirements as recorded (objdump -p), which the
    // dynamic loader checks when it loads the file.
    const section = run('objdump', ['-p', binary]).split('Version References:')[1] ?? '';
    const required = [...section.matchAll(/0x[0-9a-f]+\s+0x[0-9a-f]+\s+\d+\s+([A-Z]+)_([0-9.]+)/g)].map((m) => ({
      name: m[1]!,
      version: m[2]!,
    }));
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((v) => tooNew(v.name, v.version))).toEqual([]);
    const from = [...section.matchAll(/required from (\S+):/g)].map((m) => m[1]!);
    expect(from.filter((lib) => !allowedNeeded.test(lib))).toEqual([]);
  });

  it('exports the Node-API entry points only', () => {
    const symbols = run('objdump', ['-T', binary]);
    const defined = symbols
      .split('\n')
      .filter((line) => /\s(DF|DO)\s/.test(line) && !/\*UND\*/.test(line))
      .map((line) => line.trim().split(/\s+/).pop());
    expect(defined.sort()).toEqual(['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
  });

  it('loads in node, with the backends of the local build (io_uring from the static liburing)', () => {
    const backendsOf = (file: string) => {
      const result = spawnSync(
        process.execPath,
        ['-e', `console.log(JSON.stringify(require(${JSON.stringify(file)}).backends))`],
        { encoding: 'utf8', timeout: 15_000 },
      );
      expect(result.stderr).toBe('');
      return JSON.parse(result.stdout) as string[];
    };
    const backends = backendsOf(binary);
    expect(backends).toContain('epoll');
    // The same kernel decides whether io_uring is listed for both builds.
    const local = join(root, 'build', 'Release', 'native_reactor.node');
    if (existsSync(local)) expect(backends.sort()).toEqual(backendsOf(local).sort());
  });
});
