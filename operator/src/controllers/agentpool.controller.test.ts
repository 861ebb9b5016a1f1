/**
 * AgentPool against the real API server and the real Kafka: each sample pool becomes a
 * Deployment of the runtime's pool component, configured with its ModelProvider, and a pool
 * topic; `kubectl scale` moves the Deployment and grows the topic; a pool whose provider is
 * missing waits, Degraded, without a Deployment; a changed provider rolls the pods; the
 * pool's status follows its Deployment's. There is no kubelet, so no pod ever runs: to see
 * readiness propagate, the test writes the Deployment's status itself through the status
 * subresource, as the Deployment controller would.
 */
import { infra } from '@troupe/harness';
import { poolTopic } from '@troupe/proto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcRuntimeClient } from '../clients/runtime.grpc.js';
import { KafkaPoolTopics } from '../clients/topics.kafka.js';
import { Deployments } from '../kube/resources.js';
import type { Deployment } from '../kube/types.js';
import {
  adminClient,
  createNamespace,
  ensureCrds,
  eventsOf,
  kubectl,
  kubectlOk,
  samples,
  testOperator,
  type TestOperator,
} from '../testing/cluster.js';
import { AGENT_DEPLOYMENT_DEFAULTS } from './agentpool.deployment.js';

/** Nothing listens there: the runtime is unreachable, so pool load stays unset. */
const NO_RUNTIME = '127.0.0.1:1';
const IMAGE = 'registry.test/troupe-runtime:9.9.9';

describe('AgentPool controller', () => {
  let namespace = '';
  let operator: TestOperator;
  const runtime = new GrpcRuntimeClient({ address: NO_RUNTIME });
  const topics = new KafkaPoolTopics({ brokers: infra().kafka.brokers });
  const kafka = new Kafka({ clientId: 'troupe-operator-test', brokers: infra().kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  const partitions = async (topic: string) => (await kafka.fetchTopicMetadata({ topics: [topic] })).topics[0]?.partitions.length ?? 0;
  const deployment = (name: string) =>
    kubectlOk(['get', 'deployment', name, '-n', namespace, '-o', 'json']).then((json) => JSON.parse(json) as Deployment);

  beforeAll(async () => {
    await ensureCrds();
    await kafka.connect();
    namespace = await createNamespace('pools');
    operator = testOperator(namespace, runtime, {
      topics,
      deployment: { ...AGENT_DEPLOYMENT_DEFAULTS, image: IMAGE, kafkaBrokers: infra().kafka.brokers },
    });
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['provider', 'pools']));
  });
  afterAll(async () => {
    await operator.stop();
    runtime.close();
    await topics.close();
    const made = (await kafka.listTopics()).filter((topic) => topic.startsWith(`troupe.pool.${namespace}.`));
    if (made.length > 0) await kafka.deleteTopics({ topics: made });
    await kafka.disconnect();
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('runs every sample pool as a Deployment of the runtime image, owned by the pool, with a topic of its own', async () => {
    for (const name of ['pm', 'architect', 'developers', 'qa', 'devops', 'writer']) {
      await expect
        .poll(() => kubectl(['get', 'deployment', name, '-n', namespace]).then((result) => result.code), { timeout: 30_000 })
        .toBe(0);
    }
    const developers = await deployment('developers');
    const pool = JSON.parse(await kubectlOk(['get', 'agentpool', 'developers', '-n', namespace, '-o', 'json'])) as {
      metadata: { uid: string };
    };
    expect(developers.spec.replicas).toBe(2);
    expect(developers.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'AgentPool', name: 'developers', uid: pool.metadata.uid, controller: true }),
    ]);
    const container = developers.spec.template.spec?.containers[0];
    expect(container?.image).toBe(IMAGE);
    expect(container?.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } });
    expect(container?.env).toEqual(
      expect.arrayContaining([
        { name: 'TROUPE_COMPONENTS', value: 'pool' },
        { name: 'TROUPE_MODEL_NAME', value: 'sim-small' },
        { name: 'TROUPE_CONCURRENCY', value: '8' },
        { name: 'TROUPE_RATE_LIMIT_RPM', value: '600' },
        // From the sample ModelProvider the pool names.
        { name: 'TROUPE_PROVIDER_TYPE', value: 'simulated' },
        {
          name: 'TROUPE_PROVIDER_PRICING',
          value: JSON.stringify([
            { model: 'sim-large', inputPerMTokUSD: 3, outputPerMTokUSD: 15 },
            { model: 'sim-small', inputPerMTokUSD: 0.25, outputPerMTokUSD: 1.25 },
          ]),
        },
        { name: 'TROUPE_ARTIFACTS_DIR', value: '/var/lib/troupe/artifacts' },
      ]),
    );
    await expect.poll(() => partitions(poolTopic(namespace, 'developers')), { timeout: 30_000 }).toBe(4);
    expect(await eventsOf(namespace, 'AgentPool', 'developers')).toEqual(
      expect.arrayContaining([
        'DeploymentCreated: created Deployment developers with 2 replicas',
        `TopicCreated: created Kafka topic ${poolTopic(namespace, 'developers')} with 4 partitions`,
      ]),
    );
  });

  it('reports the selector for the scale subresource, and no load while the runtime is unreachable', async () => {
    await kubectlOk(['wait', '-n', namespace, '--for=jsonpath={.status.selector}', 'agentpool/developers', '--timeout=30s']);
    const scale = JSON.parse(await kubectlOk(['get', 'agentpool', 'developers', '-n', namespace, '--subresource=scale', '-o', 'json'])) as {
      spec: { replicas: number };
      status: { selector: string };
    };
    expect(scale).toMatchObject({
      spec: { replicas: 2 },
      status: { selector: 'app.kubernetes.io/name=troupe-agent,troupe.dev/pool=developers' },
    });
    const status = JSON.parse(await kubectlOk(['get', 'agentpool', 'developers', '-n', namespace, '-o', 'jsonpath={.status}'])) as Record<
      string,
      unknown
    >;
    expect(status).not.toHaveProperty('busy');
    expect(status).not.toHaveProperty('queueDepth');
  });

  it('follows kubectl scale: the Deployment gets the replicas and the topic grows to fit', async () => {
    await kubectlOk(['scale', 'agentpool/developers', '-n', namespace, '--replicas=5']);
    await expect.poll(async () => (await deployment('developers')).spec.replicas, { timeout: 30_000 }).toBe(5);
    await expect.poll(() => partitions(poolTopic(namespace, 'developers')), { timeout: 30_000 }).toBe(10);
    expect(await eventsOf(namespace, 'AgentPool', 'developers')).toContain(
      'DeploymentUpdated: scaled Deployment developers from 2 to 5 replicas',
    );
  });

  it('is Ready once the Deployment reports its replicas ready (status written here, as there is no kubelet)', async () => {
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready=false', 'agentpool/developers', '--timeout=30s']);
    await adminClient().patch(
      Deployments,
      namespace,
      'developers',
      { status: { replicas: 5, readyReplicas: 5, updatedReplicas: 5, availableReplicas: 5 } },
      { strategy: 'merge', subresource: 'status' },
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'agentpool/developers', '--timeout=30s']);
    const columns = await kubectlOk([
      'get',
      'agentpool',
      'developers',
      '-n',
      namespace,
      '--no-headers',
      '-o',
      'custom-columns=REPLICAS:.status.replicas,READY:.status.readyReplicas',
    ]);
    expect(columns.trim().split(/\s+/)).toEqual(['5', '5']);
  });

  it("leaves alone a Deployment it does not own that has a pool's name, and says so", async () => {
    await kubectlOk(['create', 'deployment', 'reviewers', '-n', namespace, '--image=nginx:1.27', '--replicas=1']);
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: AgentPool
metadata:
  name: reviewers
spec:
  role: qa
  replicas: 3
  model: { provider: simulated, name: sim-large }
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready=false', 'agentpool/reviewers', '--timeout=30s']);
    await expect
      .poll(
        () =>
          kubectlOk(['get', 'agentpool', 'reviewers', '-n', namespace, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].reason}']),
        { timeout: 30_000 },
      )
      .toBe('DeploymentNotOwned');
    const foreign = await deployment('reviewers');
    expect(foreign.spec.replicas).toBe(1);
    expect(foreign.spec.template.spec?.containers[0]?.image).toBe('nginx:1.27');
    expect(await eventsOf(namespace, 'AgentPool', 'reviewers')).toContain(
      'DeploymentNotOwned: Deployment reviewers exists and is not controlled by this AgentPool',
    );
  });
  it('keeps a pool whose ModelProvider is missing Degraded, naming it, with no Deployment until the provider exists', async () => {
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: AgentPool
metadata:
  name: translators
spec:
  role: writer
  replicas: 1
  model: { provider: openai, name: gpt-4.1-mini }
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Degraded', 'agentpool/translators', '--timeout=30s']);
    const degraded = JSON.parse(
      await kubectlOk(['get', 'agentpool', 'translators', '-n', namespace, '-o', 'jsonpath={.status.conditions[?(@.type=="Degraded")]}']),
    ) as { reason: string; message: string };
    expect(degraded).toMatchObject({
      reason: 'ProviderNotReady',
      message: `ModelProvider openai not found in namespace ${namespace}: the pool's Deployment is not made or changed until it exists`,
    });
    expect((await kubectl(['get', 'deployment', 'translators', '-n', namespace])).code).not.toBe(0);

    // The key stays in its Secret: the Deployment names the Secret, and the operator never reads the value.
    await kubectlOk([
      'create',
      'secret',
      'generic',
      'openai',
      '-n',
      namespace,
      '--from-literal=api-key=sk-translators-test-key-0123456789',
    ]);
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: ModelProvider
metadata:
  name: openai
spec:
  type: openai
  baseURL: https://llm-proxy.example.com/v1
  apiKeySecretRef: { name: openai, key: api-key }
  pricing:
    - { model: gpt-4.1-mini, inputPerMTokUSD: 0.4, outputPerMTokUSD: 1.6 }
`,
    );
    await expect
      .poll(() => kubectl(['get', 'deployment', 'translators', '-n', namespace]).then((result) => result.code), { timeout: 30_000 })
      .toBe(0);
    const created = await deployment('translators');
    const env = created.spec.template.spec?.containers[0]?.env ?? [];
    expect(env).toEqual(
      expect.arrayContaining([
        { name: 'TROUPE_PROVIDER_TYPE', value: 'openai' },
        { name: 'TROUPE_PROVIDER_BASE_URL', value: 'https://llm-proxy.example.com/v1' },
        { name: 'TROUPE_PROVIDER_API_KEY', valueFrom: { secretKeyRef: { name: 'openai', key: 'api-key' } } },
        { name: 'TROUPE_PROVIDER_PRICING', value: '[{"model":"gpt-4.1-mini","inputPerMTokUSD":0.4,"outputPerMTokUSD":1.6}]' },
      ]),
    );
    expect(JSON.stringify(created)).not.toContain('sk-translators-test-key');
    await expect
      .poll(() =>
        kubectlOk([
          'get',
          'agentpool',
          'translators',
          '-n',
          namespace,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Degraded")].status}',
        ]),
      )
      .toBe('False');
  });

  it("rolls the pool's pods when its ModelProvider changes", async () => {
    const before = await deployment('translators');
    await kubectlOk([
      'patch',
      'modelprovider',
      'openai',
      '-n',
      namespace,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { baseURL: 'https://api.openai.com/v1', pricing: [{ model: 'gpt-4.1-mini', inputPerMTokUSD: 0.5, outputPerMTokUSD: 2 }] },
      }),
    ]);
    await expect
      .poll(async () => (await deployment('translators')).spec.template.spec?.containers[0]?.env, { timeout: 30_000 })
      .toEqual(
        expect.arrayContaining([
          { name: 'TROUPE_PROVIDER_BASE_URL', value: 'https://api.openai.com/v1' },
          { name: 'TROUPE_PROVIDER_PRICING', value: '[{"model":"gpt-4.1-mini","inputPerMTokUSD":0.5,"outputPerMTokUSD":2}]' },
        ]),
      );
    const after = await deployment('translators');
    expect(after.metadata.generation).toBeGreaterThan(before.metadata.generation ?? 0);
    expect(after.spec.replicas).toBe(before.spec.replicas);
    await expect
      .poll(() => eventsOf(namespace, 'AgentPool', 'translators'), { timeout: 15_000 })
      .toContain('DeploymentUpdated: updated the pod template of Deployment translators: its pods roll');
  });
});
