/**
 * Prices of LLM calls from a ModelProvider's pricing table. Money is kept in whole nano-dollars
 * (1e-9 USD) so that sums of millions of calls stay exact; a call's cost is rounded up, so a
 * budget never undercounts. A model missing from the table is unpriced: it costs nothing and
 * still counts tokens.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { Usage } from './providers/provider.js';

/** One row of ModelProvider.spec.pricing. */
export interface ModelPrice {
  model: string;
  inputPerMTokUSD: number;
  outputPerMTokUSD: number;
}

/** What a call cost, and whether its model had a price at all. */
export interface CallCost {
  nanoUSD: number;
  priced: boolean;
}

export const NANO_USD_PER_USD = 1_000_000_000;

/** Whole nano-dollars, rounded up, for a USD amount. */
export function toNanoUSD(usd: number): number {
  return Math.ceil(usd * NANO_USD_PER_USD - 1e-6);
}

/** USD for nano-dollars. */
export function toUSD(nanoUSD: number): number {
  return nanoUSD / NANO_USD_PER_USD;
}

/** `$0.001234`: six decimals show a single cheap call. */
export function formatUSD(nanoUSD: number): string {
  return `$${toUSD(nanoUSD).toFixed(6)}`;
}

/**
 * A ModelProvider's prices by model.
 *
 * @example
 * const prices = new PriceTable([{ model: 'gpt-4o-mini', inputPerMTokUSD: 0.15, outputPerMTokUSD: 0.6 }]);
 * prices.cost('gpt-4o-mini', { inputTokens: 1_000, outputTokens: 500 }); // { nanoUSD: 450_000, priced: true }
 * prices.cost('llama3.2', { inputTokens: 1_000, outputTokens: 500 });    // { nanoUSD: 0, priced: false }
 */
export class PriceTable {
  private readonly prices = new Map<string, ModelPrice>();

  /** Refuses a row without a model, with a negative or non-finite price, or a model listed twice, naming the row. */
  constructor(prices: readonly ModelPrice[] = []) {
    prices.forEach((price, i) => {
      const refuse = (rule: string) => new RuntimeError(RuntimeErrorCode.InvalidOptions, `pricing[${i}] ${rule}`);
      if (typeof price.model !== 'string' || price.model === '') throw refuse('model must be a non-empty string');
      for (const key of ['inputPerMTokUSD', 'outputPerMTokUSD'] as const) {
        if (!(Number.isFinite(price[key]) && price[key] >= 0)) throw refuse(`${key} must be a number ≥ 0, got ${price[key]}`);
      }
      if (this.prices.has(price.model)) throw refuse(`model ${price.model} is listed twice`);
      this.prices.set(price.model, price);
    });
  }

  /** Whether the model has a price. */
  has(model: string): boolean {
    return this.prices.has(model);
  }

  /** The cost of `usage` on `model`; 0 and unpriced when the table does not list it. */
  cost(model: string, usage: Usage): CallCost {
    const price = this.prices.get(model);
    if (price === undefined) return { nanoUSD: 0, priced: false };
    // $/MTok × tokens = micro-dollars; × 1000 = nano-dollars.
    const nano = usage.inputTokens * price.inputPerMTokUSD * 1000 + usage.outputTokens * price.outputPerMTokUSD * 1000;
    return { nanoUSD: Math.ceil(nano - 1e-6), priced: true };
  }
}
