/**
 * Workflow against the real API server: the cycle CEL cannot see is refused by the operator
 * with Ready=False naming it, a fix turns it Ready, and a Project on a Workflow that is not
 * Ready waits rather than being handed to the runtime.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcRuntimeClient } from '../clients/runtime.grpc.js';
import { createNamespace, ensureCrds, eventsOf, kubectl, kubectlOk, samples, testOperator, type TestOperator } from '../testing/cluster.js';

/** Nothing listens there: the runtime is unreachable for this operator. */
const NO_RUNTIME = '127.0.0.1:1';

function workflow(phases: string): string {
  return `apiVersion: troupe.dev/v1alpha1
kind: Workflow
metadata:
  name: release
spec:
  phases:
${phases}`;
}

const CYCLIC = workflow(`    - { name: plan, role: pm }
    - { name: build, role: developer, needs: [plan, test] }
    - { name: test, role: qa, needs: [ship] }
    - { name: ship, role: devops, needs: [build] }
`);
const FIXED = workflow(`    - { name: plan, role: pm }
    - { name: build, role: developer, needs: [plan] }
    - { name: test, role: qa, needs: [build] }
    - { name: ship, role: devops, needs: [test] }
`);

describe('Workflow controller', () => {
  let namespace = '';
  let operator: TestOperator;
  const runtime = new GrpcRuntimeClient({ address: NO_RUNTIME });
  const condition = (kind: string, name: string, type: string) =>
    kubectlOk([
      'get',
      kind,
      name,
      '-n',
      namespace,
      '-o',
      `jsonpath={.status.conditions[?(@.type=="${type}")].status} {.status.conditions[?(@.type=="${type}")].reason}: {.status.conditions[?(@.type=="${type}")].message}`,
    ]);

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('workflows');
    operator = testOperator(namespace, runtime);
  });
  afterAll(async () => {
    await operator.stop();
    runtime.close();
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('makes the sample hotfix workflow Ready', async () => {
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['workflow']));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'workflow/hotfix', '--timeout=30s']);
    expect(await condition('workflow', 'hotfix', 'Ready')).toBe('True PhasesValid: 3 phases, no cycles');
  });

  it('refuses a needs cycle with a message naming it, and a Project on it waits; the fix releases both', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], CYCLIC);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready=false', 'workflow/release', '--timeout=30s']);
    expect(await condition('workflow', 'release', 'Ready')).toBe(
      'False NeedsCycle: spec.phases[].needs form a cycle: build → test → ship → build (each needs the next)',
    );
    expect(await eventsOf(namespace, 'Workflow', 'release')).toContain(
      'NeedsCycle: spec.phases[].needs form a cycle: build → test → ship → build (each needs the next)',
    );

    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Project
metadata:
  name: launch
spec:
  client: acme
  brief: Ship the spring campaign site.
  workflow: release
  budget:
    maxCostUSD: 2
`,
    );
    await expect
      .poll(() => condition('project', 'launch', 'Accepted'), { timeout: 30_000 })
      .toMatch(/^False WorkflowNotReady: Workflow release is not Ready: spec.phases\[\].needs form a cycle/);
    expect(await kubectlOk(['get', 'project', 'launch', '-n', namespace, '-o', 'jsonpath={.status.phase}'])).toBe('Pending');

    await kubectlOk(['apply', '-n', namespace, '-f', '-'], FIXED);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'workflow/release', '--timeout=30s']);
    // Released, the project goes to the runtime — which is down here, so it waits for that instead.
    await expect
      .poll(() => condition('project', 'launch', 'Accepted'), { timeout: 30_000 })
      .toMatch(/^Unknown RuntimeUnavailable: the runtime did not take the project/);
    expect(await kubectlOk(['get', 'project', 'launch', '-n', namespace, '-o', 'jsonpath={.metadata.finalizers}'])).toContain(
      'troupe.dev/cancel-in-runtime',
    );
  });

  it('lets a Project the runtime never took be deleted while the runtime is down', async () => {
    await kubectlOk(['delete', 'project', 'launch', '-n', namespace, '--timeout=30s']);
    expect((await kubectl(['get', 'project', 'launch', '-n', namespace])).code).not.toBe(0);
  });
});
