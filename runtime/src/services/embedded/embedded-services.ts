/**
 * The embedded ClusterServices: token buckets, the response cache and pub/sub in process, for
 * a runtime that is the whole cluster (`npm start`). `share()` hands out further handles on the
 * same state, as several connections to one Redis would see one server.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ClusterServices, PubSub, RateLimiter, ResponseCache, Unsubscribe } from '../services.js';
import { EmbeddedPubSub } from './pub-sub.js';
import { EmbeddedRateLimiter, shown } from './rate-limiter.js';
import { EmbeddedResponseCache } from './response-cache.js';

/** Options of {@link EmbeddedServices}. */
export interface EmbeddedServicesOptions {
  /** Refills buckets and ages cache entries, in unix ms. Default `Date.now`. */
  clock?: () => number;
  /** Cached responses kept before the least recently used go. Default 10,000. */
  cacheMaxEntries?: number;
  /**
   * Bytes of cached responses kept before the least recently used go; a response larger than
   * this is not cached. Default 64 MiB.
   */
  cacheMaxBytes?: number;
}

/** The defaults of {@link EmbeddedServicesOptions}. */
export const EMBEDDED_SERVICES_DEFAULTS = {
  clock: Date.now,
  cacheMaxEntries: 10_000,
  cacheMaxBytes: 64 * 1024 * 1024,
} satisfies Required<EmbeddedServicesOptions>;

/** What every handle of one EmbeddedServices shares. */
interface SharedState {
  rateLimiter: EmbeddedRateLimiter;
  responseCache: EmbeddedResponseCache;
  pubSub: EmbeddedPubSub;
}

/**
 * ClusterServices for one process. Each handle (the first from `open`, more from `share`) is
 * closed on its own: it then refuses calls with CLOSED and its subscriptions end, while the
 * other handles carry on.
 *
 * @example
 * const services = EmbeddedServices.open();
 * const gatewayServices = services.share();
 */
export class EmbeddedServices implements ClusterServices {
  readonly kind = 'embedded';
  readonly rateLimiter: RateLimiter;
  readonly responseCache: ResponseCache;
  readonly pubSub: PubSub;
  private closed = false;
  private readonly subscriptions = new Set<Unsubscribe>();

  /** Opens services with fresh state. Options are validated first; a bad one fails with INVALID_OPTIONS naming it. */
  static open(options: EmbeddedServicesOptions = {}): EmbeddedServices {
    const resolved = resolveOptions(options);
    return new EmbeddedServices({
      rateLimiter: new EmbeddedRateLimiter(resolved.clock),
      responseCache: new EmbeddedResponseCache({
        maxEntries: resolved.cacheMaxEntries,
        maxBytes: resolved.cacheMaxBytes,
        clock: resolved.clock,
      }),
      pubSub: new EmbeddedPubSub(),
    });
  }

  private constructor(private readonly shared: SharedState) {
    const { rateLimiter, responseCache, pubSub } = shared;
    this.rateLimiter = {
      take: (key, amount, limit) => this.whileOpen(() => rateLimiter.take(key, amount, limit)),
      refund: (key, amount, limit) => this.whileOpen(() => rateLimiter.refund(key, amount, limit)),
    };
    this.responseCache = {
      get: (key) => this.whileOpen(() => responseCache.get(key)),
      set: (key, value, ttlMs) => this.whileOpen(() => responseCache.set(key, value, ttlMs)),
    };
    this.pubSub = {
      publish: (channel, message) => this.whileOpen(() => pubSub.publish(channel, message)),
      subscribe: (channel, onMessage) =>
        this.whileOpen(async () => {
          const unsubscribe = await pubSub.subscribe(channel, onMessage);
          // close() may have run while subscribing; it could not see this subscription to end it.
          if (this.closed) {
            await unsubscribe();
            throw closedError();
          }
          this.subscriptions.add(unsubscribe);
          return async () => {
            this.subscriptions.delete(unsubscribe);
            await unsubscribe();
          };
        }),
    };
  }

  /** Another handle on the same buckets, cache and channels, with its own `close()`. */
  share(): EmbeddedServices {
    if (this.closed) throw closedError();
    return new EmbeddedServices(this.shared);
  }

  /** Ends this handle's subscriptions; later calls through it fail with CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    await Promise.all(subscriptions.map((unsubscribe) => unsubscribe()));
  }

  private async whileOpen<T>(work: () => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    return work();
  }
}

function closedError(): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.Closed, 'the embedded cluster services are closed');
}

function resolveOptions(options: EmbeddedServicesOptions): Required<EmbeddedServicesOptions> {
  // `??` rather than a spread, so a key given as undefined still gets its default.
  const resolved = {
    clock: options.clock ?? EMBEDDED_SERVICES_DEFAULTS.clock,
    cacheMaxEntries: options.cacheMaxEntries ?? EMBEDDED_SERVICES_DEFAULTS.cacheMaxEntries,
    cacheMaxBytes: options.cacheMaxBytes ?? EMBEDDED_SERVICES_DEFAULTS.cacheMaxBytes,
  };
  if (typeof resolved.clock !== 'function') throw invalidOption('clock', 'must be a function returning unix ms', resolved.clock);
  for (const key of ['cacheMaxEntries', 'cacheMaxBytes'] as const) {
    if (!Number.isSafeInteger(resolved[key]) || resolved[key] < 1) throw invalidOption(key, 'must be an integer ≥ 1', resolved[key]);
  }
  return resolved;
}

function invalidOption(key: keyof EmbeddedServicesOptions, rule: string, value: unknown): RuntimeError {
  return new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `EmbeddedServices option \`${key}\` ${rule}, got ${typeof value === 'function' ? 'a function' : shown(value)}`,
  );
}
