/**
 * Test support for the operator's tests against the harness's real API server: kubectl as a
 * user runs it, a namespace per test, the samples rewritten into that namespace, and an
 * operator replica scoped to it with its log lines kept for assertions.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { infra } from '@troupe/harness';
import { parseAllDocuments, stringify } from 'yaml';
import type { RuntimeClient } from '../clients/runtime.js';
import { KubeClient } from '../kube/client.js';
import { jsonLogger } from '../kube/log.js';
import { startOperator, type Operator, type OperatorOptions } from '../operator.js';

/** crds/ of the repository. */
export const CRDS_DIR = fileURLToPath(new URL('../../../crds/', import.meta.url));

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the harness's kubectl against the test API server; never throws on a non-zero exit. */
export function kubectl(args: readonly string[], input?: string, kubeconfig = infra().kube.kubeconfig): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      infra().kube.kubectl,
      ['--kubeconfig', kubeconfig, ...args],
      { encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

/** kubectl that must succeed; returns stdout. */
export async function kubectlOk(args: readonly string[], input?: string): Promise<string> {
  const result = await kubectl(args, input);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A fresh namespace named after the test. */
export async function createNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await kubectlOk(['create', 'namespace', name]);
  return name;
}

let crdsApplied: Promise<void> | undefined;

/**
 * Makes the API server's CustomResourceDefinitions those of crds/, as `kubectl apply` installs
 * them, once per test file. The harness installs them through client-node's typed serializer,
 * which drops `enum`, `default` and every `x-kubernetes-*` key (CEL rules among them); a
 * server-side apply of unchanged files changes nothing, so concurrent test files agree.
 */
export function ensureCrds(): Promise<void> {
  crdsApplied ??= (async () => {
    const files = ['agentpool', 'modelprovider', 'project', 'workflow'].flatMap((name) => ['-f', `${CRDS_DIR}${name}.yaml`]);
    await kubectlOk(['apply', '--server-side', '--force-conflicts', '--field-manager=troupe-crds', ...files]);
    await kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      ...['agentpools', 'modelproviders', 'projects', 'workflows'].map((plural) => `crd/${plural}.troupe.dev`),
    ]);
    // The API server serves a changed schema a moment after the update; a CEL rule being enforced tells it does.
    const probe = stringify({
      apiVersion: 'troupe.dev/v1alpha1',
      kind: 'Workflow',
      metadata: { name: 'crd-probe', namespace: 'default' },
      spec: { phases: [{ name: 'a', role: 'pm', needs: ['a'] }] },
    });
    for (const deadline = Date.now() + 30_000; ;) {
      const result = await kubectl(['create', '--dry-run=server', '-f', '-'], probe);
      if (result.code !== 0 && result.stderr.includes('must not name the phase itself')) return;
      if (Date.now() > deadline)
        throw new Error(`the API server does not enforce the CEL rules of crds/: ${result.stderr || result.stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return crdsApplied;
}

/** The admin kubeconfig of the test API server. */
export function adminKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(infra().kube.kubeconfig);
  return config;
}

/** A client with the admin's rights, for what a test does that kubectl cannot (writing a Deployment's status). */
export function adminClient(): KubeClient {
  return new KubeClient({ config: adminKubeConfig(), fieldManager: 'troupe-test' });
}

/**
 * The troupe.dev documents of the sample files (crds/samples/<file>.yaml), moved into `namespace`,
 * as one YAML stream for `kubectl apply -f -`.
 */
export function samples(namespace: string, files: readonly string[]): string {
  return files
    .flatMap((file) =>
      parseAllDocuments(readFileSync(`${CRDS_DIR}samples/${file}.yaml`, 'utf8')).map(
        (document) => document.toJS() as { kind?: string; metadata?: { namespace?: string } } | null,
      ),
    )
    .filter((object) => object !== null && object.kind !== 'Namespace')
    .map((object) => stringify({ ...object, metadata: { ...object?.metadata, namespace } }))
    .join('---\n');
}

/** An operator replica for one test, and every line it logged. */
export interface TestOperator extends Operator {
  lines: string[];
}

/**
 * Starts an operator that reconciles only `namespace`, without leader election unless asked.
 * Stop it with `stop()` at the end of the test.
 */
export function testOperator(namespace: string, runtime: RuntimeClient, options: Partial<OperatorOptions> = {}): TestOperator {
  const lines: string[] = [];
  const operator = startOperator({
    kubeConfig: adminKubeConfig(),
    identity: `test-${namespace}`,
    runtime,
    namespaces: [namespace],
    leaderElection: false,
    metricsIntervalMs: 500,
    log: jsonLogger('debug', (line) => lines.push(line)),
    ...options,
  });
  return Object.assign(operator, { lines });
}

/** What kubectl prints of a namespace's Events that match a field selector, through a jsonpath template. */
export function listEvents(namespace: string, fieldSelector: string, jsonpath: string): Promise<string> {
  return kubectlOk(['get', 'events', '-n', namespace, '--field-selector', fieldSelector, '-o', `jsonpath=${jsonpath}`]);
}

/** The Events kubectl lists for one object, as `reason: message` lines. */
export async function eventsOf(namespace: string, kind: string, name: string): Promise<string[]> {
  const out = await listEvents(
    namespace,
    `involvedObject.kind=${kind},involvedObject.name=${name}`,
    '{range .items[*]}{.reason}: {.message}{"\\n"}{end}',
  );
  return out.split('\n').filter((line) => line.length > 0);
}
