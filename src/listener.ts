import type { Address } from './address.js';
import { ReactorError } from './errors.js';
import type { ProtocolFactory } from './protocol.js';
import type { TransportKin } from './transport.js';

/** @internal What a listener needs from its reactor. */
export interface ListenerHost {
  checkOpen(): void;
  closeListener(listener: Listener): void;
  /** [served and open, parked] */
  listenerCounts(listener: Listener): [number, number];
  stopAccepting(listener: Listener): void;
}

/** A listening socket. Accepted connections get their protocol from `factory`. */
export class Listener {
  #listening = true;

  /** @internal Only a reactor makes listeners (the constructor is private to the types). */
  static create(host: ListenerHost, id: number, factory: ProtocolFactory, transportKin: TransportKin, address: Address): Listener {
    return new Listener(host, id, factory, transportKin, address);
  }

  private constructor(
    private readonly host: ListenerHost,
    /** @internal native identity */ readonly id: number,
    /** @internal */ readonly factory: ProtocolFactory,
    /** @internal what its transports share: the reactor and their write limits */ readonly transportKin: TransportKin,
    /** Where it listens: the bound port when 0 was asked for; the path for Unix sockets. */
    readonly address: Address,
  ) {}

  get listening(): boolean {
    return this.#listening;
  }

  /** Connections of this listener being served now (0 once it is closed). */
  get connections(): number {
    return this.#listening ? this.host.listenerCounts(this)[0] : 0;
  }

  /** Connections parked over `maxConnections`, waiting for a slot (0 once it is closed). */
  get queued(): number {
    return this.#listening ? this.host.listenerCounts(this)[1] : 0;
  }

  /**
   * Takes no more connections without closing the socket: clients go on
   * queueing in its backlog for the other processes sharing it (a worker's
   * drain, workerContext()). Connections accepted already are served; close()
   * still ends it. Throws ERR_SERVER_NOT_RUNNING if closed.
   */
  stopAccepting(): void {
    this.host.checkOpen();
    if (!this.#listening) throw new ReactorError('ERR_SERVER_NOT_RUNNING', 'the listener is not listening');
    this.host.stopAccepting(this);
  }

  /**
   * Stops accepting (a Unix socket's path is removed, unless adopted). Open connections stay
   * open; parked ones are rejected with the queue's overflow policy. Throws
   * ERR_SERVER_NOT_RUNNING if already closed.
   */
  close(): void {
    this.host.checkOpen();
    if (!this.#listening) throw new ReactorError('ERR_SERVER_NOT_RUNNING', 'the listener is not listening');
    this.#listening = false;
    this.host.closeListener(this);
  }

  /** @internal the reactor closed it. */
  stopped(): void {
    this.#listening = false;
  }
}
