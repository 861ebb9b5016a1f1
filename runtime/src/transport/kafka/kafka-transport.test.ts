/**
 * The Kafka transport against the real Kafka of the test harness: the shared conformance suite,
 * then what only Kafka has to get right — revoking partitions in the middle of a batch when
 * another member joins, a fixed partition count, refusing bad options and unknown topics with
 * errors that say which, and (on a broker of its own) keeping subscriptions through shutdowns of
 * the broker.
 */
import { randomUUID } from 'node:crypto';

import { infra, startPrivateServer } from '@troupe/harness';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { RuntimeErrorCode, TransportError } from '../../errors.js';
import { wrapTransport } from '../../testing/wrapped-transport.js';
import { transportConformance } from '../conformance.js';
import { openTransport, type TransportConfig } from '../open.js';
import type { ConsumedRecord, PartitionAssignment, PartitionBatch, SubscribeOptions, Transport } from '../transport.js';
import { KafkaTransport, type KafkaTransportOptions } from './kafka-transport.js';

const run = randomUUID().slice(0, 8);

/** Topics and groups these tests made, deleted when they end so the shared broker stays tidy. */
const made = { topics: new Set<string>(), groups: new Set<string>() };

/** Short timeouts: the crash test's dead member leaves the group after `sessionTimeoutMs`. */
const QUICK = { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, rebalanceTimeoutMs: 10_000, maxWaitTimeMs: 250 } as const;

/** Records what a transport creates, for `deleteMade`. */
function tracked(transport: Transport): Transport {
  return wrapTransport(transport, {
    createTopic: (topic, partitions) => {
      made.topics.add(topic);
      return transport.createTopic(topic, partitions);
    },
    subscribe: async (options) => {
      const subscription = await transport.subscribe(options);
      made.groups.add(options.groupId);
      return subscription;
    },
  });
}

async function deleteMade(): Promise<void> {
  const groups = [...made.groups];
  const topics = [...made.topics];
  made.groups.clear();
  made.topics.clear();
  const admin = new Kafka({ clientId: 'troupe-test-cleanup', brokers: infra().kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    if (groups.length > 0) {
      await admin.deleteGroups(groups).catch((error: unknown) => {
        // The coordinator deletes an empty group that never committed on its own schedule.
        const failed = (error as { groups?: { error?: { type?: string } }[] }).groups ?? [];
        if (failed.length === 0 || failed.some((group) => group.error?.type !== 'GROUP_ID_NOT_FOUND')) throw error;
      });
    }
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

transportConformance('kafka', async () => {
  const config: TransportConfig = { kind: 'kafka', brokers: infra().kafka.brokers, ...QUICK, logLevel: 'error' };
  return { config, open: async () => tracked(await openTransport(config)), cleanup: deleteMade };
});

describe('KafkaTransport', () => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let transports: Transport[] = [];
  let logged: string[] = [];

  const open = async (options: Partial<KafkaTransportOptions> = {}): Promise<Transport> => {
    const transport = tracked(
      await KafkaTransport.open({ brokers: infra().kafka.brokers, ...QUICK, log: (message) => logged.push(message), ...options }),
    );
    transports.push(transport);
    return transport;
  };
  const unique = (label: string): string => `kafka-transport.${label}.${run}`;
  const record = (topic: string, value: string, partition?: number) => ({
    topic,
    key: value,
    value: encoder.encode(value),
    ...(partition === undefined ? {} : { partition }),
  });

  afterEach(async () => {
    for (const transport of transports) await transport.close();
    transports = [];
    logged = [];
  });
  afterAll(deleteMade);

  it('refuses to create a topic that exists with another partition count, naming the topic and both counts', async () => {
    const topic = unique('fixed-count');
    await (await open()).createTopic(topic, 3);

    // A second process, whose cache knows nothing of the topic, asks the broker.
    const other = await open();
    const refused = other.createTopic(topic, 5);
    await expect(refused).rejects.toBeInstanceOf(TransportError);
    await expect(refused).rejects.toMatchObject({
      code: RuntimeErrorCode.InvalidArgument,
      topic,
      message: `${topic}: exists with 3 partitions, not 5`,
    });
    await other.createTopic(topic, 3);
    expect(await other.partitionCount(topic)).toBe(3);
  });

  it('refuses records for an unknown topic or partition, naming it, and sends none of that call', async () => {
    const transport = await open();
    const topic = unique('unknown');
    const missing = unique('no-such-topic');
    await transport.createTopic(topic, 2);

    const unknownTopic = transport.send([record(topic, 'good'), record(missing, 'bad')]);
    await expect(unknownTopic).rejects.toBeInstanceOf(TransportError);
    await expect(unknownTopic).rejects.toMatchObject({
      code: RuntimeErrorCode.InvalidArgument,
      topic: missing,
      message: expect.stringContaining(missing),
    });
    await expect(transport.send([record(topic, 'good', 2)])).rejects.toMatchObject({ topic, partition: 2 });
    await expect(transport.subscribe({ groupId: unique('unknown'), topics: [missing], eachBatch: async () => {} })).rejects.toMatchObject({
      topic: missing,
    });
    await expect(transport.endOffset(missing, 0)).rejects.toMatchObject({ topic: missing });
    expect(await transport.endOffset(topic, 0)).toBe(0);
    expect(await transport.endOffset(topic, 1)).toBe(0);
  });

  it('sees partitions added to a topic after it looked the topic up', async () => {
    const transport = await open();
    const topic = unique('grown');
    const groupId = unique('grown');
    await transport.createTopic(topic, 2);
    expect(await transport.endOffset(topic, 1)).toBe(0);
    // What the operator does to a pool's topic when the pool scales up.
    const admin = new Kafka({ clientId: 'troupe-test-grow', brokers: infra().kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    } finally {
      await admin.disconnect();
    }

    await transport.send([record(topic, 'on the new partition', 3)]);
    expect(await transport.endOffset(topic, 3)).toBe(1);
    expect(await transport.committedOffset(groupId, topic, 2)).toBeUndefined();
    await expect(transport.endOffset(topic, 4)).rejects.toMatchObject({ topic, partition: 4, message: expect.stringContaining('0..3') });
  });

  it('reads end offsets while other topics are looked up for the first time', async () => {
    const writer = await open();
    const read = unique('read-while-looking-up');
    await writer.createTopic(read, 8);
    await writer.send(Array.from({ length: 8 }, (_, partition) => record(read, `r${partition}`, partition)));
    const others = Array.from({ length: 10 }, (_, i) => unique(`looked-up-${i}`));
    for (const topic of others) await writer.createTopic(topic, 2);

    // A node that knows none of them yet: a pool topic first looked up while its lag is scraped.
    const node = await open();
    const lookUps = (async () => {
      for (const topic of others) expect(await node.partitionCount(topic)).toBe(2);
    })();
    const failures = new Set<string>();
    for (let round = 0; round < 40; round += 1) {
      const ends = await Promise.allSettled(Array.from({ length: 8 }, (_, partition) => node.endOffset(read, partition)));
      for (const end of ends) {
        if (end.status === 'rejected') failures.add(String(end.reason));
        else expect(end.value).toBe(1);
      }
    }
    await lookUps;
    expect([...failures]).toEqual([]);
  });

  it('refuses invalid options with an error naming the key, before connecting', async () => {
    const brokers = infra().kafka.brokers;
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'brokers'],
      [{ brokers: [] }, 'brokers'],
      [{ brokers: ['no-port'] }, 'brokers'],
      [{ brokers, sessionTimeoutMs: 0 }, 'sessionTimeoutMs'],
      [{ brokers, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 6_000 }, 'heartbeatIntervalMs'],
      [{ brokers, replicationFactor: 1.5 }, 'replicationFactor'],
      [{ brokers, maxBatchSize: 0 }, 'maxBatchSize'],
      [{ brokers, retryDelayMs: -1 }, 'retryDelayMs'],
      [{ brokers, lingerMs: Number.NaN }, 'lingerMs'],
      [{ brokers, logLevel: 'loud' }, 'logLevel'],
      [{ brokers, brokerz: ['localhost:9092'] }, 'brokerz'],
    ];
    for (const [options, key] of cases) {
      await expect(KafkaTransport.open(options as unknown as KafkaTransportOptions), key).rejects.toMatchObject({
        code: RuntimeErrorCode.InvalidOptions,
        message: expect.stringContaining(`\`${key}\``),
      });
    }
  });

  it('aborts the batches in flight when a member joins, and calls onRevoked after they ended and before the next assignment', async () => {
    const transport = await open();
    const topic = unique('revoke');
    const groupId = unique('revoke');
    await transport.createTopic(topic, 2);
    await transport.send(
      [0, 1].flatMap((partition) => Array.from({ length: 10 }, (_, i) => record(topic, `p${partition}-r${i}`, partition))),
    );

    const events: string[] = [];
    const resolved: ConsumedRecord[] = [];
    const delivered: ConsumedRecord[] = [];
    let firstEpoch: number | undefined;
    const member = (name: string): SubscribeOptions => ({
      groupId,
      topics: [topic],
      async eachBatch(batch: PartitionBatch) {
        delivered.push(...batch.records);
        if (batch.epoch !== firstEpoch) {
          resolved.push(...batch.records);
          batch.resolveOffset(batch.records.at(-1)!.offset);
          return;
        }
        // The first owner resolves one record, then holds the batch until the partition is revoked.
        resolved.push(batch.records[0]!);
        batch.resolveOffset(batch.records[0]!.offset);
        events.push(`${name} holds ${batch.partition}`);
        await untilAborted(batch.signal, 20_000);
        events.push(`${name} ends ${batch.partition}${batch.signal.aborted ? ' aborted' : ''}`);
      },
      async onAssigned(assignments: readonly PartitionAssignment[]) {
        firstEpoch ??= assignments[0]!.epoch;
        events.push(`${name} assigned ${held(assignments)}`);
      },
      async onRevoked(assignments: readonly PartitionAssignment[]) {
        events.push(`${name} revoked ${held(assignments)}`);
      },
    });

    await transport.subscribe(member('a'));
    await waitFor('a to hold both partitions', () => events.filter((event) => event.startsWith('a holds')).length === 2);
    await transport.subscribe(member('b'));
    await waitFor('all 20 records to be resolved', () => resolved.length === 20);

    const [firstAssignment, ...rest] = events;
    expect(firstAssignment).toBe(`a assigned 0,1@${firstEpoch}`);
    const revokedAt = rest.indexOf(`a revoked 0,1@${firstEpoch}`);
    expect(rest.slice(0, revokedAt).sort()).toEqual(['a ends 0 aborted', 'a ends 1 aborted', 'a holds 0', 'a holds 1']);
    const reassigned = rest.slice(revokedAt + 1);
    expect(reassigned).toHaveLength(2);
    const epochs = reassigned.map((event) => Number(event.split('@')[1]));
    expect(epochs[0]).toBe(epochs[1]);
    expect(epochs[0]).toBeGreaterThan(firstEpoch!);
    expect(reassigned.map((event) => event.split(' ')[0]).sort()).toEqual(['a', 'b']);

    // Each first record was resolved (and committed) before the revocation, so only the rest came again.
    expect(delivered.filter((r) => r.offset === 0)).toHaveLength(2);
    expect(resolved.map((r) => decoder.decode(r.value)).sort()).toEqual(
      [0, 1].flatMap((p) => Array.from({ length: 10 }, (_, i) => `p${p}-r${i}`)).sort(),
    );
    for (const partition of [0, 1])
      await waitFor(
        `the commit of partition ${partition}`,
        async () => (await transport.committedOffset(groupId, topic, partition)) === 10,
      );
    expect(
      logged.some((message) => /^kafkajs Runner: The group is rebalancing/.test(message)),
      'kafkajs warnings reach `log`',
    ).toBe(true);
  });

  it('keeps every subscription through broker shutdowns, joining again where kafkajs gave up on its consumer', async () => {
    const broker = await startPrivateServer('kafka');
    const transport = await KafkaTransport.open({ brokers: broker.endpoint.brokers, ...QUICK, log: (message) => logged.push(message) });
    try {
      const topic = unique('shutdown');
      await transport.createTopic(topic, 1);
      // Many groups, so that in a shutdown some heartbeat lands just after the broker gave up
      // coordinating its groups: kafkajs then looks for another coordinator, finds no broker, and gives up.
      const groups = Array.from({ length: 32 }, (_, i) => unique(`shutdown-${i}`));
      const received = new Map(groups.map((groupId) => [groupId, new Set<string>()]));
      for (const groupId of groups) {
        await transport.subscribe({
          groupId,
          topics: [topic],
          async eachBatch(batch) {
            for (const r of batch.records) received.get(groupId)!.add(decoder.decode(r.value));
            batch.resolveOffset(batch.records.at(-1)!.offset);
          },
        });
      }
      const deliveredToEveryGroup = async (value: string) => {
        await transport.send([record(topic, value)]);
        await expect
          .poll(() => groups.filter((groupId) => !received.get(groupId)!.has(value)), {
            timeout: 60_000,
            message: `groups without ${value}`,
          })
          .toEqual([]);
      };

      await deliveredToEveryGroup('before');
      const gaveUp = () => logged.some((message) => message.includes('kafkajs stopped the consumer; joining again'));
      for (let shutdowns = 1; !gaveUp(); shutdowns++) {
        if (shutdowns > 5) throw new Error('kafkajs gave up on no consumer in five broker shutdowns: joining again went untested');
        await broker.stop();
        await broker.start();
        await deliveredToEveryGroup(`after shutdown ${shutdowns}`);
      }
    } finally {
      await transport.close();
      await broker.dispose();
    }
  }, 240_000);
});

function held(assignments: readonly PartitionAssignment[]): string {
  return `${assignments
    .map((a) => a.partition)
    .sort()
    .join(',')}@${assignments[0]?.epoch}`;
}

function untilAborted(signal: AbortSignal, atMostMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, atMostMs);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    if (signal.aborted) resolve();
  });
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
