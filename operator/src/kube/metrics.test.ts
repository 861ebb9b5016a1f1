/**
 * The operator's /metrics, scraped from main.ts in its own process against the real API server
 * and parsed as Prometheus reads it: reconciles counted and timed per controller and result, and
 * each controller's work queue depth.
 */
import { freePort, infra, parsePrometheus, sampleValue, type MetricFamily } from '@troupe/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, ensureCrds, kubectl, kubectlOk } from '../testing/cluster.js';
import { startOperatorProcess, type OperatorProcess } from '../testing/operator-process.js';

describe("the operator's metrics", () => {
  let namespace = '';
  let operator: OperatorProcess | undefined;
  let url = '';

  async function scrape(): Promise<Map<string, MetricFamily>> {
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheus(await response.text());
  }

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('metrics');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    operator = startOperatorProcess({
      KUBECONFIG: infra().kube.kubeconfig,
      POD_NAME: 'operator-metrics',
      POD_NAMESPACE: namespace,
      TROUPE_WATCH_NAMESPACES: namespace,
      TROUPE_LEADER_ELECT: 'false',
      // Workflows need no runtime; nothing listens here, so no token is ever checked.
      TROUPE_RUNTIME_ADDRESS: '127.0.0.1:1',
      TROUPE_RUNTIME_TOKEN: 'unchecked',
      TROUPE_HEALTH_PORT: String(port),
    });
    await operator.waitForLog('caches synced, starting controllers');
  });
  afterAll(async () => {
    await operator?.stop('SIGTERM');
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('times each reconcile by controller and result, and reports every work queue', async () => {
    const families = await scrape();
    expect(families.get('troupe_operator_reconcile_duration_seconds')?.type).toBe('histogram');
    expect(families.get('troupe_operator_workqueue_depth')?.type).toBe('gauge');
    expect(families.get('process_resident_memory_bytes')?.type).toBe('gauge');
    const queues = families.get('troupe_operator_workqueue_depth')?.samples ?? [];
    expect(queues.map((sample) => sample.labels.controller).sort()).toEqual(['agentpool', 'modelprovider', 'project', 'workflow']);
    expect(queues.every((sample) => Number.isInteger(sample.value) && sample.value >= 0)).toBe(true);

    const reconciled = (result: string, from: Map<string, MetricFamily>) =>
      sampleValue(
        from,
        'troupe_operator_reconcile_duration_seconds',
        { controller: 'workflow', result },
        'troupe_operator_reconcile_duration_seconds_count',
      ) ?? 0;
    const before = reconciled('success', families);
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Workflow
metadata:
  name: build-and-ship
spec:
  phases:
    - { name: build, role: developer }
    - { name: ship, role: devops, needs: [build] }
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'workflow/build-and-ship', '--timeout=30s']);
    await expect.poll(async () => reconciled('success', await scrape()), { timeout: 15_000 }).toBeGreaterThan(before);
    const after = await scrape();
    const sum = sampleValue(
      after,
      'troupe_operator_reconcile_duration_seconds',
      { controller: 'workflow', result: 'success' },
      'troupe_operator_reconcile_duration_seconds_sum',
    );
    expect(sum).toBeGreaterThan(0);
    // Every reconcile falls in the +Inf bucket.
    expect(
      sampleValue(
        after,
        'troupe_operator_reconcile_duration_seconds',
        { controller: 'workflow', result: 'success', le: '+Inf' },
        'troupe_operator_reconcile_duration_seconds_bucket',
      ),
    ).toBe(reconciled('success', after));

    expect(await operator!.stop('SIGTERM')).toBe(0);
  });
});
