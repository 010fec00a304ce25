// Process figures read from /proc (Linux) or ps (macOS, BSD: coarser), CPU
// pinning with taskset, and a free port for a server the bench starts.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const TICK_NANOS = 1e9 / 100; // USER_HZ is 100 on Linux
const hasProc = existsSync('/proc/self/stat');

/** `ps -o FIELD=` for pid: one value per field, in the order asked. */
function ps(pid, fields) {
  const out = execFileSync('ps', ['-o', fields.map((f) => `${f}=`).join(','), '-p', String(pid)], { encoding: 'utf8' });
  return out.trim().split(/\s+/);
}

/** ps's "[[DD-]HH:]MM:SS.cc" as nanoseconds. */
function psTimeNanos(text) {
  const [days, clock] = text.includes('-') ? text.split('-') : ['0', text];
  const seconds = clock.split(':').reduce((sum, part) => sum * 60 + Number(part), 0);
  return (Number(days) * 86400 + seconds) * 1e9;
}

/** CPU time of a whole process (all threads) in nanoseconds. */
export function cpuNanos(pid) {
  if (!hasProc) return psTimeNanos(ps(pid, ['time'])[0]);
  try {
    // schedstat is per thread and in nanoseconds; sum the threads.
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    if (total > 0) return total;
  } catch {
    // fall through to the coarser figure
  }
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_NANOS; // utime + stime
}

/** Kernel (system) CPU time of a whole process in nanoseconds, from /proc/PID/stat (10 ms ticks). */
export function systemCpuNanos(pid) {
  if (!hasProc) {
    const [total, user] = ps(pid, ['time', 'utime']);
    return psTimeNanos(total) - psTimeNanos(user);
  }
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[12]) * TICK_NANOS; // stime
}

/**
 * Anonymous resident memory in bytes (RssAnon): what connections cost. The
 * file-backed part of RSS grows too when a process first runs code paths of
 * its own binary (Node's GC under a larger heap, say); those pages are shared
 * and paid once, not per connection.
 */
export function rssBytes(pid) {
  if (!hasProc) return Number(ps(pid, ['rss'])[0]) * 1024; // all of RSS: no anonymous share there
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /RssAnon:\s+(\d+) kB/.exec(status) ?? /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

let tasksetWorks;
/** Prefixes argv with `taskset -c cpu` when taskset exists and the machine has 2+ CPUs. */
export function pinned(argv, cpu) {
  tasksetWorks ??= spawnSync('taskset', ['-c', '1', 'true']).status === 0;
  return tasksetWorks ? ['taskset', '-c', String(cpu), ...argv] : argv;
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the child has exited. */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A loopback TCP port free just now, for a server started with it. */
export function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
