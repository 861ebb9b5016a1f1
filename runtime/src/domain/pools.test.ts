import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Event, poolTopic, type PoolStatus } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeErrorCode, TransportError } from '../errors.js';
import { AgentPool, type AgentPoolSpec } from '../llm/agent-pool.js';
import { Budgets } from '../llm/budget.js';
import { MODEL, simulatedStack } from '../llm/test-fixtures.js';
import { eventually } from '../testing/eventually.js';
import { wrapTransport } from '../testing/wrapped-transport.js';
import { openStore } from '../store/open.js';
import { openTransport } from '../transport/open.js';
import type { Transport } from '../transport/transport.js';
import { BlobArtifactStore, FileBlobStore } from './artifacts.js';
import { PoolRegistry } from './pools.js';
import { EVENTS_TOPIC } from './project-events.js';
import type { ProjectMessage } from './project.types.js';
import { encodeTaskRun, type TaskRun } from './task-runner.js';

const spec: AgentPoolSpec = {
  role: 'developer',
  model: { provider: 'simulated', name: MODEL, maxOutputTokens: 200 },
  concurrency: 2,
  systemPrompt: 'You are a careful developer.',
};

/** The embedded transport, except that reading the end of `brokenTopic` fails as a broker away would make it. */
function failingEndOffsets(transport: Transport, brokenTopic: string): Transport {
  return wrapTransport(transport, {
    endOffset: (topic, partition) =>
      topic === brokenTopic
        ? Promise.reject(new TransportError(RuntimeErrorCode.Unavailable, topic, partition, 'the broker is away', { retriable: true }))
        : transport.endOffset(topic, partition),
  });
}

/** A run of the architecture task of project acme/shop, as the project's turn dispatches it. */
const architecture: TaskRun = {
  type: 'run',
  namespace: 'acme',
  project: 'shop',
  client: 'acme',
  brief: 'A web shop for hand-made furniture.',
  task: {
    id: 'architecture',
    title: 'Design the architecture',
    phase: 'architecture',
    role: 'developer',
    kind: 'work',
    needs: [],
    state: 'running',
    step: 0,
  },
  deliverables: ['architecture'],
  budget: { maxCostUSD: 10, onExceeded: 'Fail' },
  priority: 50,
  spentUSD: 0,
  context: { requirements: '- Customers browse the catalogue and pay by card.' },
  artifacts: [],
};

interface Report {
  project: string;
  outcome: ProjectMessage;
  id: string;
}

describe('PoolRegistry', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * Node node-a's registry on a new embedded transport (`wrap` says how the registry sees it),
   * with the simulated LLM answering after `latencyMs`, and the outcomes it reports to projects.
   */
  async function startRegistry(options: { latencyMs?: number; reportMs?: number; wrap?: (transport: Transport) => Transport } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-pools-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const transport = await openTransport({ kind: 'embedded', dir: join(dir, 'log'), fsync: 'never' });
    cleanups.push(() => transport.close());
    await transport.createTopic(EVENTS_TOPIC, 1);
    const stack = await simulatedStack({ server: { latencyMs: options.latencyMs ?? 10 } });
    cleanups.push(() => stack.close());
    const catalog = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
    cleanups.push(() => catalog.close());
    const reports: Report[] = [];
    const errors: Error[] = [];
    const registry = new PoolRegistry({
      transport: options.wrap?.(transport) ?? transport,
      nodeId: 'node-a',
      partitions: 2,
      artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(join(dir, 'artifacts')), catalog }),
      budgets: new Budgets(),
      create: (name, poolSpec) => new AgentPool({ name, spec: poolSpec, llm: stack.llm, threads: 1 }),
      report: async (project, outcome, id) => void reports.push({ project, outcome, id }),
      ...(options.reportMs === undefined ? {} : { reportMs: options.reportMs }),
      onError: (error) => errors.push(error),
    });
    cleanups.push(() => registry.close());
    return { transport, registry, stack, reports, errors };
  }

  /** Sends a run of the architecture task to pool acme/developers, as a dispatch `id` of the project's turn. */
  const dispatch = (transport: Transport, id: string) =>
    transport.send([
      { topic: poolTopic('acme', 'developers'), key: 'acme/shop/architecture@0', value: encodeTaskRun(id, architecture, Date.now()) },
    ]);

  it('publishes every pool’s load when one pool’s topic cannot be read, and says which', async () => {
    const { transport, registry, errors } = await startRegistry({
      reportMs: 100,
      wrap: (embedded) => failingEndOffsets(embedded, 'troupe.pool.acme.testers'),
    });
    await registry.apply({ namespace: 'acme', name: 'developers', replicas: 1, spec });
    await registry.apply({ namespace: 'acme', name: 'testers', replicas: 1, spec: { ...spec, role: 'qa' } });

    const published = new Map<string, PoolStatus>();
    let bothPublished!: () => void;
    const both = new Promise<void>((resolve) => (bothPublished = resolve));
    const subscription = await transport.subscribe({
      groupId: 'pool-load-reader',
      topics: [EVENTS_TOPIC],
      eachBatch: async (batch) => {
        for (const record of batch.records) {
          const { event } = Event.decode(record.value);
          if (event?.$case === 'poolStatus') published.set(event.value.pool, event.value);
          batch.resolveOffset(record.offset);
        }
        if (published.size === 2) bothPublished();
      },
    });
    cleanups.push(() => subscription.close());
    await both;

    expect(published.get('developers')).toMatchObject({ role: 'developer', replica: 'node-a', queueDepth: 0 });
    expect(published.get('testers')).toMatchObject({ role: 'qa', replica: 'node-a', queueDepth: 0 });
    expect(errors[0]?.message).toBe(
      'pool acme/testers: cannot count the runs waiting in troupe.pool.acme.testers; its load goes out with the last count, 0',
    );
  });

  it('answers a task dispatched again after its run finished with the outcome it had, without running it again', async () => {
    const { transport, registry, stack, reports, errors } = await startRegistry();
    await registry.apply({ namespace: 'acme', name: 'developers', replicas: 1, spec });
    await dispatch(transport, 'turn-1/run');
    await eventually(async () => expect(reports.map((report) => report.id)).toEqual(['turn-1/run/outcome']));
    const [first] = reports;
    expect(first?.outcome).toMatchObject({ type: 'task-done', taskId: 'architecture', step: 0 });

    // The project dropped that answer (it waited to retry the task): its check dispatches the task again.
    await dispatch(transport, 'turn-2/run');
    await eventually(async () => expect(reports.map((report) => report.id)).toEqual(['turn-1/run/outcome', 'turn-2/run/outcome']));
    expect(reports[1]).toEqual({ ...first, id: 'turn-2/run/outcome' });
    expect(stack.server.stats().completions).toBe(1);
    expect(errors).toEqual([]);
  });

  it('answers every dispatch of a task that came while it ran, once it finishes', async () => {
    const { transport, registry, stack, reports, errors } = await startRegistry({ latencyMs: 1_000 });
    await registry.apply({ namespace: 'acme', name: 'developers', replicas: 1, spec });
    await dispatch(transport, 'turn-1/run');
    await eventually(async () => expect(stack.server.stats().inFlight).toBe(1));
    await dispatch(transport, 'turn-2/run');
    await eventually(async () => expect(reports.map((report) => report.id)).toEqual(['turn-1/run/outcome', 'turn-2/run/outcome']));
    expect(reports[0]?.outcome).toMatchObject({ type: 'task-done', taskId: 'architecture', step: 0 });
    expect(reports[1]?.outcome).toEqual(reports[0]?.outcome);
    expect(stack.server.stats().completions).toBe(1);
    expect(errors).toEqual([]);
  });
});
