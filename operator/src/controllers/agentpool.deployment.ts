/**
 * The desired Deployment of an AgentPool, as a pure function of the pool, its ModelProvider and
 * the operator's settings: what the AgentPool controller applies and what its unit tests check
 * without a cluster. The agent pods run the runtime image's `pool` component, which reads its
 * pool and provider from the TROUPE_* environment set here (runtime/src/node/README.md).
 */
import { createHash } from 'node:crypto';
import type { V1Container, V1EnvVar } from '@kubernetes/client-node';
import { AgentPools, type AgentPool } from '../api/v1alpha1/agentpool.types.js';
import type { ModelProvider } from '../api/v1alpha1/modelprovider.types.js';
import { apiVersionOf } from '../kube/client.js';
import type { Deployment, OwnerReference } from '../kube/types.js';

/** How the operator runs agent pods, the same for every pool. */
export interface AgentDeploymentSettings {
  /** The runtime image the agent pods run. */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Kafka bootstrap brokers the pods consume the pool topic from; empty for none. */
  kafkaBrokers: readonly string[];
  /**
   * How long the pool's consumer group waits for a pod that stopped heartbeating before its
   * partitions move to the other replicas, in ms; unset for the runtime's default (30,000).
   */
  kafkaSessionTimeoutMs?: number;
  /** Cassandra nodes the pods keep actor state in (the LLM call journal); empty for none. */
  cassandraContactPoints: readonly string[];
  /** The Cassandra data center the pods run in. */
  cassandraDatacenter: string;
  cassandraKeyspace: string;
  /** The Redis the pods share rate limits and the response cache through; empty for none. */
  redisUrl: string;
  /** Port of the pods' /healthz, /readyz and /metrics. */
  healthPort: number;
  /**
   * The PersistentVolumeClaim the pods keep deliverables in, the runtime's artifacts storage: a
   * claim of this name in each pool's own namespace (claims are namespaced), bound to the same
   * ReadWriteMany volume the runtime mounts. Empty: each pod has an emptyDir of its own.
   */
  artifactsClaim: string;
  /** Where the artifacts volume is mounted: the pods' TROUPE_ARTIFACTS_DIR. */
  artifactsDir: string;
}

export const AGENT_DEPLOYMENT_DEFAULTS = {
  image: 'ghcr.io/troupe-dev/troupe-runtime:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  kafkaBrokers: [],
  cassandraContactPoints: [],
  cassandraDatacenter: 'datacenter1',
  cassandraKeyspace: 'troupe',
  redisUrl: '',
  healthPort: 8080,
  artifactsClaim: '',
  artifactsDir: '/var/lib/troupe/artifacts',
} as const satisfies AgentDeploymentSettings;

/** Labels every agent pod carries; the selector uses only the stable two. */
const AGENT_APP_LABEL = 'troupe-agent';
const POOL_LABEL = 'troupe.dev/pool';
/** Selects the Deployments this operator made, so that its cache holds no others. */
export const MANAGED_BY_SELECTOR = 'app.kubernetes.io/managed-by=troupe-operator';

/** The Deployment's name: the pool's, so that `kubectl get deploy developers` finds it. */
export function deploymentName(pool: AgentPool): string {
  return pool.metadata.name;
}

/** The pods' label selector; part of the immutable Deployment selector, so it never includes the role. */
export function poolSelector(pool: AgentPool): Record<string, string> {
  return { 'app.kubernetes.io/name': AGENT_APP_LABEL, [POOL_LABEL]: labelValue(pool.metadata.name) };
}

/** The selector as the string the scale subresource and HPAs read from status.selector. */
export function selectorString(pool: AgentPool): string {
  return Object.entries(poolSelector(pool))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** The controller reference that makes the pool own (and garbage-collect) an object. */
function ownerReference(pool: AgentPool): OwnerReference {
  return {
    apiVersion: apiVersionOf(AgentPools),
    kind: AgentPools.kind,
    name: pool.metadata.name,
    uid: pool.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/**
 * The Deployment of `pool`, calling `provider` (the ModelProvider its spec.model.provider names).
 * A change of either changes the pod template, so the pods roll.
 *
 * @example
 * const deployment = desiredDeployment(pool, provider, { ...AGENT_DEPLOYMENT_DEFAULTS, kafkaBrokers: ['kafka:9092'] });
 * await client.apply(Deployments, deployment);
 */
export function desiredDeployment(pool: AgentPool, provider: ModelProvider, settings: AgentDeploymentSettings): Deployment {
  const { spec } = pool;
  const namespace = pool.metadata.namespace ?? '';
  const labels = {
    ...poolSelector(pool),
    'app.kubernetes.io/instance': labelValue(pool.metadata.name),
    'app.kubernetes.io/component': 'agent-pool',
    'app.kubernetes.io/part-of': 'troupe',
    'app.kubernetes.io/managed-by': 'troupe-operator',
    'troupe.dev/role': spec.role,
  };
  const env: V1EnvVar[] = [
    { name: 'TROUPE_COMPONENTS', value: 'pool' },
    { name: 'TROUPE_POOL_NAMESPACE', value: namespace },
    { name: 'TROUPE_POOL_NAME', value: pool.metadata.name },
    { name: 'TROUPE_POOL_ROLE', value: spec.role },
    { name: 'TROUPE_MODEL_PROVIDER', value: spec.model.provider },
    { name: 'TROUPE_MODEL_NAME', value: spec.model.name },
    ...optional('TROUPE_MODEL_TEMPERATURE', spec.model.temperature),
    ...optional('TROUPE_MODEL_MAX_OUTPUT_TOKENS', spec.model.maxOutputTokens),
    { name: 'TROUPE_CONCURRENCY', value: String(spec.concurrency ?? 4) },
    // Pool-wide limits: each replica takes from the shared Redis buckets, not a share of its own.
    ...optional('TROUPE_RATE_LIMIT_RPM', spec.rateLimit?.requestsPerMinute),
    ...optional('TROUPE_RATE_LIMIT_TPM', spec.rateLimit?.tokensPerMinute),
    ...systemPrompt(pool),
    ...providerEnv(provider),
    { name: 'TROUPE_ARTIFACTS_DIR', value: settings.artifactsDir },
    ...(settings.kafkaBrokers.length > 0 ? [{ name: 'TROUPE_KAFKA_BROKERS', value: settings.kafkaBrokers.join(',') }] : []),
    ...optional('TROUPE_KAFKA_SESSION_TIMEOUT_MS', settings.kafkaSessionTimeoutMs),
    ...(settings.cassandraContactPoints.length > 0
      ? [
          { name: 'TROUPE_CASSANDRA_CONTACT_POINTS', value: settings.cassandraContactPoints.join(',') },
          { name: 'TROUPE_CASSANDRA_DATACENTER', value: settings.cassandraDatacenter },
          { name: 'TROUPE_CASSANDRA_KEYSPACE', value: settings.cassandraKeyspace },
        ]
      : []),
    ...(settings.redisUrl === '' ? [] : [{ name: 'TROUPE_REDIS_URL', value: settings.redisUrl }]),
    // The runtime serves its probes and metrics where the probes below look.
    { name: 'TROUPE_HTTP_PORT', value: String(settings.healthPort) },
  ];
  const container: V1Container = {
    name: 'agent',
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    env,
    ports: [{ name: 'http', containerPort: settings.healthPort }],
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10, failureThreshold: 6 },
    securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'artifacts', mountPath: settings.artifactsDir },
    ],
    ...(spec.resources === undefined ? {} : { resources: spec.resources }),
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(pool), namespace, labels, ownerReferences: [ownerReference(pool)] },
    spec: {
      replicas: spec.replicas ?? 1,
      selector: { matchLabels: poolSelector(pool) },
      template: {
        metadata: { labels },
        spec: {
          containers: [container],
          volumes: [
            // The root filesystem is read-only; Node and its libraries write only under /tmp.
            { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
            settings.artifactsClaim === ''
              ? { name: 'artifacts', emptyDir: {} }
              : { name: 'artifacts', persistentVolumeClaim: { claimName: settings.artifactsClaim } },
          ],
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          // An agent finishing its LLM calls on SIGTERM needs longer than the default 30 s.
          terminationGracePeriodSeconds: 120,
        },
      },
    },
  };
}

function optional(name: string, value: number | undefined): V1EnvVar[] {
  return value === undefined ? [] : [{ name, value: String(value) }];
}

/** The provider's type, endpoint, key, prices and simulation; the key as a reference to its Secret, never the value. */
function providerEnv(provider: ModelProvider): V1EnvVar[] {
  const { type, baseURL, apiKeySecretRef: key, pricing, simulated } = provider.spec;
  return [
    { name: 'TROUPE_PROVIDER_TYPE', value: type },
    ...(baseURL === undefined ? [] : [{ name: 'TROUPE_PROVIDER_BASE_URL', value: baseURL }]),
    ...(key === undefined ? [] : [{ name: 'TROUPE_PROVIDER_API_KEY', valueFrom: { secretKeyRef: { name: key.name, key: key.key } } }]),
    // Fields in a fixed order: the same prices must make the same template, or the pods would roll for nothing.
    ...(pricing === undefined || pricing.length === 0
      ? []
      : [
          {
            name: 'TROUPE_PROVIDER_PRICING',
            value: JSON.stringify(
              pricing.map(({ model, inputPerMTokUSD, outputPerMTokUSD }) => ({ model, inputPerMTokUSD, outputPerMTokUSD })),
            ),
          },
        ]),
    ...(simulated === undefined
      ? []
      : [
          {
            name: 'TROUPE_PROVIDER_SIMULATED',
            value: JSON.stringify({ latencyMs: simulated.latencyMs, tokensPerSecond: simulated.tokensPerSecond, seed: simulated.seed }),
          },
        ]),
  ];
}

function systemPrompt(pool: AgentPool): V1EnvVar[] {
  if (pool.spec.systemPrompt !== undefined) return [{ name: 'TROUPE_SYSTEM_PROMPT', value: pool.spec.systemPrompt }];
  const ref = pool.spec.promptRef?.configMapKeyRef;
  return ref === undefined ? [] : [{ name: 'TROUPE_SYSTEM_PROMPT', valueFrom: { configMapKeyRef: { name: ref.name, key: ref.key } } }];
}

/**
 * A label value for a name: names may be 253 characters, label values 63; a longer name keeps
 * its start and a hash, so that it stays unique and readable.
 */
export function labelValue(name: string): string {
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 10);
  return `${name.slice(0, 52).replace(/[^a-z0-9]+$/, '')}-${hash}`;
}
