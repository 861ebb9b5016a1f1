/**
 * The company and what it runs on, above the Transport and Store: budgets, the cost ledger, the
 * LLM client, the Company with its agent pools, and the gRPC API. The embedded runtime
 * (`npm start`) and the cluster's runtime node both assemble it here; they differ only in what
 * they hand in — the embedded log or Kafka, SQLite or Cassandra, in-process or Redis limits, and
 * whether metrics observe it.
 */
import { startGrpcServer, type GrpcServerHandle, type GrpcServerOptions } from './api/grpc-server.js';
import type { ActorSystemObserver } from './actors/actor-system.js';
import type { ArtifactStore } from './domain/artifacts.js';
import { COMPANY_DEFAULTS, Company, type CompanyOptions } from './domain/company.js';
import { RETRY_POLICY_DEFAULTS, type RetryPolicy } from './domain/delivery/delivery.types.js';
import { FileSecrets } from './domain/delivery/file-secrets.js';
import { GitCliPusher } from './domain/delivery/git-client.js';
import { SmtpMailer } from './domain/delivery/smtp-client.js';
import { HttpWebhookClient } from './domain/delivery/webhook-client.js';
import type { PoolResource } from './domain/pools.js';
import { Budgets } from './llm/budget.js';
import { LlmClient, type LlmCaller, type RegisteredProvider } from './llm/client.js';
import { CostLedger } from './llm/ledger.js';
import type { ClientLedgers } from './llm/ledger.actor.js';
import { withDefaults } from './llm/options.js';
import type { LlmProvider } from './llm/providers/provider.js';
import type { LlmRateLimiter, LlmResponseCache } from './llm/resilience.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import type { Store } from './store/store.js';
import type { Transport } from './transport/transport.js';

/** What watches the stack for metrics (RuntimeMetrics is one); the stack knows no metrics library. */
export interface StackInstrumentation {
  /** Wraps each provider, e.g. to time its requests. */
  observeProvider(provider: LlmProvider): LlmProvider;
  /** Wraps the LLM client (under the journal), e.g. to count what calls bought. */
  observeLlm(caller: LlmCaller): LlmCaller;
  /** The observer of the company's actor system, which consumes as `groupId` from `transport`. */
  observeActors(transport: Transport, groupId: string): ActorSystemObserver;
  observeBudgets(budgets: Budgets): void;
}

export interface CompanyStackOptions {
  transport: Transport;
  /**
   * Where the actors keep their state. Without it the stack hosts no actors and is a pool
   * replica: it runs `pools`, whose tasks come from their pool topics, and reaches the projects
   * and the LLM journal on the runtime nodes through the transport; it takes no `grpc` or `delivery`.
   */
  store?: Store;
  artifacts: ArtifactStore;
  /** The model providers pools may name (see `createProvider`). */
  providers: readonly RegisteredProvider[];
  /** Agent pools to run from the start. */
  pools?: readonly PoolResource[];
  /**
   * Serve gRPC on `host` (default 127.0.0.1) at `port` (0: any free port) to callers with a
   * token `tokens` verifies; no gRPC when absent.
   */
  grpc?: GrpcServerOptions;
  /** Cluster-wide RPM/TPM buckets; pools' rate limits are not enforced without them. */
  rateLimiter?: LlmRateLimiter;
  /** The response cache pools may switch on. */
  responseCache?: LlmResponseCache;
  instrumentation?: StackInstrumentation;
  /** Webhooks, notice emails and git pushes of the projects that ask for them; none are made without it. */
  delivery?: DeliveryConfig;
  company: Partial<Pick<CompanyOptions, 'nodeId' | 'groupId' | 'partitions' | 'taskCheckMs' | 'onError'>>;
}

/** Where delivery works and what it talks to. */
export interface DeliveryConfig {
  /** Git pushes make their scratch clones here. */
  scratchDir: string;
  /** Webhook and git Secrets are read from `<secretsDir>/<namespace>/<name>/<key>`. */
  secretsDir: string;
  /** The relay notice emails go through; projects' emails fail without one. */
  smtp?: { host: string; port: number };
  /** The From of notice emails (default `Troupe <troupe@troupe.dev>`). */
  mailFrom?: string;
  retry?: Partial<RetryPolicy>;
}

export interface CompanyStack {
  company: Company;
  /** The durable cost ledger of the cluster (the company's), which invoices are made from. */
  ledger: ClientLedgers;
  /** host:port of the gRPC API, when it was asked for. */
  grpcAddress?: string;
  /**
   * Stops taking gRPC calls (open watch streams end, calls in flight finish), stops the company
   * (turns in flight finish, offsets are committed, the node leaves its consumer group) and
   * closes the providers. The transport and store stay open: they are the caller's.
   */
  stop(): Promise<void>;
}

/**
 * @example
 * const stack = await startCompanyStack({ transport, store, artifacts, providers, grpc: { port: 0, tokens }, company: { nodeId: 'node-0' } });
 * await stack.company.submitProject('cmd-1', command);
 * await stack.stop();
 */
export async function startCompanyStack(options: CompanyStackOptions): Promise<CompanyStack> {
  const { instrumentation } = options;
  if (options.store === undefined && (options.grpc !== undefined || options.delivery !== undefined)) {
    throw new RuntimeError(RuntimeErrorCode.InvalidOptions, 'a company stack without a store serves no gRPC and makes no deliveries');
  }
  const budgets = new Budgets();
  // What this process bought; the cluster's ledger is fed from the LLM journal instead.
  const bought = new CostLedger();
  const providers = options.providers.map((registered) =>
    instrumentation === undefined ? registered : { ...registered, provider: instrumentation.observeProvider(registered.provider) },
  );
  const client = new LlmClient({
    providers,
    budgets,
    ledger: bought,
    ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }),
    ...(options.responseCache === undefined ? {} : { responseCache: options.responseCache }),
  });
  const groupId = options.company.groupId ?? COMPANY_DEFAULTS.groupId;
  const llm = instrumentation === undefined ? client : instrumentation.observeLlm(client);
  const company =
    options.store === undefined
      ? await Company.connect(withDefaults({ transport: options.transport, llm, budgets, artifacts: options.artifacts }, options.company))
      : await Company.start(
          withDefaults(
            {
              transport: options.transport,
              store: options.store,
              llm,
              budgets,
              artifacts: options.artifacts,
              ...(options.delivery === undefined ? {} : { delivery: deliveryServices(options.delivery) }),
              ...(instrumentation === undefined ? {} : { observer: instrumentation.observeActors(options.transport, groupId) }),
            },
            options.company,
          ),
        );
  instrumentation?.observeBudgets(budgets);
  const closeProviders = () => {
    for (const { provider } of providers) provider.close?.();
  };
  let grpc: GrpcServerHandle | undefined;
  try {
    for (const pool of options.pools ?? []) await company.applyPool(pool);
    if (options.grpc !== undefined) grpc = await startGrpcServer(company, options.grpc);
  } catch (error) {
    await company.stop();
    closeProviders();
    throw error;
  }
  return {
    company,
    ledger: company.ledger,
    ...(grpc === undefined ? {} : { grpcAddress: grpc.address }),
    async stop() {
      await grpc?.close();
      await company.stop();
      closeProviders();
    },
  };
}

function deliveryServices(config: DeliveryConfig): NonNullable<CompanyOptions['delivery']> {
  return {
    webhooks: new HttpWebhookClient(),
    git: new GitCliPusher({ scratchDir: config.scratchDir }),
    ...(config.smtp === undefined ? {} : { mailer: new SmtpMailer(config.smtp) }),
    secrets: new FileSecrets(config.secretsDir),
    ...(config.mailFrom === undefined ? {} : { mailFrom: config.mailFrom }),
    retry: { ...RETRY_POLICY_DEFAULTS, ...config.retry },
  };
}
