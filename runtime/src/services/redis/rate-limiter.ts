/**
 * The Redis RateLimiter: each bucket is one hash that a single Lua script refills, checks and
 * takes from (or refunds to) atomically on the server, by the server's clock, so every node
 * sees one bucket whatever its own clock says. The arithmetic is the embedded limiter's.
 */
import { createHash } from 'node:crypto';

import type { Redis } from 'ioredis';

import { checkBucketArguments } from '../embedded/rate-limiter.js';
import type { BucketLimit, RateLimiter, TakeResult } from '../services.js';

/**
 * KEYS[1] is a hash {tokens, at}: the tokens at `at`, in server ms. No hash means a full bucket,
 * so a write that fills the bucket deletes it and every other write expires it when it would be
 * full again: idle buckets hold no memory. ARGV: capacity, refill per second, amount, and
 * `take` or `refund`. Replies {granted 0|1, whole tokens left, ms until `amount` is there}.
 * Redis 5+ replicates a script's writes rather than the script, so reading TIME is allowed.
 */
const BUCKET_SCRIPT = `
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local tokens, at = capacity, now
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if stored[1] and stored[2] then
  local last = tonumber(stored[2])
  -- A server clock that stepped back (a failover) refills nothing rather than going negative.
  tokens = math.min(capacity, tonumber(stored[1]) + math.max(0, now - last) * refill / 1000)
  at = math.max(last, now)
end
local granted = 0
if ARGV[4] == 'refund' then
  tokens = math.min(capacity, tokens + amount)
elseif tokens >= amount then
  tokens = tokens - amount
  granted = 1
else
  return {0, math.floor(tokens), math.ceil((amount - tokens) * 1000 / refill)}
end
local fullInMs = math.ceil((capacity - tokens) * 1000 / refill)
if fullInMs <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
  redis.call('PEXPIRE', KEYS[1], fullInMs)
end
return {granted, math.floor(tokens), 0}
`;

const BUCKET_SCRIPT_SHA = createHash('sha1').update(BUCKET_SCRIPT).digest('hex');

type BucketReply = [granted: 0 | 1, remaining: number, retryAfterMs: number];

/**
 * Token buckets in Redis under `<keyPrefix>bucket:<key>`. Every call is one EVALSHA, falling
 * back to EVAL (which caches the script again) when the server has lost it to a restart,
 * failover or SCRIPT FLUSH.
 */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly client: Redis,
    private readonly keyPrefix: string,
  ) {}

  async take(key: string, amount: number, limit: BucketLimit): Promise<TakeResult> {
    checkBucketArguments('take', key, amount, limit);
    const [granted, remaining, retryAfterMs] = await this.run('take', key, amount, limit);
    return { granted: granted === 1, remaining, retryAfterMs };
  }

  async refund(key: string, amount: number, limit: BucketLimit): Promise<void> {
    checkBucketArguments('refund', key, amount, limit);
    await this.run('refund', key, amount, limit);
  }

  private async run(op: 'take' | 'refund', key: string, amount: number, limit: BucketLimit): Promise<BucketReply> {
    const args = [`${this.keyPrefix}bucket:${key}`, limit.capacity, limit.refillPerSecond, amount, op];
    try {
      return (await this.client.evalsha(BUCKET_SCRIPT_SHA, 1, ...args)) as BucketReply;
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return (await this.client.eval(BUCKET_SCRIPT, 1, ...args)) as BucketReply;
    }
  }
}
