/**
 * What keeps LLM calls going when providers and Redis misbehave: retries with capped, jittered
 * backoff that honour Retry-After; a circuit breaker per provider; RPM/TPM token buckets on the
 * cluster limiter with a local fallback while it fails (Redis down); the response cache, which
 * degrades to a miss; and stuck-loop detection for tasks that keep producing the same output.
 * Clocks, sleeps and randomness are injected so tests step time instead of waiting.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { retryDelay, type RetryPolicy } from '../actors/supervision.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { BucketLimit, RateLimiter, ResponseCache } from '../services/services.js';
import { CircuitOpenError, ProviderError, RateLimitedError, StuckLoopError } from './errors.js';
import { withDefaults } from './options.js';
import type { ChatMessage, Completion } from './providers/provider.js';

/** Waits `ms`; tests inject one that returns at once and records the wait. */
export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => sleepFor(ms);

// ---------------------------------------------------------------------------------------------
// Retries

/** How failed provider requests are retried. */
export interface LlmRetryPolicy extends RetryPolicy {
  /** A Retry-After longer than this is not waited for: the call fails, retriable, at once (default 60 s). */
  maxRetryAfterMs: number;
}

export const LLM_RETRY_DEFAULTS = {
  maxAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 20_000,
  maxRetryAfterMs: 60_000,
} as const satisfies LlmRetryPolicy;

/**
 * The wait before try `attempt + 1`, or undefined to give up. Only retriable provider failures
 * (429, 5xx, timeouts, lost connections) are tried again: an open circuit is not waited out,
 * failing fast is what it is for, and the rate limiter has already waited all it may. A
 * Retry-After is waited for in full, plus up to 10% (at most 1 s) of jitter so that callers
 * told the same wait do not return in lockstep; otherwise capped exponential backoff.
 */
export function nextRetryDelay(
  policy: LlmRetryPolicy,
  attempt: number,
  error: unknown,
  random: () => number = Math.random,
): number | undefined {
  if (!(error instanceof ProviderError) || !error.retriable || attempt >= policy.maxAttempts) return undefined;
  const asked = error.retryAfterMs;
  if (asked === undefined) return retryDelay(policy, attempt, random);
  if (asked > policy.maxRetryAfterMs) return undefined;
  return asked + random() * Math.min(1_000, asked / 10);
}

/**
 * Runs `attempt` until it succeeds or `nextRetryDelay` gives up, sleeping in between.
 *
 * @example
 * const completion = await withRetries((n) => provider.complete(request), LLM_RETRY_DEFAULTS, { sleep: realSleep });
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  policy: LlmRetryPolicy,
  options: { sleep: Sleep; random?: () => number },
): Promise<T> {
  for (let n = 1; ; n += 1) {
    try {
      return await attempt(n);
    } catch (error) {
      const delay = nextRetryDelay(policy, n, error, options.random);
      if (delay === undefined) throw error;
      await options.sleep(delay);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit (default 5). */
  failureThreshold: number;
  /** How long it stays open before letting probes through (default 30 s). */
  openMs: number;
  /** Calls let through at once while half-open (default 1). */
  halfOpenProbes: number;
  clock: () => number;
}

export const CIRCUIT_BREAKER_DEFAULTS = {
  failureThreshold: 5,
  openMs: 30_000,
  halfOpenProbes: 1,
  clock: Date.now,
} as const satisfies CircuitBreakerOptions;

export type CircuitState = 'closed' | 'open' | 'half-open';

/** How a call through the breaker went: `neutral` says nothing about health (a 4xx, a 429). */
export type CallOutcome = 'success' | 'failure' | 'neutral';

/**
 * Closed: calls pass and consecutive failures are counted. Open: calls fail fast with
 * CircuitOpenError. After `openMs`, half-open: `halfOpenProbes` calls pass; a success closes
 * the circuit, a failure opens it again for another `openMs`.
 *
 * @example
 * const breaker = new CircuitBreaker('openai');
 * breaker.acquire(); // throws CircuitOpenError while open
 * try { await call(); breaker.record('success'); } catch (e) { breaker.record(outcomeOf(e)); throw e; }
 */
export class CircuitBreaker {
  private readonly options: CircuitBreakerOptions;
  private failures = 0;
  private openedAt: number | undefined;
  private probes = 0;

  constructor(
    readonly name: string,
    options: Partial<CircuitBreakerOptions> = {},
    private readonly onStateChange: (state: CircuitState) => void = () => {},
  ) {
    this.options = withDefaults(CIRCUIT_BREAKER_DEFAULTS, options);
    for (const key of ['failureThreshold', 'openMs', 'halfOpenProbes'] as const) {
      if (!Number.isInteger(this.options[key]) || this.options[key] <= 0) {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `CircuitBreaker option ${key} must be a positive integer, got ${this.options[key]}`,
        );
      }
    }
  }

  get state(): CircuitState {
    if (this.openedAt === undefined) return 'closed';
    return this.options.clock() - this.openedAt >= this.options.openMs ? 'half-open' : 'open';
  }

  /** Lets a call through, or throws CircuitOpenError. Every acquire must be followed by one `record`. */
  acquire(): void {
    const state = this.state;
    if (state === 'closed') return;
    if (state === 'half-open' && this.probes < this.options.halfOpenProbes) {
      this.probes += 1;
      return;
    }
    const waited = this.options.clock() - (this.openedAt ?? 0);
    throw new CircuitOpenError(this.name, Math.max(0, this.options.openMs - waited));
  }

  record(outcome: CallOutcome): void {
    const state = this.state;
    if (state === 'half-open' && this.probes > 0) this.probes -= 1;
    if (outcome === 'success') {
      this.failures = 0;
      if (this.openedAt !== undefined) {
        this.openedAt = undefined;
        this.probes = 0;
        this.onStateChange('closed');
      }
    } else if (outcome === 'failure') {
      this.failures += 1;
      if (state === 'half-open' || (state === 'closed' && this.failures >= this.options.failureThreshold)) {
        this.openedAt = this.options.clock();
        this.probes = 0;
        this.onStateChange('open');
      }
    }
  }
}

/** What a provider error says about the provider's health. */
export function outcomeOf(error: unknown): CallOutcome {
  if (!(error instanceof ProviderError)) return 'neutral';
  // A throttled or refused request was answered: the provider is up.
  if (error.status === 429 || !error.retriable) return 'neutral';
  return 'failure';
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/** AgentPool.spec.rateLimit. Unset limits do not bind. */
export interface RateLimits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

export interface LlmRateLimiterOptions {
  /** The cluster-wide buckets (Redis; in-process in embedded mode). */
  cluster: RateLimiter;
  /**
   * In-process buckets used while the cluster limiter fails or is slow. Omit it when `cluster`
   * is in-process itself (embedded mode): there is nothing to fall back from, and takes then
   * skip the timeout that guards a remote limiter.
   */
  local?: RateLimiter;
  /**
   * The share of each limit this node takes while on the local fallback, e.g. 1/replicas, so
   * that nodes cut off from Redis together stay near the cluster limit (default 1).
   */
  localShare: number;
  /** A cluster answer slower than this counts as a failure (default 250 ms): ioredis queues commands while Redis is down. */
  clusterTimeoutMs: number;
  /** After a cluster failure, the local fallback is used this long before the cluster is tried again (default 5 s). */
  recheckClusterMs: number;
  /** The longest a call waits for room before failing with RATE_LIMITED (default 60 s). */
  maxWaitMs: number;
  clock: () => number;
  sleep: Sleep;
  /** Told when the cluster limiter fails and the local fallback takes over. */
  onDegraded: (error: Error) => void;
}

export const LLM_RATE_LIMITER_DEFAULTS = {
  localShare: 1,
  clusterTimeoutMs: 250,
  recheckClusterMs: 5_000,
  maxWaitMs: 60_000,
  clock: Date.now,
  sleep: realSleep,
  onDegraded: (error: Error) => console.warn(`troupe llm: ${error.message}`),
} as const satisfies Partial<LlmRateLimiterOptions>;

/** Room taken for one request; the unused part of the token estimate can be given back. */
export interface RateGrant {
  refundTokens(unused: number): void;
}

const NO_LIMIT: RateGrant = { refundTokens: () => {} };

/**
 * RPM and TPM buckets per bucket name (provider/model). Takes go to the cluster limiter; when it
 * throws or stalls they go to the local limiter with `localShare` of each limit, and the cluster
 * is tried again after `recheckClusterMs`. Nothing fails because Redis did.
 *
 * @example
 * const embedded = await openServices({ kind: 'embedded' });
 * const limiter = new LlmRateLimiter({ cluster: redisServices.rateLimiter, local: embedded.rateLimiter, localShare: 1 / replicas });
 * const grant = await limiter.acquire('openai/gpt-4o-mini', { requestsPerMinute: 500, tokensPerMinute: 200_000 }, 1_200);
 * grant.refundTokens(1_200 - usedTokens);
 */
export class LlmRateLimiter {
  private readonly options: LlmRateLimiterOptions;
  private readonly cluster: CircuitBreaker;

  constructor(options: Pick<LlmRateLimiterOptions, 'cluster'> & Partial<LlmRateLimiterOptions>) {
    this.options = withDefaults(LLM_RATE_LIMITER_DEFAULTS, options);
    const { localShare, clusterTimeoutMs, recheckClusterMs, maxWaitMs } = this.options;
    if (!(localShare > 0 && localShare <= 1))
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `LlmRateLimiter option localShare must be in (0, 1], got ${localShare}`);
    for (const [key, value] of Object.entries({ clusterTimeoutMs, recheckClusterMs, maxWaitMs })) {
      if (!(Number.isInteger(value) && value >= 0))
        throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `LlmRateLimiter option ${key} must be an integer ≥ 0, got ${value}`);
    }
    this.cluster = new CircuitBreaker('rate-limiter', {
      failureThreshold: 1,
      openMs: Math.max(1, recheckClusterMs),
      clock: this.options.clock,
    });
  }

  /** Whether takes currently go to the cluster limiter or the local fallback. */
  get mode(): 'cluster' | 'local' {
    return this.cluster.state === 'open' ? 'local' : 'cluster';
  }

  /** Waits for one request and `tokens` tokens of room in `bucket`, or throws RateLimitedError after `maxWaitMs`. */
  async acquire(bucket: string, limits: RateLimits | undefined, tokens: number): Promise<RateGrant> {
    const rpm = limits?.requestsPerMinute;
    const tpm = limits?.tokensPerMinute;
    if (rpm === undefined && tpm === undefined) return NO_LIMIT;
    const deadline = this.options.clock() + this.options.maxWaitMs;
    for (;;) {
      const wait = await this.use(async (limiter, share) => {
        const requestLimit = rpm === undefined ? undefined : perMinute(rpm, share);
        const tokenLimit = tpm === undefined ? undefined : perMinute(tpm, share);
        const taken = tokenLimit === undefined ? 0 : Math.min(tokens, tokenLimit.capacity);
        if (requestLimit !== undefined) {
          const request = await limiter.take(`${bucket}:rpm`, 1, requestLimit);
          if (!request.granted) return request.retryAfterMs;
        }
        if (tokenLimit !== undefined && taken > 0) {
          const tokenTake = await limiter.take(`${bucket}:tpm`, taken, tokenLimit);
          if (!tokenTake.granted) {
            if (requestLimit !== undefined) await limiter.refund(`${bucket}:rpm`, 1, requestLimit);
            return tokenTake.retryAfterMs;
          }
        }
        return 0;
      });
      if (wait === 0) return this.grant(bucket, tpm, tokens);
      if (this.options.clock() + wait > deadline) throw new RateLimitedError(bucket, wait);
      await this.options.sleep(wait);
    }
  }

  private grant(bucket: string, tpm: number | undefined, taken: number): RateGrant {
    if (tpm === undefined) return NO_LIMIT;
    return {
      refundTokens: (unused) => {
        if (unused <= 0) return;
        void this.use(async (limiter, share) => {
          const limit = perMinute(tpm, share);
          await limiter.refund(`${bucket}:tpm`, Math.min(unused, taken, limit.capacity), limit);
        }).catch((error: unknown) => this.options.onDegraded(toError(error)));
      },
    };
  }

  /** Runs `work` on the cluster limiter, or on the local one while the cluster fails. */
  private async use<T>(work: (limiter: RateLimiter, share: number) => Promise<T>): Promise<T> {
    const { local } = this.options;
    if (local === undefined) return work(this.options.cluster, 1);
    try {
      this.cluster.acquire();
    } catch {
      return work(local, this.options.localShare);
    }
    try {
      const result = await withTimeout(work(this.options.cluster, 1), this.options.clusterTimeoutMs);
      this.cluster.record('success');
      return result;
    } catch (error) {
      this.cluster.record('failure');
      this.options.onDegraded(
        new RuntimeError(
          RuntimeErrorCode.Unavailable,
          `cluster rate limiter failed (${toError(error).message}); using local limits for ${this.options.recheckClusterMs} ms`,
          {
            retriable: true,
            cause: error,
          },
        ),
      );
      return work(local, this.options.localShare);
    }
  }
}

function perMinute(limit: number, share: number): BucketLimit {
  const capacity = Math.max(1, limit * share);
  return { capacity, refillPerSecond: capacity / 60 };
}

/** Rejects with UNAVAILABLE when `work` takes longer than `ms`; the work itself runs on. */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RuntimeError(RuntimeErrorCode.Unavailable, `no answer within ${ms} ms`, { retriable: true })), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Response cache

/** What decides an answer: the same key means the same question to the same model. */
export interface CacheableRequest {
  provider: string;
  model: string;
  messages: readonly ChatMessage[];
  maxOutputTokens: number;
  temperature?: number;
  responseFormat?: 'text' | 'json';
}

/**
 * sha256 of the model and the whole prompt. The provider, output limit, temperature and format
 * are part of it too: each changes the answer a model gives.
 */
export function responseCacheKey(request: CacheableRequest): string {
  const { provider, model, messages, maxOutputTokens, temperature, responseFormat } = request;
  const prompt = messages.map((message) => [message.role, message.content]);
  return createHash('sha256')
    .update(JSON.stringify([provider, model, prompt, maxOutputTokens, temperature ?? null, responseFormat ?? 'text']))
    .digest('hex');
}

export interface LlmResponseCacheOptions {
  /** How long an answer is reused (default 24 h). */
  ttlMs: number;
  /** A cache slower than this is treated as a miss (default 250 ms). */
  timeoutMs: number;
  /** Told when the cache fails; the call then goes to the provider. */
  onError: (error: Error) => void;
}

export const LLM_RESPONSE_CACHE_DEFAULTS = {
  ttlMs: 24 * 60 * 60 * 1000,
  timeoutMs: 250,
  onError: (error: Error) => console.warn(`troupe llm: ${error.message}`),
} as const satisfies LlmResponseCacheOptions;

/**
 * Completions in a ResponseCache by `responseCacheKey`. A cache that fails or stalls is a miss,
 * never a failed call.
 */
export class LlmResponseCache {
  private readonly options: LlmResponseCacheOptions;

  constructor(
    private readonly cache: ResponseCache,
    options: Partial<LlmResponseCacheOptions> = {},
  ) {
    this.options = withDefaults(LLM_RESPONSE_CACHE_DEFAULTS, options);
    for (const key of ['ttlMs', 'timeoutMs'] as const) {
      if (!Number.isInteger(this.options[key]) || this.options[key] <= 0) {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `LlmResponseCache option ${key} must be a positive integer, got ${this.options[key]}`,
        );
      }
    }
  }

  async get(request: CacheableRequest): Promise<Completion | undefined> {
    try {
      const bytes = await withTimeout(this.cache.get(responseCacheKey(request)), this.options.timeoutMs);
      return bytes === undefined ? undefined : (JSON.parse(Buffer.from(bytes).toString('utf8')) as Completion);
    } catch (error) {
      this.options.onError(
        new RuntimeError(RuntimeErrorCode.Unavailable, `response cache read failed: ${toError(error).message}`, {
          retriable: true,
          cause: error,
        }),
      );
      return undefined;
    }
  }

  /** Stores in the background: the caller has its answer already. */
  set(request: CacheableRequest, completion: Completion): void {
    const bytes = Buffer.from(JSON.stringify(completion));
    withTimeout(this.cache.set(responseCacheKey(request), bytes, this.options.ttlMs), this.options.timeoutMs).catch((error: unknown) =>
      this.options.onError(
        new RuntimeError(RuntimeErrorCode.Unavailable, `response cache write failed: ${toError(error).message}`, {
          retriable: true,
          cause: error,
        }),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Stuck loops

export interface StuckLoopOptions {
  /** The same output this many times in a row is a stuck loop (default 3). */
  repeats: number;
  /** Tasks remembered; the least recently seen are forgotten first (default 10,000). */
  maxTasks: number;
}

export const STUCK_LOOP_DEFAULTS = { repeats: 3, maxTasks: 10_000 } as const satisfies StuckLoopOptions;

interface TaskOutputs {
  lastHash: string;
  count: number;
  callIds: Set<string>;
}

/**
 * Watches each task's outputs across its LLM calls (iterations, review loops, repairs) and
 * throws StuckLoopError when one comes back `repeats` times in a row. Outputs are compared
 * with whitespace collapsed. A result seen again under the same call id is a journal replay,
 * not a repeat, and is ignored.
 *
 * @example
 * const loops = new StuckLoopDetector();
 * loops.observe('impl-3', 'impl-3/1', output); // throws on the third identical output in a row
 */
export class StuckLoopDetector {
  private readonly options: StuckLoopOptions;
  private readonly tasks = new Map<string, TaskOutputs>();

  constructor(options: Partial<StuckLoopOptions> = {}) {
    this.options = withDefaults(STUCK_LOOP_DEFAULTS, options);
    for (const key of ['repeats', 'maxTasks'] as const) {
      if (!Number.isInteger(this.options[key]) || this.options[key] < (key === 'repeats' ? 2 : 1)) {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `StuckLoopDetector option ${key} must be an integer ≥ ${key === 'repeats' ? 2 : 1}, got ${this.options[key]}`,
        );
      }
    }
  }

  observe(taskId: string, callId: string, output: string): void {
    const hash = createHash('sha256').update(output.trim().replace(/\s+/g, ' ')).digest('base64');
    const seen = this.tasks.get(taskId);
    if (seen?.callIds.has(callId)) return;
    const task = seen ?? { lastHash: hash, count: 0, callIds: new Set<string>() };
    // Re-inserted on each use, so the Map's first entry is the least recently seen task.
    this.tasks.delete(taskId);
    this.tasks.set(taskId, task);
    task.callIds.add(callId);
    task.count = task.lastHash === hash ? task.count + 1 : 1;
    task.lastHash = hash;
    if (this.tasks.size > this.options.maxTasks) this.tasks.delete(this.tasks.keys().next().value as string);
    if (task.count >= this.options.repeats) throw new StuckLoopError(taskId, task.count);
  }

  /** Forgets a task that finished. */
  forget(taskId: string): void {
    this.tasks.delete(taskId);
  }
}
