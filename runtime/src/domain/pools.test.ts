import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Event, type PoolStatus } from '@troupe/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeErrorCode, TransportError } from '../errors.js';
import { AgentPool, type AgentPoolSpec } from '../llm/agent-pool.js';
import { Budgets } from '../llm/budget.js';
import { MODEL, simulatedStack } from '../llm/test-fixtures.js';
import { wrapTransport } from '../testing/wrapped-transport.js';
import { openTransport } from '../transport/open.js';
import type { Transport } from '../transport/transport.js';
import { BlobArtifactStore, FileBlobStore } from './artifacts.js';
import { PoolRegistry } from './pools.js';
import { EVENTS_TOPIC } from './project-events.js';

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

describe('PoolRegistry', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('publishes every pool’s load when one pool’s topic cannot be read, and says which', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'troupe-pools-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const embedded = await openTransport({ kind: 'embedded', dir: join(dir, 'log'), fsync: 'never' });
    cleanups.push(() => embedded.close());
    await embedded.createTopic(EVENTS_TOPIC, 1);
    const stack = await simulatedStack();
    cleanups.push(() => stack.close());
    const errors: Error[] = [];
    const registry = new PoolRegistry({
      transport: failingEndOffsets(embedded, 'troupe.pool.acme.testers'),
      nodeId: 'node-a',
      partitions: 2,
      artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(join(dir, 'artifacts')) }),
      budgets: new Budgets(),
      create: (name, poolSpec) => new AgentPool({ name, spec: poolSpec, llm: stack.llm, threads: 1 }),
      report: async () => {},
      reportMs: 100,
      onError: (error) => errors.push(error),
    });
    cleanups.push(() => registry.close());
    await registry.apply({ namespace: 'acme', name: 'developers', replicas: 1, spec });
    await registry.apply({ namespace: 'acme', name: 'testers', replicas: 1, spec: { ...spec, role: 'qa' } });

    const published = new Map<string, PoolStatus>();
    let bothPublished!: () => void;
    const both = new Promise<void>((resolve) => (bothPublished = resolve));
    const subscription = await embedded.subscribe({
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
});
