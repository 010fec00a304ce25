// Errors carry a `code` like node:net's, so callers can branch on it.
import { getSystemErrorName } from 'node:util';

export class ReactorError extends Error {
  readonly code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'ReactorError';
    this.code = code;
  }
}

/** @internal */
export interface ErrorTarget {
  address?: string;
  port?: number;
}

/** @internal An error from a system call: `errno` is positive, as the native side reports it. */
export function systemError(errno: number, syscall: string, target: ErrorTarget = {}): ReactorError {
  const code = errno > 0 ? getSystemErrorName(-errno) : 'EUNKNOWN';
  let where = target.address ?? '';
  if (target.port !== undefined && target.port > 0) where += `:${target.port}`;
  const error = new ReactorError(code, `${syscall} ${code}${where ? ' ' + where : ''}`);
  error.errno = -errno;
  error.syscall = syscall;
  if (target.address !== undefined) error.address = target.address;
  if (target.port !== undefined) error.port = target.port;
  return error;
}

/** @internal A system error about a descriptor of the caller's (adopted or watched). */
export function descriptorError(errno: number, syscall: string, fd: number): ReactorError {
  const error = systemError(errno, syscall);
  error.message += ` (fd ${fd})`;
  return error;
}

/** @internal */
export const reactorClosed = (): ReactorError =>
  new ReactorError('ERR_REACTOR_CLOSED', 'the reactor is closed');

/** @internal */
export const socketClosed = (): ReactorError =>
  new ReactorError('ERR_SOCKET_CLOSED', 'the transport is closed');
