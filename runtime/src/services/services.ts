/**
 * Cluster services the LLM layer and the gateway share across runtime nodes: token buckets,
 * the LLM response cache and pub/sub fan-out. `redis` implements them for a cluster and
 * `embedded` in-process for one node; one conformance suite runs against both.
 */

/** A bucket's shape: it holds up to `capacity` tokens and regains `refillPerSecond` per second. */
export interface BucketLimit {
  capacity: number;
  refillPerSecond: number;
}

/** The answer of a take: granted, or how long until the amount will be there. */
export interface TakeResult {
  granted: boolean;
  /** Tokens left after a granted take (or now, when refused). */
  remaining: number;
  /** 0 when granted; else the wait until `amount` tokens will have refilled. */
  retryAfterMs: number;
}

/**
 * Token buckets shared by every node, e.g. one per provider/model for requests per minute and
 * one for tokens per minute. A take is atomic: concurrent takers never overdraw a bucket.
 */
export interface RateLimiter {
  /** Takes `amount` tokens from bucket `key` if it holds them; a full bucket is created on first use. */
  take(key: string, amount: number, limit: BucketLimit): Promise<TakeResult>;
  /** Puts back tokens taken for work that did not happen (never above capacity). */
  refund(key: string, amount: number, limit: BucketLimit): Promise<void>;
}

/** LLM responses by a hash of model + prompt, so an identical call is paid once. */
export interface ResponseCache {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores a value for `ttlMs`; a later set of the same key replaces it. */
  set(key: string, value: Uint8Array, ttlMs: number): Promise<void>;
}

/** Unsubscribes; resolves once no more messages will arrive. */
export type Unsubscribe = () => Promise<void>;

/**
 * Fan-out of state changes to every subscriber on every node (e.g. gateway replicas).
 * At-most-once and unordered across publishers; ordered per publisher and channel.
 */
export interface PubSub {
  publish(channel: string, message: Uint8Array): Promise<void>;
  /** Resolves once the subscription is active: a message published after it is delivered. */
  subscribe(channel: string, onMessage: (message: Uint8Array) => void): Promise<Unsubscribe>;
}

/** The three services together, as composition roots open them. */
export interface ClusterServices {
  readonly kind: 'embedded' | 'redis';
  rateLimiter: RateLimiter;
  responseCache: ResponseCache;
  pubSub: PubSub;
  close(): Promise<void>;
}
