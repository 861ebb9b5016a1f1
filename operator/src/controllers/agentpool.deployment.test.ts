/**
 * The pure builders of the AgentPool controller, without a cluster: the Deployment a pool and
 * its ModelProvider become, and the pool's status from its Deployment and the runtime's load.
 */
import { describe, expect, it } from 'vitest';
import type { AgentPool } from '../api/v1alpha1/agentpool.types.js';
import type { ModelProvider } from '../api/v1alpha1/modelprovider.types.js';
import type { Deployment } from '../kube/types.js';
import { poolStatus, topicPartitions, TOPIC_SIZING_DEFAULTS } from './agentpool.controller.js';
import {
  AGENT_DEPLOYMENT_DEFAULTS,
  desiredDeployment,
  labelValue,
  selectorString,
  type AgentDeploymentSettings,
} from './agentpool.deployment.js';

const NOW = new Date('2026-11-25T10:00:00Z');

function pool(spec: Partial<AgentPool['spec']> = {}, name = 'developers'): AgentPool {
  return {
    metadata: { name, namespace: 'acme', uid: 'uid-1', generation: 3 },
    spec: { role: 'developer', model: { provider: 'simulated', name: 'sim-small' }, ...spec },
  };
}

function provider(spec: Partial<ModelProvider['spec']> = {}, name = 'simulated'): ModelProvider {
  return { metadata: { name, namespace: 'acme', generation: 1 }, spec: { type: 'simulated', ...spec } };
}

const SIMULATED = provider();

const OPENAI = provider(
  {
    type: 'openai',
    baseURL: 'https://llm-proxy.acme.internal/v1',
    apiKeySecretRef: { name: 'openai', key: 'api-key' },
    pricing: [{ outputPerMTokUSD: 1.6, model: 'gpt-4.1-mini', inputPerMTokUSD: 0.4 }],
  },
  'openai',
);

const SETTINGS = {
  ...AGENT_DEPLOYMENT_DEFAULTS,
  image: 'registry.local/troupe-runtime:1.2.3',
  kafkaBrokers: ['kafka-0:9092', 'kafka-1:9092'],
  cassandraContactPoints: ['cassandra-0.cassandra', 'cassandra-1.cassandra'],
  cassandraDatacenter: 'dc1',
  redisUrl: 'redis://redis:6379',
  healthPort: 8081,
};

function env(deployment: Deployment): Record<string, unknown> {
  const container = deployment.spec.template.spec?.containers[0];
  return Object.fromEntries((container?.env ?? []).map((variable) => [variable.name, variable.value ?? variable.valueFrom]));
}

describe('desiredDeployment', () => {
  it('runs the pool component of the runtime image with its model, provider, concurrency, limits, Kafka (and its session timeout), Cassandra and Redis in the environment', () => {
    const deployment = desiredDeployment(
      pool({
        model: { provider: 'openai', name: 'gpt-4.1-mini', temperature: 0.2, maxOutputTokens: 4096 },
        concurrency: 8,
        rateLimit: { requestsPerMinute: 600, tokensPerMinute: 2_000_000 },
        systemPrompt: 'Write code.',
      }),
      OPENAI,
      { ...SETTINGS, kafkaSessionTimeoutMs: 10_000 },
    );
    expect(deployment.spec.template.spec?.containers[0]?.image).toBe('registry.local/troupe-runtime:1.2.3');
    expect(env(deployment)).toEqual({
      TROUPE_COMPONENTS: 'pool',
      TROUPE_POOL_NAMESPACE: 'acme',
      TROUPE_POOL_NAME: 'developers',
      TROUPE_POOL_ROLE: 'developer',
      TROUPE_MODEL_PROVIDER: 'openai',
      TROUPE_MODEL_NAME: 'gpt-4.1-mini',
      TROUPE_MODEL_TEMPERATURE: '0.2',
      TROUPE_MODEL_MAX_OUTPUT_TOKENS: '4096',
      TROUPE_CONCURRENCY: '8',
      TROUPE_RATE_LIMIT_RPM: '600',
      TROUPE_RATE_LIMIT_TPM: '2000000',
      TROUPE_SYSTEM_PROMPT: 'Write code.',
      TROUPE_PROVIDER_TYPE: 'openai',
      TROUPE_PROVIDER_BASE_URL: 'https://llm-proxy.acme.internal/v1',
      // The kubelet reads the key from the Secret: it is in no object the operator writes.
      TROUPE_PROVIDER_API_KEY: { secretKeyRef: { name: 'openai', key: 'api-key' } },
      TROUPE_PROVIDER_PRICING: '[{"model":"gpt-4.1-mini","inputPerMTokUSD":0.4,"outputPerMTokUSD":1.6}]',
      TROUPE_ARTIFACTS_DIR: '/var/lib/troupe/artifacts',
      TROUPE_KAFKA_BROKERS: 'kafka-0:9092,kafka-1:9092',
      TROUPE_KAFKA_SESSION_TIMEOUT_MS: '10000',
      TROUPE_CASSANDRA_CONTACT_POINTS: 'cassandra-0.cassandra,cassandra-1.cassandra',
      TROUPE_CASSANDRA_DATACENTER: 'dc1',
      TROUPE_CASSANDRA_KEYSPACE: 'troupe',
      TROUPE_REDIS_URL: 'redis://redis:6379',
      TROUPE_HTTP_PORT: '8081',
    });
    expect(deployment.spec.template.spec?.containers[0]?.ports).toEqual([{ name: 'http', containerPort: 8081 }]);
  });

  it('leaves out what the pool and its provider do not set, and takes a prompt from its ConfigMap by reference', () => {
    const deployment = desiredDeployment(pool({ promptRef: { configMapKeyRef: { name: 'prompts', key: 'developer.md' } } }), SIMULATED, {
      ...SETTINGS,
      kafkaBrokers: [],
      cassandraContactPoints: [],
      redisUrl: '',
    });
    const variables = env(deployment);
    expect(variables.TROUPE_SYSTEM_PROMPT).toEqual({ configMapKeyRef: { name: 'prompts', key: 'developer.md' } });
    expect(variables.TROUPE_CONCURRENCY).toBe('4');
    expect(variables.TROUPE_PROVIDER_TYPE).toBe('simulated');
    const simulated = env(desiredDeployment(pool(), provider({ simulated: { latencyMs: 50, seed: 3 } }), SETTINGS));
    expect(JSON.parse(simulated.TROUPE_PROVIDER_SIMULATED as string)).toEqual({ latencyMs: 50, seed: 3 });
    for (const absent of [
      'TROUPE_MODEL_TEMPERATURE',
      'TROUPE_RATE_LIMIT_RPM',
      'TROUPE_PROVIDER_BASE_URL',
      'TROUPE_PROVIDER_API_KEY',
      'TROUPE_PROVIDER_PRICING',
      'TROUPE_PROVIDER_SIMULATED',
      'TROUPE_KAFKA_BROKERS',
      // Unset, the runtime's own default applies.
      'TROUPE_KAFKA_SESSION_TIMEOUT_MS',
      'TROUPE_CASSANDRA_CONTACT_POINTS',
      'TROUPE_REDIS_URL',
    ])
      expect(variables).not.toHaveProperty(absent);
  });

  it("changes the pod template, so the pods roll, when the provider's type, endpoint, key or prices change", () => {
    const template = (changed: ModelProvider) =>
      desiredDeployment(pool({ model: { provider: 'openai', name: 'gpt-4.1-mini' } }), changed, SETTINGS).spec.template;
    const before = template(OPENAI);
    expect(template(provider({ ...OPENAI.spec }, 'openai'))).toEqual(before);
    for (const spec of [
      { baseURL: 'https://api.openai.com/v1' },
      { apiKeySecretRef: { name: 'openai-rotated', key: 'api-key' } },
      { pricing: [{ model: 'gpt-4.1-mini', inputPerMTokUSD: 0.5, outputPerMTokUSD: 1.6 }] },
      { type: 'ollama' as const },
    ])
      expect(template(provider({ ...OPENAI.spec, ...spec }, 'openai')), JSON.stringify(spec)).not.toEqual(before);
  });

  it('keeps deliverables in the configured claim, else in an emptyDir, on a read-only root filesystem with /tmp writable', () => {
    const pod = (settings: AgentDeploymentSettings) => desiredDeployment(pool(), SIMULATED, settings).spec.template.spec;
    const shared = pod({ ...SETTINGS, artifactsClaim: 'troupe-artifacts', artifactsDir: '/data/artifacts' });
    expect(shared?.volumes).toEqual([
      { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
      { name: 'artifacts', persistentVolumeClaim: { claimName: 'troupe-artifacts' } },
    ]);
    const container = shared?.containers[0];
    expect(container?.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'artifacts', mountPath: '/data/artifacts' },
    ]);
    expect(container?.env).toContainEqual({ name: 'TROUPE_ARTIFACTS_DIR', value: '/data/artifacts' });
    expect(container?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(pod(SETTINGS)?.volumes?.find((volume) => volume.name === 'artifacts')).toEqual({ name: 'artifacts', emptyDir: {} });
  });

  it('takes replicas and resources from the spec, one replica when unset', () => {
    const resources = { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } };
    const scaled = desiredDeployment(pool({ replicas: 7, resources }), SIMULATED, SETTINGS);
    expect(scaled.spec.replicas).toBe(7);
    expect(scaled.spec.template.spec?.containers[0]?.resources).toEqual(resources);
    expect(desiredDeployment(pool(), SIMULATED, SETTINGS).spec.replicas).toBe(1);
    expect(desiredDeployment(pool({ replicas: 0 }), SIMULATED, SETTINGS).spec.replicas).toBe(0);
  });

  it('is owned by the pool, so that deleting the pool deletes it', () => {
    expect(desiredDeployment(pool(), SIMULATED, SETTINGS).metadata.ownerReferences).toEqual([
      {
        apiVersion: 'troupe.dev/v1alpha1',
        kind: 'AgentPool',
        name: 'developers',
        uid: 'uid-1',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('selects its pods by labels the pods carry, leaving the role out of the immutable selector', () => {
    const deployment = desiredDeployment(pool(), SIMULATED, SETTINGS);
    const selector = deployment.spec.selector.matchLabels ?? {};
    expect(selector).toEqual({ 'app.kubernetes.io/name': 'troupe-agent', 'troupe.dev/pool': 'developers' });
    expect(deployment.spec.template.metadata?.labels).toMatchObject({ ...selector, 'troupe.dev/role': 'developer' });
    expect(selectorString(pool())).toBe('app.kubernetes.io/name=troupe-agent,troupe.dev/pool=developers');
    const renamedRole = desiredDeployment(pool({ role: 'reviewer' }), SIMULATED, SETTINGS);
    expect(renamedRole.spec.selector).toEqual(deployment.spec.selector);
  });

  it('turns a name longer than a label value allows into a unique one that fits', () => {
    const long = `team-${'x'.repeat(80)}`;
    const value = labelValue(long);
    expect(value.length).toBeLessThanOrEqual(63);
    expect(value).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    expect(labelValue(`${long}y`)).not.toBe(value);
    expect(labelValue('developers')).toBe('developers');
  });
});

describe('poolStatus', () => {
  const deployment = (status: Deployment['status']): Deployment => ({ ...desiredDeployment(pool(), SIMULATED, SETTINGS), status });

  it('is Ready when the Deployment has as many ready replicas as the pool wants', () => {
    const status = poolStatus(pool({ replicas: 2 }), deployment({ replicas: 2, readyReplicas: 2 }), {}, undefined, NOW);
    expect(status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      observedGeneration: 3,
      selector: 'app.kubernetes.io/name=troupe-agent,troupe.dev/pool=developers',
    });
    expect(status.conditions).toEqual([
      {
        type: 'Ready',
        status: 'True',
        reason: 'ReplicasReady',
        message: '2/2 replicas ready',
        observedGeneration: 3,
        lastTransitionTime: '2026-11-25T10:00:00Z',
      },
      {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'no problems found',
        observedGeneration: 3,
        lastTransitionTime: '2026-11-25T10:00:00Z',
      },
    ]);
  });

  it('is not Ready while replicas are missing, and Ready when scaled to zero', () => {
    const waiting = poolStatus(pool({ replicas: 3 }), deployment({ replicas: 3, readyReplicas: 1 }), {}, undefined, NOW);
    expect(waiting.conditions?.[0]).toMatchObject({ status: 'False', reason: 'ReplicasNotReady', message: '1/3 replicas ready' });
    const parked = poolStatus(pool({ replicas: 0 }), deployment({}), {}, undefined, NOW);
    expect(parked.conditions?.[0]).toMatchObject({ status: 'True', reason: 'ScaledToZero' });
  });

  it('is Degraded, with the reason, when the Deployment fails, the topic cannot be made or the provider is not Ready', () => {
    const failing = deployment({
      conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'quota exceeded' }],
    });
    expect(poolStatus(pool(), failing, {}, undefined, NOW).conditions?.[1]).toMatchObject({
      status: 'True',
      reason: 'DeploymentFailing',
      message: 'Deployment: quota exceeded',
    });
    expect(poolStatus(pool(), deployment({}), { topic: 'broker down' }, undefined, NOW).conditions?.[1]).toMatchObject({
      status: 'True',
      reason: 'TopicUnavailable',
    });
    expect(
      poolStatus(pool(), deployment({}), { provider: 'ModelProvider openai not found' }, undefined, NOW).conditions?.[1],
    ).toMatchObject({ status: 'True', reason: 'ProviderNotReady' });
  });

  it('takes load from the runtime, and keeps the last load written when the runtime did not answer', () => {
    const load = {
      pool: 'developers',
      replicas: 2,
      ready: 2,
      busy: 5,
      queueDepth: 12,
      role: 'developer',
      tokens: 9_000,
      costUsd: 0.42,
      replica: '',
    };
    const fresh = poolStatus(pool(), deployment({}), {}, load, NOW);
    expect(fresh).toMatchObject({ busy: 5, queueDepth: 12, tokens: 9_000, costUSD: 0.42 });
    const later = poolStatus({ ...pool(), status: fresh }, deployment({ replicas: 1 }), {}, undefined, NOW);
    expect(later).toMatchObject({ busy: 5, queueDepth: 12, tokens: 9_000, costUSD: 0.42, replicas: 1 });
  });

  it("keeps a condition's transition time while its status holds", () => {
    const first = poolStatus(pool({ replicas: 2 }), deployment({ readyReplicas: 0 }), {}, undefined, NOW);
    const later = poolStatus(
      { ...pool({ replicas: 2 }), status: first },
      deployment({ readyReplicas: 1 }),
      {},
      undefined,
      new Date('2026-11-25T11:00:00Z'),
    );
    expect(later.conditions?.[0]).toMatchObject({
      status: 'False',
      message: '1/2 replicas ready',
      lastTransitionTime: '2026-11-25T10:00:00Z',
    });
  });
});

describe('topicPartitions', () => {
  it('gives every replica partitions of its own, and a floor for small pools', () => {
    expect(topicPartitions(0, TOPIC_SIZING_DEFAULTS)).toBe(4);
    expect(topicPartitions(1, TOPIC_SIZING_DEFAULTS)).toBe(4);
    expect(topicPartitions(10, TOPIC_SIZING_DEFAULTS)).toBe(20);
  });
});
