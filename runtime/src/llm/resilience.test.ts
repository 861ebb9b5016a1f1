import { startPrivateServer } from '@troupe/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { openServices } from '../services/open.js';
import type { ClusterServices } from '../services/services.js';
import { LlmClient } from './client.js';
import { CircuitOpenError, ProviderError, RateLimitedError, StuckLoopError } from './errors.js';
import { PriceTable } from './pricing.js';
import { SimulatedProvider } from './providers/simulated.js';
import { LLM_RETRY_DEFAULTS, LlmRateLimiter, LlmResponseCache, StuckLoopDetector, type CircuitState } from './resilience.js';
import { call, simulatedStack, type SimulatedStack } from './test-fixtures.js';

/** A sleep that returns at once and remembers what it was asked to wait. */
function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms) => void waits.push(ms) };
}

describe('LLM resilience', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function stack(options: Parameters<typeof simulatedStack>[0] = {}): Promise<SimulatedStack> {
    const created = await simulatedStack(options);
    cleanups.push(() => created.close());
    return created;
  }

  async function embedded(): Promise<ClusterServices> {
    const services = await openServices({ kind: 'embedded' });
    cleanups.push(() => services.close());
    return services;
  }

  describe('retries', () => {
    it('wait out a 429’s Retry-After, then succeed', async () => {
      const { sleep, waits } = recordingSleep();
      const { llm, server, ledger } = await stack({ client: { sleep, random: () => 0 } });
      server.failNext(2, { type: 'status', status: 429, retryAfterSeconds: 2 });
      const result = await llm.complete(call(1));
      expect(result).toMatchObject({ source: 'provider', attempts: 3 });
      expect(waits).toEqual([2_000, 2_000]);
      expect(server.stats()).toMatchObject({ requests: 3, failures: 2, completions: 1 });
      expect(ledger.totals().calls).toBe(1);
    });

    it('back off exponentially on 5xx, give up after maxAttempts and give the reservation back', async () => {
      const { sleep, waits } = recordingSleep();
      const { llm, server, budgets } = await stack({
        client: { sleep, random: () => 1, retry: { ...LLM_RETRY_DEFAULTS, maxAttempts: 4, baseDelayMs: 100 } },
      });
      server.failNext(4, { type: 'status', status: 503 });
      await expect(llm.complete(call(2))).rejects.toMatchObject({ code: RuntimeErrorCode.ProviderFailed, status: 503, retriable: true });
      expect(waits).toEqual([100, 200, 400]);
      expect(server.stats().requests).toBe(4);
      expect(budgets.usage('project', 'acme/shop')).toMatchObject({ spentUSD: 0, reservedUSD: 0, inFlight: 0 });
    });

    it('do not retry what cannot succeed, nor a Retry-After beyond the policy', async () => {
      const { sleep, waits } = recordingSleep();
      const { llm, server } = await stack({ client: { sleep } });
      server.failNext(1, { type: 'status', status: 400 });
      await expect(llm.complete(call(3))).rejects.toMatchObject({ status: 400, retriable: false });
      server.failNext(1, { type: 'status', status: 429, retryAfterSeconds: 3_600 });
      await expect(llm.complete(call(4))).rejects.toMatchObject({ status: 429, retryAfterMs: 3_600_000 });
      expect(waits).toEqual([]);
      expect(server.stats().requests).toBe(2);
    });

    it('retry a request that timed out', async () => {
      const { sleep } = recordingSleep();
      const { server, budgets, ledger } = await stack();
      const impatient = new SimulatedProvider({ name: 'simulated', baseURL: server.openaiBaseURL, timeoutMs: 300 });
      cleanups.push(async () => impatient.close());
      const llm = new LlmClient({ providers: [{ provider: impatient, pricing: new PriceTable() }], budgets, ledger, sleep });
      server.failNext(1, { type: 'stall' });
      await expect(llm.complete(call(5))).resolves.toMatchObject({ attempts: 2 });
      expect(server.stats()).toMatchObject({ requests: 2, completions: 1 });
    });
  });

  describe('the circuit breaker', () => {
    it('opens after repeated failures, fails fast, half-opens after openMs and closes on a good probe', async () => {
      let now = 1_000_000;
      const changes: CircuitState[] = [];
      const { llm, server } = await stack({
        client: {
          clock: () => now,
          retry: { ...LLM_RETRY_DEFAULTS, maxAttempts: 1 },
          breaker: { failureThreshold: 3, openMs: 10_000, halfOpenProbes: 1 },
          onCircuitChange: (_provider, state) => changes.push(state),
        },
      });
      server.failNext(3, { type: 'status', status: 500 });
      for (let n = 0; n < 3; n += 1) await expect(llm.complete(call(n))).rejects.toBeInstanceOf(ProviderError);
      expect(llm.circuit('simulated')).toBe('open');

      const error = await llm.complete(call(10)).catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect(error).toMatchObject({ code: RuntimeErrorCode.CircuitOpen, retryAfterMs: 10_000 });
      expect(server.stats().requests).toBe(3);

      // Half-open: one probe goes through; it fails, so the circuit opens again.
      now += 10_000;
      expect(llm.circuit('simulated')).toBe('half-open');
      server.failNext(1, { type: 'status', status: 500 });
      await expect(llm.complete(call(11))).rejects.toBeInstanceOf(ProviderError);
      expect(llm.circuit('simulated')).toBe('open');
      await expect(llm.complete(call(12))).rejects.toBeInstanceOf(CircuitOpenError);
      expect(server.stats().requests).toBe(4);

      // Half-open again: while the probe is in flight other calls still fail fast; its success closes the circuit.
      now += 10_000;
      const probe = llm.complete(call(13));
      await expect(llm.complete(call(14))).rejects.toBeInstanceOf(CircuitOpenError);
      await expect(probe).resolves.toMatchObject({ source: 'provider' });
      expect(llm.circuit('simulated')).toBe('closed');
      await expect(llm.complete(call(15))).resolves.toMatchObject({ source: 'provider' });
      expect(changes).toEqual(['open', 'open', 'closed']);
    });

    it('is not tripped by rate limiting or bad requests', async () => {
      const { sleep } = recordingSleep();
      const { llm, server } = await stack({
        client: {
          sleep,
          retry: { ...LLM_RETRY_DEFAULTS, maxAttempts: 1 },
          breaker: { failureThreshold: 2, openMs: 10_000, halfOpenProbes: 1 },
        },
      });
      server.failNext(2, { type: 'status', status: 429, retryAfterSeconds: 1 });
      server.failNext(2, { type: 'status', status: 400 });
      for (let n = 0; n < 4; n += 1) await expect(llm.complete(call(n))).rejects.toBeInstanceOf(ProviderError);
      expect(llm.circuit('simulated')).toBe('closed');
    });
  });

  describe('the rate limiter', () => {
    it('enforces RPM on Redis, and keeps enforcing it locally when Redis goes down', async () => {
      const redis = await startPrivateServer('redis');
      cleanups.push(() => redis.dispose());
      const cluster = await openServices({ kind: 'redis', url: redis.endpoint.url, keyPrefix: `llm-test-${process.pid}:` });
      cleanups.push(() => cluster.close());
      const local = await embedded();
      const degraded: Error[] = [];
      let skew = 0;
      const rateLimiter = new LlmRateLimiter({
        cluster: cluster.rateLimiter,
        local: local.rateLimiter,
        maxWaitMs: 100,
        clusterTimeoutMs: 200,
        recheckClusterMs: 60_000,
        clock: () => Date.now() + skew,
        onDegraded: (error) => degraded.push(error),
      });
      const { llm, server } = await stack({ client: { rateLimiter, retry: { ...LLM_RETRY_DEFAULTS, maxAttempts: 1 } } });
      const limited = (n: number) => llm.complete(call(n, { rateLimit: { requestsPerMinute: 3 } }));

      for (let n = 0; n < 3; n += 1) await limited(n);
      const refused = await limited(3).catch((thrown: unknown) => thrown);
      expect(refused).toBeInstanceOf(RateLimitedError);
      expect(refused).toMatchObject({ code: RuntimeErrorCode.RateLimited, retriable: true, bucket: 'simulated/sim-large' });
      expect(rateLimiter.mode).toBe('cluster');
      expect(degraded).toEqual([]);

      await redis.stop({ hard: true });
      // The local buckets start full: three more calls pass, the fourth waits past maxWaitMs.
      for (let n = 10; n < 13; n += 1) await limited(n);
      await expect(limited(13)).rejects.toBeInstanceOf(RateLimitedError);
      expect(rateLimiter.mode).toBe('local');
      expect(degraded).toHaveLength(1);
      expect(degraded[0]?.message).toMatch(/cluster rate limiter failed .*; using local limits for 60000 ms/);
      expect(server.stats().completions).toBe(6);

      // Redis is back (empty: it keeps no data); once recheckClusterMs has passed, takes go to it again.
      await redis.start();
      const deadline = Date.now() + 15_000;
      while (rateLimiter.mode === 'local' && Date.now() < deadline) {
        skew += 60_000;
        await limited(100 + Math.round(skew / 60_000));
      }
      expect(rateLimiter.mode).toBe('cluster');
    });

    it('limits tokens per minute by the worst case, and gives back what a call did not use', async () => {
      const services = await embedded();
      const rateLimiter = new LlmRateLimiter({ cluster: services.rateLimiter, maxWaitMs: 0 });
      const { llm } = await stack({ client: { rateLimiter, retry: { ...LLM_RETRY_DEFAULTS, maxAttempts: 1 } } });
      const limited = (n: number, maxOutputTokens: number) =>
        llm.complete(call(n, { maxOutputTokens, rateLimit: { tokensPerMinute: 2_000 } }));
      // Each call takes ~940 tokens (its prompt and 900 output tokens) and gives back all but the
      // ~300 it used: four fit where, without the refunds, only two would.
      for (let n = 0; n < 4; n += 1) await limited(n, 900);
      // A call whose worst case exceeds what is left is refused at once (maxWaitMs 0).
      await expect(limited(4, 1_990)).rejects.toBeInstanceOf(RateLimitedError);
    });
  });

  describe('the response cache', () => {
    it('answers the same question from the cache when the pool switched it on', async () => {
      const services = await embedded();
      const { llm, server, ledger, budgets } = await stack({ client: { responseCache: new LlmResponseCache(services.responseCache) } });
      const first = await llm.complete(call(1, { callId: 'a', cache: true }));
      const second = await llm.complete(call(1, { callId: 'b', cache: true }));
      expect(second).toMatchObject({ callId: 'b', source: 'cache', costUSD: 0, attempts: 0, text: first.text, usage: first.usage });
      expect(server.stats().completions).toBe(1);
      expect(ledger.totals()).toMatchObject({ calls: 1, cacheHits: 1 });
      expect(budgets.usage('project', 'acme/shop').spentUSD).toBeCloseTo(first.costUSD, 12);

      // Off for this call, or a different prompt: bought.
      await llm.complete(call(1, { callId: 'c', cache: false }));
      await llm.complete(call(2, { callId: 'd', cache: true }));
      expect(server.stats().completions).toBe(3);
    });

    it('treats a failing cache as a miss and still answers', async () => {
      const services = await openServices({ kind: 'embedded' });
      await services.close();
      const errors: Error[] = [];
      const { llm } = await stack({
        client: { responseCache: new LlmResponseCache(services.responseCache, { onError: (error) => errors.push(error) }) },
      });
      await expect(llm.complete(call(1, { cache: true }))).resolves.toMatchObject({ source: 'provider' });
      await expect.poll(() => errors.length).toBe(2);
      expect(errors[0]?.message).toMatch(/response cache read failed/);
    });
  });

  describe('stuck-loop detection', () => {
    it('stops a task at the third identical output in a row, whitespace aside', () => {
      const loops = new StuckLoopDetector({ repeats: 3 });
      loops.observe('t', 't/0', 'same answer');
      loops.observe('t', 't/1', 'same   answer\n');
      expect(() => loops.observe('t', 't/2', ' same answer')).toThrow(StuckLoopError);
    });

    it('resets on a different output and ignores a journal replay of a call it saw', () => {
      const loops = new StuckLoopDetector({ repeats: 3 });
      loops.observe('t', 't/0', 'a');
      loops.observe('t', 't/1', 'a');
      loops.observe('t', 't/2', 'b');
      loops.observe('t', 't/3', 'a');
      loops.observe('t', 't/4', 'a');
      // The same call again (replayed after a crash) is not a third repeat.
      loops.observe('t', 't/4', 'a');
      expect(() => loops.observe('t', 't/5', 'a')).toThrow(StuckLoopError);
      // Another task is independent.
      loops.observe('u', 'u/0', 'a');
    });
  });
});
