// The long-poll deployment for real: redis-server, the example, and nginx in
// front with examples/long-poll/nginx.conf, each started here on free
// loopback ports. 5,000 polls are held through nginx at once and each gets
// its own message exactly once. The default backend only: 5,000 polls per
// backend would cost minutes, and what is tested here is the deployment (the
// semantics run on every backend in long-poll.test.ts).
import { Agent } from 'node:http';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasNginx, hasRedis, poll, publish, type Redis, descriptorsOf, type Started, startExample, startNginx, startRedis, until } from './long-poll-helpers.js';

const POLLS = 5000;

/** Resolves with the results of fn over items, at most `limit` at a time. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const at = next++;
        results[at] = await fn(items[at]!);
      }
    }),
  );
  return results;
}

describe.skipIf(!hasRedis || !hasNginx)('long-poll behind nginx', () => {
  let redis: Redis;
  let server: Started;
  let nginx: Started;

  beforeAll(async () => {
    redis = await startRedis();
    server = await startExample(['--redis', redis.url, '--max-wait-ms', '60000']);
    nginx = await startNginx(server.port);
  });

  afterAll(async () => {
    await nginx?.stop();
    await server?.stop();
    await redis?.stop();
  });

  /** Keys left in Redis: messages kept for nobody, or delivered and kept too. */
  async function keysLeft(): Promise<number> {
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      return await client.dbSize();
    } finally {
      await client.close();
    }
  }

  it(`holds ${POLLS.toLocaleString('en')} concurrent polls through nginx; each gets its message exactly once`, { timeout: 60_000 }, async () => {
    const polls = new Agent({ keepAlive: true, maxSockets: Infinity });
    const publishers = new Agent({ keepAlive: true, maxSockets: 32 });
    try {
      const uids = Array.from({ length: POLLS }, (_, i) => `user-${i}`);
      const before = descriptorsOf(server.child.pid!);
      const replies = Promise.all(uids.map((uid) => poll(polls, nginx.port, uid)));
      // Every poll is held: nginx has a connection to the server for each.
      await until(() => descriptorsOf(server.child.pid!) >= before + POLLS, `the server holds ${POLLS} polls`, 30_000);
      const statuses = await mapLimited(uids, 32, (uid) => publish(publishers, nginx.port, uid, `message for ${uid}`));
      expect(statuses.every((status) => status === 202)).toBe(true);
      const got = await replies;
      const delivered = new Map<string, number>();
      got.forEach((reply, i) => {
        expect(reply.status).toBe(200);
        const body = reply.body.toString();
        expect(body).toBe(`message for ${uids[i]}`);
        delivered.set(body, (delivered.get(body) ?? 0) + 1);
      });
      expect(delivered.size).toBe(POLLS);
      expect([...delivered.values()].every((count) => count === 1)).toBe(true);
      expect(await keysLeft()).toBe(0);
    } finally {
      polls.destroy();
      publishers.destroy();
    }
  });
});
