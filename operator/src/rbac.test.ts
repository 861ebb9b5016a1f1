/**
 * Least privilege, checked against the real API server: the operator runs under a
 * ServiceAccount bound only to rbac/clusterrole.yaml and rbac/leader-election-role.yaml, with a
 * token from the TokenRequest API, through every path its controllers take (samples applied,
 * a Secret found, a project approved, delivered and another deleted, an Event repeated). Every
 * request it makes must be allowed, and every verb the roles grant must be one it made.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { infra } from '@troupe/harness';
import { createProvider, SimulatedServer, startEmbeddedRuntime, Tokens, type EmbeddedRuntime } from '@troupe/runtime';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcRuntimeClient } from './clients/runtime.grpc.js';
import type { ApiRequest } from './kube/client.js';
import {
  createNamespace,
  ensureCrds,
  kubectl,
  kubectlOk,
  listEvents,
  samples,
  testOperator,
  type TestOperator,
} from './testing/cluster.js';

const RBAC_DIR = fileURLToPath(new URL('../rbac/', import.meta.url));

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

interface RoleDocument {
  metadata: { name: string; namespace?: string };
  rules: Rule[];
}

function role(file: string): RoleDocument {
  return parse(readFileSync(RBAC_DIR + file, 'utf8')) as RoleDocument;
}

/** `verb group/resource[/subresource]` for every verb a rule grants. */
function granted(rules: readonly Rule[]): Set<string> {
  return new Set(
    rules.flatMap((rule) =>
      rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${group}/${resource}`))),
    ),
  );
}

function asGrant(request: ApiRequest): string {
  return `${request.verb} ${request.group}/${request.resource}${request.subresource ? `/${request.subresource}` : ''}`;
}

describe("the operator's RBAC", () => {
  let namespace = '';
  let dataDir = '';
  let server: SimulatedServer;
  let embedded: EmbeddedRuntime;
  let runtime: GrpcRuntimeClient;
  let operator: TestOperator;
  const made = new Set<string>();
  const clusterRole = role('clusterrole.yaml');
  const leaderRole = role('leader-election-role.yaml');
  const account = () => `system:serviceaccount:${namespace}:troupe-operator`;

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('rbac');
    const clusterRoleName = `troupe-operator-${namespace}`;
    await kubectlOk(['create', 'serviceaccount', 'troupe-operator', '-n', namespace]);
    await kubectlOk(['apply', '-f', '-'], stringify({ ...clusterRole, metadata: { ...clusterRole.metadata, name: clusterRoleName } }));
    await kubectlOk([
      'create',
      'clusterrolebinding',
      clusterRoleName,
      `--clusterrole=${clusterRoleName}`,
      `--serviceaccount=${namespace}:troupe-operator`,
    ]);
    await kubectlOk(['apply', '-f', '-'], stringify({ ...leaderRole, metadata: { ...leaderRole.metadata, namespace } }));
    await kubectlOk([
      'create',
      'rolebinding',
      'troupe-operator-leader-election',
      '-n',
      namespace,
      `--role=${leaderRole.metadata.name}`,
      `--serviceaccount=${namespace}:troupe-operator`,
    ]);
    const token = (await kubectlOk(['create', 'token', 'troupe-operator', '-n', namespace, '--duration=1h'])).trim();

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'test', server: infra().kube.server, skipTLSVerify: true }],
      users: [{ name: 'troupe-operator', token }],
      contexts: [{ name: 'test', cluster: 'test', user: 'troupe-operator' }],
      currentContext: 'test',
    });

    dataDir = mkdtempSync(join(tmpdir(), 'troupe-rbac-runtime-'));
    server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 3 });
    const tokens = new Tokens({ secret: randomBytes(32) });
    embedded = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL })],
      pools: ['pm', 'architect', 'developer', 'qa', 'devops', 'writer'].map((role) => ({
        namespace,
        name: role,
        replicas: 1,
        spec: { role, model: { provider: 'simulated', name: 'sim-small', maxOutputTokens: 256 }, concurrency: 4 },
      })),
      grpc: { port: 0, tokens },
      taskCheckMs: 1_000,
    });
    runtime = new GrpcRuntimeClient({ address: embedded.grpcAddress as string, token: tokens.sign({ sub: 'operator', role: 'admin' }) });
    operator = testOperator(namespace, runtime, {
      kubeConfig,
      leaderElection: { namespace, name: 'troupe-operator', leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 },
      onRequest: (request) => made.add(asGrant(request)),
    });
  });
  afterAll(async () => {
    // While the operator runs, so that its finalizer lets the projects go.
    await kubectl(['delete', 'projects', '--all', '-n', namespace, '--timeout=60s']);
    await operator.stop();
    runtime.close();
    await embedded.stop();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
    await kubectl(['delete', 'clusterrolebinding', `troupe-operator-${namespace}`]);
    await kubectl(['delete', 'clusterrole', `troupe-operator-${namespace}`]);
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('does everything its controllers do with only the roles in rbac/', async () => {
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['provider', 'pools', 'workflow', 'project']));
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: ModelProvider
metadata:
  name: openai
spec:
  type: openai
  apiKeySecretRef: { name: openai, key: api-key }
`,
    );
    await kubectlOk(['create', 'secret', 'generic', 'openai', '-n', namespace, '--from-literal=api-key=sk-rbac-test']);
    await kubectlOk([
      'wait',
      '-n',
      namespace,
      '--for=condition=Ready',
      'modelprovider/simulated',
      'modelprovider/openai',
      'workflow/hotfix',
      '--timeout=30s',
    ]);
    for (const pool of ['pm', 'architect', 'developers', 'qa', 'devops', 'writer']) {
      await expect
        .poll(() => kubectl(['get', 'deployment', pool, '-n', namespace]).then((result) => result.code), { timeout: 30_000 })
        .toBe(0);
    }
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/storefront', '--timeout=60s']);

    // The same warning twice: the second bumps the count of the first Event (events: patch).
    await kubectlOk(['annotate', 'project', 'storefront', '-n', namespace, 'troupe.dev/approve=deployment']);
    await expect.poll(() => eventCount('UnknownApprovalPhase'), { timeout: 30_000 }).toBe(1);
    await kubectlOk(['annotate', 'project', 'storefront', '-n', namespace, 'rbac-test/poke=1']);
    await expect.poll(() => eventCount('UnknownApprovalPhase'), { timeout: 30_000 }).toBe(2);

    await kubectlOk(['annotate', 'project', 'storefront', '-n', namespace, '--overwrite', 'troupe.dev/approve=architecture']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Delivered', 'project/storefront', '--timeout=90s']);
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Project
metadata:
  name: cancelled
spec:
  client: acme
  brief: A page that will be cancelled.
  budget: { maxCostUSD: 1 }
  approvals: [requirements]
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/cancelled', '--timeout=60s']);
    await kubectlOk(['delete', 'project', 'cancelled', '-n', namespace, '--timeout=30s']);

    expect(operator.lines.filter((line) => /forbidden/i.test(line))).toEqual([]);
  });

  it('grants exactly the verbs the operator used', () => {
    const grants = new Set([...granted(clusterRole.rules), ...granted(leaderRole.rules)]);
    expect([...made].filter((request) => !grants.has(request)).sort()).toEqual([]);
    // Only the owner-reference permission is never a request of its own: the API server checks it
    // when a Deployment with blockOwnerDeletion is written, in clusters that enforce it.
    expect([...grants].filter((grant) => !made.has(grant)).sort()).toEqual(['update troupe.dev/agentpools/finalizers']);
  });

  it('grants nothing beyond them: no Secret values, no deletes', async () => {
    const outside = [
      ['get', 'secrets', namespace],
      ['delete', 'deployments.apps', namespace],
      ['delete', 'projects.troupe.dev', namespace],
      ['update', 'projects.troupe.dev', namespace],
      ['create', 'pods', namespace],
      // Leases only where the operator runs.
      ['update', 'leases.coordination.k8s.io', 'kube-system'],
    ] as const;
    for (const [verb, resource, where] of outside) {
      const answer = await kubectl(['auth', 'can-i', verb, resource, '-n', where, `--as=${account()}`]);
      expect(`${verb} ${resource} in ${where}: ${answer.stdout.trim()}`).toBe(`${verb} ${resource} in ${where}: no`);
    }
  });

  async function eventCount(reason: string): Promise<number> {
    const out = await listEvents(namespace, `reason=${reason},involvedObject.name=storefront`, '{.items[*].count}');
    return out
      .split(/\s+/)
      .filter((count) => count.length > 0)
      .reduce((sum, count) => sum + Number(count), 0);
  }
});
