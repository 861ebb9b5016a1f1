import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProjectPhase, TaskState, type Event } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../embedded.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { startChild } from '../testing/child-process.js';
import { eventually } from '../testing/eventually.js';
import { SIM_PRICES, samplePools, submitCommand } from './company-fixtures.js';

describe('the company, embedded, on the simulated provider over HTTP', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function company(server: SimulatedServer): Promise<{ runtime: EmbeddedRuntime; dataDir: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'troupe-company-'));
    const runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
      pools: [...samplePools('acme'), ...samplePools('globex')],
      taskCheckMs: 1_000,
    });
    cleanups.push(async () => {
      await runtime.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return { runtime, dataDir };
  }

  async function simulatedServer(): Promise<SimulatedServer> {
    const server = await SimulatedServer.start({ latencyMs: 20, tokensPerSecond: Infinity, seed: 11 });
    cleanups.push(() => server.close());
    return server;
  }

  it('runs a project through every phase, waits at its approval gate, and delivers verified artefacts', async () => {
    const server = await simulatedServer();
    const { runtime, dataDir } = await company(server);
    const events: Event[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'storefront' }, (event) => events.push(event));

    await runtime.company.submitProject('submit-1', submitCommand('acme', 'storefront', { approvals: ['architecture'] }));
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'storefront'))?.status?.phase).toBe(ProjectPhase.AWAITING_APPROVAL);
    }, 30_000);
    expect((await runtime.company.getProject('acme', 'storefront'))?.status?.currentPhase).toBe('architecture');
    await expect(
      runtime.company.approve('a0', { namespace: 'acme', name: 'storefront', phase: 'review', approvedBy: 'me' }),
    ).rejects.toThrow(/does not wait for approval of review: it waits for approval of architecture/);
    await runtime.company.approve('a1', { namespace: 'acme', name: 'storefront', phase: 'architecture', approvedBy: 'ceo@acme' });

    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'storefront'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
    const status = (await runtime.company.getProject('acme', 'storefront'))?.status;
    const names = status?.artifacts.map((artifact) => artifact.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(['requirements.md', 'architecture.md', 'src/index.ts', 'README.md']));
    expect(names.some((name) => name.startsWith('tests/acceptance-'))).toBe(true);
    expect(names.filter((name) => name.startsWith('src/')).length).toBeGreaterThan(1);
    for (const artifact of status?.artifacts ?? []) {
      // Blobs are kept by content, under the data directory.
      const bytes = readFileSync(join(dataDir, 'artifacts', 'acme', 'storefront', artifact.sha256));
      expect(createHash('sha256').update(bytes).digest('hex'), artifact.name).toBe(artifact.sha256);
      expect(bytes.byteLength).toBe(artifact.bytes);
    }
    expect(status?.progress?.percent).toBe(100);

    // The ledger, the project's status and the provider's own count agree.
    const totals = await runtime.ledger.totals({ client: 'acme', project: 'acme/storefront' });
    expect(status?.cost?.llmCalls).toBe(server.stats().completions);
    expect(totals.calls).toBe(server.stats().completions);
    expect(status?.cost?.usd).toBeCloseTo(totals.costUSD, 9);
    expect(status?.cost?.usd).toBeGreaterThan(0);

    // Watchers saw the approval gate and the delivery, in sequence.
    const kinds = events.map((event) => event.event?.$case);
    expect(kinds).toContain('approvalRequested');
    expect(kinds).toContain('projectDelivered');
    const sequences = events.map((event) => event.sequence);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  }, 120_000);

  it('runs a project created again under the name of a deleted one as a new project', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    const phase = async () => (await runtime.company.getProject('acme', 'again'))?.status?.phase;
    await runtime.company.submitProject('first', submitCommand('acme', 'again', { uid: 'uid-1', approvals: ['architecture'] }));
    await eventually(async () => expect(await phase()).toBe(ProjectPhase.AWAITING_APPROVAL), 30_000);
    // What the operator's finalizer does when the Project is deleted.
    await runtime.company.cancelProject('delete-1', { namespace: 'acme', name: 'again', reason: 'the Project was deleted' });
    await eventually(async () => expect(await phase()).toBe(ProjectPhase.FAILED));
    const callsBefore = server.stats().completions;

    await runtime.company.submitProject('second', submitCommand('acme', 'again', { uid: 'uid-2', approvals: ['architecture'] }));
    await eventually(async () => expect(await phase()).toBe(ProjectPhase.AWAITING_APPROVAL), 30_000);
    await runtime.company.approve('a2', { namespace: 'acme', name: 'again', phase: 'architecture', approvedBy: 'ceo@acme' });
    await eventually(async () => expect(await phase()).toBe(ProjectPhase.DELIVERED), 60_000);
    // Every task ran again: none of the deleted project's work was taken for the new one's.
    const cost = (await runtime.company.getProject('acme', 'again'))?.status?.cost;
    expect(cost?.llmCalls).toBe(server.stats().completions - callsBefore);
    expect(cost?.llmCalls).toBeGreaterThan(0);
  }, 120_000);

  it('runs several projects of two clients at once on shared pools, each to delivery', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    const projects = [
      ['acme', 'shop'],
      ['acme', 'blog'],
      ['globex', 'crm'],
    ] as const;
    await Promise.all(projects.map(([ns, name]) => runtime.company.submitProject(`${ns}-${name}`, submitCommand(ns, name))));
    await eventually(async () => {
      const phases = await Promise.all(projects.map(async ([ns, name]) => (await runtime.company.getProject(ns, name))?.status?.phase));
      expect(phases).toEqual(projects.map(() => ProjectPhase.DELIVERED));
    }, 90_000);
    expect((await runtime.company.listProjects('acme')).map((p) => p.name).sort()).toEqual(['blog', 'shop']);
    expect((await runtime.company.listProjects()).length).toBe(3);
  }, 120_000);

  it('runs a project through the phases of a Workflow resource, in the order their needs give', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    const phasesRun = new Set<string>();
    await runtime.company.watch({ namespace: 'acme', project: 'fix' }, (event) => {
      if (event.event?.$case === 'taskStateChanged') phasesRun.add(event.event.value.phase);
    });
    // Listed out of order: delivery first, though it needs review, which needs implementation.
    const hotfix = [
      { name: 'delivery', role: 'devops', needs: ['review'], produces: ['deployment'], fanOut: false, approval: false },
      {
        name: 'review',
        role: 'qa',
        needs: ['implementation'],
        produces: ['tests'],
        fanOut: false,
        approval: true,
        loop: { backTo: 'implementation', maxIterations: 2 },
      },
      { name: 'implementation', role: 'developer', needs: [], produces: ['code'], fanOut: true, approval: false },
    ];
    await runtime.company.submitProject('fix-1', submitCommand('acme', 'fix', { workflow: { name: 'hotfix', phases: hotfix } }));

    await eventually(async () => {
      const status = (await runtime.company.getProject('acme', 'fix'))?.status;
      expect([status?.phase, status?.currentPhase]).toEqual([ProjectPhase.AWAITING_APPROVAL, 'review']);
    }, 60_000);
    await runtime.company.approve('fix-approve', { namespace: 'acme', name: 'fix', phase: 'review', approvedBy: 'lead@acme' });
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'fix'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
    expect([...phasesRun].sort()).toEqual(['delivery', 'implementation', 'review']);
  }, 120_000);

  it('refuses a Workflow whose needs form a cycle, naming the phase, and stores nothing', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    const circular = [
      { name: 'build', role: 'developer', needs: ['check'], produces: ['code'], fanOut: false, approval: false },
      { name: 'check', role: 'qa', needs: ['build'], produces: ['tests'], fanOut: false, approval: false },
    ];
    await expect(
      runtime.company.submitProject('loop-1', submitCommand('acme', 'loop', { workflow: { name: 'circular', phases: circular } })),
    ).rejects.toThrow(/workflow_phases: the needs of phase (build|check) form a cycle/);
    expect(await runtime.company.getProject('acme', 'loop')).toBeUndefined();
  });

  it('runs a task again when it failed for a reason outside it, and delivers the project', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    const failures: string[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'outage' }, (event) => {
      if (event.event?.$case === 'taskStateChanged' && event.event.value.errorMessage !== '') failures.push(event.event.value.errorMessage);
    });
    // More 503s than the LLM client tries: the first task fails, retriably.
    server.failNext(4, { type: 'status', status: 503, message: 'the model is overloaded' });

    await runtime.company.submitProject('submit-outage', submitCommand('acme', 'outage'));
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'outage'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 90_000);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]).toMatch(/overloaded|503/);
    expect((await runtime.company.getProject('acme', 'outage'))?.status?.progress?.tasksFailed).toBe(0);
  });

  it('pauses a project at its budget and resumes it when the budget is raised', async () => {
    const server = await simulatedServer();
    const { runtime } = await company(server);
    await runtime.company.submitProject('tight-1', submitCommand('acme', 'tight', { maxCostUSD: 0.004 }));
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'tight'))?.status?.phase).toBe(ProjectPhase.PAUSED);
    }, 30_000);
    const paused = await runtime.company.getProject('acme', 'tight');
    expect(paused?.status?.cost?.usd ?? 0).toBeLessThanOrEqual(0.004);

    await runtime.company.submitProject('tight-2', { ...submitCommand('acme', 'tight', { maxCostUSD: 5 }), generation: 2 });
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'tight'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
  }, 120_000);

  it('finishes a project after its process is killed in the middle of a phase, running no finished task again', async () => {
    const server = await SimulatedServer.start({ latencyMs: 150, tokensPerSecond: Infinity, seed: 5 });
    cleanups.push(() => server.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'troupe-restart-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));

    const child = startChild(fileURLToPath(new URL('./company-child.ts', import.meta.url)), { dataDir, baseURL: server.openaiBaseURL });
    cleanups.push(() => child.kill());
    await child.waitFor('MID-PHASE', 60_000);
    await child.kill();
    const states = new Map<string, number>();
    let lastSeen = 0;
    for (const line of child.lines.filter((l) => l.startsWith('TASK '))) {
      const [, id = '', state, sequence] = line.split(' ');
      states.set(id, Number(state));
      lastSeen = Math.max(lastSeen, Number(sequence));
    }
    const finished = [...states].filter(([, state]) => state === TaskState.SUCCEEDED).map(([id]) => id);
    const interrupted = [...states].filter(([, state]) => state === TaskState.RUNNING).length;
    expect(finished.length).toBeGreaterThan(0);

    const runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL, pricing: SIM_PRICES })],
      pools: samplePools('acme'),
      taskCheckMs: 500,
    });
    cleanups.push(() => runtime.stop());
    // Events the dead process published may come again (same ids); a task run again would come with new ones.
    const rerun: string[] = [];
    await runtime.company.watch({ namespace: 'acme', project: 'restart' }, (event) => {
      const change = event.event?.$case === 'taskStateChanged' ? event.event.value : undefined;
      if (change && event.sequence > lastSeen && finished.includes(change.taskId)) rerun.push(change.taskId);
    });
    await eventually(async () => {
      expect((await runtime.company.getProject('acme', 'restart'))?.status?.phase).toBe(ProjectPhase.DELIVERED);
    }, 60_000);
    expect(rerun, 'tasks finished before the kill that ran again').toEqual([]);
    // Only the calls in flight at the kill can have been bought twice: every other one came back from the journal.
    const recorded = (await runtime.company.getProject('acme', 'restart'))?.status?.cost?.llmCalls ?? 0;
    expect(server.stats().completions - recorded).toBeLessThanOrEqual(interrupted);
  }, 120_000);
});
