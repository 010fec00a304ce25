// The command line of `native-reactor-bench`: a workload, a target, flags.
// Every bad value is a UsageError naming its flag; an unknown flag is refused
// with the closest known one, like the API's unknown option keys.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { closest } from '../../dist/validate.js';

export const WORKLOADS = ['echo', 'http', 'rr', 'storm', 'idle', 'churn'];
const MAX = 0x7fffffff;

export const USAGE = `usage: native-reactor-bench WORKLOAD TARGET [flags]

  native-reactor-bench echo 127.0.0.1:7000 --connections 100 --size 64 --duration 5 --json
  native-reactor-bench http http://127.0.0.1:8080/ --connections 100 --duration 5 --rate 20000 --json
  native-reactor-bench rr /tmp/app.sock --payload 'PING\\r\\n' --reply-delimiter '\\r\\n'
  native-reactor-bench storm 127.0.0.1:7000 --connections 10000 --json
  native-reactor-bench idle 127.0.0.1:7000 --connections 1000 --duration 60
  native-reactor-bench churn 127.0.0.1:7000 --connections 50 --size 64 --duration 5

workloads:
  echo   fixed-size messages that must come back byte for byte
  http   HTTP/1.1 GET with keep-alive; a 2xx is a good reply (body framed by
         Content-Length, by chunks, or by the close); "Connection: close" is honoured
  rr     request/response: --payload or --payload-file, framed by --reply-length or
         --reply-delimiter
  storm  --connections connects, back to back (--concurrency in flight) or at --rate
         per second, each kept open until all are done: time to establish them all,
         connects/s, connect latency, errors by kind
  idle   open --connections and hold them silent for --duration: how many the server
         closed, when (lifetimes), and how (FIN or reset)
  churn  each of --connections loops: connect, one echo of --size bytes, close (FIN);
         connections/s, and latency per connection from its connect to its reply
targets: HOST:PORT, [IPV6]:PORT, or a Unix socket path (with a "/"); http takes a URL
         (http://HOST[:PORT]/PATH) and --unix-socket to reach it over a Unix socket.

flags:
  -c, --connections N    connections (default 100)
  -p, --pipeline N       requests in flight per connection (default 1)
  -R, --rate N           open loop: N requests/s in all, each connection on its own
                         schedule at N/connections; latency runs from each request's
                         intended send time (coordinated omission corrected, as wrk2).
                         Without it, closed loop: a reply sends the next request.
                         storm: connects per second, latency from each one's due time
  -d, --duration S       measured seconds (default 10); idle: seconds to hold
      --warmup S         seconds of load before measuring (default 1)
  -w, --workers N        load-generator threads, connections and rate split among them
                         (default 1)
      --timeout S        a request or connect unanswered this long is an error and its
                         connection is opened again (default 10)
      --size B           echo, churn: message size in bytes (default 64)
      --concurrency K    storm: connects in flight at once (default 1: back to back)
  -H, --header "N: V"    http: an extra request header (repeatable)
      --unix-socket PATH http: connect to this Unix socket instead of the URL's host
      --payload TEXT     rr: the request (escapes \\r \\n \\t \\\\ and \\xHH are decoded)
      --payload-file F   rr: the request, read from a file
      --reply-length B   rr: a reply is B bytes
      --reply-delimiter T rr: a reply ends with T (escapes decoded)
      --reset            end connections with a reset (RST) instead of a FIN
      --json             print the result as one JSON object on stdout
  -h, --help

--json: throughput (per second: good replies; storm: connects; churn: connections),
errors ({total, by kind}), p50 p99 p999 (µs: reply latency; storm: connect latency;
churn: connect to reply; idle: lifetimes of the connections the server closed),
latency (p50 p90 p99 p999 p9999 max mean stdev, µs), uncorrectedLatency (with --rate),
requests, seconds, established, reconnects, serverCloses, generator (cpuSeconds over the
window, cpuMicrosPerRequest), bytes, histogram (HdrHistogram, compressed base64) and
the settings; storm adds connectsPerSecond and errorCodes; idle adds held,
closedByServer {fin, reset, other} and closedWhen (counts per tenth of --duration).

Latencies are in microseconds. Exit status: 0 done, 1 no connection could be made,
2 bad command line.`;

/** A bad command line; the message names the flag. */
export class UsageError extends Error {
  code = 'ERR_INVALID_ARG_VALUE';
}

const OPTIONS = {
  connections: { type: 'string', short: 'c' },
  pipeline: { type: 'string', short: 'p' },
  rate: { type: 'string', short: 'R' },
  duration: { type: 'string', short: 'd' },
  warmup: { type: 'string' },
  workers: { type: 'string', short: 'w' },
  timeout: { type: 'string' },
  size: { type: 'string' },
  concurrency: { type: 'string' },
  header: { type: 'string', short: 'H', multiple: true },
  'unix-socket': { type: 'string' },
  payload: { type: 'string' },
  'payload-file': { type: 'string' },
  'reply-length': { type: 'string' },
  'reply-delimiter': { type: 'string' },
  reset: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};
// Flags that apply to some workloads only.
const LOADS = ['echo', 'http', 'rr', 'churn'];
const ONLY = {
  pipeline: ['echo', 'http', 'rr'],
  rate: [...LOADS, 'storm'],
  duration: [...LOADS, 'idle'],
  warmup: LOADS,
  workers: LOADS,
  size: ['echo', 'churn'],
  concurrency: ['storm'],
  header: ['http'],
  'unix-socket': ['http'],
  payload: ['rr'],
  'payload-file': ['rr'],
  'reply-length': ['rr'],
  'reply-delimiter': ['rr'],
};

function whole(value, flag, min) {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= MAX)) throw new UsageError(`--${flag} must be a whole number from ${min} to ${MAX}, got ${JSON.stringify(value)}`);
  return n;
}

function seconds(value, flag, min) {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= 86400) || (min > 0 && n === 0)) {
    throw new UsageError(`--${flag} must be a number of seconds ${min > 0 ? 'above 0' : 'from 0'} to 86400, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Decodes \r \n \t \\ and \xHH in a command-line text. */
export function unescape(text, flag) {
  return Buffer.from(
    text.replace(/\\(x[0-9a-fA-F]{2}|[rnt\\]|.?)/g, (_, c) => {
      if (c[0] === 'x') return String.fromCharCode(parseInt(c.slice(1), 16));
      const map = { r: '\r', n: '\n', t: '\t', '\\': '\\' };
      if (!(c in map)) throw new UsageError(`--${flag}: unknown escape "\\${c}" (known: \\r \\n \\t \\\\ \\xHH)`);
      return map[c];
    }),
    'latin1',
  );
}

/** Unknown long flags, each with the closest known one. */
function checkFlagNames(argv) {
  const known = Object.keys(OPTIONS);
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('--')) continue;
    const name = arg.slice(2).split('=')[0];
    if (known.includes(name)) continue;
    const hint = closest(name, known);
    throw new UsageError(`unknown flag --${name}${hint ? `; did you mean --${hint}?` : ''}`);
  }
}

/** A TCP address (HOST:PORT, [V6]:PORT) or a Unix socket path (anything with a "/"). */
export function parseAddress(text) {
  if (text.includes('/')) return { path: text.startsWith('unix:') ? text.slice(5) : text };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || !(port >= 1 && port <= 65535)) {
    throw new UsageError(`target must be HOST:PORT (port 1-65535), [IPV6]:PORT or a Unix socket path, got ${JSON.stringify(text)}`);
  }
  const host = match[1] ?? match[2];
  if (match[1] !== undefined && isIP(host) !== 6) throw new UsageError(`target: ${JSON.stringify(host)} is not an IPv6 address`);
  return { host, port };
}

function parseUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`http target must be a URL like http://127.0.0.1:8080/, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:') throw new UsageError(`http target: only http:// URLs are supported, got ${url.protocol}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { url, target: { host, port: url.port === '' ? 80 : Number(url.port) } };
}

/**
 * Parses argv (without node and the script) into the plain config a load
 * run takes. Throws UsageError.
 */
export function parseCliArgs(argv) {
  checkFlagNames(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  const [workload, targetText, ...extra] = positionals;
  if (workload === undefined) throw new UsageError(`a workload is needed: ${WORKLOADS.join(', ')}`);
  if (!WORKLOADS.includes(workload)) {
    const hint = closest(workload, WORKLOADS);
    throw new UsageError(`unknown workload "${workload}"${hint ? `; did you mean "${hint}"?` : ''} (known: ${WORKLOADS.join(', ')})`);
  }
  if (targetText === undefined) throw new UsageError(`${workload} needs a target`);
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  for (const [flag, owners] of Object.entries(ONLY)) {
    if (values[flag] !== undefined && !owners.includes(workload)) {
      throw new UsageError(`--${flag} applies to the ${owners.join(', ')} workload${owners.length > 1 ? 's' : ''} only`);
    }
  }

  const config = {
    workload,
    targetText,
    connections: values.connections === undefined ? 100 : whole(values.connections, 'connections', 1),
    pipeline: values.pipeline === undefined ? 1 : whole(values.pipeline, 'pipeline', 1),
    rate: values.rate === undefined ? 0 : whole(values.rate, 'rate', 1),
    duration: values.duration === undefined ? 10 : seconds(values.duration, 'duration', 0.001),
    warmup: values.warmup === undefined ? 1 : seconds(values.warmup, 'warmup', 0),
    workers: values.workers === undefined ? 1 : whole(values.workers, 'workers', 1),
    timeout: values.timeout === undefined ? 10 : seconds(values.timeout, 'timeout', 0.001),
    reset: values.reset ?? false,
    json: values.json ?? false,
  };
  if (config.workers > config.connections) {
    throw new UsageError(`--workers (${config.workers}) must not exceed --connections (${config.connections}): each worker needs one`);
  }
  if (workload === 'echo' || workload === 'churn') {
    config.target = parseAddress(targetText);
    config.size = values.size === undefined ? 64 : whole(values.size, 'size', 1);
  } else if (workload === 'storm' || workload === 'idle') {
    config.target = parseAddress(targetText);
    if (workload === 'storm') config.concurrency = values.concurrency === undefined ? 1 : whole(values.concurrency, 'concurrency', 1);
  } else if (workload === 'http') {
    const { url, target } = parseUrl(targetText);
    config.url = url.href;
    config.headers = values.header ?? [];
    for (const header of config.headers) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*$/.test(header)) throw new UsageError(`--header must be "Name: value", got ${JSON.stringify(header)}`);
    }
    config.target = values['unix-socket'] === undefined ? target : { path: values['unix-socket'] };
  } else {
    config.target = parseAddress(targetText);
    if ((values.payload === undefined) === (values['payload-file'] === undefined)) {
      throw new UsageError('rr needs one of --payload or --payload-file');
    }
    if ((values['reply-length'] === undefined) === (values['reply-delimiter'] === undefined)) {
      throw new UsageError('rr needs one of --reply-length or --reply-delimiter');
    }
    if (values.payload !== undefined) config.payload = unescape(values.payload, 'payload');
    else {
      try {
        config.payload = readFileSync(values['payload-file']);
      } catch (error) {
        throw new UsageError(`--payload-file: cannot read ${JSON.stringify(values['payload-file'])}: ${error.code ?? error.message}`);
      }
    }
    if (config.payload.length === 0) throw new UsageError('--payload must not be empty');
    if (values['reply-length'] !== undefined) config.replyLength = whole(values['reply-length'], 'reply-length', 1);
    else {
      config.replyDelimiter = unescape(values['reply-delimiter'], 'reply-delimiter');
      if (config.replyDelimiter.length === 0) throw new UsageError('--reply-delimiter must not be empty');
    }
  }
  return config;
}
