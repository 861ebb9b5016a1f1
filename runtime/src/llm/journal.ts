/**
 * Replay safety for LLM calls: an `llm-call` durable actor per call id journals each result
 * before anyone uses it, and answers a repeat of the call id — a task run again after a crash,
 * a redelivered message — with the journaled result, so nothing is bought twice.
 *
 * A call is two short turns around the purchase: `claim` (the journaled result, or a lease to
 * buy it) and `record` (journal the result, then hand it back). The purchase itself happens
 * between them, outside any turn: the runtime reads a partition's next batch only when every
 * turn of the current one has ended, so a turn that waited seconds for an LLM would hold up
 * every other call hashed to its partition, and delay partition handover as long. The lease
 * keeps concurrent repeats from buying twice: a holder renews it while its call runs; a claim
 * from another node waits until it lapses; a claim from a new incarnation of the holder's own
 * node takes it over at once, since the old one died.
 *
 * What no journal can save: a node that dies after the provider answered and before `record`
 * committed has bought a result it never journaled, and the call is bought again.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ActorClient } from '../actors/actor-client.js';
import { defineActor, type ActorType } from '../actors/actor.js';
import { isPassing, RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { CallResult, LlmCall, LlmCaller } from './client.js';
import type { CallAccount } from './ledger.js';
import { ledgerEntryOf, type CostLedgerType } from './ledger.actor.js';
import { withDefaults } from './options.js';
import { realSleep, type Sleep } from './resilience.js';

/** Who may buy a call: a node, and which run of the process on it. */
export interface LeaseHolder {
  node: string;
  incarnation: string;
}

export type LlmCallMessage =
  | { type: 'claim'; holder: LeaseHolder; leaseMs: number }
  | { type: 'renew'; holder: LeaseHolder; leaseMs: number }
  | { type: 'release'; holder: LeaseHolder }
  | { type: 'record'; holder: LeaseHolder; result: CallResult; account: CallAccount };

/** `bought` is journaled once per call id: the result, and whom it was bought for (to rebuild ledgers from). */
export type LlmCallEvent =
  | { type: 'leased'; holder: LeaseHolder; until: number }
  | { type: 'released' }
  | { type: 'bought'; result: CallResult; account: CallAccount };

export interface LlmCallState {
  result?: CallResult;
  lease?: LeaseHolder & { until: number };
}

/** `go`: the claimer holds the lease and buys; `busy`: someone else does, ask again later. */
export type LlmCallReply =
  { type: 'result'; result: CallResult } | { type: 'go' } | { type: 'busy'; retryAfterMs: number } | { type: 'ok' };

/** The actor type's name (its topic is `troupe.actor.llm-call`). */
export const LLM_CALL_ACTOR = 'llm-call';

/** A lost record is sent again after 1 s, 2 s, 4 s… up to 30 s apart. */
const RECORD_RETRY_MS = 1_000;
const RECORD_RETRY_MAX_MS = 30_000;

const sameHolder = (a: LeaseHolder | undefined, b: LeaseHolder) => a !== undefined && a.node === b.node && a.incarnation === b.incarnation;

/**
 * The `llm-call` actor type. Register it with the ActorSystem of every node that runs agent
 * pools; JournaledLlm talks to it.
 *
 * @example
 * const llmCall = llmCallActor();
 * const system = await ActorSystem.start({ transport, store, actors: [llmCall, …] });
 * const journaled = new JournaledLlm(system, llmCall, llmClient);
 */
export function llmCallActor(
  options: { type?: string; /** Told of each purchase, in the turn that journals it. */ ledger?: CostLedgerType } = {},
): ActorType<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply> {
  return defineActor<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply>({
    type: options.type ?? LLM_CALL_ACTOR,
    initialState: () => ({}),
    receive(ctx, message) {
      const { result, lease } = ctx.state;
      switch (message.type) {
        case 'claim': {
          if (result !== undefined) return { type: 'result', result: { ...result, source: 'journal', attempts: 0 } };
          const held = lease !== undefined && lease.until > ctx.now && !sameHolder(lease, message.holder);
          // The same node under a new incarnation: the holder's process is gone, and its lease with it.
          if (held && lease.node !== message.holder.node) return { type: 'busy', retryAfterMs: lease.until - ctx.now };
          ctx.emit({ type: 'leased', holder: message.holder, until: ctx.now + message.leaseMs });
          return { type: 'go' };
        }
        case 'renew':
          if (result === undefined && sameHolder(lease, message.holder))
            ctx.emit({ type: 'leased', holder: message.holder, until: ctx.now + message.leaseMs });
          return { type: 'ok' };
        case 'release':
          if (result === undefined && sameHolder(lease, message.holder)) ctx.emit({ type: 'released' });
          return { type: 'ok' };
        case 'record':
          // Recorded already (our lease had lapsed and another holder bought it too): the journal's result stands.
          if (result !== undefined) return { type: 'result', result: { ...result, source: 'journal', attempts: 0 } };
          ctx.emit({ type: 'bought', result: message.result, account: message.account });
          // Sent with this turn's commit, under an id derived from it: a replay of the turn re-sends the same id.
          if (options.ledger !== undefined) {
            const entry = ledgerEntryOf(message.result, message.account);
            ctx.tell(options.ledger, message.account.client, { type: 'record', callId: ctx.self.id, entry });
          }
          return { type: 'result', result: message.result };
      }
    },
    apply(state, event) {
      switch (event.type) {
        case 'leased':
          return { ...state, lease: { ...event.holder, until: event.until } };
        case 'released':
          return { result: state.result };
        case 'bought':
          return { result: event.result };
      }
    },
  });
}

export interface JournaledLlmOptions {
  /** This node's name, stable across restarts of its process (default: the hostname, a pod's name). */
  node: string;
  /** A claim lapses this long after its last renewal (default 30 s); holders renew at a third of it. */
  leaseMs: number;
  /** How long a call waits for another holder's lease, in total (default 10 min). */
  maxWaitMs: number;
  /** How long one ask to the actor may take (default 60 s). */
  askTimeoutMs: number;
  sleep: Sleep;
  /** Told when a renewal or release fails; the lease then lapses on its own. */
  onError: (error: Error) => void;
}

export const JOURNALED_LLM_DEFAULTS = {
  node: hostname(),
  leaseMs: 30_000,
  maxWaitMs: 10 * 60 * 1000,
  askTimeoutMs: 60_000,
  sleep: realSleep,
  onError: (error: Error) => console.warn(`troupe llm: ${error.message}`),
} as const satisfies JournaledLlmOptions;

/**
 * An LlmCaller whose results are journaled before they are returned: hand it to AgentPools.
 *
 * @example
 * const llmCall = llmCallActor();
 * const system = await ActorSystem.start({ transport, store, actors: [llmCall] });
 * const pool = new AgentPool({ name: 'acme/developers', spec, llm: new JournaledLlm(system, llmCall, llmClient) });
 */
export class JournaledLlm implements LlmCaller {
  private readonly options: JournaledLlmOptions;
  private readonly holder: LeaseHolder;
  /** Calls this process is making, by call id: a concurrent repeat here waits for the same purchase. */
  private readonly inFlight = new Map<string, Promise<CallResult>>();

  constructor(
    /** The node's ActorSystem, or an ActorClient where no actors run (a pool replica). */
    private readonly system: Pick<ActorClient, 'ask'>,
    private readonly actor: ActorType<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply>,
    private readonly llm: LlmCaller,
    options: Partial<JournaledLlmOptions> = {},
  ) {
    this.options = withDefaults(JOURNALED_LLM_DEFAULTS, options);
    for (const key of ['leaseMs', 'maxWaitMs', 'askTimeoutMs'] as const) {
      if (!Number.isInteger(this.options[key]) || this.options[key] <= 0) {
        throw new RuntimeError(
          RuntimeErrorCode.InvalidOptions,
          `JournaledLlm option ${key} must be a positive integer, got ${this.options[key]}`,
        );
      }
    }
    if (typeof this.options.node !== 'string' || this.options.node === '')
      throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'JournaledLlm option node must be a non-empty string');
    this.holder = { node: this.options.node, incarnation: randomUUID() };
  }

  complete(call: LlmCall): Promise<CallResult> {
    const running = this.inFlight.get(call.callId);
    if (running !== undefined) return running.then((result) => ({ ...result, source: 'journal', attempts: 0 }));
    const result = this.claimAndBuy(call).finally(() => this.inFlight.delete(call.callId));
    this.inFlight.set(call.callId, result);
    return result;
  }

  private async claimAndBuy(call: LlmCall): Promise<CallResult> {
    const { leaseMs, maxWaitMs } = this.options;
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const claim = await this.ask(call.callId, { type: 'claim', holder: this.holder, leaseMs });
      if (claim.type === 'result') return claim.result;
      if (claim.type === 'go') break;
      if (claim.type !== 'busy' || Date.now() + claim.retryAfterMs > deadline) {
        throw new RuntimeError(RuntimeErrorCode.Unavailable, `LLM call ${call.callId} is being bought by another node; gave up waiting`, {
          retriable: true,
        });
      }
      // The holder may finish well before its lease lapses: look again soon.
      await this.options.sleep(Math.min(claim.retryAfterMs, leaseMs / 10));
    }
    const renewal = setInterval(() => {
      this.ask(call.callId, { type: 'renew', holder: this.holder, leaseMs }).catch((error: unknown) =>
        this.options.onError(toError(error)),
      );
    }, leaseMs / 3);
    let result: CallResult;
    try {
      result = await this.llm.complete(call);
    } catch (error) {
      // Not journaled: a budget pause, an open circuit or an outage may pass, and then the call is bought.
      await this.ask(call.callId, { type: 'release', holder: this.holder }).catch((releaseError: unknown) =>
        this.options.onError(toError(releaseError)),
      );
      throw error;
    } finally {
      clearInterval(renewal);
    }
    const recorded = await this.record(call, result, deadline);
    if (recorded.type !== 'result')
      throw new RuntimeError(RuntimeErrorCode.Corrupt, `llm-call ${call.callId} answered a record with ${recorded.type}`);
    return recorded.result;
  }

  /**
   * Journals a bought result. A record lost to a store or broker that is down for now (a
   * rebalance, a frozen store) is sent again until `deadline`: recording twice journals once,
   * and giving up would have the call bought again.
   */
  private async record(call: LlmCall, result: CallResult, deadline: number): Promise<LlmCallReply> {
    for (let waitMs = RECORD_RETRY_MS; ; waitMs = Math.min(2 * waitMs, RECORD_RETRY_MAX_MS)) {
      try {
        return await this.ask(call.callId, { type: 'record', holder: this.holder, result, account: call.account });
      } catch (error) {
        if (!isPassing(error) || Date.now() + waitMs > deadline) throw error;
        this.options.onError(toError(error));
        await this.options.sleep(waitMs);
      }
    }
  }

  private ask(callId: string, message: LlmCallMessage): Promise<LlmCallReply> {
    return this.system.ask(this.actor as ActorType<unknown, LlmCallMessage, unknown, LlmCallReply>, callId, message, {
      timeoutMs: this.options.askTimeoutMs,
    });
  }
}
