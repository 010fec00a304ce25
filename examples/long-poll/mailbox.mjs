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

// A waiter's states: waiting; its maximum wait passed while a take for its user was in flight (that
// take answers it); answered or cancelled.
const WAITING = 0;
const EXPIRED = 1;
const GONE = 2;

/** The messages of users as bytes in Redis, and this process's polls waiting for them. */
export class Mailbox {
  #commands;
  #announcements;
  #log;
  #maxWaitMs;
  /**
   * Every waiter in the order its wait ends, which is the order the waits
   * began (they all last maxWaitMs), from #first on: one timer for the
   * first instead of one per waiter. Finished ones stay until they reach
   * the front, or until they are most of it.
   */
  #byDeadline = [];
  #first = 0;
  #timer = undefined;
  /** Waiters not answered nor cancelled. */
  #pending = 0;
  /** uid → the waiters for it here, oldest first. */
  #waiters = new Map();
  /** uid → { again } while a take (LPOP) for it is in flight. */
  #taking = new Map();
  /** Writes to Redis not answered yet (publishes, messages put back). */
  #writes = new Set();
  /** stopWaiting()'s promise, once called. */
  #stopped = undefined;
  #settled = undefined; // resolves #stopped once no take is in flight

  /**
   * Connects to Redis (a redis:// URL): one connection for commands, one
   * subscribed to the announcements. A wait lasts maxWaitMs at most.
   */
  static async open(url, { maxWaitMs, log = (line) => process.stderr.write(`${line}\n`) }) {
    // A Redis that cannot be reached at start is an error; once connected, a lost connection is retried.
    let started = false;
    const reconnectStrategy = (retries, cause) => (started ? Math.min(50 * 2 ** retries, 2000) : cause);
    // No command timeout: an LPOP given up on client-side may still have run, its message then lost;
    // a lost connection fails the commands in flight anyway. (It would cost an AbortSignal and a
    // timer per command, too.)
    const commandOptions = { timeout: 0 };
    const commands = createClient({ url, scripts: SCRIPTS, socket: { reconnectStrategy }, commandOptions }).withTypeMapping({
      [RESP_TYPES.BLOB_STRING]: Buffer,
    });
    const announcements = commands.duplicate();
    const mailbox = new Mailbox(commands, announcements, maxWaitMs, log);
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

  constructor(commands, announcements, maxWaitMs, log) {
    this.#commands = commands;
    this.#announcements = announcements;
    this.#maxWaitMs = maxWaitMs;
    this.#log = log;
  }

  /** True once stopWaiting() was called: the server is draining. */
  get stopped() {
    return this.#stopped !== undefined;
  }

  /** Polls held here now. */
  get waiting() {
    return this.#pending;
  }

  /**
   * Waits for uid's next message: answer(message: Buffer) once it is taken,
   * answer(null) after maxWaitMs (or once waits stopped). Returns
   * cancel(), for a client gone: answer is not called then, and nothing of
   * the wait is left but its place in the deadline order, dropped when it
   * comes first. cancel() after the answer does nothing.
   */
  wait(uid, answer) {
    if (this.#stopped !== undefined) {
      answer(null);
      return () => {};
    }
    const waiter = { uid, answer, deadline: performance.now() + this.#maxWaitMs, state: WAITING };
    this.#pending++;
    if (this.#byDeadline.length - this.#first > 2 * this.#pending + 1024) {
      this.#byDeadline = this.#byDeadline.filter((w, i) => i >= this.#first && w.state !== GONE);
      this.#first = 0;
    }
    this.#byDeadline.push(waiter);
    this.#timer ??= setTimeout(() => this.#expireDue(), this.#maxWaitMs);
    const queue = this.#waiters.get(uid);
    if (queue === undefined) this.#waiters.set(uid, [waiter]);
    else queue.push(waiter);
    this.#take(uid);
    return () => this.#remove(waiter);
  }

  /** Appends a message to uid's list and announces it; resolves once Redis has both. */
  publish(uid, message) {
    return this.#write(this.#commands.append(uid, message));
  }

  /**
   * Answers the held waits with null (one whose take is in flight gets what
   * the take brings) and every later wait at once, for a server that is
   * draining: publishing goes on. Resolves once no take is in flight.
   */
  stopWaiting() {
    return (this.#stopped ??= new Promise((resolve) => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#byDeadline = [];
      this.#first = 0;
      for (const [uid, queue] of this.#waiters) {
        if (this.#taking.has(uid)) for (const waiter of queue) waiter.state = EXPIRED;
        else for (const waiter of [...queue]) this.#finish(waiter, null);
      }
      this.#settled = resolve;
      if (this.#taking.size === 0) resolve();
    }));
  }

  /** stopWaiting(), then disconnects once the writes in flight are answered. */
  async close() {
    await this.stopWaiting();
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
    // Waiters whose wait ended during the take, and all of them once waits stopped.
    const left = this.#waiters.get(uid);
    if (left !== undefined) for (const waiter of left.filter((w) => w.state === EXPIRED)) this.#finish(waiter, null);
    if (this.#stopped !== undefined) {
      if (this.#taking.size === 0) this.#settled();
    } else if (message !== null || take.again) {
      this.#take(uid);
    }
  }

  // The waits that ended, in order; the timer then for the next one still waiting. (An answer may
  // start a wait, which may compact #byDeadline: it is read afresh each time.)
  #expireDue() {
    this.#timer = undefined;
    const now = performance.now();
    while (this.#first < this.#byDeadline.length) {
      const waiter = this.#byDeadline[this.#first];
      if (waiter.state === WAITING && waiter.deadline > now) {
        this.#timer = setTimeout(() => this.#expireDue(), waiter.deadline - now);
        break;
      }
      this.#byDeadline[this.#first++] = undefined;
      if (waiter.state !== WAITING) continue;
      if (this.#taking.has(waiter.uid)) waiter.state = EXPIRED;
      else this.#finish(waiter, null);
    }
    if (this.#first > 1024 && this.#first * 2 > this.#byDeadline.length) {
      this.#byDeadline = this.#byDeadline.slice(this.#first);
      this.#first = 0;
    }
  }

  #finish(waiter, message) {
    const answer = waiter.answer;
    this.#remove(waiter);
    answer(message);
  }

  #remove(waiter) {
    if (waiter.state === GONE) return;
    waiter.state = GONE;
    waiter.answer = undefined; // what it held (the response) is not kept until the wait would have ended
    this.#pending--;
    const queue = this.#waiters.get(waiter.uid);
    queue.splice(queue.indexOf(waiter), 1);
    if (queue.length === 0) this.#waiters.delete(waiter.uid);
  }
}
