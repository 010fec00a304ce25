// The long-poll example (examples/long-poll/server.mjs) against a real
// redis-server: what a poll and a publish answer, messages kept for users
// with no poll waiting, a client going away, bad requests, a message crossing
// from one worker to another, and exactly-once delivery when polls time out
// or are abandoned just as their messages are taken. Every backend; one
// redis-server for the file, each backend's users apart by name. Then the
// command line's errors.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reactor } from '../src/index.js';
import { runProcess } from './helpers.js';
import {
  abandonedPoll,
  descriptorsOf,
  exchange,
  freePort,
  hasRedis,
  poll,
  publish,
  type Redis,
  type Started,
  startExample,
  startRedis,
  until,
} from './long-poll-helpers.js';

const MAX_WAIT_MS = 300;

let redis: Redis;

beforeAll(async () => {
  if (hasRedis) redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

/** Every byte value, then a pattern: a message that must arrive byte for byte. */
function binaryMessage(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i + seed * 7) & 0xff;
  return bytes;
}

const jitter = (maxMs: number) => new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs));

/**
 * Publishes `perUser` messages to each user, one after another with a random
 * pause, while `receive(uid)` is called over and over for each user until all
 * its messages came; resolves with what each user received, in order.
 */
async function race(users: string[], perUser: number, send: (uid: string, message: string) => Promise<void>, receive: (uid: string) => Promise<string | null>) {
  const received = new Map<string, string[]>(users.map((uid) => [uid, []]));
  await Promise.all(
    users.flatMap((uid) => [
      (async () => {
        for (let i = 0; i < perUser; i++) {
          await jitter(12);
          await send(uid, `${uid}#${i}`);
        }
      })(),
      (async () => {
        const got = received.get(uid)!;
        while (got.length < perUser) {
          const message = await receive(uid);
          if (message !== null) got.push(message);
        }
      })(),
    ]),
  );
  return received;
}

describe.skipIf(!hasRedis).each(Reactor.backends)('long-poll example (%s)', (backend) => {
  let server: Started;
  let agent: Agent;
  const user = (name: string) => `${backend}-${name}`;

  beforeAll(async () => {
    server = await startExample(['--redis', redis.url, '--backend', backend, '--max-wait-ms', String(MAX_WAIT_MS)]);
    agent = new Agent({ keepAlive: true, maxSockets: 64 });
  });

  afterAll(async () => {
    agent?.destroy();
    expect(await server?.stop()).toBe(0);
  });

  it('a poll gets the message published for its user: 200, bytes intact', async () => {
    const message = binaryMessage(64 * 1024, 1);
    const held = poll(agent, server.port, user('a'));
    expect(await publish(agent, server.port, user('a'), message)).toBe(202);
    const reply = await held;
    expect(reply.status).toBe(200);
    expect(reply.body.equals(message)).toBe(true);
  });

  it('with no message the poll is answered 204 after the maximum wait', async () => {
    const started = Date.now();
    const reply = await poll(agent, server.port, user('nobody'));
    expect(reply.status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(MAX_WAIT_MS - 5);
  });

  it('messages for a user with no poll waiting are kept, in order, for its next polls', async () => {
    for (const text of ['one', 'two', 'three']) expect(await publish(agent, server.port, user('kept'), text)).toBe(202);
    const started = Date.now();
    for (const text of ['one', 'two', 'three']) {
      const reply = await poll(agent, server.port, user('kept'));
      expect([reply.status, reply.body.toString()]).toEqual([200, text]);
    }
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS);
    expect((await poll(agent, server.port, user('kept'))).status).toBe(204);
  });

  it('a client that goes away cancels its wait at once: no answer, and the next message is kept for the next poll', async () => {
    const pid = server.child.pid!;
    const before = descriptorsOf(pid);
    const abandoned = Array.from({ length: 20 }, () => abandonedPoll(server.port, user('gone')));
    await until(() => descriptorsOf(pid) >= before + 20, 'the server holds the 20 polls', 5000);
    const left = Date.now();
    for (const one of abandoned) one.leave();
    for (const one of abandoned) expect(await one.reply).toBeNull();
    expect(Date.now() - left).toBeLessThan(MAX_WAIT_MS);
    expect(await publish(agent, server.port, user('gone'), 'after')).toBe(202);
    const reply = await poll(agent, server.port, user('gone'));
    expect([reply.status, reply.body.toString()]).toEqual([200, 'after']);
  });

  it('bad requests: 400 (no uid, too long), 404, 405, 413', async () => {
    const status = async (method: 'GET' | 'POST', path: string, body?: Buffer) => (await exchange(agent, server.port, method, path, body)).status;
    expect(await status('GET', '/poll')).toBe(400);
    expect(await status('GET', '/poll?uid=')).toBe(400);
    expect(await status('GET', `/poll?uid=${'u'.repeat(257)}`)).toBe(400);
    expect(await status('POST', '/publish', Buffer.from('x'))).toBe(400);
    expect(await status('GET', '/elsewhere?uid=a')).toBe(404);
    expect(await status('POST', `/poll?uid=${user('bad')}`, Buffer.from('x'))).toBe(405);
    expect(await status('GET', `/publish?uid=${user('bad')}`)).toBe(405);
    expect(await status('POST', `/publish?uid=${user('bad')}`, Buffer.alloc(64 * 1024 + 1))).toBe(413);
    expect((await poll(agent, server.port, user('bad'))).status).toBe(204); // nothing was kept
  });

  it('with --workers 2, polls held by one worker get messages published through the other', async () => {
    const pair = await startExample(['--redis', redis.url, '--backend', backend, '--workers', '2', '--max-wait-ms', '10000']);
    // A connection each: SO_REUSEPORT spreads them over the workers by address hash.
    const fresh = new Agent({ keepAlive: false, maxSockets: Infinity });
    try {
      const pid = pair.child.pid!;
      const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
      expect(workers).toHaveLength(2);
      const before = workers.map(descriptorsOf);
      const uids = Array.from({ length: 40 }, (_, i) => user(`cross-${i}`));
      const replies = Promise.all(uids.map((uid) => poll(fresh, pair.port, uid)));
      replies.catch(() => undefined); // awaited below
      const held = () => workers.map((worker, i) => descriptorsOf(worker) - before[i]!);
      // Both workers hold polls; the 40 publishes land on either, so (but for odds of 2^-40) some
      // message goes through the worker that does not hold its poll.
      await until(() => held().every((count) => count > 0) && held()[0]! + held()[1]! >= uids.length, 'both workers hold polls', 5000);
      for (const uid of uids) expect(await publish(fresh, pair.port, uid, `for ${uid}`)).toBe(202);
      const got = await replies;
      expect(got.map((reply) => [reply.status, reply.body.toString()])).toEqual(uids.map((uid) => [200, `for ${uid}`]));
    } finally {
      fresh.destroy();
      expect(await pair.stop()).toBe(0);
    }
  });

  const expected = (uid: string, count: number) => Array.from({ length: count }, (_, i) => `${uid}#${i}`);

  it('polls timing out just as their messages are taken: every message delivered once, in order', async () => {
    const quick = await startExample(['--redis', redis.url, '--backend', backend, '--max-wait-ms', '8']);
    const quickAgent = new Agent({ keepAlive: true, maxSockets: 64 });
    try {
      const users = Array.from({ length: 20 }, (_, i) => user(`timeout-race-${i}`));
      let timedOut = 0;
      const received = await race(
        users,
        50,
        async (uid, message) => expect(await publish(quickAgent, quick.port, uid, message)).toBe(202),
        async (uid) => {
          const reply = await poll(quickAgent, quick.port, uid);
          if (reply.status === 204) timedOut++;
          else expect(reply.status).toBe(200);
          return reply.status === 200 ? reply.body.toString() : null;
        },
      );
      for (const uid of users) expect(received.get(uid)).toEqual(expected(uid, 50));
      expect(timedOut).toBeGreaterThan(100); // the race was run: many polls ended empty
      for (const uid of users) expect((await poll(quickAgent, quick.port, uid)).status).toBe(204); // nothing left twice
    } finally {
      quickAgent.destroy();
      await quick.stop();
    }
  });

  it('polls abandoned just as their messages are taken: every message delivered once, in order', async () => {
    const users = Array.from({ length: 10 }, (_, i) => user(`abort-race-${i}`));
    let abandoned = 0;
    const received = await race(
      users,
      30,
      async (uid, message) => expect(await publish(agent, server.port, uid, message)).toBe(202),
      async (uid) => {
        const attempt = abandonedPoll(server.port, uid);
        const timer = setTimeout(attempt.leave, Math.random() * 10);
        const reply = await attempt.reply;
        clearTimeout(timer);
        if (reply === null) abandoned++;
        else expect(reply.status).toBe(200);
        return reply === null ? null : reply.body.toString();
      },
    );
    for (const uid of users) expect(received.get(uid)).toEqual(expected(uid, 30));
    expect(abandoned).toBeGreaterThan(30);
    for (const uid of users) expect((await poll(agent, server.port, uid)).status).toBe(204);
  });
});

describe('long-poll example command line', () => {
  const run = (args: string[]) => runProcess(process.execPath, ['examples/long-poll/server.mjs', ...args], 10_000);

  it('refuses a bad option with status 2, saying which', async () => {
    const cases: [string[], string][] = [
      [[], '--redis redis://HOST:PORT is required'],
      [['--redis', 'localhost:6379'], '--redis must be a redis:// URL'],
      [['--redis', 'redis://127.0.0.1:1', '--max-wait-ms', '0'], '--max-wait-ms must be a whole number from 1'],
      [['--redis', 'redis://127.0.0.1:1', '--workers', 'two'], '--workers must be a whole number from 1 to 1024'],
      [['--redis', 'redis://127.0.0.1:1', '--max-wait'], "Unknown option '--max-wait'"],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect([result.code, result.stderr]).toEqual([2, expect.stringContaining(message)]);
    }
  });

  it('exits with status 1 when Redis cannot be reached at start', async () => {
    const result = await run(['--redis', `redis://127.0.0.1:${await freePort()}`]);
    expect([result.code, result.stderr]).toEqual([1, expect.stringContaining('ECONNREFUSED')]);
  });
});
