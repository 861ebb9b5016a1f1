/**
 * The durable cost ledger on the embedded log and SQLite: each purchase the `llm-call` journal
 * records reaches its client's ledger once — however often the call is replayed, from however
 * many nodes, and however often its record message is re-sent — and the ledger outlives the
 * process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../actors/actor-system.js';
import { openStore } from '../store/open.js';
import { openTransport } from '../transport/open.js';
import { JournaledLlm, llmCallActor } from './journal.js';
import { ClientLedgers, costLedgerActor } from './ledger.actor.js';
import type { LedgerEntry } from './ledger.js';
import { toNanoUSD } from './pricing.js';
import { call, simulatedStack, type SimulatedStack } from './test-fixtures.js';

describe('the durable cost ledger', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const dir = () => {
    const path = mkdtempSync(join(tmpdir(), 'troupe-ledger-'));
    cleanups.push(async () => rmSync(path, { recursive: true, force: true }));
    return path;
  };

  const simulated = async (): Promise<SimulatedStack> => {
    const stack = await simulatedStack({ server: { latencyMs: 20 } });
    cleanups.push(() => stack.close());
    return stack;
  };

  /** A node on the data in `path`: the ledger and journal actors, and JournaledLlm callers as two nodes would have. */
  async function node(path: string, stack: SimulatedStack) {
    const transport = await openTransport({ kind: 'embedded', dir: join(path, 'log') });
    const store = await openStore({ kind: 'embedded', path: join(path, 'state.db') });
    const costLedger = costLedgerActor();
    const llmCall = llmCallActor({ ledger: costLedger });
    const system = await ActorSystem.start({
      transport,
      store,
      actors: [llmCall, costLedger],
      partitions: 4,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      onError: () => {},
    });
    const stop = async () => {
      await system.stop();
      await transport.close();
      await store.close();
    };
    cleanups.push(stop);
    return {
      system,
      ledger: new ClientLedgers(system, costLedger),
      caller: (name: string) => new JournaledLlm(system, llmCall, stack.llm, { node: name, leaseMs: 1_000 }),
      stop,
    };
  }

  it('counts a purchase once, however often and from however many nodes its call is replayed, across a restart', async () => {
    const stack = await simulated();
    const path = dir();
    const first = await node(path, stack);
    const [a, b] = [first.caller('node-a'), first.caller('node-b')];

    const results = await Promise.all([a.complete(call(1)), a.complete(call(1)), b.complete(call(1))]);
    await b.complete(call(1));
    await a.complete(call(2, { account: { client: 'acme', project: 'acme/shop', role: 'qa', phase: 'review' } }));
    expect(stack.server.stats().completions).toBe(2);

    const bought = results.find((result) => result.source === 'provider')!;
    await expect(first.ledger.totals({ client: 'acme', project: 'acme/shop', role: 'developer' })).resolves.toEqual({
      calls: 1,
      cacheHits: 0,
      inputTokens: bought.usage.inputTokens,
      outputTokens: bought.usage.outputTokens,
      costUSD: bought.costUSD,
      unpricedCalls: 0,
    });
    const before = await first.ledger.rows({ client: 'acme' });
    expect(before.map((row) => [row.role, row.phase, row.calls])).toEqual([
      ['developer', 'implementation', 1],
      ['qa', 'review', 1],
    ]);

    // The process restarts; the task runs again and replays its calls from the journal.
    await first.stop();
    const second = await node(path, stack);
    expect(await second.ledger.rows({ client: 'acme' })).toEqual(before);
    await expect(second.caller('node-a').complete(call(1))).resolves.toMatchObject({ source: 'journal' });
    expect(await second.ledger.rows({ client: 'acme' })).toEqual(before);
    expect(stack.server.stats().completions).toBe(2);
  });

  it('applies a record re-sent under the same message id once, and keeps each client to its own ledger', async () => {
    const stack = await simulated();
    const { ledger, system } = await node(dir(), stack);
    const entry = (client: string, project: string): LedgerEntry => ({
      account: { client, project, role: 'developer', phase: 'implementation' },
      provider: 'simulated',
      model: 'sim-large',
      usage: { inputTokens: 1_000, outputTokens: 500 },
      cost: { nanoUSD: toNanoUSD(0.006), priced: true },
      cached: false,
    });

    // What a redelivered outbox message is: the same record under the same id.
    await ledger.record('msg-1', 'call-1', entry('acme', 'acme/shop'));
    await ledger.record('msg-1', 'call-1', entry('acme', 'acme/shop'));
    await ledger.record('msg-2', 'call-2', entry('acme', 'acme/blog'));
    await ledger.record('msg-3', 'call-3', entry('globex', 'globex/crm'));

    await expect(ledger.totals({ client: 'acme' })).resolves.toMatchObject({ calls: 2, inputTokens: 2_000, costUSD: 0.012 });
    await expect(ledger.totals({ client: 'acme', project: 'acme/shop' })).resolves.toMatchObject({ calls: 1, costUSD: 0.006 });
    expect((await ledger.rows({ client: 'globex' })).map((row) => row.project)).toEqual(['globex/crm']);
    await expect(ledger.rows({ client: 'initech' })).resolves.toEqual([]);

    const misfiled = { type: 'record' as const, callId: 'call-4', entry: entry('globex', 'globex/crm') };
    await expect(system.ask(costLedgerActor(), 'acme', misfiled)).rejects.toThrow(
      'LLM call call-4 was bought for client globex; the ledger of client acme records only its own',
    );
    await expect(ledger.totals({ client: '' })).rejects.toThrow('a ledger question must name its client');
  });
});
