/**
 * The operator process's credentials for the runtime, as the Helm chart gives them: with only
 * TROUPE_TOKEN_SECRET (no TROUPE_RUNTIME_TOKEN) it signs its own admin tokens, and the runtime,
 * checking with the same secret, accepts the Project it submits; without either variable, or
 * with a secret too short to sign with, it exits 1 with a message naming them. A Kafka session
 * timeout the brokers would refuse stops it too, naming the flag.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { infra } from '@troupe/harness';
import { Tokens, createProvider, startEmbeddedRuntime, type EmbeddedRuntime } from '@troupe/runtime';
import { samplePools } from '@troupe/runtime/testing';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createNamespace, ensureCrds, kubectl, kubectlOk } from './testing/cluster.js';
import { startOperatorProcess, type OperatorProcess } from './testing/operator-process.js';

const SECRET = 'operator-main-test-secret-of-32-bytes-or-more';

/** The exit code, and the last line logged (stderr may still be draining when the process exits). */
async function failure(process: OperatorProcess) {
  const exitCode = await process.exited;
  await expect.poll(() => process.logs.some((line) => line.msg === 'operator failed')).toBe(true);
  return { exitCode, ...process.logs.find((line) => line.msg === 'operator failed') };
}

describe("the operator's runtime credentials", () => {
  let namespace = '';
  let dataDir = '';
  let runtime: EmbeddedRuntime;
  let operator: OperatorProcess | undefined;

  /** The operator's environment: no token of its own unless given, whatever this process has. */
  function operatorEnv(identity: string, credentials: { TROUPE_RUNTIME_TOKEN?: string; TROUPE_TOKEN_SECRET?: string }) {
    return {
      KUBECONFIG: infra().kube.kubeconfig,
      POD_NAME: identity,
      POD_NAMESPACE: namespace,
      TROUPE_WATCH_NAMESPACES: namespace,
      TROUPE_LEADER_ELECT: 'false',
      TROUPE_RUNTIME_ADDRESS: runtime.grpcAddress!,
      TROUPE_HEALTH_PORT: '0',
      TROUPE_RUNTIME_TOKEN: '',
      TROUPE_TOKEN_SECRET: '',
      ...credentials,
    };
  }

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('credentials');
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-operator-credentials-'));
    runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated' })],
      pools: samplePools(namespace),
      grpc: { port: 0, tokens: new Tokens({ secret: SECRET }) },
    });
  }, 90_000);
  afterAll(async () => {
    await operator?.stop('SIGTERM');
    // No operator is left to release its finalizer.
    await kubectl(['patch', 'project', 'kiosk', '-n', namespace, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await runtime?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('signs its own admin tokens with TROUPE_TOKEN_SECRET, which the runtime accepts', async () => {
    operator = startOperatorProcess(operatorEnv('operator-signing', { TROUPE_TOKEN_SECRET: ` ${SECRET}\n` }));
    await operator.waitForLog('caches synced, starting controllers');
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Project
metadata:
  name: kiosk
spec:
  client: acme
  brief: A self-service kiosk for the museum shop.
  budget:
    maxCostUSD: 1
  approvals: [requirements]
`,
    );
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Accepted', 'project/kiosk', '--timeout=60s']);
    expect((await runtime.company.getProject(namespace, 'kiosk'))?.status).toBeDefined();
  });

  it('exits 1 naming the variables when it has neither a token nor the secret, or a secret too short', async () => {
    expect(await failure(startOperatorProcess(operatorEnv('operator-without', {})))).toMatchObject({
      exitCode: 1,
      code: 'INVALID_OPTIONS',
      error: expect.stringMatching(/^TROUPE_RUNTIME_TOKEN or TROUPE_TOKEN_SECRET is required/),
    });
    expect(await failure(startOperatorProcess(operatorEnv('operator-short', { TROUPE_TOKEN_SECRET: 'too-short' })))).toMatchObject({
      exitCode: 1,
      code: 'INVALID_OPTIONS',
      error: 'TROUPE_TOKEN_SECRET: Tokens option secret must be at least 32 bytes, got 9',
    });
  });
});

describe("the operator's Kafka session timeout for agent pods", () => {
  it('exits 1 naming the flag and its variable when the brokers would refuse the timeout', async () => {
    for (const timeout of ['5000', 'abc']) {
      const operator = startOperatorProcess({
        KUBECONFIG: infra().kube.kubeconfig,
        POD_NAME: `operator-session-timeout-${timeout}`,
        // Should it start after all, it has nothing to reconcile.
        TROUPE_WATCH_NAMESPACES: 'operator-session-timeout-none',
        TROUPE_LEADER_ELECT: 'false',
        TROUPE_HEALTH_PORT: '0',
        TROUPE_RUNTIME_TOKEN: '',
        TROUPE_TOKEN_SECRET: SECRET,
        TROUPE_KAFKA_SESSION_TIMEOUT_MS: timeout,
      });
      // Even when it never exits and the test times out, it must not outlive the test.
      onTestFinished(async () => {
        await operator.stop('SIGTERM');
      });
      expect(await failure(operator), timeout).toMatchObject({
        exitCode: 1,
        code: 'INVALID_OPTIONS',
        error: `--kafka-session-timeout-ms (TROUPE_KAFKA_SESSION_TIMEOUT_MS) must be an integer in 6000..1800000, got "${timeout}"`,
      });
    }
  });
});
