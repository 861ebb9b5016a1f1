/**
 * The Redis ClusterServices (ioredis): token buckets, the response cache and pub/sub fan-out
 * shared by every node of a cluster. Each instance holds two connections: one for commands,
 * and one that pub/sub keeps in subscriber mode.
 */
import { Redis } from 'ioredis';

import { RuntimeError, RuntimeErrorCode, toError } from '../../errors.js';
import { shown } from '../embedded/rate-limiter.js';
import type { ClusterServices, PubSub, RateLimiter, ResponseCache } from '../services.js';
import { RedisPubSub } from './pub-sub.js';
import { RedisRateLimiter } from './rate-limiter.js';
import { RedisResponseCache } from './response-cache.js';

/** Options of {@link RedisServices}. */
export interface RedisServicesOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS (required). */
  url: string;
  /**
   * Starts every key and channel, so that several deployments can share one Redis. Default
   * `troupe:`. Buckets are `<prefix>bucket:<key>`, responses `<prefix>cache:<key>` and
   * channels `<prefix>pubsub:<channel>`.
   */
  keyPrefix?: string;
}

/** The defaults of {@link RedisServicesOptions}. */
export const REDIS_SERVICES_DEFAULTS = {
  keyPrefix: 'troupe:',
} satisfies Required<Omit<RedisServicesOptions, 'url'>>;

/** Server replies that say "not now" rather than "never": the same command may succeed later. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|OOM)\b/;

/**
 * ClusterServices on Redis. Open it with {@link RedisServices.open}; every failure it reports is
 * a RuntimeError: INVALID_OPTIONS for bad options or arguments, CLOSED after `close()`, and
 * TURN_FAILED for a failed Redis command (`retriable` unless Redis refused the command itself).
 *
 * @example
 * const services = await RedisServices.open({ url: 'redis://redis:6379' });
 * const { granted, retryAfterMs } = await services.rateLimiter.take('openai/gpt-4o:rpm', 1, { capacity: 500, refillPerSecond: 500 / 60 });
 */
export class RedisServices implements ClusterServices {
  readonly kind = 'redis';
  readonly rateLimiter: RateLimiter;
  readonly responseCache: ResponseCache;
  readonly pubSub: PubSub;
  /** `pubSub` without the boundary, for `close()` to stop its deliveries. */
  private readonly rawPubSub: RedisPubSub;
  private closed = false;

  /**
   * Connects both connections, failing (with the connection error as `cause`) when Redis is
   * unreachable rather than queueing commands for later. Options are validated first; a bad
   * one fails with INVALID_OPTIONS naming it.
   */
  static async open(options: RedisServicesOptions): Promise<RedisServices> {
    const resolved = resolveOptions(options);
    const client = new Redis(resolved.url, { lazyConnect: true });
    const subscriber = client.duplicate();
    const connections = [client, subscriber];
    // connect() rejects with a bare "Connection is closed."; the 'error' event says why.
    let failure: unknown;
    const remember = (error: unknown): void => {
      failure = error;
    };
    for (const connection of connections) connection.on('error', remember);
    try {
      await Promise.all(connections.map((connection) => connection.connect()));
    } catch (error) {
      // Without this ioredis would keep reconnecting in the background for a caller that gave up.
      for (const connection of connections) connection.disconnect();
      throw redisError(`connect to ${new URL(resolved.url).host}`, failure ?? error);
    }
    // ioredis reports every failed reconnect as an 'error' event, and logs it as unhandled when no
    // one listens; the commands themselves fail with the cause, so the events need only be heard.
    return new RedisServices(client, subscriber, resolved.keyPrefix);
  }

  private constructor(
    private readonly client: Redis,
    private readonly subscriber: Redis,
    keyPrefix: string,
  ) {
    const rateLimiter = new RedisRateLimiter(client, keyPrefix);
    const responseCache = new RedisResponseCache(client, keyPrefix);
    const pubSub = new RedisPubSub(client, subscriber, keyPrefix);
    this.rawPubSub = pubSub;
    this.rateLimiter = {
      take: (key, amount, limit) => this.call('take', () => rateLimiter.take(key, amount, limit)),
      refund: (key, amount, limit) => this.call('refund', () => rateLimiter.refund(key, amount, limit)),
    };
    this.responseCache = {
      get: (key) => this.call('get', () => responseCache.get(key)),
      set: (key, value, ttlMs) => this.call('set', () => responseCache.set(key, value, ttlMs)),
    };
    this.pubSub = {
      publish: (channel, message) => this.call('publish', () => pubSub.publish(channel, message)),
      subscribe: (channel, onMessage) =>
        this.call('subscribe', async () => {
          const unsubscribe = await pubSub.subscribe(channel, onMessage);
          // Closing ended deliveries already; the connection's subscriptions end with it.
          return async () => {
            if (!this.closed) await this.call('unsubscribe', unsubscribe);
          };
        }),
    };
  }

  /**
   * Stops deliveries at once, then closes both connections once the commands in flight have
   * their replies. Later calls fail with CLOSED. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rawPubSub.close();
    await Promise.all(
      [this.client, this.subscriber].map(async (connection) => {
        // QUIT would wait in the offline queue for a reconnect that may never come.
        if (connection.status === 'ready') await connection.quit();
        else connection.disconnect();
      }),
    );
  }

  /** The boundary: refuses work once closed and turns what ioredis throws into a RuntimeError. */
  private async call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    try {
      return await work();
    } catch (error) {
      if (error instanceof RuntimeError) throw error;
      if (this.closed) throw closedError(error);
      throw redisError(operation, error);
    }
  }
}

function closedError(cause?: unknown): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.Closed, 'the redis cluster services are closed', { cause });
}

/**
 * A failed Redis command. TURN_FAILED because the runtime has no code of its own for an
 * unavailable or failing dependency; the store reports Cassandra's failures the same way.
 */
function redisError(operation: string, thrown: unknown): RuntimeError {
  const error = toError(thrown);
  const refused = error.name === 'ReplyError' && !TRANSIENT_REPLY.test(error.message);
  return new RuntimeError(RuntimeErrorCode.Unavailable, `redis ${operation}: ${error.message}`, { retriable: !refused, cause: error });
}

function resolveOptions(options: RedisServicesOptions): Required<RedisServicesOptions> {
  // `??` rather than a spread, so a key given as undefined still gets its default.
  const resolved = { url: options.url, keyPrefix: options.keyPrefix ?? REDIS_SERVICES_DEFAULTS.keyPrefix };
  if (typeof resolved.url !== 'string') throw invalidOption('url', 'must be a redis:// or rediss:// URL', shown(resolved.url));
  if (!URL.canParse(resolved.url) || !['redis:', 'rediss:'].includes(new URL(resolved.url).protocol)) {
    // The value is not shown: a URL may carry a password.
    throw invalidOption('url', 'must be a redis:// or rediss:// URL');
  }
  if (typeof resolved.keyPrefix !== 'string') throw invalidOption('keyPrefix', 'must be a string', shown(resolved.keyPrefix));
  return resolved;
}

function invalidOption(key: keyof RedisServicesOptions, rule: string, got?: string): RuntimeError {
  return new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `RedisServices option \`${key}\` ${rule}${got === undefined ? '' : `, got ${got}`}`,
  );
}
