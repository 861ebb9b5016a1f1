/**
 * The Redis ClusterServices against the real Redis of the test harness: the shared conformance
 * suite, then what only Redis promises: the bucket script survives SCRIPT FLUSH, buckets run on
 * the server's clock and expire when full again, one SUBSCRIBE per node and channel, keys under
 * the prefix, option validation and failures reported as RuntimeErrors.
 */
import { randomUUID } from 'node:crypto';

import { freePort, infra } from '@troupe/harness';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../../errors.js';
import { servicesConformance } from '../conformance.js';
import { openServices } from '../open.js';
import type { BucketLimit } from '../services.js';
import { RedisServices, type RedisServicesOptions } from './redis-services.js';

const run = randomUUID().slice(0, 8);
/** A key prefix of its own per fixture, so runs sharing the server never meet. */
const freshPrefix = (label: string): string => `troupe-test-${run}-${label}:`;

async function deleteKeys(keyPrefix: string): Promise<void> {
  const admin = new Redis(infra().redis.url);
  try {
    for await (const keys of admin.scanStream({ match: `${keyPrefix}*`, count: 1_000 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) await admin.del(...keys);
    }
  } finally {
    await admin.quit();
  }
}

servicesConformance('redis', async () => {
  const keyPrefix = freshPrefix('conformance');
  return {
    open: () => openServices({ kind: 'redis', url: infra().redis.url, keyPrefix }),
    cleanup: () => deleteKeys(keyPrefix),
  };
});

describe('RedisServices', () => {
  const keyPrefix = freshPrefix('services');
  const encoder = new TextEncoder();
  const bytes = (text: string) => encoder.encode(text);
  let admin: Redis;
  let services: RedisServices;

  beforeAll(async () => {
    admin = new Redis(infra().redis.url);
    services = await RedisServices.open({ url: infra().redis.url, keyPrefix });
  });

  afterAll(async () => {
    await services?.close();
    await deleteKeys(keyPrefix);
    await admin?.quit();
  });

  it('keeps taking and refunding after SCRIPT FLUSH drops the bucket script', async () => {
    const limit: BucketLimit = { capacity: 5, refillPerSecond: 1 / 3600 };
    expect(await services.rateLimiter.take('flushed', 2, limit)).toMatchObject({ granted: true, remaining: 3 });
    await admin.script('FLUSH');
    expect(await services.rateLimiter.take('flushed', 2, limit)).toMatchObject({ granted: true, remaining: 1 });
    await admin.script('FLUSH');
    await services.rateLimiter.refund('flushed', 4, limit);
    expect(await services.rateLimiter.take('flushed', 5, limit)).toMatchObject({ granted: true, remaining: 0 });
  });

  it('expires a bucket when it would be full again, deletes it once full, and stamps it with server time', async () => {
    const key = `${keyPrefix}bucket:idle`;
    // One token per second.
    const limit: BucketLimit = { capacity: 10, refillPerSecond: 1 };

    await services.rateLimiter.take('idle', 1, limit);
    const afterOne = await admin.pttl(key);
    expect(afterOne).toBeGreaterThan(0);
    expect(afterOne).toBeLessThanOrEqual(1_000);

    await services.rateLimiter.take('idle', 4, limit);
    const afterFive = await admin.pttl(key);
    expect(afterFive).toBeGreaterThan(3_000);
    expect(afterFive).toBeLessThanOrEqual(5_000);

    const [seconds, micros] = await admin.time();
    const at = Number(await admin.hget(key, 'at'));
    expect(Math.abs(Number(seconds) * 1000 + Number(micros) / 1000 - at)).toBeLessThan(5_000);

    await services.rateLimiter.refund('idle', 5, limit);
    expect(await admin.exists(key)).toBe(0);
  });

  it('holds one SUBSCRIBE per channel for all local subscribers, and releases it after the last leaves', async () => {
    const channel = `${keyPrefix}pubsub:shared`;
    const subscribers = async () => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];
    const first = await services.pubSub.subscribe('shared', () => undefined);
    const second = await services.pubSub.subscribe('shared', () => undefined);
    expect(await subscribers()).toBe(1);
    await first();
    expect(await subscribers()).toBe(1);
    await second();
    expect(await subscribers()).toBe(0);
  });

  it('keeps cached responses under the key prefix, with their ttl', async () => {
    await services.responseCache.set('prefixed', bytes('response'), 60_000);
    expect(await admin.getBuffer(`${keyPrefix}cache:prefixed`)).toEqual(Buffer.from('response'));
    expect(await admin.pttl(`${keyPrefix}cache:prefixed`)).toBeGreaterThan(50_000);
  });

  it('reports a command Redis refuses as a RuntimeError that is not retriable', async () => {
    await admin.set(`${keyPrefix}bucket:not-a-hash`, 'x');
    const error = await services.rateLimiter.take('not-a-hash', 1, { capacity: 1, refillPerSecond: 1 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: RuntimeErrorCode.Unavailable, retriable: false, message: expect.stringContaining('WRONGTYPE') });
  });

  it('fails to open when Redis is unreachable, retriably and with the connection error as cause', async () => {
    const port = await freePort();
    const error = await RedisServices.open({ url: `redis://127.0.0.1:${port}` }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: RuntimeErrorCode.Unavailable,
      retriable: true,
      cause: expect.objectContaining({ code: 'ECONNREFUSED' }),
    });
  });

  it.each([
    ['url', { url: '' }],
    ['url', { url: 'http://127.0.0.1:6379' }],
    ['url', { url: 42 as unknown as string }],
    ['keyPrefix', { url: 'redis://127.0.0.1:6379', keyPrefix: 7 as unknown as string }],
  ] satisfies [string, RedisServicesOptions][])('refuses an invalid %s option, naming it', async (key, options) => {
    await expect(RedisServices.open(options)).rejects.toMatchObject({
      code: RuntimeErrorCode.InvalidOptions,
      message: expect.stringContaining(`\`${key}\``),
    });
  });

  it('does not repeat a refused url, which may hold a password', async () => {
    const error = await RedisServices.open({ url: 'http://user:secret@127.0.0.1:6379' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: RuntimeErrorCode.InvalidOptions });
    expect((error as Error).message).not.toContain('secret');
  });
});
