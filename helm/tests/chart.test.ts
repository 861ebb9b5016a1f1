/**
 * The chart as an SRE meets it: `helm lint --strict` is clean, `helm template` renders with the
 * default values and with a production-shaped values file, what it renders holds together (the
 * operator finds the runtime, the gateway finds its secret, probes hit ports that exist, budgets
 * select pods), and the API server of the harness accepts every object with
 * `kubectl apply --dry-run=server`.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, dirname } from 'node:path';
import { promisify } from 'node:util';
import type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1Secret,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { infra } from '@troupe/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, kubectl } from '../../operator/src/testing/cluster.js';
import { CHART_DIR, REPO_ROOT, VALUES_DIR, find, helm, names, render, template, type Rendered } from './chart.js';

const EXTERNAL = `${VALUES_DIR}external.yaml`;
const MONITORING_APIS = ['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PodMonitor'];

const deployments = (objects: readonly Rendered[]) => objects.filter((object) => object.kind === 'Deployment') as unknown as V1Deployment[];
const containerOf = (deployment: V1Deployment): V1Container => deployment.spec?.template.spec?.containers[0] as V1Container;
const env = (container: V1Container): Map<string, V1EnvVar> => new Map((container.env ?? []).map((variable) => [variable.name, variable]));
const value = (container: V1Container, name: string): string | undefined => env(container).get(name)?.value;

/** The environment variables an entry point reads: the TROUPE_* (and downward-API) names its source mentions. */
function variablesReadBy(entry: string): Set<string> {
  return new Set(readFileSync(`${REPO_ROOT}${entry}`, 'utf8').match(/\b(?:TROUPE_[A-Z_]+|POD_NAME|POD_NAMESPACE)\b/g) ?? []);
}

describe('helm lint --strict', () => {
  it.each([
    ['the default values', []],
    ['external services', [EXTERNAL]],
  ])('is clean with %s', async (_, files) => {
    const result = await helm(['lint', '--strict', CHART_DIR, ...files.flatMap((file) => ['-f', file])]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  });
});

describe('the default install', () => {
  let objects: Rendered[] = [];
  beforeAll(async () => {
    objects = await render();
  });

  it('renders the operator, the runtime and the gateway with their accounts, RBAC, Services and budgets', () => {
    expect(names(objects).sort()).toEqual(
      [
        'ClusterRole/troupe-operator',
        'ClusterRoleBinding/troupe-operator',
        'Deployment/troupe-gateway',
        'Deployment/troupe-operator',
        'Deployment/troupe-runtime',
        'PodDisruptionBudget/troupe-gateway',
        'PodDisruptionBudget/troupe-operator',
        'PodDisruptionBudget/troupe-runtime',
        'Role/troupe-operator-leader-election',
        'RoleBinding/troupe-operator-leader-election',
        'Secret/troupe-gateway-auth',
        'Service/troupe-gateway',
        'Service/troupe-operator',
        'Service/troupe-runtime',
        'ServiceAccount/troupe-gateway',
        'ServiceAccount/troupe-operator',
        'ServiceAccount/troupe-runtime',
      ].sort(),
    );
  });

  it('runs two operators that elect a leader in the release namespace, configured as operator/src/main.ts reads it', () => {
    const operator = find<V1Deployment>(objects, 'Deployment', 'troupe-operator');
    expect(operator.spec?.replicas).toBe(2);
    const container = containerOf(operator);
    expect(value(container, 'TROUPE_LEADER_ELECT')).toBe('true');
    expect(env(container).get('POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    expect(env(container).get('POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(value(container, 'TROUPE_KAFKA_BROKERS')).toBe('kafka:9092');
    // Agent pods run the runtime image.
    expect(value(container, 'TROUPE_AGENT_IMAGE')).toBe(containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-runtime')).image);
    expect(value(container, 'TROUPE_AGENT_HEALTH_PORT')).toBe('8081');
    const read = variablesReadBy('operator/src/main.ts');
    expect([...env(container).keys()].filter((name) => !read.has(name))).toEqual([]);
    // Agent pods mount deliverables where the runtime does; by default each in an emptyDir of its own.
    expect(value(container, 'TROUPE_AGENT_ARTIFACTS_CLAIM')).toBe('');
    expect(value(container, 'TROUPE_AGENT_ARTIFACTS_DIR')).toBe(
      value(containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-runtime')), 'TROUPE_ARTIFACTS_DIR'),
    );

    const leaderRole = find<Rendered & { rules: { resources: string[] }[] }>(objects, 'Role', 'troupe-operator-leader-election');
    expect(leaderRole.metadata.namespace).toBe('troupe-system');
    expect(leaderRole.rules.flatMap((rule) => rule.resources)).toEqual(['leases']);
  });

  it('points the operator at the runtime Service, which reaches the runtime pods on gRPC port 50051', () => {
    const address = value(containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-operator')), 'TROUPE_RUNTIME_ADDRESS');
    expect(address).toBe('troupe-runtime.troupe-system.svc:50051');
    const service = find<V1Service>(objects, 'Service', 'troupe-runtime');
    const grpc = service.spec?.ports?.find((port) => port.name === 'grpc');
    expect(grpc?.port).toBe(50051);
    const runtime = find<V1Deployment>(objects, 'Deployment', 'troupe-runtime');
    expect(runtime.spec?.template.metadata?.labels).toMatchObject(service.spec?.selector ?? { selector: 'missing' });
    const container = containerOf(runtime);
    expect(container.ports?.find((port) => port.name === grpc?.targetPort)?.containerPort).toBe(50051);
    expect(value(container, 'TROUPE_COMPONENTS')).toBe('runtime');
    expect(value(container, 'TROUPE_GRPC_PORT')).toBe('50051');
    expect(value(container, 'TROUPE_HTTP_PORT')).toBe('8081');
    // It stops draining before the kubelet's SIGKILL.
    expect(Number(value(container, 'TROUPE_SHUTDOWN_TIMEOUT_MS'))).toBeLessThan(
      (runtime.spec?.template.spec?.terminationGracePeriodSeconds ?? 30) * 1000,
    );
    expect(
      Object.fromEntries(
        [
          'TROUPE_KAFKA_BROKERS',
          'TROUPE_KAFKA_SESSION_TIMEOUT_MS',
          'TROUPE_CASSANDRA_CONTACT_POINTS',
          'TROUPE_CASSANDRA_DATACENTER',
          'TROUPE_CASSANDRA_KEYSPACE',
          'TROUPE_REDIS_URL',
        ].map((name) => [name, value(container, name)]),
      ),
    ).toEqual({
      TROUPE_KAFKA_BROKERS: 'kafka:9092',
      TROUPE_KAFKA_SESSION_TIMEOUT_MS: '30000',
      TROUPE_CASSANDRA_CONTACT_POINTS: 'cassandra:9042',
      TROUPE_CASSANDRA_DATACENTER: 'datacenter1',
      TROUPE_CASSANDRA_KEYSPACE: 'troupe',
      TROUPE_REDIS_URL: 'redis://redis:6379',
    });
  });

  it('serves the dashboard from the gateway on 8080 behind its Service, signing tokens with a generated secret', () => {
    const gateway = find<V1Deployment>(objects, 'Deployment', 'troupe-gateway');
    const container = containerOf(gateway);
    expect(value(container, 'TROUPE_COMPONENTS')).toBe('gateway');
    const service = find<V1Service>(objects, 'Service', 'troupe-gateway');
    const web = service.spec?.ports?.find((port) => port.name === 'web');
    expect(container.ports?.find((port) => port.name === web?.targetPort)?.containerPort).toBe(8080);
    expect(gateway.spec?.template.metadata?.labels).toMatchObject(service.spec?.selector ?? { selector: 'missing' });

    const ref = env(container).get('TROUPE_TOKEN_SECRET')?.valueFrom?.secretKeyRef;
    const secret = find<V1Secret>(objects, 'Secret', ref?.name ?? '');
    const signing = Buffer.from(secret.data?.[ref?.key ?? ''] ?? '', 'base64').toString();
    expect(signing).toMatch(/^[A-Za-z0-9]{64}$/);
  });

  it("signs the operator's runtime tokens with the secret the runtime and the gateway check them with", () => {
    const refs = ['troupe-operator', 'troupe-runtime', 'troupe-gateway'].map(
      (name) => env(containerOf(find<V1Deployment>(objects, 'Deployment', name))).get('TROUPE_TOKEN_SECRET')?.valueFrom?.secretKeyRef,
    );
    expect(refs[0]).toEqual({ name: 'troupe-gateway-auth', key: 'token-secret' });
    expect(refs).toEqual([refs[0], refs[0], refs[0]]);
    // No fixed token to expire: the operator signs its own.
    expect(env(containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-operator'))).has('TROUPE_RUNTIME_TOKEN')).toBe(false);
  });

  it('sets on the runtime and the gateway only variables the runtime node reads', () => {
    const read = variablesReadBy('runtime/src/node/config.ts');
    for (const name of ['troupe-runtime', 'troupe-gateway']) {
      const container = containerOf(find<V1Deployment>(objects, 'Deployment', name));
      expect(
        [...env(container).keys()].filter((variable) => !read.has(variable)),
        name,
      ).toEqual([]);
    }
  });

  it('runs every container as non-root on a read-only root filesystem, probed on /healthz and /readyz at a port it declares', () => {
    for (const deployment of deployments(objects)) {
      const name = deployment.metadata?.name;
      const pod = deployment.spec?.template.spec;
      expect(pod?.securityContext?.runAsNonRoot, name).toBe(true);
      expect(pod?.securityContext?.runAsUser, name).toBeGreaterThan(0);
      const container = containerOf(deployment);
      expect(container.securityContext, name).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(
        container.volumeMounts?.map((mount) => mount.mountPath),
        name,
      ).toContain('/tmp');
      const ports = new Set(container.ports?.map((port) => port.name));
      expect(container.livenessProbe?.httpGet?.path, name).toBe('/healthz');
      expect(container.readinessProbe?.httpGet?.path, name).toBe('/readyz');
      expect(ports.has(String(container.livenessProbe?.httpGet?.port)), name).toBe(true);
      expect(ports.has(String(container.readinessProbe?.httpGet?.port)), name).toBe(true);
      expect(container.resources?.requests, name).toBeDefined();
    }
  });

  it('gives every Deployment a PodDisruptionBudget that selects its pods and no other', () => {
    const budgets = objects.filter((object) => object.kind === 'PodDisruptionBudget') as unknown as V1PodDisruptionBudget[];
    for (const deployment of deployments(objects)) {
      const labels = deployment.spec?.template.metadata?.labels ?? {};
      const selecting = budgets.filter((budget) =>
        Object.entries(budget.spec?.selector?.matchLabels ?? {}).every(([key, label]) => labels[key] === label),
      );
      expect(
        selecting.map((budget) => budget.metadata?.name),
        deployment.metadata?.name,
      ).toEqual([deployment.metadata?.name]);
    }
  });
});

describe('values for an install on external services', () => {
  let objects: Rendered[] = [];
  beforeAll(async () => {
    objects = await render({ values: [EXTERNAL], apiVersions: MONITORING_APIS });
  });

  it('takes the Redis URL and the token secret from existing Secrets, makes none, and shares one artifacts claim', () => {
    expect(objects.filter((object) => object.kind === 'Secret')).toEqual([]);
    // The operator hands Cassandra and Redis on to the agent pods it makes.
    for (const deployment of ['troupe-runtime', 'troupe-operator']) {
      const container = containerOf(find<V1Deployment>(objects, 'Deployment', deployment));
      expect(env(container).get('TROUPE_REDIS_URL')?.valueFrom?.secretKeyRef, deployment).toEqual({ name: 'troupe-redis', key: 'url' });
      expect(value(container, 'TROUPE_CASSANDRA_CONTACT_POINTS')).toBe('cassandra-0.db.example.com,cassandra-1.db.example.com:9042');
      expect(value(container, 'TROUPE_CASSANDRA_DATACENTER')).toBe('eu-west-1');
    }
    for (const deployment of ['troupe-runtime', 'troupe-gateway', 'troupe-operator']) {
      const container = containerOf(find<V1Deployment>(objects, 'Deployment', deployment));
      expect(value(container, 'TROUPE_KAFKA_BROKERS'), deployment).toBe(
        'b-1.kafka.internal.example.com:9094,b-2.kafka.internal.example.com:9094,b-3.kafka.internal.example.com:9094',
      );
    }
    // Deliverables the runtime writes are where the gateway serves them from: one shared claim.
    for (const deployment of ['troupe-runtime', 'troupe-gateway']) {
      const pod = find<V1Deployment>(objects, 'Deployment', deployment).spec?.template.spec;
      const container = pod?.containers[0] as V1Container;
      expect(container.image).toBe('registry.example.com/troupe/runtime:2024.06.1');
      expect(pod?.volumes?.find((volume) => volume.name === 'artifacts')?.persistentVolumeClaim?.claimName, deployment).toBe(
        'troupe-artifacts',
      );
      const mount = container.volumeMounts?.find((volumeMount) => volumeMount.name === 'artifacts');
      expect(value(container, 'TROUPE_ARTIFACTS_DIR'), deployment).toBe(mount?.mountPath);
      expect(pod?.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
    }
    const operator = containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-operator'));
    for (const container of [containerOf(find<V1Deployment>(objects, 'Deployment', 'troupe-gateway')), operator])
      expect(env(container).get('TROUPE_TOKEN_SECRET')?.valueFrom?.secretKeyRef).toEqual({ name: 'troupe-gateway-auth', key: 'secret' });
    // Agent pods mount the tenants' claims of the shared storage.
    expect(value(operator, 'TROUPE_AGENT_ARTIFACTS_CLAIM')).toBe('troupe-artifacts');
    expect(value(operator, 'TROUPE_WATCH_NAMESPACES')).toBe('acme,globex');
    expect(value(operator, 'TROUPE_RESYNC_MS')).toBe('300000');
    expect(value(operator, 'TROUPE_AGENT_IMAGE')).toBe('registry.example.com/troupe/runtime:2024.06.1');
  });

  it('scrapes the three components and the agent pods where the Prometheus Operator is installed', () => {
    const monitor = find<Rendered & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } }>(
      objects,
      'ServiceMonitor',
      'troupe',
    );
    expect(monitor.metadata.labels?.release).toBe('kube-prometheus-stack');
    const scraped = (objects.filter((object) => object.kind === 'Service') as unknown as V1Service[]).filter((service) =>
      Object.entries(monitor.spec.selector.matchLabels).every(([key, label]) => service.metadata?.labels?.[key] === label),
    );
    expect(scraped.map((service) => service.metadata?.name).sort()).toEqual(['troupe-gateway', 'troupe-operator', 'troupe-runtime']);
    for (const service of scraped)
      expect(
        service.spec?.ports?.map((port) => port.name),
        service.metadata?.name,
      ).toContain(monitor.spec.endpoints[0]?.port);

    const agents = find<Rendered & { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: unknown } }>(
      objects,
      'PodMonitor',
      'troupe-agents',
    );
    // The labels the operator puts on every agent pod (operator/src/controllers/agentpool.deployment.ts).
    expect(agents.spec.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'troupe-agent',
      'app.kubernetes.io/managed-by': 'troupe-operator',
    });
    expect(agents.spec.namespaceSelector).toEqual({ matchNames: ['acme', 'globex'] });
  });

  it('scales the developers AgentPool on its queue depth', () => {
    const hpa = find<V2HorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', 'developers');
    expect(hpa.spec?.scaleTargetRef).toEqual({ apiVersion: 'troupe.dev/v1alpha1', kind: 'AgentPool', name: 'developers' });
    expect(hpa.spec?.minReplicas).toBe(2);
    expect(hpa.spec?.maxReplicas).toBe(20);
    expect(hpa.spec?.metrics).toEqual([
      {
        type: 'External',
        external: {
          metric: { name: 'troupe_agentpool_queue_depth', selector: { matchLabels: { agentpool: 'developers' } } },
          target: { type: 'AverageValue', averageValue: '5' },
        },
      },
    ]);
  });

  it("ships dashboards/troupe.json in a ConfigMap that Grafana's sidecar picks up", () => {
    const configMap = find<V1ConfigMap>(objects, 'ConfigMap', 'troupe-dashboard');
    expect(configMap.metadata?.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(configMap.data?.['troupe.json'] ?? '')).toEqual(
      JSON.parse(readFileSync(`${CHART_DIR}dashboards/troupe.json`, 'utf8')),
    );
  });
});

describe('the Kafka session timeout', () => {
  it('reaches the runtime, the gateway and the operator (for agent pods) as digits the runtime reads, even from a values file', async () => {
    const objects = await render({ values: [`${VALUES_DIR}longest-session-timeout.yaml`] });
    for (const name of ['troupe-runtime', 'troupe-gateway', 'troupe-operator'])
      expect(value(containerOf(find<V1Deployment>(objects, 'Deployment', name)), 'TROUPE_KAFKA_SESSION_TIMEOUT_MS'), name).toBe('1800000');
  });
});

describe('kubectl apply --dry-run=server of helm template', () => {
  let namespace = '';
  beforeAll(async () => {
    namespace = await createNamespace('helm');
  });
  afterAll(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it.each([
    ['the default values', []],
    ['external services', [EXTERNAL]],
  ])('is accepted by the API server with %s', async (_, values) => {
    const manifests = await template({ values, namespace, includeCrds: true });
    const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifests);
    expect(result.code, result.stderr).toBe(0);
    const applied = result.stdout.split('\n').filter((line) => line.endsWith('(server dry run)'));
    expect(applied.length).toBe((await render({ values, namespace, includeCrds: true })).length);
  });

  it('installs no ServiceMonitor on a cluster that has no monitoring.coreos.com API, and says so', async () => {
    const install = await helm([
      'install',
      'troupe',
      CHART_DIR,
      '-f',
      EXTERNAL,
      '--namespace',
      namespace,
      '--dry-run=server',
      '--kubeconfig',
      infra().kube.kubeconfig,
    ]);
    expect(install.code, install.stderr).toBe(0);
    const [manifest, notes] = install.stdout.split('NOTES:');
    expect(manifest).toContain('kind: HorizontalPodAutoscaler');
    expect(manifest).not.toMatch(/kind: (ServiceMonitor|PodMonitor)/);
    expect(notes).toContain('serviceMonitor.enabled is set, but this cluster serves no monitoring.coreos.com/v1 API');
  });

  it('tells in its notes how to mint a dashboard token with the secret from its Secret', async () => {
    const install = await helm([
      'install',
      'troupe',
      CHART_DIR,
      '--namespace',
      namespace,
      '--dry-run=server',
      '--kubeconfig',
      infra().kube.kubeconfig,
    ]);
    expect(install.code, install.stderr).toBe(0);
    const notes = install.stdout.split('NOTES:')[1] ?? '';
    expect(notes).toContain('npx troupe token --tenant acme');
    const exported = /^\s*(export TROUPE_TOKEN_SECRET=.+)$/m.exec(notes)?.[1];
    expect(exported).toBeDefined();
    // The command as the notes print it, run by a shell (with kubectl on its PATH) against the
    // Secret an install would make.
    const secret = 'a-token-secret-of-at-least-32-bytes-from-the-chart';
    await kubectl(['create', 'secret', 'generic', 'troupe-gateway-auth', '-n', namespace, `--from-literal=token-secret=${secret}`]);
    const { stdout } = await promisify(execFile)('sh', ['-c', `${exported} && printf %s "$TROUPE_TOKEN_SECRET"`], {
      env: {
        ...process.env,
        KUBECONFIG: infra().kube.kubeconfig,
        PATH: `${dirname(infra().kube.kubectl)}${delimiter}${process.env.PATH ?? ''}`,
      },
    });
    expect(stdout).toBe(secret);
  });
});
