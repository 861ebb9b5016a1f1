/**
 * The runtime's Prometheus metrics (prom-client): one registry per process, fed through the
 * observers and decorators the composition root hands to the parts it assembles — the actor
 * system's observer, wrapped LLM providers and callers, the gateway's drop callback — so that no
 * part imports prom-client. Families exist only for the parts a process runs: each `observe…`
 * method registers its families, so call it once per process (the LLM ones excepted, which wrap
 * every provider and caller).
 *
 * Names follow Prometheus conventions: the `troupe_` prefix, base units (`_seconds`, `_usd`),
 * `_total` on counters, and labels of bounded cardinality (actor types, topics and partitions,
 * providers and models, namespaces, projects).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ActorSystemObserver, TurnOutcome } from '../actors/actor-system.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { Budgets } from '../llm/budget.js';
import type { CallResult, LlmCall, LlmCaller } from '../llm/client.js';
import type { CompletionRequest, LlmProvider, StreamEvent } from '../llm/providers/provider.js';
import { withTimeout } from '../llm/resilience.js';
import type { PartitionAssignment, Transport } from '../transport/transport.js';

export interface RuntimeMetricsOptions {
  /** Also export Node's process metrics (`process_*`, `nodejs_*`: CPU, memory, event loop lag, GC); default true. */
  processMetrics: boolean;
  /** How long a scrape waits for the broker's offsets before it leaves mailbox lag out, in ms (default 2,000). */
  lagTimeoutMs: number;
  /** Told when mailbox lag could not be read; the scrape goes on without it. */
  onError: (error: Error) => void;
}

export const RUNTIME_METRICS_DEFAULTS = {
  processMetrics: true,
  lagTimeoutMs: 2_000,
  onError: (error: Error) => console.warn(`troupe metrics: ${error.message}`),
} as const satisfies RuntimeMetricsOptions;

/** LLM requests take from a fraction of a second (a cache-warm small model) to minutes (a long answer). */
const LLM_LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** The `<namespace>/<name>` of a project, split for labels. */
function projectLabels(project: string): { namespace: string; project: string } {
  const slash = project.indexOf('/');
  return slash < 0 ? { namespace: '', project } : { namespace: project.slice(0, slash), project: project.slice(slash + 1) };
}

/**
 * @example
 * const metrics = new RuntimeMetrics();
 * const observer = metrics.observeActors(transport, 'troupe.runtime');
 * const system = await ActorSystem.start({ transport, store, actors, observer });
 * response.end(await metrics.exposition());
 */
export class RuntimeMetrics {
  /** Every family of this process. */
  readonly registry = new Registry();
  private readonly options: RuntimeMetricsOptions;
  private llmFamilies:
    | { latency: Histogram<'provider' | 'model'>; tokens: Counter<'provider' | 'model' | 'direction'>; cost: Counter<'namespace'> }
    | undefined;

  constructor(options: Partial<RuntimeMetricsOptions> = {}) {
    this.options = { ...RUNTIME_METRICS_DEFAULTS, ...options };
    if (this.options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The content type of {@link exposition}: the Prometheus text format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every family in the Prometheus text format, collecting the gauges that are read when scraped. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Turns per actor type and outcome, and the mailbox lag of each partition this node owns — the
   * records (messages, or packs of them) of its actor topic that the group `groupId` has not committed yet, read from
   * `transport` when scraped. Hand the observer to the ActorSystem (or the Company).
   */
  observeActors(transport: Transport, groupId: string): ActorSystemObserver {
    const turns = new Counter({
      name: 'troupe_actor_turns_total',
      help: 'Turns of durable actors by actor type and outcome: ok, error (retried or redelivered), duplicate (input applied already), dead_lettered (given up on).',
      labelNames: ['actor_type', 'outcome'] as const,
      registers: [this.registry],
    });
    const owned = new Map<string, { topic: string; partition: number }>();
    const key = ({ topic, partition }: PartitionAssignment) => `${topic}/${partition}`;
    const lag = new Gauge({
      name: 'troupe_mailbox_lag_messages',
      help: 'Records in an actor topic partition this node owns that its consumer group has not committed yet; a record carries one message, or a pack of messages sent together.',
      labelNames: ['topic', 'partition'] as const,
      registers: [this.registry],
      collect: async () => {
        lag.reset();
        const read = Promise.all(
          [...owned.values()].map(async ({ topic, partition }) => {
            const [end, committed] = await Promise.all([
              transport.endOffset(topic, partition),
              transport.committedOffset(groupId, topic, partition),
            ]);
            return { topic, partition, lag: Math.max(0, end - (committed ?? 0)) };
          }),
        );
        try {
          for (const sample of await withTimeout(read, this.options.lagTimeoutMs))
            lag.set({ topic: sample.topic, partition: String(sample.partition) }, sample.lag);
        } catch (error) {
          this.options.onError(
            new RuntimeError(RuntimeErrorCode.Unavailable, `mailbox lag left out of this scrape: ${toError(error).message}`, {
              retriable: true,
              cause: error,
            }),
          );
        }
      },
    });
    return {
      turnEnded: (actorType: string, outcome: TurnOutcome) => turns.inc({ actor_type: actorType, outcome }),
      partitionsAssigned: (assignments) => {
        for (const assignment of assignments) owned.set(key(assignment), { topic: assignment.topic, partition: assignment.partition });
      },
      partitionsRevoked: (assignments) => {
        for (const assignment of assignments) owned.delete(key(assignment));
      },
    };
  }

  /** The provider with each request's latency measured, by provider and model, whether it answered or failed. */
  observeProvider(provider: LlmProvider): LlmProvider {
    const { latency } = this.llm();
    const labels = (request: CompletionRequest) => ({ provider: provider.name, model: request.model });
    return {
      name: provider.name,
      type: provider.type,
      async complete(request) {
        const end = latency.startTimer(labels(request));
        try {
          return await provider.complete(request);
        } finally {
          end();
        }
      },
      async *stream(request): AsyncIterable<StreamEvent> {
        const end = latency.startTimer(labels(request));
        try {
          yield* provider.stream(request);
        } finally {
          end();
        }
      },
      ...(provider.close === undefined ? {} : { close: () => provider.close?.() }),
    };
  }

  /**
   * The caller with what each call bought counted: tokens by provider, model and direction, and
   * its cost by namespace. Answers from the response cache or the journal were not bought and
   * count nothing. Wrap the LlmClient, under the journal.
   */
  observeLlm(caller: LlmCaller): LlmCaller {
    const { tokens, cost } = this.llm();
    return {
      async complete(call: LlmCall): Promise<CallResult> {
        const result = await caller.complete(call);
        if (result.source === 'provider') {
          const labels = { provider: result.provider, model: result.model };
          tokens.inc({ ...labels, direction: 'input' }, result.usage.inputTokens);
          tokens.inc({ ...labels, direction: 'output' }, result.usage.outputTokens);
          cost.inc({ namespace: projectLabels(call.account.project).namespace }, result.costUSD);
        }
        return result;
      },
    };
  }

  /** What each project has left of its cost budget, as this process's budgets see it, read when scraped. */
  observeBudgets(budgets: Budgets): void {
    const remaining = new Gauge({
      name: 'troupe_budget_remaining_usd',
      help: 'What a project has left of its budget.maxCostUSD, as the node that runs its tasks counts it.',
      labelNames: ['namespace', 'project'] as const,
      registers: [this.registry],
      collect: () => {
        remaining.reset();
        for (const { project, remainingUSD } of budgets.remainingByProject()) remaining.set(projectLabels(project), remainingUSD);
      },
    });
  }

  /**
   * The gateway's stream clients, read from `connections` when scraped, and the ones it drops:
   * call the returned function from the gateway's `onClientDropped`.
   */
  observeGateway(connections: () => number): () => void {
    const clients = new Gauge({
      name: 'troupe_gateway_websocket_clients',
      help: 'WebSocket stream clients connected to this gateway.',
      registers: [this.registry],
      collect: () => {
        clients.set(connections());
      },
    });
    const dropped = new Counter({
      name: 'troupe_gateway_websocket_dropped_clients_total',
      help: 'WebSocket stream clients this gateway dropped for falling further behind than its backpressure limit.',
      registers: [this.registry],
    });
    return () => dropped.inc();
  }

  /** The LLM families, made by the first provider or caller observed. */
  private llm(): NonNullable<RuntimeMetrics['llmFamilies']> {
    this.llmFamilies ??= {
      latency: new Histogram({
        name: 'troupe_llm_request_duration_seconds',
        help: 'Time from sending one LLM provider request to its answer or failure, by provider and model.',
        labelNames: ['provider', 'model'] as const,
        buckets: LLM_LATENCY_BUCKETS,
        registers: [this.registry],
      }),
      tokens: new Counter({
        name: 'troupe_llm_tokens_total',
        help: 'Tokens of the LLM calls bought from providers, by provider, model and direction (input or output).',
        labelNames: ['provider', 'model', 'direction'] as const,
        registers: [this.registry],
      }),
      cost: new Counter({
        name: 'troupe_llm_cost_usd_total',
        help: "What the LLM calls bought cost, in US dollars, by the project's namespace.",
        labelNames: ['namespace'] as const,
        registers: [this.registry],
      }),
    };
    return this.llmFamilies;
  }
}
