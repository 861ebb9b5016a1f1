import { describe, expect, it } from 'vitest';
import { CostLedger } from './ledger.js';
import { PriceTable } from './pricing.js';

describe('PriceTable', () => {
  const prices = new PriceTable([
    { model: 'gpt-4o-mini', inputPerMTokUSD: 0.15, outputPerMTokUSD: 0.6 },
    { model: 'claude-sonnet', inputPerMTokUSD: 3, outputPerMTokUSD: 15 },
  ]);

  it('prices input and output tokens per million, in whole nano-dollars rounded up', () => {
    expect(prices.cost('gpt-4o-mini', { inputTokens: 1_000, outputTokens: 500 })).toEqual({ nanoUSD: 450_000, priced: true });
    expect(prices.cost('claude-sonnet', { inputTokens: 1_000_000, outputTokens: 1_000_000 })).toEqual({
      nanoUSD: 18_000_000_000,
      priced: true,
    });
    // 1 token at $0.15/MTok is 150 nano-dollars; 1/3 of a nano-dollar rounds up, never down.
    expect(
      new PriceTable([{ model: 'm', inputPerMTokUSD: 0.000333, outputPerMTokUSD: 0 }]).cost('m', { inputTokens: 1, outputTokens: 0 })
        .nanoUSD,
    ).toBe(1);
  });

  it('leaves a model without a price unpriced, at no cost', () => {
    expect(prices.cost('llama3.2', { inputTokens: 5_000, outputTokens: 5_000 })).toEqual({ nanoUSD: 0, priced: false });
  });

  it('refuses rows it cannot price by, naming the row and key', () => {
    expect(() => new PriceTable([{ model: 'm', inputPerMTokUSD: -1, outputPerMTokUSD: 1 }])).toThrow(
      'pricing[0] inputPerMTokUSD must be a number ≥ 0, got -1',
    );
    expect(
      () =>
        new PriceTable([
          { model: 'm', inputPerMTokUSD: 1, outputPerMTokUSD: 1 },
          { model: 'm', inputPerMTokUSD: 1, outputPerMTokUSD: 1 },
        ]),
    ).toThrow('pricing[1] model m is listed twice');
  });
});

describe('CostLedger', () => {
  it('keeps one row per project, role, phase and model, and sums any slice of them', () => {
    const ledger = new CostLedger();
    const prices = new PriceTable([{ model: 'gpt-4o-mini', inputPerMTokUSD: 0.15, outputPerMTokUSD: 0.6 }]);
    const record = (project: string, role: string, phase: string, model: string, cached = false) => {
      const usage = { inputTokens: 1_000, outputTokens: 500 };
      ledger.record({
        account: { client: project.split('/')[0] ?? '', project, role, phase },
        provider: 'p',
        model,
        usage,
        cost: prices.cost(model, usage),
        cached,
      });
    };
    record('acme/shop', 'pm', 'requirements', 'gpt-4o-mini');
    record('acme/shop', 'pm', 'requirements', 'gpt-4o-mini');
    record('acme/shop', 'developer', 'implementation', 'gpt-4o-mini');
    record('acme/shop', 'developer', 'implementation', 'llama3.2');
    record('acme/shop', 'developer', 'implementation', 'gpt-4o-mini', true);
    record('globex/crm', 'pm', 'requirements', 'gpt-4o-mini');

    expect(ledger.rows({ project: 'acme/shop' })).toHaveLength(3);
    expect(ledger.totals({ project: 'acme/shop', role: 'pm' })).toEqual({
      calls: 2,
      cacheHits: 0,
      inputTokens: 2_000,
      outputTokens: 1_000,
      costUSD: 0.0009,
      unpricedCalls: 0,
    });
    expect(ledger.totals({ project: 'acme/shop', role: 'developer' })).toEqual({
      calls: 2,
      cacheHits: 1,
      inputTokens: 2_000,
      outputTokens: 1_000,
      costUSD: 0.00045,
      unpricedCalls: 1,
    });
    expect(ledger.totals({ model: 'llama3.2' })).toMatchObject({ calls: 1, costUSD: 0, inputTokens: 1_000 });
    expect(ledger.totals({ client: 'globex' }).calls).toBe(1);
    expect(ledger.totals().calls).toBe(5);
  });
});
