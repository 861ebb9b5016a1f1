/**
 * The cost ledger: every LLM call bought (and every cache hit), summed per client, project,
 * role, phase and model. The sums are kept in one process by `CostLedger`, and durably for the
 * whole cluster by the `cost-ledger` actors (ledger.actor.ts), which invoices are made from.
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

/**
 * One row's sums, in whole nano-dollars so that they add exactly: what the ledger folds each
 * entry into, here and in the durable `cost-ledger` actors (ledger.actor.ts). Plain data.
 */
export interface LedgerSums {
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

/** The key of the row an entry is summed into: its client, project, role, phase and model. */
export function rowKey(entry: LedgerEntry): string {
  const { account, model } = entry;
  return `${account.client}\u0000${account.project}\u0000${account.role}\u0000${account.phase}\u0000${model}`;
}

/** `row` with `entry` added, as a new object (a new row when `row` is undefined). */
export function addToRow(row: LedgerSums | undefined, entry: LedgerEntry): LedgerSums {
  const { account, model } = entry;
  const base = row ?? {
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
  if (entry.cached) return { ...base, cacheHits: base.cacheHits + 1 };
  return {
    ...base,
    calls: base.calls + 1,
    inputTokens: base.inputTokens + entry.usage.inputTokens,
    outputTokens: base.outputTokens + entry.usage.outputTokens,
    nanoUSD: base.nanoUSD + entry.cost.nanoUSD,
    unpricedCalls: base.unpricedCalls + (entry.cost.priced ? 0 : 1),
  };
}

/** Whether a row matches every key the filter gives. */
export function rowMatches(row: LedgerSums, filter: LedgerFilter): boolean {
  return (
    (filter.client === undefined || row.client === filter.client) &&
    (filter.project === undefined || row.project === filter.project) &&
    (filter.role === undefined || row.role === filter.role) &&
    (filter.phase === undefined || row.phase === filter.phase) &&
    (filter.model === undefined || row.model === filter.model)
  );
}

/** The sums of some rows, in dollars. */
export function totalsOf(rows: Iterable<LedgerSums>): LedgerTotals {
  const sum = { calls: 0, cacheHits: 0, inputTokens: 0, outputTokens: 0, nanoUSD: 0, unpricedCalls: 0 };
  for (const row of rows) {
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

/** A row as the ledger shows it: its cost in dollars, without the client it is filed under. */
export function ledgerRow(row: LedgerSums): LedgerRow {
  const { client: _client, nanoUSD, ...rest } = row;
  return { ...rest, costUSD: toUSD(nanoUSD) };
}

/**
 * The ledger of one process: what its LlmClient bought. A cluster's invoices come from the
 * durable ledger instead (`ClientLedgers`, ledger.actor.ts), which every node reads.
 *
 * @example
 * const ledger = new CostLedger();
 * ledger.record({ account, provider: 'openai', model: 'gpt-4o-mini', usage, cost, cached: false });
 * ledger.totals({ project: 'acme/shop' }); // { calls: 1, costUSD: 0.00045, … }
 */
export class CostLedger {
  private readonly rowsByKey = new Map<string, LedgerSums>();

  record(entry: LedgerEntry): void {
    const key = rowKey(entry);
    this.rowsByKey.set(key, addToRow(this.rowsByKey.get(key), entry));
  }

  /** Sums of the rows matching `filter` (all rows without one). */
  totals(filter: LedgerFilter = {}): LedgerTotals {
    return totalsOf(this.matching(filter));
  }

  /** The rows matching `filter`, one per project, role, phase and model. */
  rows(filter: LedgerFilter = {}): LedgerRow[] {
    return this.matching(filter).map(ledgerRow);
  }

  private matching(filter: LedgerFilter): LedgerSums[] {
    return [...this.rowsByKey.values()].filter((row) => rowMatches(row, filter));
  }
}
