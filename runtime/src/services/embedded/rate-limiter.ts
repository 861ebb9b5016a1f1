/**
 * The in-process RateLimiter: token buckets in a Map, refilled by elapsed time on an injected
 * clock. Its arithmetic is the Redis script's (redis/rate-limiter.ts), and its argument rules
 * are the ones both implementations enforce.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { BucketLimit, RateLimiter, TakeResult } from '../services.js';

/** A bucket's tokens at a moment (clock ms). */
interface Level {
  tokens: number;
  at: number;
}

/** A bucket as last written; one that would be full by now is equal to no bucket at all. */
interface Bucket extends Level {
  /** When the bucket will be full again, so idle ones can be dropped without knowing their limit. */
  fullAt: number;
}

/** Buckets kept before the first sweep of full ones. */
const MIN_SWEEP_SIZE = 1_024;

/**
 * Refuses arguments no bucket can honour, naming the argument. Shared by both RateLimiters so
 * they refuse the same calls.
 */
export function checkBucketArguments(method: 'take' | 'refund', key: string, amount: number, limit: BucketLimit): void {
  const refuse = (argument: string, rule: string, value: unknown) =>
    new RuntimeError(RuntimeErrorCode.InvalidArgument, `RateLimiter.${method}: \`${argument}\` ${rule}, got ${shown(value)}`);
  if (typeof key !== 'string' || key === '') throw refuse('key', 'must be a non-empty string', key);
  if (typeof limit !== 'object' || limit === null) throw refuse('limit', 'must be a { capacity, refillPerSecond } object', limit);
  if (!isPositive(limit.capacity)) throw refuse('limit.capacity', 'must be a finite number > 0', limit.capacity);
  if (!isPositive(limit.refillPerSecond)) throw refuse('limit.refillPerSecond', 'must be a finite number > 0', limit.refillPerSecond);
  // More than the capacity could never be granted: a caller would wait forever.
  if (!isPositive(amount) || amount > limit.capacity) {
    throw refuse('amount', `must be a number > 0 and ≤ limit.capacity (${limit.capacity})`, amount);
  }
}

/** A value as an error message shows it: strings quoted, NaN and undefined as themselves. */
export function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function isPositive(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

/**
 * Token buckets for one process. Calls are atomic because they never yield between reading and
 * writing a bucket. Buckets that have refilled completely are dropped, on write and by an
 * occasional sweep, so idle keys cost nothing for long.
 */
export class EmbeddedRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private sweepAt = MIN_SWEEP_SIZE;

  /** @param clock unix ms; a test injects its own to step time. */
  constructor(private readonly clock: () => number) {}

  async take(key: string, amount: number, limit: BucketLimit): Promise<TakeResult> {
    checkBucketArguments('take', key, amount, limit);
    const now = this.clock();
    const bucket = this.current(key, limit, now);
    if (bucket.tokens < amount) {
      return {
        granted: false,
        remaining: Math.floor(bucket.tokens),
        retryAfterMs: Math.ceil(((amount - bucket.tokens) * 1000) / limit.refillPerSecond),
      };
    }
    bucket.tokens -= amount;
    this.store(key, bucket, limit, now);
    return { granted: true, remaining: Math.floor(bucket.tokens), retryAfterMs: 0 };
  }

  async refund(key: string, amount: number, limit: BucketLimit): Promise<void> {
    checkBucketArguments('refund', key, amount, limit);
    const now = this.clock();
    const bucket = this.current(key, limit, now);
    bucket.tokens = Math.min(limit.capacity, bucket.tokens + amount);
    this.store(key, bucket, limit, now);
  }

  /** The bucket refilled up to `now`; a clock that stepped back refills nothing. */
  private current(key: string, limit: BucketLimit, now: number): Level {
    const stored = this.buckets.get(key);
    if (stored === undefined) return { tokens: limit.capacity, at: now };
    const elapsed = Math.max(0, now - stored.at);
    return {
      tokens: Math.min(limit.capacity, stored.tokens + (elapsed * limit.refillPerSecond) / 1000),
      at: Math.max(stored.at, now),
    };
  }

  private store(key: string, bucket: Level, limit: BucketLimit, now: number): void {
    const fullInMs = Math.ceil(((limit.capacity - bucket.tokens) * 1000) / limit.refillPerSecond);
    if (fullInMs <= 0) {
      this.buckets.delete(key);
      return;
    }
    this.buckets.set(key, { tokens: bucket.tokens, at: bucket.at, fullAt: bucket.at + fullInMs });
    if (this.buckets.size >= this.sweepAt) this.sweep(now);
  }

  // Doubling the threshold keeps sweeps amortised O(1) per write however many buckets stay live.
  private sweep(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.fullAt <= now) this.buckets.delete(key);
    this.sweepAt = Math.max(MIN_SWEEP_SIZE, this.buckets.size * 2);
  }
}
