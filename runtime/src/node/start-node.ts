/**
 * A runtime node of a cluster, composed: what `node/main.ts` runs in each pod, and what tests
 * start directly. It runs the components it is given — `runtime` (the project actors and the gRPC
 * RuntimeService), `pool` (a replica of agent pools, taking tasks from their pool topics), both on
 * Kafka, Cassandra and Redis, and `gateway`
 * (the uWebSockets.js gateway and dashboard) — and beside them the ops endpoint: Prometheus
 * metrics of every component, liveness, and readiness that checks the broker, the store and
 * Redis for real. `stop` shuts down gracefully: readiness fails first, the ports close, turns in
 * flight finish, offsets are committed and the node leaves its consumer group.
 */
import type { RuntimeApi } from '../api/runtime-api.js';
import { EVENTS_TOPIC } from '../domain/project-events.js';
import { BlobArtifactStore, FileBlobStore } from '../domain/artifacts.js';
import { COMPANY_DEFAULTS, Company } from '../domain/company.js';
import type { PoolResource } from '../domain/pools.js';
import { startCompanyStack, type CompanyStack, type DeliveryConfig } from '../company-stack.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { Gateway } from '../gateway/gateway.js';
import { Tokens } from '../gateway/tokens.js';
import type { RegisteredProvider } from '../llm/client.js';
import { withDefaults } from '../llm/options.js';
import { LlmRateLimiter, LlmResponseCache } from '../llm/resilience.js';
import { RuntimeMetrics } from '../metrics/runtime-metrics.js';
import { logError } from '../security/redact.js';
import { EmbeddedServices } from '../services/embedded/embedded-services.js';
import { openServices, type ServicesConfig } from '../services/open.js';
import type { ClusterServices } from '../services/services.js';
import { openStore, type StoreConfig } from '../store/open.js';
import type { Store } from '../store/store.js';
import { openTransport, type TransportConfig } from '../transport/open.js';
import type { Transport } from '../transport/transport.js';
import { Health, type HealthOptions } from './health.js';
import { startOpsServer, type OpsServer } from './ops-server.js';

/** What a node can run; a process runs one or more. */
export const NODE_COMPONENTS = ['runtime', 'pool', 'gateway'] as const;
export type NodeComponent = (typeof NODE_COMPONENTS)[number];

/** The gateway component's settings. */
export interface NodeGatewayOptions {
  /** Where browsers and API clients connect; 0 picks a free port. */
  port: number;
  /** The dashboard's static build; without it the gateway serves its API alone. */
  staticDir?: string;
}

export interface NodeOptions {
  /** What this process runs. */
  components: readonly NodeComponent[];
  transport: TransportConfig;
  /** Where the actors' state and the artefacts' catalog are kept; `runtime` and `pool` need it. */
  store?: StoreConfig;
  /** Cluster-wide rate limits and the response cache; `runtime` and `pool` need them. */
  services?: ServicesConfig;
  /** Unique in the cluster and stable across restarts of this node (a pod's name). */
  nodeId: string;
  /** The runtime nodes' consumer group (default `troupe.runtime`). */
  groupId: string;
  /** Partitions of each actor topic; the same on every node (default 16). */
  partitions: number;
  /** The address every port listens on (default `0.0.0.0`). */
  host: string;
  /** The gRPC RuntimeService's port, with `runtime` (default 50051; 0 picks a free port). */
  grpcPort: number;
  /** The ops port: /metrics, /healthz, /readyz (default 8081; 0 picks a free port). */
  httpPort: number;
  /** Where deliverables are kept: a volume the runtime nodes and gateways share. */
  artifactsDir: string;
  /** Webhooks, notice emails and git pushes of the `runtime` component; none are made without it. */
  delivery?: DeliveryConfig;
  /** The model providers the pools call. */
  providers: readonly RegisteredProvider[];
  /** The agent pools of the `pool` component. */
  pools: readonly PoolResource[];
  /** Settings of the `gateway` component, required with it. */
  gateway?: NodeGatewayOptions;
  /**
   * Signs and verifies the bearer tokens of the gRPC API and the gateway (32 bytes or more);
   * every node shares it. Required with `runtime` and `gateway`: no entry point takes anonymous calls.
   */
  tokenSecret?: string;
  health: Partial<HealthOptions>;
  /** How often a project checks that its running tasks are alive (default 30 s). */
  taskCheckMs: number;
  /** Where errors that have no caller go. */
  onError: (error: Error) => void;
}

export const NODE_DEFAULTS = {
  groupId: COMPANY_DEFAULTS.groupId,
  partitions: COMPANY_DEFAULTS.partitions,
  host: '0.0.0.0',
  grpcPort: 50051,
  httpPort: 8081,
  providers: [],
  pools: [],
  health: {},
  taskCheckMs: COMPANY_DEFAULTS.taskCheckMs,
  onError: logError('troupe node'),
} as const satisfies Partial<NodeOptions>;

type Required = 'components' | 'transport' | 'nodeId' | 'artifactsDir';

/** A running node. */
export interface RunningNode {
  /** `http://host:port` of /metrics, /healthz and /readyz. */
  readonly opsUrl: string;
  /** host:port of the gRPC RuntimeService, with `runtime`. */
  readonly grpcAddress?: string;
  /** `http://host:port` of the gateway, with `gateway`. */
  readonly gatewayUrl?: string;
  /** The company this node runs or reaches. */
  readonly company: Company;
  /** Shuts down gracefully (see the module comment); resolves when everything is closed. Idempotent. */
  stop(): Promise<void>;
}

/** Everything opened so far, closed in reverse on stop or on a failed start. */
interface Parts {
  health: Health;
  ops?: OpsServer;
  transport?: Transport;
  store?: Store;
  services?: ClusterServices;
  stack?: CompanyStack;
  client?: Company;
  gateway?: Gateway;
}

/**
 * @example
 * const node = await startNode({
 *   components: ['runtime'], nodeId: 'runtime-0', artifactsDir: '/var/lib/troupe/artifacts',
 *   transport: { kind: 'kafka', brokers: ['kafka:9092'] },
 *   store: { kind: 'cassandra', contactPoints: ['cassandra'], localDataCenter: 'dc1' },
 *   services: { kind: 'redis', url: 'redis://redis:6379' }, tokenSecret: secretOf32BytesOrMore,
 * });
 * process.once('SIGTERM', () => void node.stop());
 */
export async function startNode(options: Pick<NodeOptions, Required> & Partial<NodeOptions>): Promise<RunningNode> {
  const settings = withDefaults(NODE_DEFAULTS, options) as NodeOptions;
  validate(settings);
  const has = (component: NodeComponent) => settings.components.includes(component);
  const metrics = new RuntimeMetrics({ onError: settings.onError });
  const parts: Parts = { health: new Health(settings.health) };
  const tokens = settings.tokenSecret === undefined ? undefined : new Tokens({ secret: settings.tokenSecret });
  let company: Company;
  try {
    parts.ops = await startOpsServer({
      host: settings.host,
      port: settings.httpPort,
      health: parts.health,
      metrics,
      onError: settings.onError,
    });
    const transport = await openTransport(settings.transport);
    parts.transport = transport;
    parts.health.addCheck({ name: transport.kind, check: async () => void (await transport.endOffset(EVENTS_TOPIC, 0)) });
    // Deliverables' bytes, on the volume every node shares; their catalog is in the store.
    const blobs = new FileBlobStore(settings.artifactsDir);
    const companyOptions = {
      nodeId: settings.nodeId,
      groupId: settings.groupId,
      partitions: settings.partitions,
      onError: settings.onError,
    };
    if (has('runtime') || has('pool')) {
      // A pool replica keeps its artefacts' catalog there; only a runtime keeps actors.
      const store = await openStore(settings.store!);
      parts.store = store;
      // A read of an actor no one writes: one cheap single-partition query.
      parts.health.addCheck({
        name: store.kind,
        check: async () => void (await store.load({ type: 'troupe-health', id: settings.nodeId })),
      });
      const services = await openServices(settings.services!);
      parts.services = services;
      parts.health.addCheck({ name: services.kind, check: async () => void (await services.responseCache.get('troupe-health')) });
      parts.stack = await startCompanyStack({
        transport,
        ...(has('runtime') ? { store } : {}),
        artifacts: new BlobArtifactStore({ blobs, catalog: store }),
        providers: settings.providers,
        pools: settings.pools,
        ...(!has('runtime')
          ? {}
          : {
              grpc: { host: settings.host, port: settings.grpcPort, tokens: tokens! },
              ...(settings.delivery === undefined ? {} : { delivery: settings.delivery }),
            }),
        // Limits are shared through Redis; while it is down each node keeps to them on its own.
        rateLimiter: new LlmRateLimiter({
          cluster: services.rateLimiter,
          local: EmbeddedServices.open().rateLimiter,
          onDegraded: settings.onError,
        }),
        responseCache: new LlmResponseCache(services.responseCache, { onError: settings.onError }),
        instrumentation: metrics,
        company: { ...companyOptions, taskCheckMs: settings.taskCheckMs },
      });
      company = parts.stack.company;
    } else {
      // No store here: artefacts are read by the sha256 a project's status gives.
      parts.client = await Company.connect({ transport, artifacts: new BlobArtifactStore({ blobs }), ...companyOptions });
      company = parts.client;
    }
    if (has('gateway')) {
      const gateway = settings.gateway!;
      let started: Gateway | undefined;
      const dropped = metrics.observeGateway(() => started?.stats().connections ?? 0);
      started = await Gateway.start({
        api: company,
        scalePool: scaledByAgentPool,
        tokens: tokens!,
        staticDir: gateway.staticDir,
        host: settings.host,
        port: gateway.port,
        onError: settings.onError,
        onClientDropped: dropped,
      });
      parts.gateway = started;
    }
  } catch (error) {
    await shutDown(parts).catch((cleanup: unknown) => settings.onError(toError(cleanup)));
    throw error;
  }
  parts.health.started();
  let stopping: Promise<void> | undefined;
  return {
    opsUrl: parts.ops.url,
    ...(parts.stack?.grpcAddress === undefined ? {} : { grpcAddress: parts.stack.grpcAddress }),
    ...(parts.gateway === undefined ? {} : { gatewayUrl: parts.gateway.url }),
    company,
    stop: () => (stopping ??= shutDown(parts)),
  };
}

/**
 * Readiness fails first; then the gateway and gRPC stop taking work, the company finishes its
 * turns, commits and leaves its group, and the connections close. The ops endpoint goes last, so
 * metrics and probes answer while the node drains. Every step runs even when one before failed;
 * the first failure is thrown at the end.
 */
async function shutDown(parts: Parts): Promise<void> {
  parts.health.stopping();
  const failures: unknown[] = [];
  const step = async (close: (() => Promise<void> | void) | undefined) => {
    try {
      await close?.();
    } catch (error) {
      failures.push(error);
    }
  };
  await step(parts.gateway && (() => parts.gateway!.stop()));
  await step(parts.stack && (() => parts.stack!.stop()));
  await step(parts.client && (() => parts.client!.stop()));
  await step(parts.transport && (() => parts.transport!.close()));
  await step(parts.store && (() => parts.store!.close()));
  await step(parts.services && (() => parts.services!.close()));
  await step(parts.ops && (() => parts.ops!.close()));
  parts.health.close();
  if (failures.length > 0) throw toError(failures[0]);
}

function validate(options: NodeOptions): void {
  const invalid = (key: string, problem: string) => new RuntimeError(RuntimeErrorCode.InvalidOptions, `node option ${key} ${problem}`);
  const { components } = options;
  if (!Array.isArray(components) || components.length === 0)
    throw invalid('components', `must name at least one of ${NODE_COMPONENTS.join(', ')}`);
  const unknown = components.find((component) => !NODE_COMPONENTS.includes(component));
  if (unknown !== undefined) throw invalid('components', `names ${JSON.stringify(unknown)}, not one of ${NODE_COMPONENTS.join(', ')}`);
  const has = (component: NodeComponent) => components.includes(component);
  if (has('pool') !== options.pools.length > 0)
    throw invalid('pools', has('pool') ? 'must name the pool the pool component runs' : 'are given, but components do not include pool');
  if ((has('runtime') || has('pool')) && options.store === undefined)
    throw invalid('store', 'is required with the runtime and pool components');
  if ((has('runtime') || has('pool')) && options.services === undefined)
    throw invalid('services', 'is required with the runtime and pool components');
  if (has('gateway') && options.gateway === undefined) throw invalid('gateway', 'is required with the gateway component');
  if ((has('runtime') || has('gateway')) && options.tokenSecret === undefined)
    throw invalid(
      'tokenSecret',
      'is required with the runtime and gateway components: the gRPC API and the gateway check bearer tokens with it',
    );
  if (typeof options.nodeId !== 'string' || options.nodeId === '') throw invalid('nodeId', 'must be a non-empty string');
  if (typeof options.artifactsDir !== 'string' || options.artifactsDir === '') throw invalid('artifactsDir', 'must be a directory path');
  for (const key of ['grpcPort', 'httpPort'] as const) {
    const port = options[key];
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw invalid(key, `must be a port number (0..65535), got ${port}`);
  }
  if (!Number.isInteger(options.partitions) || options.partitions < 1)
    throw invalid('partitions', `must be a positive integer, got ${options.partitions}`);
}

/**
 * The dashboard's Scale on a cluster's gateway: its operator keeps each pool as its AgentPool
 * resource says, and would undo a scale made in the runtime, so the answer says how to scale it.
 */
const scaledByAgentPool: RuntimeApi['scalePool'] = (_commandId, { namespace, pool, replicas }) =>
  Promise.reject(
    new RuntimeError(
      RuntimeErrorCode.Conflict,
      `pool ${namespace}/${pool} is scaled by its AgentPool resource: kubectl scale agentpool ${pool} -n ${namespace} --replicas=${replicas}`,
    ),
  );
