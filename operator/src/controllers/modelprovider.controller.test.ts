/**
 * ModelProvider against the real API server: Ready once its API key Secret holds the key,
 * flipping when the Secret appears later, with the reasons in `kubectl describe`, and the key
 * itself in no condition, Event or log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcRuntimeClient } from '../clients/runtime.grpc.js';
import { createNamespace, ensureCrds, eventsOf, kubectl, kubectlOk, samples, testOperator, type TestOperator } from '../testing/cluster.js';

/** Nothing listens there: this operator runs with the runtime unreachable, which ModelProviders do not need. */
const NO_RUNTIME = '127.0.0.1:1';
const API_KEY = 'sk-test-9f3b1c2d7e4a6b5c8d0e1f2a3b4c5d6e';

describe('ModelProvider controller', () => {
  let namespace = '';
  let operator: TestOperator;
  const runtime = new GrpcRuntimeClient({ address: NO_RUNTIME });

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('providers');
    operator = testOperator(namespace, runtime);
  });
  afterAll(async () => {
    await operator.stop();
    runtime.close();
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('makes the sample simulated provider Ready without a Secret', async () => {
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['provider']));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'modelprovider/simulated', '--timeout=30s']);
    const reason = await kubectlOk([
      'get',
      'modelprovider',
      'simulated',
      '-n',
      namespace,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Ready")].reason}',
    ]);
    expect(reason).toBe('NoCredentialsNeeded');
  });

  it('waits for the API key Secret and its key, and turns Ready when both are there', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], providerYaml('openai', { name: 'openai-credentials', key: 'api-key' }));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready=false', 'modelprovider/openai', '--timeout=30s']);
    expect(await readyReason(namespace, 'openai')).toBe('SecretNotFound: Secret "openai-credentials" not found');

    await kubectlOk(['create', 'secret', 'generic', 'openai-credentials', '-n', namespace, `--from-literal=token=${API_KEY}`]);
    await expect
      .poll(() => readyReason(namespace, 'openai'), { timeout: 30_000 })
      .toBe('SecretKeyMissing: Secret "openai-credentials" has no value for key "api-key"');

    await kubectlOk([
      'patch',
      'secret',
      'openai-credentials',
      '-n',
      namespace,
      '--type=merge',
      '-p',
      JSON.stringify({ stringData: { 'api-key': API_KEY } }),
    ]);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'modelprovider/openai', '--timeout=30s']);
    expect(await readyReason(namespace, 'openai')).toBe('CredentialsFound: API key found in Secret "openai-credentials", key "api-key"');

    const described = await kubectlOk(['describe', 'modelprovider', 'openai', '-n', namespace]);
    expect(described).toMatch(/Warning\s+SecretNotFound/);
    expect(described).toMatch(/Normal\s+CredentialsFound/);
  });

  it('never puts the API key in a condition, an Event or a log line', async () => {
    const everything = [
      await kubectlOk(['get', 'modelproviders', '-n', namespace, '-o', 'json']),
      (await eventsOf(namespace, 'ModelProvider', 'openai')).join('\n'),
      operator.lines.join('\n'),
    ].join('\n');
    expect(everything).toContain('openai-credentials');
    expect(everything).not.toContain(API_KEY);
    expect(everything).not.toContain(Buffer.from(API_KEY).toString('base64'));
  });
});

function providerYaml(name: string, secret: { name: string; key: string }): string {
  return `apiVersion: troupe.dev/v1alpha1
kind: ModelProvider
metadata:
  name: ${name}
spec:
  type: openai
  apiKeySecretRef:
    name: ${secret.name}
    key: ${secret.key}
`;
}

function readyReason(namespace: string, name: string): Promise<string> {
  return kubectlOk([
    'get',
    'modelprovider',
    name,
    '-n',
    namespace,
    '-o',
    'jsonpath={.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}',
  ]);
}
