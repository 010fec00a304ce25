// Each user's messages, kept in Redis, and the polls this process holds
// waiting for them. Any number of processes share one Redis.
//
// A user's messages are a Redis list; publishing appends one and, in the same
// script, announces the user on one channel every process subscribes to. A
// poll registers its waiter here first, then tries to take (LPOP) a message;
// an announcement for a user with a waiter here tries again. Only a
// successful take answers a waiter, so a message leaves Redis exactly once:
// - one take per user at a time; an announcement during it asks for another
//   (the list may have grown after the LPOP ran);
// - a waiter whose maximum wait passes while a take for its user is in
//   flight is answered by that take: its message, or nothing once it came
//   back empty;
// - a waiter whose client went away is removed at once; a message taken for
//   it when no other waiter is left goes back to the head of the list (and
//   is announced again, for a poll held by another process) before the next
//   take for that user, so a user's messages keep their order.
// What remains is a process dying between LPOP and answering: that one
// message is lost (LMOVE to a per-process list, acknowledged after the write,
// would cover it, at one more round trip per message).
import { createClient, defineScript, RESP_TYPES } from 'redis';

const CHANNEL = 'long-poll:ready';
const inboxOf = (uid) => `long-poll:inbox:${uid}`;

// Appends (RPUSH) or puts back (LPUSH) a message, then announces its user.
const storeAndAnnounce = (push) =>
  defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: `redis.call('${push}', KEYS[1], ARGV[1]); return redis.call('PUBLISH', ARGV[2], ARGV[3])`,
    parseCommand(parser, uid, message) {
      parser.pushKey(inboxOf(uid));
      parser.push(message, CHANNEL, uid);
    },
    transformReply: undefined,
  });

const SCRIPTS = { append: storeAndAnnounce('RPUSH'), putBack: storeAndAnnounce('LPUSH') };

/** The messages of users as bytes in Redis, and this process's polls waiting for them. */
export class Mailbox {
  #commands;
  #announcements;
  #log;
  /** uid → the waiters for it here, oldest first. */
  #waiters = new Map();
  /** uid → { again } while a take (LPOP) for it is in flight. */
  #taking = new Map();
  /** Writes to Redis not answered yet (publishes, messages put back). */
  #writes = new Set();
  #closing = false;
  #settled = undefined; // resolves once no take is in flight, while closing

  /** Connects to Redis (a redis:// URL): one connection for commands, one subscribed to the announcements. */
  static async open(url, { log = (line) => process.stderr.write(`${line}\n`) } = {}) {
    // A Redis that cannot be reached at start is an error; once connected, a lost connection is retried.
    let started = false;
    const reconnectStrategy = (retries, cause) => (started ? Math.min(50 * 2 ** retries, 2000) : cause);
    const commands = createClient({ url, scripts: SCRIPTS, socket: { reconnectStrategy } }).withTypeMapping({
      [RESP_TYPES.BLOB_STRING]: Buffer,
    });
    const announcements = commands.duplicate();
    const mailbox = new Mailbox(commands, announcements, log);
    for (const client of [commands, announcements]) client.on('error', (error) => started && log(`redis: ${error.message}`));
    try {
      await Promise.all([commands.connect(), announcements.connect()]);
    } catch (error) {
      await Promise.allSettled([commands.destroy(), announcements.destroy()]);
      throw error;
    }
    started = true;
    await announcements.subscribe(CHANNEL, (uid) => mailbox.#take(uid));
    // After a reconnection, announcements sent meanwhile are gone: look again for every waiting user.
    announcements.on('ready', () => {
      for (const uid of mailbox.#waiters.keys()) mailbox.#take(uid);
    });
    return mailbox;
  }

  constructor(commands, announcements, log) {
    this.#commands = commands;
    this.#announcements = announcements;
    this.#log = log;
  }

  /** Polls held here now. */
  get waiting() {
    let count = 0;
    for (const queue of this.#waiters.values()) count += queue.length;
    return count;
  }

  /**
   * Waits for uid's next message: answer(message: Buffer) once it is taken,
   * answer(null) after maxWaitMs (or when the mailbox closes). Once signal
   * aborts, answer is never called and nothing of the wait is left.
   */
  wait(uid, maxWaitMs, signal, answer) {
    if (this.#closing) {
      answer(null);
      return;
    }
    const waiter = { uid, answer, signal, timer: undefined, expired: false, onAbort: undefined };
    waiter.timer = setTimeout(() => this.#expire(waiter), maxWaitMs);
    waiter.onAbort = () => this.#remove(waiter);
    signal.addEventListener('abort', waiter.onAbort, { once: true });
    const queue = this.#waiters.get(uid);
    if (queue === undefined) this.#waiters.set(uid, [waiter]);
    else queue.push(waiter);
    this.#take(uid);
  }

  /** Appends a message to uid's list and announces it; resolves once Redis has both. */
  publish(uid, message) {
    return this.#write(this.#commands.append(uid, message));
  }

  /**
   * Stops taking waits, answers the held ones with null once no take is in
   * flight (a take in flight still delivers its message), waits for the
   * writes, and disconnects.
   */
  async close() {
    if (this.#closing) return;
    this.#closing = true;
    for (const [uid, queue] of this.#waiters) {
      if (this.#taking.has(uid)) for (const waiter of queue) waiter.expired = true;
      else for (const waiter of [...queue]) this.#finish(waiter, null);
    }
    if (this.#taking.size > 0) await new Promise((resolve) => (this.#settled = resolve));
    await Promise.allSettled([...this.#writes]);
    await Promise.allSettled([this.#announcements.close(), this.#commands.close()]);
  }

  #write(promise) {
    this.#writes.add(promise);
    const forget = () => this.#writes.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #take(uid) {
    const inFlight = this.#taking.get(uid);
    if (inFlight !== undefined) {
      inFlight.again = true;
      return;
    }
    if (!this.#waiters.has(uid)) return;
    const take = { again: false };
    this.#taking.set(uid, take);
    this.#commands.lPop(inboxOf(uid)).then(
      (message) => this.#taken(uid, take, message),
      (error) => {
        this.#log(`redis: LPOP for ${uid} failed: ${error.message}`);
        this.#taken(uid, take, null);
      },
    );
  }

  #taken(uid, take, message) {
    const queue = this.#waiters.get(uid);
    if (message !== null && queue === undefined) {
      // Every waiter went away during the take. The take lasts until the message is back at the
      // head: a poll arriving meanwhile must not take the one after it first.
      this.#write(this.#commands.putBack(uid, message)).then(
        () => this.#taken(uid, take, null),
        (error) => {
          this.#log(`redis: a message for ${uid} could not be put back (${error.message}); it is lost`);
          this.#taken(uid, take, null);
        },
      );
      return;
    }
    this.#taking.delete(uid);
    if (message !== null) this.#finish(queue[0], message);
    // Waiters whose wait ended during the take, and all of them when closing.
    const left = this.#waiters.get(uid);
    if (left !== undefined) for (const waiter of left.filter((w) => w.expired)) this.#finish(waiter, null);
    if (this.#closing) {
      if (this.#taking.size === 0) this.#settled?.();
    } else if (message !== null || take.again) {
      this.#take(uid);
    }
  }

  #expire(waiter) {
    waiter.timer = undefined;
    if (this.#taking.has(waiter.uid)) waiter.expired = true;
    else this.#finish(waiter, null);
  }

  #finish(waiter, message) {
    this.#remove(waiter);
    waiter.answer(message);
  }

  #remove(waiter) {
    const queue = this.#waiters.get(waiter.uid);
    if (queue === undefined) return;
    const at = queue.indexOf(waiter);
    if (at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.#waiters.delete(waiter.uid);
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    waiter.signal.removeEventListener('abort', waiter.onAbort);
  }
}
