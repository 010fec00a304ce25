// Connect timeouts and cancellation: the options connectTCP/connectUnix take
// besides the address, validated, and the errors they end a connect with.
import { ReactorError } from './errors.js';
import { invalidType } from './validate.js';
import { validateMs } from './limits.js';

export interface ConnectOptions {
  /**
   * A connect not completed this many milliseconds after it is dialled (the
   * name already resolved) fails with ETIMEDOUT. Default 0: only the
   * system's own limit (minutes).
   */
  timeoutMs?: number | undefined;
  /**
   * Aborting it cancels a pending connect (or name lookup): the promise
   * rejects with ABORT_ERR and the descriptor is closed. Once connected, the
   * signal no longer applies.
   */
  signal?: AbortSignal | undefined;
}

/** @internal */
export const CONNECT_KEYS = ['timeoutMs', 'signal'] as const;

/** @internal */
export interface ConnectLimits {
  timeoutMs: number;
  signal: AbortSignal | undefined;
}

/** @internal */
export function parseConnectOptions(options: ConnectOptions): ConnectLimits {
  const timeoutMs = validateMs(options.timeoutMs ?? 0, 'timeoutMs');
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidType('signal', 'an AbortSignal', signal);
  return { timeoutMs, signal };
}

/** @internal Throws ABORT_ERR if the signal is aborted already. */
export function checkNotAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** @internal What a cancelled connect rejects with; `cause` is the signal's reason. */
export function abortError(signal: AbortSignal): ReactorError {
  const error = new ReactorError('ABORT_ERR', 'the connect was aborted');
  error.cause = signal.reason;
  return error;
}
