// Socket activation: the descriptors systemd (or anything speaking its
// protocol) passes a service, for reactor.adoptListener().
import { ReactorError } from './errors.js';
import { show, validateBoolean, validateKeys, validateObject } from './validate.js';

/** The first passed descriptor (sd-daemon's SD_LISTEN_FDS_START). */
export const SD_LISTEN_FDS_START = 3;

export interface SystemdListenFdsOptions {
  /**
   * Remove LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the environment
   * read (whatever it held), so child processes do not see them: what
   * sd_listen_fds(1) does. Default false.
   */
  unset?: boolean | undefined;
}

/**
 * The descriptors passed by socket activation, as sd_listen_fds() reads them:
 * LISTEN_FDS descriptors from fd 3 on, when LISTEN_PID is this process.
 * Returns [] when the variables are absent or name another process (a parent
 * that passed its environment on). A malformed value throws
 * ERR_INVALID_ARG_VALUE. Reads `env`, by default process.env.
 */
export function systemdListenFds(
  env: Record<string, string | undefined> = process.env,
  options: SystemdListenFdsOptions = {},
): number[] {
  validateObject(env, 'env');
  validateObject(options, 'options');
  validateKeys(options, 'options', ['unset']);
  const unset = validateBoolean(options.unset ?? false, 'options.unset');
  const pid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  if (unset) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (pid === undefined || count === undefined) return [];
  if (!/^[0-9]+$/.test(pid)) throw malformed('LISTEN_PID', pid);
  if (!/^[0-9]+$/.test(count) || Number(count) > 0x7fffffff - SD_LISTEN_FDS_START) throw malformed('LISTEN_FDS', count);
  if (Number(pid) !== process.pid) return [];
  return Array.from({ length: Number(count) }, (_, i) => SD_LISTEN_FDS_START + i);
}

function malformed(name: string, value: unknown): ReactorError {
  return new ReactorError('ERR_INVALID_ARG_VALUE', `$${name} must be a decimal number, got ${JSON.stringify(show(value))}`);
}
