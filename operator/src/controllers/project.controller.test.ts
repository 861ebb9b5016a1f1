/**
 * Project against the real API server and the real runtime (the embedded runtime with its gRPC
 * RuntimeService, on the simulated LLM provider over HTTP): the sample project is submitted,
 * waits at its approval gate until `kubectl annotate` approves it, and is delivered, its status
 * written coalesced; a spec change is resubmitted; a gate left waiting past spec.approvalTimeout
 * fails its project; deleting a project cancels it in the runtime; an edit the runtime refuses
 * leaves the project running its last generation, and its deletion waits while the runtime
 * refuses the operator's token; a project whose stream goes quiet still gets its status, read
 * every poll interval.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ProjectPhase } from '@troupe/proto';
import { createProvider, SimulatedServer, startEmbeddedRuntime, Tokens, type EmbeddedRuntime, type PoolResource } from '@troupe/runtime';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeClient } from '../clients/runtime.js';
import { GrpcRuntimeClient, RuntimeCallError } from '../clients/runtime.grpc.js';
import { OperatorErrorCode } from '../errors.js';
import {
  CRDS_DIR,
  createNamespace,
  ensureCrds,
  eventsOf,
  kubectl,
  kubectlOk,
  samples,
  testOperator,
  type TestOperator,
} from '../testing/cluster.js';

interface SamplePool {
  metadata: { name: string };
  spec: { role: string; replicas?: number; concurrency?: number; model: { provider: string; name: string; maxOutputTokens?: number } };
}

/** The sample pools as the runtime runs them; in a cluster their pods would register them. */
function runtimePools(namespace: string): PoolResource[] {
  return parseAllDocuments(readFileSync(`${CRDS_DIR}samples/pools.yaml`, 'utf8')).map((document) => {
    const pool = document.toJS() as SamplePool;
    return {
      namespace,
      name: pool.metadata.name,
      replicas: pool.spec.replicas ?? 1,
      spec: { role: pool.spec.role, model: { ...pool.spec.model, maxOutputTokens: 512 }, concurrency: pool.spec.concurrency ?? 4 },
    };
  });
}

/** The runtime's calls through `runtime`, but for those `replaced`; closing it leaves `runtime` open. */
function through(runtime: RuntimeClient, replaced: Partial<RuntimeClient>): RuntimeClient {
  return {
    submitProject: (commandId, command) => runtime.submitProject(commandId, command),
    cancelProject: (commandId, command) => runtime.cancelProject(commandId, command),
    approve: (commandId, command) => runtime.approve(commandId, command),
    getProject: (namespace, name) => runtime.getProject(namespace, name),
    watchProject: (namespace, name, onUpdate) => runtime.watchProject(namespace, name, onUpdate),
    listPools: (namespace) => runtime.listPools(namespace),
    close: () => {},
    ...replaced,
  };
}

/** A project of the sample client that waits for approval after `gate`. */
function projectYaml(name: string, gate: string, extra = ''): string {
  return `apiVersion: troupe.dev/v1alpha1
kind: Project
metadata:
  name: ${name}
spec:
  client: acme
  brief: A booking page for the climbing wall, with a calendar and card payments.
  budget:
    maxCostUSD: 3
  approvals: [${gate}]
${extra}`;
}

describe('Project controller, with the embedded runtime', () => {
  let namespace = '';
  let dataDir = '';
  let server: SimulatedServer;
  let embedded: EmbeddedRuntime;
  let runtime: GrpcRuntimeClient;
  let operator: TestOperator;
  /** Status writes per project, counted as the operator sends them. */
  const statusWrites = new Map<string, number>();
  const condition = (name: string, type: string) =>
    kubectlOk([
      'get',
      'project',
      name,
      '-n',
      namespace,
      '-o',
      `jsonpath={.status.conditions[?(@.type=="${type}")].status} {.status.conditions[?(@.type=="${type}")].reason}: {.status.conditions[?(@.type=="${type}")].message}`,
    ]);
  const field = (kind: string, name: string, path: string) => kubectlOk(['get', kind, name, '-n', namespace, '-o', `jsonpath={${path}}`]);

  beforeAll(async () => {
    await ensureCrds();
    namespace = await createNamespace('projects');
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-operator-runtime-'));
    server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 7 });
    const tokens = new Tokens({ secret: randomBytes(32) });
    embedded = await startEmbeddedRuntime({
      dataDir,
      providers: [
        createProvider('simulated', {
          type: 'simulated',
          baseURL: server.openaiBaseURL,
          pricing: [
            { model: 'sim-large', inputPerMTokUSD: 3, outputPerMTokUSD: 15 },
            { model: 'sim-small', inputPerMTokUSD: 0.25, outputPerMTokUSD: 1.25 },
          ],
        }),
      ],
      pools: runtimePools(namespace),
      grpc: { port: 0, tokens },
      taskCheckMs: 1_000,
    });
    runtime = new GrpcRuntimeClient({ address: embedded.grpcAddress as string, token: tokens.sign({ sub: 'operator', role: 'admin' }) });
    operator = testOperator(namespace, runtime, {
      onRequest: (request) => {
        if (request.resource === 'projects' && request.subresource === 'status' && request.name !== undefined) {
          statusWrites.set(request.name, (statusWrites.get(request.name) ?? 0) + 1);
        }
      },
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
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('delivers the sample project: submitted, held at its approval gate until kubectl annotate approves it', async () => {
    let runtimeEvents = 0;
    const stopCounting = await embedded.company.watch({ namespace, project: 'storefront' }, () => (runtimeEvents += 1));
    const started = Date.now();
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['provider', 'pools', 'project']));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Accepted', 'project/storefront', '--timeout=30s']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/storefront', '--timeout=60s']);
    expect(await condition('storefront', 'AwaitingApproval')).toBe(
      'True ApprovalRequired: architecture waits for approval: kubectl annotate project storefront troupe.dev/approve=architecture',
    );
    expect(await kubectlOk(['get', 'project', 'storefront', '-n', namespace, '--no-headers'])).toMatch(
      /^storefront\s+acme\s+AwaitingApproval\s/,
    );

    await kubectlOk(['annotate', 'project', 'storefront', '-n', namespace, 'troupe.dev/approve=architecture']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Delivered', 'project/storefront', '--timeout=90s']);
    const elapsedMs = Date.now() - started;
    await stopCounting();

    const status = JSON.parse(await field('project', 'storefront', '.status')) as {
      phase: string;
      observedGeneration: number;
      progress: { percent: number; tasksDone: number; tasksTotal: number };
      cost: { usd: number; llmCalls: number };
      artifacts: { name: string; sha256: string }[];
      completedAt?: string;
    };
    expect(status).toMatchObject({ phase: 'Delivered', observedGeneration: 1, progress: { percent: 100 } });
    expect(status.cost.usd).toBeGreaterThan(0);
    expect(status.cost.llmCalls).toBe(server.stats().completions);
    expect(status.artifacts.map((artifact) => artifact.name)).toEqual(
      expect.arrayContaining(['requirements.md', 'architecture.md', 'README.md']),
    );
    expect(status.completedAt).toBeDefined();
    expect(await condition('storefront', 'Running')).toBe('False Delivered: project is Delivered');
    expect(await eventsOf(namespace, 'Project', 'storefront')).toEqual(
      expect.arrayContaining([
        'Submitted: handed generation 1 to the runtime',
        'Approved: approved phase architecture',
        expect.stringMatching(/^Delivered: phase \w+ → Delivered/),
      ]),
    );

    // Coalesced: far fewer status writes than runtime events, and at most about one per 500 ms.
    const writes = statusWrites.get('storefront') ?? 0;
    expect(runtimeEvents).toBeGreaterThan(20);
    expect(writes).toBeLessThan(runtimeEvents / 2);
    expect(writes).toBeLessThanOrEqual(Math.ceil(elapsedMs / 500) + 2);
  });

  it("copies the pools' load from the runtime into their status", async () => {
    await expect.poll(() => field('agentpool', 'developers', '.status.queueDepth'), { timeout: 30_000 }).toBe('0');
    const status = JSON.parse(await field('agentpool', 'developers', '.status')) as Record<string, unknown>;
    expect(status).toMatchObject({ busy: 0, queueDepth: 0, tokens: 0, costUSD: 0 });
  });

  it('resubmits a changed spec under its new generation, and warns about an approval for no gate', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], projectYaml('kiosk', 'requirements'));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/kiosk', '--timeout=60s']);

    await kubectlOk(['patch', 'project', 'kiosk', '-n', namespace, '--type=merge', '-p', '{"spec":{"suspend":true}}']);
    await expect.poll(() => field('project', 'kiosk', '.status.phase'), { timeout: 30_000 }).toBe('Paused');
    expect(await field('project', 'kiosk', '.status.observedGeneration')).toBe('2');
    expect(await condition('kiosk', 'Running')).toBe('False Paused: project is Paused');
    expect(await condition('kiosk', 'BudgetExceeded')).toMatch(/^False WithinBudget/);

    await kubectlOk(['patch', 'project', 'kiosk', '-n', namespace, '--type=merge', '-p', '{"spec":{"suspend":false}}']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/kiosk', '--timeout=60s']);
    expect(await field('project', 'kiosk', '.status.observedGeneration')).toBe('3');
    expect(await eventsOf(namespace, 'Project', 'kiosk')).toEqual(
      expect.arrayContaining(['Submitted: handed generation 2 to the runtime', 'Submitted: handed generation 3 to the runtime']),
    );

    await kubectlOk(['annotate', 'project', 'kiosk', '-n', namespace, 'troupe.dev/approve=deployment']);
    await expect
      .poll(() => eventsOf(namespace, 'Project', 'kiosk'), { timeout: 30_000 })
      .toContain('UnknownApprovalPhase: troupe.dev/approve=deployment names no phase of spec.approvals');
    expect(await field('project', 'kiosk', '.status.phase')).toBe('AwaitingApproval');
  });

  it('runs a project through the sample hotfix Workflow: its phases only, held at its review', async () => {
    await kubectlOk(['apply', '-f', '-'], samples(namespace, ['workflow']));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Ready', 'workflow/hotfix', '--timeout=30s']);
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], projectYaml('patch', 'review', '  workflow: hotfix'));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/patch', '--timeout=60s']);
    expect(await field('project', 'patch', '.status.currentPhase')).toBe('review');
    const artifacts = JSON.parse(await field('project', 'patch', '.status.artifacts')) as { kind: string }[];
    expect(new Set(artifacts.map((artifact) => artifact.kind))).not.toContain('requirements');

    await kubectlOk(['annotate', 'project', 'patch', '-n', namespace, 'troupe.dev/approve=review']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Delivered', 'project/patch', '--timeout=90s']);
  });

  it('fails a project whose gate waits past spec.approvalTimeout, saying which phase and how long', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], projectYaml('late', 'requirements', '  approvalTimeout: 3s'));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/late', '--timeout=60s']);
    await kubectlOk(['wait', '-n', namespace, '--for=condition=Failed', 'project/late', '--timeout=60s']);
    expect(await condition('late', 'Failed')).toBe(
      'True ApprovalTimedOut: requirements was not approved within the approval timeout of 3s',
    );
    expect(await condition('late', 'AwaitingApproval')).toMatch(/^False NoApprovalPending/);
    expect(await field('project', 'late', '.status.phase')).toBe('Failed');
  });

  it('cancels a project in the runtime when it is deleted, then lets it go', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', '-'], projectYaml('hotdesk', 'architecture'));
    await kubectlOk(['wait', '-n', namespace, '--for=condition=AwaitingApproval', 'project/hotdesk', '--timeout=60s']);
    expect(await field('project', 'hotdesk', '.metadata.finalizers')).toContain('troupe.dev/cancel-in-runtime');

    await kubectlOk(['delete', 'project', 'hotdesk', '-n', namespace, '--timeout=30s']);
    expect((await kubectl(['get', 'project', 'hotdesk', '-n', namespace])).code).not.toBe(0);
    await expect.poll(async () => (await runtime.getProject(namespace, 'hotdesk'))?.phase, { timeout: 30_000 }).toBe(ProjectPhase.FAILED);
    expect(await eventsOf(namespace, 'Project', 'hotdesk')).toContain('Cancelled: cancelled in the runtime');
  });

  it('goes on following a project whose edited spec the runtime refuses, and holds its deletion while the runtime refuses the token', async () => {
    const edited = await createNamespace('refusals');
    for (const pool of runtimePools(edited)) await embedded.company.applyPool(pool);
    // Cancels go through a client whose token the runtime did not sign while `forbidden` holds;
    // the runtime refuses every generation after the first, as it refuses a spec it cannot run.
    const stranger = new GrpcRuntimeClient({
      address: embedded.grpcAddress as string,
      token: new Tokens({ secret: randomBytes(32) }).sign({ sub: 'operator', role: 'admin' }),
    });
    let forbidden = false;
    const refusing = testOperator(
      edited,
      through(runtime, {
        submitProject: (commandId, command) =>
          command.generation === 1
            ? runtime.submitProject(commandId, command)
            : Promise.reject(
                new RuntimeCallError(
                  OperatorErrorCode.RuntimeRejected,
                  'SubmitProject',
                  GrpcStatus.INVALID_ARGUMENT,
                  'spec refused on purpose',
                  {
                    retriable: false,
                    cause: undefined,
                  },
                ),
              ),
        cancelProject: (commandId, command) => (forbidden ? stranger : runtime).cancelProject(commandId, command),
      }),
    );
    const fieldOf = (path: string) => kubectlOk(['get', 'project', 'edit', '-n', edited, '-o', `jsonpath={${path}}`]);
    try {
      await kubectlOk(['apply', '-n', edited, '-f', '-'], projectYaml('edit', 'architecture'));
      await kubectlOk(['wait', '-n', edited, '--for=condition=AwaitingApproval', 'project/edit', '--timeout=60s']);

      await kubectlOk(['patch', 'project', 'edit', '-n', edited, '--type=merge', '-p', '{"spec":{"priority":60}}']);
      await expect.poll(() => fieldOf('.status.conditions[?(@.type=="Accepted")].reason'), { timeout: 30_000 }).toBe('RuntimeRejected');
      expect(await fieldOf('.status.observedGeneration')).toBe('2');
      expect(await fieldOf('.status.phase')).toBe('AwaitingApproval');
      expect((await runtime.getProject(edited, 'edit'))?.phase).toBe(ProjectPhase.AWAITING_APPROVAL);
      expect((await eventsOf(edited, 'Project', 'edit')).some((line) => line.startsWith('RuntimeRejected: generation 2 refused'))).toBe(
        true,
      );

      forbidden = true;
      await kubectlOk(['delete', 'project', 'edit', '-n', edited, '--wait=false']);
      await expect
        .poll(
          async () => (await eventsOf(edited, 'Project', 'edit')).some((line) => line.startsWith('RuntimeForbidden: the deletion waits')),
          {
            timeout: 30_000,
          },
        )
        .toBe(true);
      expect(await fieldOf('.metadata.finalizers')).toContain('troupe.dev/cancel-in-runtime');
      expect((await runtime.getProject(edited, 'edit'))?.phase).toBe(ProjectPhase.AWAITING_APPROVAL);

      forbidden = false;
      await expect.poll(async () => (await kubectl(['get', 'project', 'edit', '-n', edited])).code, { timeout: 60_000 }).not.toBe(0);
      expect((await runtime.getProject(edited, 'edit'))?.phase).toBe(ProjectPhase.FAILED);
    } finally {
      await refusing.stop();
      stranger.close();
      await kubectl(['delete', 'namespace', edited, '--wait=false']);
    }
  });

  it("keeps a project's status current when its WatchProject stream goes quiet, reading it every poll interval", async () => {
    // The runtime answers every call, but its streams say nothing, as one served by a runtime
    // node that stopped reading troupe.events does.
    const quiet = through(runtime, { watchProject: () => ({ close: () => {} }) });
    const quietNamespace = await createNamespace('quiet-streams');
    for (const pool of runtimePools(quietNamespace)) await embedded.company.applyPool(pool);
    const poller = testOperator(quietNamespace, quiet, { projectPollMs: 1_000 });
    try {
      await kubectlOk(['apply', '-n', quietNamespace, '-f', '-'], projectYaml('quiet', 'architecture'));
      await kubectlOk(['wait', '-n', quietNamespace, '--for=condition=AwaitingApproval', 'project/quiet', '--timeout=60s']);
      await kubectlOk(['annotate', 'project', 'quiet', '-n', quietNamespace, 'troupe.dev/approve=architecture']);
      await kubectlOk(['wait', '-n', quietNamespace, '--for=condition=Delivered', 'project/quiet', '--timeout=90s']);
    } finally {
      await kubectl(['delete', 'projects', '--all', '-n', quietNamespace, '--timeout=60s']);
      await poller.stop();
      await kubectl(['delete', 'namespace', quietNamespace, '--wait=false']);
    }
  });
});
