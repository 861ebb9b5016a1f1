/**
 * The durable, cluster-wide cost ledger: a `cost-ledger` actor per client keeps the sums of every
 * LLM call bought (and every cache hit) for the client's projects, per project, role, phase and
 * model. It is fed from the `llm-call` journal: the turn that journals a call's `bought` event
 * tells the client's ledger in the same commit, through the turn's outbox, under a message id
 * derived from that turn; a replayed turn re-sends the same id, which the ledger has applied
 * already, so no call is counted twice. Any node reads it through the actors — a runtime node
 * through its ActorSystem, a gateway through an ActorClient — so invoices survive restarts and
 * are the same wherever they are asked for.
 */
import type { ActorClient } from '../actors/actor-client.js';
import { defineActor, type ActorType } from '../actors/actor.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { CallResult } from './client.js';
import {
  addToRow,
  ledgerRow,
  rowKey,
  rowMatches,
  totalsOf,
  type CallAccount,
  type LedgerEntry,
  type LedgerFilter,
  type LedgerRow,
  type LedgerSums,
  type LedgerTotals,
} from './ledger.js';
import { toNanoUSD } from './pricing.js';

/** The actor type's name (its topic is `troupe.actor.cost-ledger`); an actor's id is its client. */
export const COST_LEDGER_ACTOR = 'cost-ledger';

export type CostLedgerMessage =
  /** A call journaled as bought; `callId` is the `llm-call` actor's id. */
  | { type: 'record'; callId: string; entry: LedgerEntry }
  /** The client's rows matching `filter`, as LedgerSums. */
  | { type: 'rows'; filter: Omit<LedgerFilter, 'client'> };

export interface CostLedgerEvent {
  type: 'recorded';
  callId: string;
  entry: LedgerEntry;
}

export interface CostLedgerState {
  /** By `rowKey`. */
  rows: Record<string, LedgerSums>;
}

export type CostLedgerType = ActorType<CostLedgerState, CostLedgerMessage, CostLedgerEvent, LedgerSums[] | undefined>;

/**
 * The `cost-ledger` actor type. Register it with the ActorSystem of every runtime node, and hand
 * it to `llmCallActor` so that each purchase reaches it.
 *
 * @example
 * const costLedger = costLedgerActor();
 * const system = await ActorSystem.start({ transport, store, actors: [costLedger, llmCallActor({ ledger: costLedger })] });
 * await new ClientLedgers(system, costLedger).totals({ client: 'acme' });
 */
export function costLedgerActor(options: { type?: string } = {}): CostLedgerType {
  return defineActor<CostLedgerState, CostLedgerMessage, CostLedgerEvent, LedgerSums[] | undefined>({
    type: options.type ?? COST_LEDGER_ACTOR,
    initialState: () => ({ rows: {} }),
    receive(ctx, message) {
      switch (message.type) {
        case 'record': {
          const { client } = message.entry.account;
          if (client !== ctx.self.id) {
            throw new RuntimeError(
              RuntimeErrorCode.InvalidArgument,
              `LLM call ${message.callId} was bought for client ${client}; the ledger of client ${ctx.self.id} records only its own`,
            );
          }
          ctx.emit({ type: 'recorded', callId: message.callId, entry: message.entry });
          return undefined;
        }
        case 'rows':
          return Object.values(ctx.state.rows).filter((row) => rowMatches(row, message.filter));
      }
    },
    apply(state, event) {
      const key = rowKey(event.entry);
      return { rows: { ...state.rows, [key]: addToRow(state.rows[key], event.entry) } };
    },
  });
}

/** The ledger entry of a journaled result: a cache hit bought nothing. */
export function ledgerEntryOf(result: CallResult, account: CallAccount): LedgerEntry {
  const cached = result.source === 'cache';
  return {
    account,
    provider: result.provider,
    model: result.model,
    usage: result.usage,
    cost: { nanoUSD: cached ? 0 : toNanoUSD(result.costUSD), priced: result.priced },
    cached,
  };
}

/** How the ledger reaches its actors: this node's ActorSystem, or an ActorClient where none run. */
type Actors = Pick<ActorClient, 'tell' | 'ask'>;

/**
 * The durable ledger as a node reads it. Every question names a client: each client's ledger is
 * an actor of its own.
 *
 * @example
 * const ledgers = new ClientLedgers(system, costLedger);
 * const { calls, costUSD } = await ledgers.totals({ client: 'acme', project: 'acme/shop' });
 */
export class ClientLedgers {
  constructor(
    private readonly actors: Actors,
    private readonly actor: CostLedgerType,
  ) {}

  /**
   * Records a call in its client's ledger, under the message id `id`: recording it again under
   * the same id changes nothing. (Calls bought live reach the ledger from their journal's turn.)
   */
  async record(id: string, callId: string, entry: LedgerEntry): Promise<void> {
    await this.actors.tell(this.actor, entry.account.client, { type: 'record', callId, entry }, { id });
  }

  /** The client's rows matching the filter, one per project, role, phase and model. */
  async rows(filter: LedgerFilter & { client: string }): Promise<LedgerRow[]> {
    return (await this.sums(filter)).map(ledgerRow);
  }

  /** The sums of the client's rows matching the filter. */
  async totals(filter: LedgerFilter & { client: string }): Promise<LedgerTotals> {
    return totalsOf(await this.sums(filter));
  }

  private async sums(filter: LedgerFilter & { client: string }): Promise<LedgerSums[]> {
    const { client, ...rest } = filter;
    if (typeof client !== 'string' || client === '') {
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'a ledger question must name its client');
    }
    return (await this.actors.ask(this.actor, client, { type: 'rows', filter: rest })) ?? [];
  }
}
