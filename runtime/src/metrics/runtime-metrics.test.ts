/**
 * The runtime's metrics fed by the real parts they observe, on the embedded log and SQLite: an
 * actor system's turns and mailbox lag, and an LLM client buying from the simulated provider
 * with a response cache in front. Each exposition is parsed as Prometheus reads it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePrometheus, sampleValue } from '@troupe/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { defineActor } from '../actors/actor.js';
import { ActorSystem } from '../actors/actor-system.js';
import { Budgets } from '../llm/budget.js';
import { LlmClient } from '../llm/client.js';
import { CostLedger } from '../llm/ledger.js';
import { PriceTable } from '../llm/pricing.js';
import { SimulatedProvider } from '../llm/providers/simulated.js';
import { LlmResponseCache } from '../llm/resilience.js';
import { call, MODEL, PRICES } from '../llm/test-fixtures.js';
import { EmbeddedServices } from '../services/embedded/embedded-services.js';
import { openStore } from '../store/open.js';
import { eventually } from '../testing/eventually.js';
import { openTransport } from '../transport/open.js';
import { partitionFor } from '../transport/partitioner.js';
import { RuntimeMetrics } from './runtime-metrics.js';

const PARTITIONS = 2;

describe('runtime metrics', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('counts turns by actor type and outcome, and the lag of each mailbox partition the node owns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-metrics-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log'), fsync: 'never' });
    const store = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
    cleanups.push(async () => {
      await transport.close();
      await store.close();
    });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const worker = defineActor<number, { work: 'ok' | 'fail' | 'wait' }, 1, void>({
      type: 'metered',
      initialState: () => 0,
      async receive(ctx, message) {
        if (message.work === 'fail') throw new Error('this message always fails');
        if (message.work === 'wait') await gate;
        ctx.emit(1);
      },
      apply: (count) => count + 1,
    });
    const metrics = new RuntimeMetrics({ processMetrics: false });
    const system = await ActorSystem.start({
      transport,
      store,
      actors: [worker],
      partitions: PARTITIONS,
      groupId: 'metered',
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      observer: metrics.observeActors(transport, 'metered'),
      onError: () => {},
    });
    cleanups.push(() => system.stop());
    const scrape = async () => parsePrometheus(await metrics.exposition());

    for (let n = 0; n < 4; n += 1) await system.tell(worker, `w${n}`, { work: 'ok' });
    await system.tell(worker, 'poison', { work: 'fail' });
    await eventually(async () => {
      const families = await scrape();
      expect(sampleValue(families, 'troupe_actor_turns_total', { actor_type: 'metered', outcome: 'ok' })).toBe(4);
      expect(sampleValue(families, 'troupe_actor_turns_total', { actor_type: 'metered', outcome: 'error' })).toBe(2);
      expect(sampleValue(families, 'troupe_actor_turns_total', { actor_type: 'metered', outcome: 'dead_lettered' })).toBe(1);
    });
    const lag = async () =>
      Object.fromEntries(
        ((await scrape()).get('troupe_mailbox_lag_messages')?.samples ?? []).map((sample) => [sample.labels.partition, sample.value]),
      );
    await eventually(async () => expect(await lag()).toEqual({ '0': 0, '1': 0 }));

    // Three messages behind a turn that waits: none of the partition's batch is committed yet.
    for (let n = 0; n < 3; n += 1) await system.tell(worker, 'slow', { work: 'wait' });
    const slow = String(partitionFor('slow', PARTITIONS));
    await eventually(async () => expect((await lag())[slow]).toBe(3));
    release();
    await eventually(async () => expect(await lag()).toEqual({ '0': 0, '1': 0 }));
    expect(sampleValue(await scrape(), 'troupe_actor_turns_total', { actor_type: 'metered', outcome: 'ok' })).toBe(7);
  });

  it('times provider requests, counts tokens and cost of what was bought but not of cache hits, and tells the budget left', async () => {
    const metrics = new RuntimeMetrics({ processMetrics: false });
    const budgets = new Budgets();
    budgets.setLimit('project', 'acme/shop', { maxCostUSD: 1 });
    const provider = new SimulatedProvider({ name: 'simulated', latencyMs: 5, tokensPerSecond: Number.POSITIVE_INFINITY });
    const services = EmbeddedServices.open();
    cleanups.push(() => services.close());
    const llm = metrics.observeLlm(
      new LlmClient({
        providers: [{ provider: metrics.observeProvider(provider), pricing: new PriceTable(PRICES) }],
        budgets,
        ledger: new CostLedger(),
        responseCache: new LlmResponseCache(services.responseCache),
      }),
    );
    metrics.observeBudgets(budgets);

    const bought = await llm.complete(call(1, { cache: true }));
    const reused = await llm.complete(call(1, { callId: 'test/again', cache: true }));
    expect([bought.source, reused.source]).toEqual(['provider', 'cache']);

    const families = parsePrometheus(await metrics.exposition());
    const labels = { provider: 'simulated', model: MODEL };
    expect(sampleValue(families, 'troupe_llm_request_duration_seconds', labels, 'troupe_llm_request_duration_seconds_count')).toBe(1);
    expect(sampleValue(families, 'troupe_llm_request_duration_seconds', labels, 'troupe_llm_request_duration_seconds_sum')).toBeGreaterThan(
      0,
    );
    expect(sampleValue(families, 'troupe_llm_tokens_total', { ...labels, direction: 'input' })).toBe(bought.usage.inputTokens);
    expect(sampleValue(families, 'troupe_llm_tokens_total', { ...labels, direction: 'output' })).toBe(bought.usage.outputTokens);
    expect(bought.costUSD).toBeGreaterThan(0);
    expect(sampleValue(families, 'troupe_llm_cost_usd_total', { namespace: 'acme' })).toBeCloseTo(bought.costUSD, 12);
    expect(sampleValue(families, 'troupe_budget_remaining_usd', { namespace: 'acme', project: 'shop' })).toBeCloseTo(1 - bought.costUSD, 9);
  });
});
