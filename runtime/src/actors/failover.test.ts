/**
 * Failover on the real servers: runtime nodes killed with SIGKILL mid-stream, a Kafka broker
 * restarted, Cassandra frozen for 30 s. Each test streams numbered inputs to counter actors and
 * then counts what the journals hold: every input applied exactly once and in order, and every
 * forwarded output received once by the de-duplicating sinks.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { infra, startPrivateServer, type CassandraEndpoint } from '@troupe/harness';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorError, RuntimeErrorCode } from '../errors.js';
import { openStore, type StoreConfig } from '../store/open.js';
import { eventually } from '../testing/eventually.js';
import { startChild, type ChildProgram } from '../testing/child-process.js';
import { openTransport, type TransportConfig } from '../transport/open.js';
import { ActorClient } from './actor-client.js';
import { ActorSystem } from './actor-system.js';
import { SINKS, failoverActors } from './failover-actors.js';

const NODE = fileURLToPath(new URL('./failover-node.ts', import.meta.url));
const PARTITIONS = 8;
const COUNTERS = 40;
const KEYSPACE = 'troupe_failover';

/** Short enough that a killed member's partitions move within seconds. */
function kafka(brokers: string[]): TransportConfig {
  return { kind: 'kafka', brokers, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 };
}

function cassandra(endpoint: CassandraEndpoint): StoreConfig {
  return { kind: 'cassandra', ...endpoint, keyspace: KEYSPACE };
}

/** Sends 1..total to the counters, `onSent(n)` after each, retrying a send the broker refused. */
async function stream(transport: TransportConfig, prefix: string, total: number, onSent: (n: number) => Promise<void>): Promise<void> {
  const { counter } = failoverActors(prefix);
  const producer = await openTransport(transport);
  const client = new ActorClient(producer);
  try {
    for (let n = 1; n <= total; n += 1) {
      await eventually(() => client.tell(counter, `c${n % COUNTERS}`, { type: 'add', n }, { id: `${prefix}/${n}` }), 60_000, 250);
      await onSent(n);
    }
  } finally {
    await client.close();
    await producer.close();
  }
}

/** Reads the journals back and checks exactly-once application, order, and de-duplicated output. */
async function expectEveryInputOnce(storeConfig: StoreConfig, prefix: string, total: number): Promise<void> {
  const { counter, sink } = failoverActors(prefix);
  const store = await openStore(storeConfig);
  try {
    await eventually(
      async () => {
        const applied: number[] = [];
        for (let c = 0; c < COUNTERS; c += 1) {
          const record = await store.load({ type: counter.type, id: `c${c}` });
          const numbers = record.events.map((event) => (JSON.parse(Buffer.from(event.data).toString()) as { n: number }).n);
          expect(numbers, `counter c${c} applies its inputs in the order sent`).toEqual([...numbers].sort((a, b) => a - b));
          applied.push(...numbers);
        }
        expect(applied.length, 'inputs applied').toBe(total);
        expect(new Set(applied).size, 'distinct inputs applied').toBe(total);

        const received: string[] = [];
        for (let s = 0; s < SINKS; s += 1) {
          const record = await store.load({ type: sink.type, id: `sink-${s}` });
          received.push(...record.events.map((event) => Buffer.from(event.data).toString()));
        }
        expect(received.length, 'outputs received by the sinks').toBe(total);
        expect(new Set(received).size, 'distinct outputs received').toBe(total);
      },
      120_000,
      500,
    );
  } finally {
    await store.close();
  }
}

describe('failover on Kafka and Cassandra', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('moves a killed node’s partitions to the others, losing and repeating nothing', async () => {
    const prefix = `kill-${randomUUID().slice(0, 8)}`;
    const transport = kafka(infra().kafka.brokers);
    const store = cassandra(infra().cassandra);
    const nodes: ChildProgram[] = [0, 1, 2].map((i) =>
      startChild(NODE, { transport, store, prefix, partitions: PARTITIONS, groupId: prefix, nodeId: `${prefix}-node-${i}` }),
    );
    cleanups.push(async () => void (await Promise.all(nodes.map((node) => node.kill()))));
    await Promise.all(nodes.map((node) => node.waitFor('STARTED')));

    const [victim, ...survivors] = nodes as [ChildProgram, ...ChildProgram[]];
    const victimPartitions = new Set<number>();
    victim.onLine((line) => {
      const [word, partition] = line.split(' ');
      if (word === 'TURN') victimPartitions.add(Number(partition));
    });
    let killedAt = 0;
    let resumedAt = 0;
    for (const survivor of survivors) {
      survivor.onLine((line) => {
        const [word, partition, at] = line.split(' ');
        if (word === 'TURN' && killedAt > 0 && resumedAt === 0 && victimPartitions.has(Number(partition))) resumedAt = Number(at);
      });
    }

    const total = 1_200;
    await stream(transport, prefix, total, async (n) => {
      if (n % 40 === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      if (n === total / 3) {
        await eventually(async () => expect(victimPartitions.size).toBeGreaterThan(0), 30_000);
        await victim.kill();
        killedAt = Date.now();
      }
    });
    await expectEveryInputOnce(store, prefix, total);
    expect(resumedAt, 'a surviving node took over the killed node’s partitions').toBeGreaterThan(killedAt);
    console.log(`failover: work on the killed node's partitions resumed ${resumedAt - killedAt} ms after SIGKILL`);
  }, 240_000);

  it('rides out a Kafka broker restart in the middle of a stream', async () => {
    const broker = await startPrivateServer('kafka');
    cleanups.push(() => broker.dispose());
    const prefix = `broker-${randomUUID().slice(0, 8)}`;
    const transportConfig = kafka(broker.endpoint.brokers);
    const store = cassandra(infra().cassandra);
    const { counter, sink } = failoverActors(prefix);
    const transport = await openTransport(transportConfig);
    const state = await openStore(store);
    const system = await ActorSystem.start({
      transport,
      store: state,
      actors: [counter, sink],
      partitions: PARTITIONS,
      groupId: prefix,
      onError: () => {},
    });
    cleanups.push(async () => {
      await system.stop();
      await transport.close();
      await state.close();
    });

    const total = 600;
    await stream(transportConfig, prefix, total, async (n) => {
      if (n === total / 3) {
        await broker.stop();
        await broker.start();
      }
    });
    await expectEveryInputOnce(store, prefix, total);
  }, 240_000);

  it('pauses consumption while Cassandra is frozen for 30 s, then resumes losing nothing', async () => {
    const database = await startPrivateServer('cassandra');
    cleanups.push(() => database.dispose());
    const prefix = `frozen-${randomUUID().slice(0, 8)}`;
    const transportConfig = kafka(infra().kafka.brokers);
    const store = cassandra(database.endpoint);
    const { counter, sink } = failoverActors(prefix);
    const transport = await openTransport(transportConfig);
    const state = await openStore(store);
    const deadLettered: Error[] = [];
    const system = await ActorSystem.start({
      transport,
      store: state,
      actors: [counter, sink],
      partitions: PARTITIONS,
      groupId: prefix,
      onError: (error) => {
        if (error instanceof ActorError && error.code === RuntimeErrorCode.TurnFailed) deadLettered.push(error);
      },
    });
    cleanups.push(async () => {
      await system.stop();
      await transport.close();
      await state.close();
    });

    const total = 300;
    let thawed: Promise<void> | undefined;
    await stream(transportConfig, prefix, total, async (n) => {
      if (n === total / 3) {
        database.pause();
        thawed = new Promise((resolve) => setTimeout(resolve, 30_000)).then(() => database.resume());
      }
    });
    await thawed;
    await expectEveryInputOnce(store, prefix, total);
    expect(deadLettered, 'messages dead-lettered because the store was down').toEqual([]);
  }, 300_000);
});
