/**
 * The LlmClient buys LLM calls safely: the response cache first (when the pool switched it on),
 * then a budget reservation, RPM/TPM room, the provider's circuit breaker and retries, and at
 * the end the settled cost in the budgets and the ledger. It is the one place money is spent;
 * `JournaledLlm` (journal.ts) wraps it so a result is journaled before anyone uses it.
 */
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import type { Budgets } from './budget.js';
import type { CallAccount, CostLedger } from './ledger.js';
import { withDefaults } from './options.js';
import { toUSD, type PriceTable } from './pricing.js';
import type { ChatMessage, Completion, FinishReason, LlmProvider, Usage } from './providers/provider.js';
import {
  CIRCUIT_BREAKER_DEFAULTS,
  CircuitBreaker,
  LLM_RETRY_DEFAULTS,
  outcomeOf,
  realSleep,
  withRetries,
  type CircuitBreakerOptions,
  type CircuitState,
  type LlmRateLimiter,
  type LlmResponseCache,
  type LlmRetryPolicy,
  type RateLimits,
  type Sleep,
} from './resilience.js';
import { countChatTokens } from './tokens.js';

/** One LLM call as an agent asks for it. Plain data: it crosses worker threads and the journal. */
export interface LlmCall {
  /**
   * Deterministic for the step that makes the call (e.g. `<project>/<task>/<step>/<repair>`):
   * the journal's key, so a repeat after a crash finds the result instead of buying it again.
   */
  callId: string;
  /** The ModelProvider's name. */
  provider: string;
  model: string;
  messages: ChatMessage[];
  maxOutputTokens: number;
  temperature?: number;
  responseFormat?: 'text' | 'json';
  /** The prompt's estimated tokens, when the caller counted them already (agent workers do). */
  promptTokens?: number;
  account: CallAccount;
  /** Answer from the response cache when it holds the same question (AgentPool `cache`). */
  cache?: boolean;
  /** The pool's limits for the provider/model's buckets (AgentPool.spec.rateLimit). */
  rateLimit?: RateLimits;
}

/** Where a result came from: bought now, reused from the cache, or replayed from the journal. */
export type ResultSource = 'provider' | 'cache' | 'journal';

/** What a call produced. Plain data, journaled as it is. */
export interface CallResult {
  callId: string;
  provider: string;
  /** The model asked for (the price table's key). */
  model: string;
  text: string;
  usage: Usage;
  finishReason: FinishReason;
  /** What this result cost when it was bought (0 for a cache hit). */
  costUSD: number;
  priced: boolean;
  source: ResultSource;
  /** Provider requests it took, retries included (0 for a cache hit). */
  attempts: number;
}

/**
 * Anything that answers LLM calls: the LlmClient itself, or `JournaledLlm` in front of it.
 * Failures are RuntimeErrors: BudgetExceededError, ProviderError, CircuitOpenError, RateLimitedError.
 */
export interface LlmCaller {
  complete(call: LlmCall): Promise<CallResult>;
}

/** A ModelProvider as the client uses it: its client and its price table. */
export interface RegisteredProvider {
  provider: LlmProvider;
  pricing: PriceTable;
}

export interface LlmClientOptions {
  providers: readonly RegisteredProvider[];
  budgets: Budgets;
  ledger: CostLedger;
  /** RPM/TPM buckets; without one, pools' rate limits are not enforced. */
  rateLimiter?: LlmRateLimiter;
  /** The response cache pools may switch on; without one, `cache` is ignored. */
  responseCache?: LlmResponseCache;
  retry: LlmRetryPolicy;
  /** Per provider: each ModelProvider gets its own breaker with these settings. */
  breaker: Omit<CircuitBreakerOptions, 'clock'>;
  /**
   * Added to the prompt estimate when reserving budget and tokens (default 0.1), since a
   * provider's tokenizer may count more than ours.
   */
  promptMargin: number;
  clock: () => number;
  sleep: Sleep;
  random: () => number;
  /** Told when a provider's circuit opens or closes. */
  onCircuitChange: (provider: string, state: CircuitState) => void;
}

export const LLM_CLIENT_DEFAULTS = {
  retry: LLM_RETRY_DEFAULTS,
  breaker: {
    failureThreshold: CIRCUIT_BREAKER_DEFAULTS.failureThreshold,
    openMs: CIRCUIT_BREAKER_DEFAULTS.openMs,
    halfOpenProbes: CIRCUIT_BREAKER_DEFAULTS.halfOpenProbes,
  },
  promptMargin: 0.1,
  clock: Date.now,
  sleep: realSleep,
  random: Math.random,
  onCircuitChange: (provider: string, state: CircuitState) => console.warn(`troupe llm: circuit of provider ${provider} is ${state}`),
} as const satisfies Partial<LlmClientOptions>;

/**
 * @example
 * const llm = new LlmClient({
 *   providers: [{ provider: new OpenAiProvider({ name: 'openai', apiKey }), pricing: new PriceTable(spec.pricing) }],
 *   budgets, ledger, rateLimiter, responseCache,
 * });
 * const result = await llm.complete({ callId: 'acme/shop/req-1/0', provider: 'openai', model: 'gpt-4o-mini',
 *   messages, maxOutputTokens: 512, account: { client: 'acme', project: 'acme/shop', role: 'pm', phase: 'requirements' } });
 */
export class LlmClient implements LlmCaller {
  private readonly options: LlmClientOptions;
  private readonly providers = new Map<string, RegisteredProvider & { breaker: CircuitBreaker }>();

  constructor(options: Pick<LlmClientOptions, 'providers' | 'budgets' | 'ledger'> & Partial<LlmClientOptions>) {
    this.options = withDefaults(LLM_CLIENT_DEFAULTS, options);
    const { promptMargin, retry } = this.options;
    if (!(Number.isFinite(promptMargin) && promptMargin >= 0)) throw invalid('promptMargin', 'must be a number ≥ 0', promptMargin);
    for (const key of ['maxAttempts', 'baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const) {
      if (!Number.isInteger(retry[key]) || retry[key] < (key === 'maxAttempts' ? 1 : 0))
        throw invalid(`retry.${key}`, 'must be a non-negative integer (maxAttempts ≥ 1)', retry[key]);
    }
    for (const registered of this.options.providers) {
      const { name } = registered.provider;
      if (this.providers.has(name)) throw invalid('providers', `names provider ${name} twice`, name);
      const breaker = new CircuitBreaker(name, { ...this.options.breaker, clock: this.options.clock }, (state) =>
        this.options.onCircuitChange(name, state),
      );
      this.providers.set(name, { ...registered, breaker });
    }
  }

  /** The state of a provider's circuit breaker. */
  circuit(provider: string): CircuitState {
    return this.registered(provider).breaker.state;
  }

  async complete(call: LlmCall): Promise<CallResult> {
    const { provider, pricing, breaker } = this.registered(call.provider);
    const request = {
      provider: call.provider,
      model: call.model,
      messages: call.messages,
      maxOutputTokens: call.maxOutputTokens,
      temperature: call.temperature,
      responseFormat: call.responseFormat,
      callId: call.callId,
    };
    const cache = call.cache === true ? this.options.responseCache : undefined;
    const cached = await cache?.get(request);
    if (cached !== undefined) {
      const free = { nanoUSD: 0, priced: pricing.has(call.model) };
      this.options.ledger.record({
        account: call.account,
        provider: call.provider,
        model: call.model,
        usage: cached.usage,
        cost: free,
        cached: true,
      });
      return result(call, cached, free, 'cache', 0);
    }

    const promptTokens = Math.ceil((call.promptTokens ?? countChatTokens(call.messages)) * (1 + this.options.promptMargin));
    const budgeted = promptTokens + call.maxOutputTokens;
    const reservation = this.options.budgets.reserve(call.account, {
      nanoUSD: pricing.cost(call.model, { inputTokens: promptTokens, outputTokens: call.maxOutputTokens }).nanoUSD,
      tokens: budgeted,
    });
    let attempts = 0;
    try {
      const completion = await withRetries(
        async () => {
          const grant = await this.options.rateLimiter?.acquire(`${call.provider}/${call.model}`, call.rateLimit, budgeted);
          try {
            breaker.acquire();
          } catch (error) {
            grant?.refundTokens(budgeted);
            throw error;
          }
          attempts += 1;
          try {
            const answer = await provider.complete(request);
            breaker.record('success');
            grant?.refundTokens(budgeted - answer.usage.inputTokens - answer.usage.outputTokens);
            return answer;
          } catch (error) {
            breaker.record(outcomeOf(error));
            grant?.refundTokens(budgeted);
            throw error;
          }
        },
        this.options.retry,
        { sleep: this.options.sleep, random: this.options.random },
      );
      const cost = pricing.cost(call.model, completion.usage);
      reservation.settle({ nanoUSD: cost.nanoUSD, tokens: completion.usage.inputTokens + completion.usage.outputTokens });
      this.options.ledger.record({
        account: call.account,
        provider: call.provider,
        model: call.model,
        usage: completion.usage,
        cost,
        cached: false,
      });
      cache?.set(request, completion);
      return result(call, completion, cost, 'provider', attempts);
    } finally {
      // A no-op after settle; otherwise nothing was bought and the reservation goes back.
      reservation.release();
    }
  }

  private registered(name: string) {
    const registered = this.providers.get(name);
    if (registered === undefined) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `no ModelProvider named ${JSON.stringify(name)} is registered (known: ${[...this.providers.keys()].join(', ')})`,
      );
    }
    return registered;
  }
}

function result(
  call: LlmCall,
  completion: Completion,
  cost: { nanoUSD: number; priced: boolean },
  source: ResultSource,
  attempts: number,
): CallResult {
  return {
    callId: call.callId,
    provider: call.provider,
    model: call.model,
    text: completion.text,
    usage: completion.usage,
    finishReason: completion.finishReason,
    costUSD: toUSD(cost.nanoUSD),
    priced: cost.priced,
    source,
    attempts,
  };
}

function invalid(key: string, rule: string, value: unknown): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `LlmClient option ${key} ${rule}, got ${String(value)}`);
}
