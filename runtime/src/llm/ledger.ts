/**
 * The cost ledger: every LLM call bought (and every cache hit), summed per project, role,
 * phase and model. Project status `cost{usd, tokensIn, tokensOut, llmCalls}` and the pools'
 * `tokens`/`costUSD` are views of it.
 */
import type { CallCost } from './pricing.js';
import { toUSD } from './pricing.js';
import type { Usage } from './providers/provider.js';

/** Whom a call is for: the budget chain (org → client → project) and the ledger's dimensions. */
export interface CallAccount {
  /** Default `default`: one org per installation unless told otherwise. */
  org?: string;
  client: string;
  /** Unique across clients, e.g. `<namespace>/<name>`. */
  project: string;
  role: string;
  phase: string;
}

/** One call as the ledger records it. */
export interface LedgerEntry {
  account: CallAccount;
  provider: string;
  model: string;
  usage: Usage;
  cost: CallCost;
  /** Answered from the response cache: nothing was bought. */
  cached: boolean;
}

/** Sums over some calls. */
export interface LedgerTotals {
  /** Calls bought from a provider. */
  calls: number;
  cacheHits: number;
  inputTokens: number;
  outputTokens: number;
  costUSD: number;
  /** Calls bought on a model with no price: their tokens count, their cost is 0. */
  unpricedCalls: number;
}

/** A row of the ledger: the totals of one project, role, phase and model. */
export interface LedgerRow extends LedgerTotals {
  project: string;
  role: string;
  phase: string;
  model: string;
}

export type LedgerFilter = Partial<Pick<LedgerRow, 'project' | 'role' | 'phase' | 'model'>> & { client?: string };

interface Row {
  client: string;
  project: string;
  role: string;
  phase: string;
  model: string;
  calls: number;
  cacheHits: number;
  inputTokens: number;
  outputTokens: number;
  nanoUSD: number;
  unpricedCalls: number;
}

/**
 * @example
 * const ledger = new CostLedger();
 * ledger.record({ account, provider: 'openai', model: 'gpt-4o-mini', usage, cost, cached: false });
 * ledger.totals({ project: 'acme/shop' }); // { calls: 1, costUSD: 0.00045, … }
 */
export class CostLedger {
  private readonly rowsByKey = new Map<string, Row>();

  record(entry: LedgerEntry): void {
    const { account, model } = entry;
    const key = `${account.client}\u0000${account.project}\u0000${account.role}\u0000${account.phase}\u0000${model}`;
    let row = this.rowsByKey.get(key);
    if (row === undefined) {
      row = {
        client: account.client,
        project: account.project,
        role: account.role,
        phase: account.phase,
        model,
        calls: 0,
        cacheHits: 0,
        inputTokens: 0,
        outputTokens: 0,
        nanoUSD: 0,
        unpricedCalls: 0,
      };
      this.rowsByKey.set(key, row);
    }
    if (entry.cached) {
      row.cacheHits += 1;
      return;
    }
    row.calls += 1;
    row.inputTokens += entry.usage.inputTokens;
    row.outputTokens += entry.usage.outputTokens;
    row.nanoUSD += entry.cost.nanoUSD;
    if (!entry.cost.priced) row.unpricedCalls += 1;
  }

  /** Sums of the rows matching `filter` (all rows without one). */
  totals(filter: LedgerFilter = {}): LedgerTotals {
    const sum = { calls: 0, cacheHits: 0, inputTokens: 0, outputTokens: 0, nanoUSD: 0, unpricedCalls: 0 };
    for (const row of this.matching(filter)) {
      sum.calls += row.calls;
      sum.cacheHits += row.cacheHits;
      sum.inputTokens += row.inputTokens;
      sum.outputTokens += row.outputTokens;
      sum.nanoUSD += row.nanoUSD;
      sum.unpricedCalls += row.unpricedCalls;
    }
    const { nanoUSD, ...rest } = sum;
    return { ...rest, costUSD: toUSD(nanoUSD) };
  }

  /** The rows matching `filter`, one per project, role, phase and model. */
  rows(filter: LedgerFilter = {}): LedgerRow[] {
    return [...this.matching(filter)].map(({ client: _client, nanoUSD, ...row }) => ({ ...row, costUSD: toUSD(nanoUSD) }));
  }

  private *matching(filter: LedgerFilter): Iterable<Row> {
    for (const row of this.rowsByKey.values()) {
      if (
        (filter.client === undefined || row.client === filter.client) &&
        (filter.project === undefined || row.project === filter.project) &&
        (filter.role === undefined || row.role === filter.role) &&
        (filter.phase === undefined || row.phase === filter.phase) &&
        (filter.model === undefined || row.model === filter.model)
      ) {
        yield row;
      }
    }
  }
}
