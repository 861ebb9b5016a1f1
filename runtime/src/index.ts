/**
 * @troupe/runtime: the actor runtime and what runs on it. Composition roots choose the
 * Transport and Store with `openTransport` and `openStore`; everything else takes them as
 * interfaces.
 */
export {
  ActorSystem,
  ACTOR_SYSTEM_DEFAULTS,
  DEAD_LETTER_TOPIC,
  type ActorSystemOptions,
  type ActorSystemObserver,
  type ActorSystemTracer,
  type TurnOutcome,
} from './actors/actor-system.js';
export { ActorClient, REPLY_TOPIC, type ActorClientOptions, type MessageTracing } from './actors/actor-client.js';
export { actorTracing } from './tracing/runtime-tracing.js';
export { defineActor, actorTopic, jsonCodec, type ActorType, type ActorContext, type Codec, type TimerDue } from './actors/actor.js';
export { RETRY_DEFAULTS, type RetryPolicy } from './actors/supervision.js';
export { RuntimeError, ActorError, TransportError, RuntimeErrorCode } from './errors.js';
export { startEmbeddedRuntime, type EmbeddedRuntime, type EmbeddedRuntimeOptions } from './embedded.js';
export {
  startCompanyStack,
  type CompanyStack,
  type CompanyStackOptions,
  type DeliveryConfig,
  type StackInstrumentation,
} from './company-stack.js';
export { WEBHOOK_HEADERS, webhookSignature } from './domain/delivery/webhook-client.js';
export type { NoticeType, WebhookPayload } from './domain/delivery/delivery.types.js';
export {
  startNode,
  NODE_DEFAULTS,
  NODE_COMPONENTS,
  type NodeOptions,
  type NodeComponent,
  type NodeGatewayOptions,
  type RunningNode,
} from './node/start-node.js';
export { RuntimeMetrics, RUNTIME_METRICS_DEFAULTS, type RuntimeMetricsOptions } from './metrics/runtime-metrics.js';
export { Company, COMPANY_DEFAULTS, type CompanyOptions } from './domain/company.js';
export type { PoolResource } from './domain/pools.js';
export type { RuntimeApi, WatchFilter, StopWatching, ArtifactContent, Invoice, InvoiceLine } from './api/runtime-api.js';
export { startGrpcServer, GRPC_SERVER_DEFAULTS, type GrpcServerHandle, type GrpcServerOptions } from './api/grpc-server.js';
export { openTransport, type TransportConfig } from './transport/open.js';
export { openStore, type StoreConfig } from './store/open.js';
export { partitionFor } from './transport/partitioner.js';
export { openServices, type ServicesConfig } from './services/open.js';
export type { ClusterServices, RateLimiter, ResponseCache, PubSub, BucketLimit, TakeResult, Unsubscribe } from './services/services.js';
export type {
  Transport,
  ProducerRecord,
  ConsumedRecord,
  PartitionBatch,
  PartitionAssignment,
  SubscribeOptions,
  Subscription,
} from './transport/transport.js';
export type {
  Store,
  ActorRef,
  TurnWrite,
  ActorRecord,
  Timer,
  Fence,
  Snapshot,
  StoredEvent,
  OutboxMessage,
  ArtifactRecord,
} from './store/store.js';
export {
  LlmClient,
  LLM_CLIENT_DEFAULTS,
  type LlmCall,
  type LlmCaller,
  type CallResult,
  type ResultSource,
  type RegisteredProvider,
  type LlmClientOptions,
} from './llm/client.js';
export {
  AgentPool,
  AGENT_POOL_DEFAULTS,
  type AgentPoolSpec,
  type AgentPoolOptions,
  type AgentTaskInput,
  type AgentTaskOutcome,
  type AgentPoolStats,
} from './llm/agent-pool.js';
export type { OutputSpec, FieldType, TaskOutput, CallSummary } from './llm/agent-contract.js';
export {
  JournaledLlm,
  llmCallActor,
  LLM_CALL_ACTOR,
  JOURNALED_LLM_DEFAULTS,
  type JournaledLlmOptions,
  type LeaseHolder,
  type LlmCallMessage,
  type LlmCallEvent,
  type LlmCallReply,
  type LlmCallState,
} from './llm/journal.js';
export {
  Budgets,
  type BudgetLimit,
  type BudgetUsage,
  type BudgetAmount,
  type ProjectBudgetState,
  type BudgetExceededEvent,
  type Reservation,
} from './llm/budget.js';
export { CostLedger, type CallAccount, type LedgerEntry, type LedgerTotals, type LedgerRow, type LedgerFilter } from './llm/ledger.js';
export { ClientLedgers, costLedgerActor, COST_LEDGER_ACTOR } from './llm/ledger.actor.js';
export { PriceTable, type ModelPrice, type CallCost } from './llm/pricing.js';
export {
  LlmRateLimiter,
  LLM_RATE_LIMITER_DEFAULTS,
  LlmResponseCache,
  LLM_RESPONSE_CACHE_DEFAULTS,
  CircuitBreaker,
  CIRCUIT_BREAKER_DEFAULTS,
  StuckLoopDetector,
  STUCK_LOOP_DEFAULTS,
  LLM_RETRY_DEFAULTS,
  responseCacheKey,
  type RateLimits,
  type LlmRetryPolicy,
  type CircuitState,
  type LlmRateLimiterOptions,
  type LlmResponseCacheOptions,
} from './llm/resilience.js';
export { createProvider, type ModelProviderSpec } from './llm/providers/create-provider.js';
export type {
  LlmProvider,
  ProviderType,
  CompletionRequest,
  Completion,
  StreamEvent,
  Usage,
  FinishReason,
  ChatMessage,
  HostedProviderOptions,
} from './llm/providers/provider.js';
export { OpenAiProvider } from './llm/providers/openai.js';
export { AnthropicProvider } from './llm/providers/anthropic.js';
export { OllamaProvider, type OllamaProviderOptions } from './llm/providers/ollama.js';
export { SimulatedProvider, simulateAnswer, type SimulatedProviderOptions, type SimulatedModelOptions } from './llm/providers/simulated.js';
export {
  SimulatedServer,
  SIMULATED_SERVER_DEFAULTS,
  type SimulatedServerOptions,
  type SimulatedFault,
  type SimulatedServerStats,
  type AnsweredCall,
  type WireFormat,
} from './llm/simulated-server.js';
export {
  LlmError,
  ProviderError,
  BudgetExceededError,
  CircuitOpenError,
  RateLimitedError,
  StuckLoopError,
  MalformedOutputError,
  InvalidTaskError,
  type BudgetLevel,
  type OnExceeded,
} from './llm/errors.js';
export { countTokens, countChatTokens } from './llm/tokens.js';
export { Gateway, GATEWAY_DEFAULTS, type GatewayOptions } from './gateway/gateway.js';
export { StreamServer, STREAM_SERVER_DEFAULTS, type StreamServerOptions } from './gateway/stream-server.js';
export { STREAM_LIMITS_DEFAULTS, type StreamLimits } from './gateway/stream.js';
export {
  TopicHub,
  TOPIC_HUB_DEFAULTS,
  type TopicHubOptions,
  type TopicTuning,
  type SnapshotSource,
  type ResumePoint,
} from './gateway/topic-hub.js';
// The token format and its types are @troupe/proto's; this Tokens reports failures as RuntimeErrors.
export { Tokens } from './gateway/tokens.js';
