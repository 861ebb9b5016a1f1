/**
 * The operator under a burst of Projects: N Projects are created (as many `kubectl apply`s
 * would, 16 requests in flight) and the clock runs until every one has a status.phase that
 * came back from the runtime — the embedded runtime over gRPC, with the projects suspended so
 * that the runtime answers (phase Paused) without buying LLM calls. The operator runs in a
 * child process (its RSS is its own) and records each Project reconcile's duration. The
 * baseline is the same N creates into a namespace no operator watches: the API server's write
 * rate, which bounds anything the operator does per object. Runs against the harness's
 * kube-apiserver.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeEndpoint } from '@troupe/harness';
import { KubeClient, Projects, type Project } from '@troupe/operator';
import { createProvider, startEmbeddedRuntime, Tokens } from '@troupe/runtime';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';

/** Create requests in flight, like a handful of parallel `kubectl apply` loops. */
const IN_FLIGHT = 16;
/** Reconciles the operator runs at once (its default is 4; a burst of projects wants more). */
const CONCURRENCY = 16;
const require = createRequire(import.meta.url);

function project(namespace: string, name: string): Project {
  return {
    metadata: { name, namespace },
    spec: { client: 'bench', brief: 'A landing page for the benchmark.', budget: { maxCostUSD: 1 }, suspend: true },
  };
}

/** Creates `count` Projects with IN_FLIGHT requests in flight; returns each one's create time and latency. */
async function createAll(
  client: KubeClient,
  namespace: string,
  count: number,
): Promise<{ createdAt: Float64Array; latencies: Float64Array }> {
  const createdAt = new Float64Array(count);
  const latencies = new Float64Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < count; i = next++) {
        const started = performance.now();
        await client.create(Projects, project(namespace, `p-${i}`));
        createdAt[i] = started;
        latencies[i] = performance.now() - started;
      }
    }),
  );
  return { createdAt, latencies };
}

/** The operator in its own process, ready once it leads. */
async function startChild(options: { kubeconfig: string; namespace: string; runtimeAddress: string }, runtimeToken: string) {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const child = spawn(
    process.execPath,
    [
      '--import',
      tsx,
      fileURLToPath(new URL('./operator-reconcile-child.ts', import.meta.url)),
      JSON.stringify({ ...options, concurrency: CONCURRENCY }),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      // As a Secret would hand it to the operator: in the environment, not on the command line.
      env: { ...process.env, TROUPE_RUNTIME_TOKEN: runtimeToken },
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
  const ready = await next();
  if (ready !== 'READY') throw new Error(`the operator child said ${ready} instead of READY`);
  return {
    async report(): Promise<{ durations: number[]; peakRss: number; cpuMs: number }> {
      const answer = next();
      child.stdin!.write('REPORT\n');
      return JSON.parse(await answer) as { durations: number[]; peakRss: number; cpuMs: number };
    },
    async stop(): Promise<void> {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.write('STOP\n');
      await exited;
    },
  };
}

/** Polls until every Project of the namespace has status.phase; returns when each was first seen with it. */
async function waitForPhases(client: KubeClient, namespace: string, count: number, phase: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  while (seen.size < count) {
    let page = await client.list(Projects, { namespace, limit: 500 });
    for (;;) {
      const now = performance.now();
      for (const item of page.items) if (item.status?.phase === phase && !seen.has(item.metadata.name)) seen.set(item.metadata.name, now);
      if (!page.metadata.continue) break;
      page = await client.list(Projects, { namespace, limit: 500, continue: page.metadata.continue });
    }
    if (seen.size < count) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return seen;
}

const Namespaces = { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces' };

/** kubectl as a user runs it, for what the operator's client has no call for (delete --all). */
function kubectl(kube: KubeEndpoint, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(kube.kubectl, ['--kubeconfig', kube.kubeconfig, ...args], (error, _stdout, stderr) =>
      error ? reject(new Error(stderr || error.message)) : resolve(),
    );
  });
}

/** N Projects to status.phase through the operator, beside N plain creates. */
export async function operatorReconcile(kube: KubeEndpoint, count: number): Promise<Comparison[]> {
  const { kubeconfig } = kube;
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const client = new KubeClient({ config, fieldManager: 'troupe-bench', maxSockets: IN_FLIGHT });
  const run = `${Date.now().toString(36)}`;
  const [plainNamespace, operatorNamespace] = [`bench-plain-${run}`, `bench-operator-${run}`];
  for (const name of [plainNamespace, operatorNamespace]) await client.create(Namespaces, { metadata: { name } });

  const plain = await createAll(client, plainNamespace, count);
  const plainSeconds = (Math.max(...plain.createdAt.map((at, i) => at + (plain.latencies[i] ?? 0))) - Math.min(...plain.createdAt)) / 1000;

  const dataDir = mkdtempSync(join(tmpdir(), 'troupe-bench-operator-'));
  const tokens = new Tokens({ secret: randomBytes(32) });
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider('simulated', { type: 'simulated' })],
    grpc: { port: 0, tokens },
  });
  const operator = await startChild(
    { kubeconfig, namespace: operatorNamespace, runtimeAddress: runtime.grpcAddress as string },
    tokens.sign({ sub: 'bench-operator', role: 'admin' }),
  );
  try {
    const started = performance.now();
    const created = await createAll(client, operatorNamespace, count);
    const phased = await waitForPhases(client, operatorNamespace, count, 'Paused');
    const seconds = (Math.max(...phased.values()) - started) / 1000;
    const endToEnd = Float64Array.from({ length: count }, (_, i) => (phased.get(`p-${i}`) ?? 0) - (created.createdAt[i] ?? 0));
    const { durations, peakRss, cpuMs } = await operator.report();
    const reconciles = Float64Array.from(durations);
    const ours: Measurement = {
      name: `troupe operator: Projects to status.phase Paused answered by the embedded runtime over gRPC (p50/p99 per Project reconcile, ${CONCURRENCY} reconciles at once)`,
      detail:
        `${durations.length.toLocaleString('en-US')} reconciles; create→phase p99 ${(percentileMicros(endToEnd, 99) / 1e6).toFixed(2)} s; ` +
        `operator peak RSS ${Math.round(peakRss / 2 ** 20)} MiB under tsx, CPU ${(cpuMs / count).toFixed(2)} ms/project`,
      rate: count / seconds,
      unit: 'projects/s',
      p50Micros: percentileMicros(reconciles, 50),
      p99Micros: percentileMicros(reconciles, 99),
    };
    const baseline: Measurement = {
      name: `API-server writes alone: the same creates (kubectl apply equivalent, ${IN_FLIGHT} in flight) into a namespace no operator watches (p50/p99 per create)`,
      rate: count / plainSeconds,
      unit: 'projects/s',
      p50Micros: percentileMicros(plain.latencies, 50),
      p99Micros: percentileMicros(plain.latencies, 99),
    };
    return [{ benchmark: 'operator: Projects applied → status.phase set', size: count, ours, baseline }];
  } finally {
    // While the operator still runs, so that it cancels each project and lets its finalizer go.
    await kubectl(kube, ['delete', 'projects', '--all', '-n', operatorNamespace, '--wait=false']);
    while ((await client.list(Projects, { namespace: operatorNamespace, limit: 1 })).items.length > 0)
      await new Promise((resolve) => setTimeout(resolve, 250));
    await operator.stop();
    await runtime.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await kubectl(kube, ['delete', 'projects', '--all', '-n', plainNamespace, '--wait=false']);
    for (const name of [plainNamespace, operatorNamespace]) await client.delete(Namespaces, '', name);
    client.close();
  }
}
