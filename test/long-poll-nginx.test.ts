// The long-poll deployment for real: redis-server, the example with two
// workers, and nginx in front with examples/long-poll/nginx.conf, each
// started here on free loopback ports. 5,000 polls are held through nginx at
// once and each gets its own message exactly once, also when the workers are
// restarted (SIGHUP) while the messages are published (the clients going
// again after a 204, as clients do; none meets a 502). The default backend only: 5,000 polls per
// backend would cost minutes, and what is tested here is the deployment (the
// semantics run on every backend in long-poll.test.ts).
import { readFileSync } from 'node:fs';
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
  // The server's descriptors before nginx connected: nginx keeps idle connections to reuse after a test.
  let baseline: number;

  beforeAll(async () => {
    redis = await startRedis();
    server = await startExample(['--redis', redis.url, '--workers', '2', '--max-wait-ms', '60000']);
    baseline = descriptorsOf(server.child.pid!);
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
      const replies = Promise.all(uids.map((uid) => poll(polls, nginx.port, uid)));
      replies.catch(() => undefined); // awaited below; a failure before must not go unhandled
      // Every poll is held: nginx has a connection to the server for each.
      await until(() => descriptorsOf(server.child.pid!) >= baseline + POLLS, `the server holds ${POLLS} polls`, 30_000);
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

  /** The pids of the primary's workers. */
  function workerPids(): string[] {
    const pid = server.child.pid!;
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').sort();
  }

  it(`restarting the workers (SIGHUP) while ${POLLS.toLocaleString('en')} polls are held and messages published loses nothing`, { timeout: 90_000 }, async () => {
    const polls = new Agent({ keepAlive: true, maxSockets: Infinity });
    const publishers = new Agent({ keepAlive: true, maxSockets: 32 });
    try {
      const uids = Array.from({ length: POLLS }, (_, i) => `restart-${i}`);
      const oldWorkers = workerPids();
      let again = 0;
      // As a client would: a poll answered 204 (its worker drained) goes again. No 502: a draining
      // worker answers with Connection: close rather than closing a connection under nginx.
      const receive = async (uid: string) => {
        for (;;) {
          const reply = await poll(polls, nginx.port, uid);
          if (reply.status === 200) return reply.body.toString();
          expect(reply.status).toBe(204);
          again++;
        }
      };
      const send = (uid: string) => publish(publishers, nginx.port, uid, `message for ${uid}`);
      const received = Promise.all(uids.map(receive));
      received.catch(() => undefined); // awaited below; a failure before must not go unhandled
      await until(() => descriptorsOf(server.child.pid!) >= baseline + POLLS, `the server holds ${POLLS} polls`, 30_000);
      // Published before the restart, during it (until every old worker has exited), and after.
      const statuses: number[] = [];
      let next = 0;
      const publishWhile = (more: () => boolean) =>
        Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < POLLS && more()) {
              statuses.push(await send(uids[next++]!));
            }
          }),
        );
      await publishWhile(() => next < POLLS / 5);
      server.child.kill('SIGHUP');
      let restarted = false;
      const restart = until(() => workerPids().every((pid) => !oldWorkers.includes(pid)), 'new workers only', 20_000).then(() => (restarted = true));
      const beforeRestart = next;
      await publishWhile(() => !restarted && next < (POLLS * 4) / 5);
      const duringRestart = next - beforeRestart;
      await restart;
      await publishWhile(() => true);
      expect(duringRestart).toBeGreaterThan(0);
      expect(statuses.filter((status) => status !== 202)).toEqual([]);
      const got = await received;
      got.forEach((body, i) => expect(body).toBe(`message for ${uids[i]}`));
      expect(new Set(got).size).toBe(POLLS);
      expect(await keysLeft()).toBe(0); // nothing stored twice, nothing left behind
      // Held polls were answered 204 by the draining workers and went again.
      expect(again).toBeGreaterThan(0);
    } finally {
      polls.destroy();
      publishers.destroy();
    }
  });
});
