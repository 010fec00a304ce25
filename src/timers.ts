import { ReactorError } from './errors.js';
import { validateDelay } from './validate.js';

/** @internal What a timer needs from its reactor. */
export interface TimerHost {
  timerCancel(call: DelayedCall): void;
  timerReset(call: DelayedCall, delayMs: number): void;
  timerKeepAlive(call: DelayedCall, keepAlive: boolean): void;
}

/** A pending call made by `reactor.callLater()`. */
export class DelayedCall {
  #active = true;
  #ref = true;

  /** @internal Only reactor.callLater() makes delayed calls (the constructor is private to the types). */
  static create(host: TimerHost, id: number, fn: (...args: unknown[]) => void, args: unknown[]): DelayedCall {
    return new DelayedCall(host, id, fn, args);
  }

  private constructor(
    private readonly host: TimerHost,
    /** @internal native identity */ public id: number,
    private readonly fn: (...args: unknown[]) => void,
    private readonly args: unknown[],
  ) {}

  /** True until the call runs or is cancelled. */
  get active(): boolean {
    return this.#active;
  }

  /** Stops the call from running. Returns false if it had already run or been cancelled. */
  cancel(): boolean {
    if (!this.#active) return false;
    this.host.timerCancel(this);
    this.#active = false;
    return true;
  }

  /** Moves the call to `ms` from now. Throws ERR_TIMER_NOT_ACTIVE once it has run or been cancelled. */
  reset(ms: number): void {
    const delay = validateDelay(ms, 'ms');
    if (!this.#active) throw new ReactorError('ERR_TIMER_NOT_ACTIVE', 'the call has already run or been cancelled');
    this.host.timerReset(this, delay);
  }

  /** Lets the process exit while this call is still pending, like `setTimeout(...).unref()`. */
  unref(): this {
    this.#keepAlive(false);
    return this;
  }

  /** Makes the pending call keep the process alive again (the default). */
  ref(): this {
    this.#keepAlive(true);
    return this;
  }

  hasRef(): boolean {
    return this.#ref;
  }

  #keepAlive(keepAlive: boolean): void {
    this.#ref = keepAlive;
    if (this.#active) this.host.timerKeepAlive(this, keepAlive);
  }

  /** @internal the reactor fires or drops the call. */
  fire(): void {
    this.#active = false;
    this.fn(...this.args);
  }

  /** @internal */
  deactivate(): void {
    this.#active = false;
  }
}
