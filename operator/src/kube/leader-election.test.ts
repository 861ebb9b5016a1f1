/**
 * Leader election between operator replicas, each a real main.ts process against the real API
 * server: one holds the Lease and acts, the other waits and does nothing; a leader stopped by
 * SIGTERM releases the Lease and the standby takes over at once; a leader killed outright is
 * replaced once its Lease runs out.
 */
import { infra } from '@troupe/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, ensureCrds, kubectl, kubectlOk, listEvents } from '../testing/cluster.js';
import { startOperatorProcess, type OperatorProcess } from '../testing/operator-process.js';

const LEASE = 'troupe-operator';

describe('leader election across operator processes', () => {
  let namespace = '';
  const replicas = new Map<string, OperatorProcess>();

  function start(identity: string): OperatorProcess {
    const replica = startOperatorProcess({
      KUBECONFIG: infra().kube.kubeconfig,
      POD_NAME: identity,
      POD_NAMESPACE: namespace,
      TROUPE_WATCH_NAMESPACES: namespace,
      TROUPE_LEASE_NAME: LEASE,
      TROUPE_LEASE_DURATION_MS: '3000',
      TROUPE_RENEW_DEADLINE_MS: '2000',
      TROUPE_RETRY_PERIOD_MS: '300',
      // Workflows need no runtime; nothing listens here, so no token is ever checked.
      TROUPE_RUNTIME_ADDRESS: '127.0.0.1:1',
      TROUPE_RUNTIME_TOKEN: 'unchecked',
      TROUPE_HEALTH_PORT: '0',
    });
    replicas.set(identity, replica);
    return replica;
  }

  const holder = () => kubectlOk(['get', 'lease', LEASE, '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}']);

  /** Applies a valid Workflow, waits for Ready, and returns who reported it. */
  async function reconciledBy(name: string): Promise<string[]> {
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Workflow
metadata:
  name: ${name}
spec:
  phases:
    - { name: build, role: developer }
    - { name: ship, role: devops, needs: [build] }
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', `workflow/${name}`, '--timeout=30s']);
    const out = await listEvents(namespace, `involvedObject.name=${name}`, '{range .items[*]}{.reportingInstance}{"\\n"}{end}');
    return [...new Set(out.split('\n').filter((line) => line.length > 0))];
  }

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('leader');
  });
  afterAll(async () => {
    await Promise.all([...replicas.values()].map((replica) => replica.stop('SIGTERM')));
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('lets one of two replicas lead and act; the other takes over at once when the leader stops on SIGTERM', async () => {
    const [a, b] = [start('operator-a'), start('operator-b')];
    await Promise.all([a.waitForLog('waiting for leadership'), b.waitForLog('waiting for leadership')]);
    await expect.poll(holder, { timeout: 30_000 }).toMatch(/^operator-[ab]$/);
    const leaderName = await holder();
    const followerName = leaderName === 'operator-a' ? 'operator-b' : 'operator-a';
    const [leader, follower] = [replicas.get(leaderName) as OperatorProcess, replicas.get(followerName) as OperatorProcess];
    await leader.waitForLog('caches synced, starting controllers');

    expect(await reconciledBy('first')).toEqual([leaderName]);
    expect(await holder()).toBe(leaderName);
    expect(follower.logs.map((line) => line.msg)).not.toContain('became leader');
    expect(follower.logs.map((line) => line.msg)).not.toContain('caches synced, starting controllers');

    expect(await leader.stop('SIGTERM')).toBe(0);
    expect(leader.logs.map((line) => line.msg)).toContain('released leadership');
    await follower.waitForLog('became leader', 15_000);
    expect(await holder()).toBe(followerName);
    expect(await reconciledBy('second')).toEqual([followerName]);
  });

  it('replaces a leader killed outright once its Lease has run out', async () => {
    const leaderName = await holder();
    const standby = start('operator-c');
    await standby.waitForLog('waiting for leadership');
    const transitions = Number(await kubectlOk(['get', 'lease', LEASE, '-n', namespace, '-o', 'jsonpath={.spec.leaseTransitions}']));

    await replicas.get(leaderName)?.stop('SIGKILL');
    await standby.waitForLog('became leader', 15_000);
    expect(await holder()).toBe('operator-c');
    expect(Number(await kubectlOk(['get', 'lease', LEASE, '-n', namespace, '-o', 'jsonpath={.spec.leaseTransitions}']))).toBe(
      transitions + 1,
    );
    expect(await reconciledBy('third')).toEqual(['operator-c']);
  });
});
