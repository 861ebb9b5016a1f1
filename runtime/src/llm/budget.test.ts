import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { Budgets, type BudgetAmount, type BudgetExceededEvent, type Reservation } from './budget.js';
import { BudgetExceededError } from './errors.js';
import type { CallAccount } from './ledger.js';
import { call, simulatedStack, type SimulatedStack } from './test-fixtures.js';

const shop: CallAccount = { client: 'acme', project: 'acme/shop', role: 'developer', phase: 'implementation' };

/** Budgets that remember the most ever reserved in flight for the shop. */
class ObservedBudgets extends Budgets {
  peakReservedUSD = 0;

  override reserve(account: CallAccount, amount: BudgetAmount): Reservation {
    const reservation = super.reserve(account, amount);
    this.peakReservedUSD = Math.max(this.peakReservedUSD, this.usage('project', shop.project).reservedUSD);
    return reservation;
  }
}

describe('budgets', () => {
  const stacks: SimulatedStack[] = [];
  afterEach(async () => {
    for (const stack of stacks.splice(0)) await stack.close();
  });

  async function stack(budgets: Budgets, client: Parameters<typeof simulatedStack>[0] = {}): Promise<SimulatedStack> {
    const created = await simulatedStack({ ...client, budgets, server: { latencyMs: 20 } });
    stacks.push(created);
    return created;
  }

  async function settleAll(calls: Promise<unknown>[]): Promise<{ ok: number; refused: BudgetExceededError[] }> {
    const settled = await Promise.allSettled(calls);
    const refused = settled.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as BudgetExceededError] : []));
    for (const error of refused) expect(error).toBeInstanceOf(BudgetExceededError);
    return { ok: settled.length - refused.length, refused };
  }

  it('never lets 200 parallel calls spend past the limit, and buys only what it reserved', async () => {
    const events: BudgetExceededEvent[] = [];
    const budgets = new ObservedBudgets({ onExceeded: (event) => events.push(event) });
    budgets.setLimit('project', shop.project, { maxCostUSD: 0.02, onExceeded: 'Pause' });
    const { llm, server, ledger } = await stack(budgets);

    const { ok, refused } = await settleAll(Array.from({ length: 200 }, (_, n) => llm.complete(call(n, { maxOutputTokens: 200 }))));

    const usage = budgets.usage('project', shop.project);
    expect(ok).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok + refused.length).toBe(200);
    // Refused calls were never sent: the server sold exactly the calls that got a reservation.
    expect(server.stats().requests).toBe(ok);
    expect(usage.spentUSD).toBeLessThanOrEqual(0.02);
    expect(budgets.peakReservedUSD).toBeLessThanOrEqual(0.02);
    expect(usage).toMatchObject({ reservedUSD: 0, reservedTokens: 0, inFlight: 0 });
    expect(ledger.totals({ project: shop.project }).costUSD).toBeCloseTo(usage.spentUSD, 12);
    expect(refused[0]).toMatchObject({
      code: RuntimeErrorCode.BudgetExceeded,
      onExceeded: 'Pause',
      scope: { level: 'project', id: shop.project },
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ project: shop.project, state: 'Paused' });
  });

  it('pauses a project at its limit until resumed, and fails one that asks to fail for good', async () => {
    const budgets = new Budgets();
    const paused = { ...shop, project: 'acme/paused' };
    const failing = { ...shop, project: 'acme/failing' };
    budgets.setLimit('project', paused.project, { maxCostUSD: 0.002, onExceeded: 'Pause' });
    budgets.setLimit('project', failing.project, { maxCostUSD: 0.002, onExceeded: 'Fail' });
    const { llm, server } = await stack(budgets);

    const spend = async (account: CallAccount, from: number) => {
      for (let n = from; ; n += 1) await llm.complete(call(n, { account }));
    };
    await expect(spend(paused, 0)).rejects.toMatchObject({ onExceeded: 'Pause' });
    await expect(spend(failing, 100)).rejects.toMatchObject({ onExceeded: 'Fail' });
    expect(budgets.state(paused.project)).toBe('Paused');
    expect(budgets.state(failing.project)).toBe('Failed');

    // Refused while stopped, even for a call that would fit: nothing is sent.
    budgets.setLimit('project', paused.project, { maxCostUSD: 1, onExceeded: 'Pause' });
    budgets.setLimit('project', failing.project, { maxCostUSD: 1, onExceeded: 'Fail' });
    const sent = server.stats().requests;
    await expect(llm.complete(call(500, { account: paused }))).rejects.toThrow(BudgetExceededError);
    expect(server.stats().requests).toBe(sent);

    budgets.resume(paused.project);
    budgets.resume(failing.project);
    await expect(llm.complete(call(501, { account: paused }))).resolves.toMatchObject({ source: 'provider' });
    await expect(llm.complete(call(502, { account: failing }))).rejects.toMatchObject({ onExceeded: 'Fail' });
    expect(budgets.state(failing.project)).toBe('Failed');
  });

  it('nests org → client → project: a client at its limit stops its projects with their own policy', async () => {
    const budgets = new Budgets();
    budgets.setLimit('org', 'default', { maxCostUSD: 100 });
    budgets.setLimit('client', 'acme', { maxCostUSD: 0.003 });
    budgets.setLimit('project', 'acme/shop', { maxCostUSD: 50, onExceeded: 'Fail' });
    const { llm } = await stack(budgets);
    let error: unknown;
    for (let n = 0; error === undefined; n += 1)
      error = await llm.complete(call(n)).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(error).toMatchObject({ scope: { level: 'client', id: 'acme' }, onExceeded: 'Fail', project: 'acme/shop' });
    expect((error as Error).message).toMatch(/client acme has \$0\.\d{6} left of \$0\.003000/);
    expect(budgets.usage('client', 'acme').spentUSD).toBeLessThanOrEqual(0.003);
    expect(budgets.usage('org', 'default').spentUSD).toBe(budgets.usage('client', 'acme').spentUSD);
    // Another client is unaffected.
    await expect(llm.complete(call(900, { account: { ...shop, client: 'globex', project: 'globex/crm' } }))).resolves.toMatchObject({
      source: 'provider',
    });
  });

  it('counts tokens of unpriced local models against a token budget', async () => {
    const budgets = new Budgets();
    budgets.setLimit('project', shop.project, { maxTokens: 1_000 });
    const { llm, ledger } = await stack(budgets, { prices: [] });
    let calls = 0;
    const error = await (async () => {
      for (;;) {
        await llm.complete(call(calls));
        calls += 1;
      }
    })().catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ code: RuntimeErrorCode.BudgetExceeded });
    expect((error as Error).message).toMatch(/tokens left of 1000/);
    const totals = ledger.totals({ project: shop.project });
    expect(totals).toMatchObject({ calls, unpricedCalls: calls, costUSD: 0 });
    expect(totals.inputTokens + totals.outputTokens).toBe(budgets.usage('project', shop.project).spentTokens);
    expect(budgets.usage('project', shop.project).spentTokens).toBeLessThanOrEqual(1_000);
  });

  it('refuses a limit it cannot enforce, naming the key', () => {
    expect(() => new Budgets().setLimit('project', 'p', { maxCostUSD: -1 })).toThrow(
      /budget project p: maxCostUSD must be a number > 0, got -1/,
    );
    expect(() => new Budgets().setLimit('client', 'c', { maxTokens: 1.5 })).toThrow(/maxTokens must be an integer > 0/);
  });

  it('tells what each project has left of its cost limit, leaving out reservations in flight', () => {
    const budgets = new Budgets();
    budgets.setLimit('project', shop.project, { maxCostUSD: 1 });
    budgets.setLimit('project', 'acme/blog', { maxTokens: 1_000 });
    budgets.setLimit('client', 'acme', { maxCostUSD: 10 });
    budgets.reserve(shop, { nanoUSD: 250_000_000, tokens: 10 }).settle({ nanoUSD: 200_000_000, tokens: 8 });
    budgets.reserve(shop, { nanoUSD: 300_000_000, tokens: 10 });
    expect(budgets.remainingByProject()).toEqual([{ project: shop.project, remainingUSD: 0.8 }]);
  });
});
