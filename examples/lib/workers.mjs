// What the HTTP examples share for --workers N (N > 1): the primary binds the
// port and runs N worker processes of the same script with runWorkers()
// (README: Workers on every core), prints "listening PORT" once every one is
// ready and a line for each worker replaced; SIGHUP restarts them gracefully,
// SIGTERM/SIGINT drain them and exit.
// With one worker an example serves in its own process (what the benches
// measure).
import { runWorkers } from 'native-reactor';

/**
 * Starts `workers` copies of the script at `scriptUrl` with this command
 * line. Exits with the status of a worker that fails before it is ready.
 */
export async function startWorkers(name, scriptUrl, { workers, port, host }) {
  let service;
  try {
    service = runWorkers({ script: new URL(scriptUrl), args: process.argv.slice(2), workers, listen: { port, host }, handleSignals: true });
  } catch (error) {
    if (typeof error?.code !== 'string') throw error;
    process.stderr.write(`${name}: ${error.message} (${error.code})\n`); // EADDRINUSE...
    process.exit(1);
  }
  let status = 1;
  service.on('exit', ({ code, expected }) => {
    if (!expected && code) status = code;
  });
  service.on('error', (error) => process.stderr.write(`${name}: restart failed: ${error.message}\n`));
  service.on('restart', ({ index, pid, reason }) => process.stdout.write(`worker ${index} ${reason === 'crash' ? 'replaced after a crash' : 'restarted'}: pid ${pid}\n`));
  try {
    await service.ready;
  } catch (error) {
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(status);
  }
  process.stdout.write(`listening ${service.port}\n`);
  return service;
}
