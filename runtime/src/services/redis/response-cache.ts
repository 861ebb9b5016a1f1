/**
 * The Redis ResponseCache: one string key per response, written with SET … PX so Redis expires
 * it and evicts under its own `maxmemory` policy, and read back as bytes.
 */
import type { Redis } from 'ioredis';

import { checkCacheArguments } from '../embedded/response-cache.js';
import type { ResponseCache } from '../services.js';

/** Responses in Redis under `<keyPrefix>cache:<key>`, shared by every node. */
export class RedisResponseCache implements ResponseCache {
  constructor(
    private readonly client: Redis,
    private readonly keyPrefix: string,
  ) {}

  async get(key: string): Promise<Uint8Array | undefined> {
    checkCacheArguments('get', key);
    return (await this.client.getBuffer(`${this.keyPrefix}cache:${key}`)) ?? undefined;
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    checkCacheArguments('set', key, value, ttlMs);
    // A copy: while disconnected ioredis queues the command, and the caller may reuse its buffer meanwhile.
    await this.client.set(`${this.keyPrefix}cache:${key}`, Buffer.from(value), 'PX', ttlMs);
  }
}
