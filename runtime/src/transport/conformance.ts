/**
 * The Transport conformance suite: the behaviour every Transport must show, registered as
 * vitest tests. Each implementation's test file calls `transportConformance` with a fixture.
 * Every test uses its own topics and groups, so the suite can run against a shared live Kafka
 * next to other runs.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../errors.js';
import type { CrashChildArgs, CrashChildMessage } from './conformance-child.js';
import type { TransportConfig } from './open.js';
import { partitionFor } from './partitioner.js';
import type {
  ConsumedRecord,
  PartitionAssignment,
  PartitionBatch,
  ProducerRecord,
  SubscribeOptions,
  Subscription,
  Transport,
} from './transport.js';

/** How the suite reaches one implementation's log. */
export interface TransportFixture {
  /** What `open()` opens; the crash test hands it to a child process. */
  config: TransportConfig;
  /**
   * Opens a transport on the fixture's log; called again after `close()` to simulate a restart.
   * A test has at most one transport open at a time (the embedded log belongs to one process).
   */
  open(): Promise<Transport>;
  /** Removes what the fixture created; called once, after the last test. */
  cleanup(): Promise<void>;
}

/** Generous for a cold broker; the embedded log meets every condition in milliseconds. */
const DEADLINE_MS = 20_000;
const POLL_MS = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (record: ConsumedRecord): string => decoder.decode(record.value);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Waits until `condition` holds, checking every few ms, and fails naming `what` at the deadline. */
async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${DEADLINE_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** A subscription that records what it was given. */
interface Consumer {
  /** Every record delivered, redeliveries included, in delivery order. */
  records: ConsumedRecord[];
  batches: PartitionBatch[];
  /** The partitions held now, by `topic/partition`. */
  assigned: Map<string, PartitionAssignment>;
  /** The epoch of the latest assignment. */
  epoch: number | undefined;
  subscription: Subscription;
}

type ConsumeOptions = Pick<SubscribeOptions, 'groupId' | 'topics' | 'start' | 'maxBatchSize'> & {
  /** Handles a batch after it is recorded; by default every record is resolved. */
  handle?(batch: PartitionBatch): Promise<void>;
};

async function consume(transport: Transport, options: ConsumeOptions): Promise<Consumer> {
  const { handle, ...subscribe } = options;
  const consumer: Omit<Consumer, 'subscription'> = { records: [], batches: [], assigned: new Map(), epoch: undefined };
  const subscription = await transport.subscribe({
    ...subscribe,
    async eachBatch(batch) {
      consumer.batches.push(batch);
      if (handle) return handle(batch);
      consumer.records.push(...batch.records);
      batch.resolveOffset(batch.records.at(-1)!.offset);
    },
    async onAssigned(assignments) {
      for (const assignment of assignments) consumer.assigned.set(`${assignment.topic}/${assignment.partition}`, assignment);
      consumer.epoch = assignments[0]?.epoch;
    },
    async onRevoked(assignments) {
      for (const assignment of assignments) consumer.assigned.delete(`${assignment.topic}/${assignment.partition}`);
    },
  });
  return Object.assign(consumer, { subscription });
}

/**
 * Registers the Transport conformance tests for one implementation.
 *
 * @param name shown in the test names, e.g. `embedded`.
 * @param setup creates the fixture once, before the first test.
 * @example
 * transportConformance('embedded', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'transport-'));
 *   const config = { kind: 'embedded', dir } as const;
 *   return { config, open: () => openTransport(config), cleanup: () => rm(dir, { recursive: true, force: true }) };
 * });
 */
export function transportConformance(name: string, setup: () => Promise<TransportFixture>): void {
  describe(`Transport conformance: ${name}`, () => {
    const run = randomUUID().slice(0, 8);
    let fixture: TransportFixture | undefined;
    const open = new Set<Transport>();

    /** A topic or group name no other test or run uses. */
    const unique = (label: string): string => `conformance.${label}.${run}`;

    const openTransport = async (): Promise<Transport> => {
      const transport = await fixture!.open();
      open.add(transport);
      return transport;
    };
    const closeTransport = async (transport: Transport): Promise<void> => {
      open.delete(transport);
      await transport.close();
    };
    const record = (topic: string, key: string, value: string, partition?: number): ProducerRecord => ({
      topic,
      key,
      value: encoder.encode(value),
      ...(partition === undefined ? {} : { partition }),
    });

    beforeAll(async () => {
      fixture = await setup();
    });
    afterEach(async () => {
      for (const transport of [...open]) await closeTransport(transport);
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    it('delivers 1,000 records over 4 partitions in send order per key, at consecutive offsets', async () => {
      const transport = await openTransport();
      const topic = unique('order');
      await transport.createTopic(topic, 4);
      const keys = range(0, 16).map((i) => `actor-${i}`);
      expect(new Set(keys.map((key) => partitionFor(key, 4))).size).toBe(4);

      const sent = range(0, 1000).map((seq) => ({ key: keys[seq % keys.length]!, seq }));
      for (let i = 0; i < sent.length; i += 100) {
        await transport.send(sent.slice(i, i + 100).map(({ key, seq }) => record(topic, key, String(seq))));
      }
      const consumer = await consume(transport, { groupId: unique('order'), topics: [topic], maxBatchSize: 64 });
      await waitFor('1,000 records', () => consumer.records.length >= 1000);

      expect(consumer.records).toHaveLength(1000);
      for (const key of keys) {
        const received = consumer.records.filter((r) => r.key === key).map((r) => Number(text(r)));
        expect(received, `records of ${key}`).toEqual(sent.filter((s) => s.key === key).map((s) => s.seq));
      }
      const counts = range(0, 4).map((partition) => {
        const offsets = consumer.records.filter((r) => r.partition === partition).map((r) => r.offset);
        expect(offsets, `offsets of partition ${partition}`).toEqual(range(0, offsets.length));
        return offsets.length;
      });
      // Asked at once, as a metrics scrape asks: each answer is its own partition's.
      expect(await Promise.all(range(0, 4).map((partition) => transport.endOffset(topic, partition)))).toEqual(counts);
    });

    it('puts every record of a key in partitionFor(key, count), unless the record names its partition', async () => {
      const transport = await openTransport();
      const topic = unique('keys');
      await transport.createTopic(topic, 6);
      await transport.createTopic(topic, 6);
      expect(await transport.partitionCount(topic)).toBe(6);

      const keys = range(0, 40).map((i) => `tenant-${i}/project-${i * 7}`);
      await transport.send(keys.map((key) => record(topic, key, 'first')));
      await transport.send(keys.map((key) => record(topic, key, 'second')));
      const pinnedKey = keys.find((key) => partitionFor(key, 6) !== 5)!;
      await transport.send([record(topic, pinnedKey, 'pinned', 5)]);

      const consumer = await consume(transport, { groupId: unique('keys'), topics: [topic] });
      await waitFor('81 records', () => consumer.records.length >= 81);
      for (const received of consumer.records) {
        const expected = text(received) === 'pinned' ? 5 : partitionFor(received.key, 6);
        expect(received.partition, `partition of ${received.key} (${text(received)})`).toBe(expected);
      }
    });

    it('resumes a group from its committed offsets after close and reopen, losing and repeating nothing resolved', async () => {
      const topic = unique('resume');
      const groupId = unique('resume');
      const first = await openTransport();
      await first.createTopic(topic, 2);
      await first.send(range(0, 60).map((i) => record(topic, `key-${i % 10}`, `r${i}`)));

      // Resolves 25 records, then stops resolving: whatever it is handed after that stays unresolved.
      const resolvedBefore: ConsumedRecord[] = [];
      await consume(first, {
        groupId,
        topics: [topic],
        maxBatchSize: 7,
        async handle(batch) {
          for (const received of batch.records) {
            if (resolvedBefore.length === 25) return;
            resolvedBefore.push(received);
            batch.resolveOffset(received.offset);
          }
        },
      });
      await waitFor('25 resolved records', () => resolvedBefore.length === 25);
      await closeTransport(first);

      const second = await openTransport();
      const committed = await Promise.all(range(0, 2).map((partition) => second.committedOffset(groupId, topic, partition)));
      expect(committed.reduce<number>((sum, offset) => sum + (offset ?? 0), 0)).toBe(25);
      await second.send(range(60, 80).map((i) => record(topic, `key-${i % 10}`, `r${i}`)));

      const consumer = await consume(second, { groupId, topics: [topic] });
      await waitFor('the 55 records not resolved before', () => consumer.records.length >= 55);
      const before = new Set(resolvedBefore.map(text));
      const after = consumer.records.map(text);
      expect(
        after.filter((value) => before.has(value)),
        'records resolved before the restart and delivered again',
      ).toEqual([]);
      expect(new Set([...before, ...after]).size).toBe(80);
      expect(after).toHaveLength(55);
      for (const received of consumer.records) expect(received.offset).toBeGreaterThanOrEqual(committed[received.partition] ?? 0);
    });

    it('redelivers from the first unresolved record after a consumer process is killed mid-batch', async () => {
      const topic = unique('crash');
      const groupId = unique('crash');
      const producer = await openTransport();
      await producer.createTopic(topic, 1);
      await producer.send(range(0, 60).map((i) => record(topic, 'the-actor', `r${i}`)));
      await closeTransport(producer);

      const child = spawnCrashChild({ config: fixture!.config, topic, groupId, maxBatchSize: 10, resolveBeforeHanging: 25 });
      let midBatch: CrashChildMessage;
      try {
        midBatch = await child.midBatch;
      } finally {
        await child.kill();
      }
      expect(midBatch.firstUnresolvedOffset).toBe(25);

      const transport = await openTransport();
      const committed = (await transport.committedOffset(groupId, topic, 0)) ?? 0;
      // Batches the child finished were committed; the one it died in was not, resolved or not.
      expect(committed).toBeGreaterThanOrEqual(midBatch.batchFirstOffset);
      expect(committed).toBeLessThanOrEqual(midBatch.firstUnresolvedOffset);

      const consumer = await consume(transport, { groupId, topics: [topic] });
      await waitFor('the record at offset 59', () => consumer.records.some((r) => r.offset === 59));
      expect(consumer.records.map((r) => r.offset)).toEqual(range(committed, 60));
      expect(consumer.records.map(text)).toEqual(range(committed, 60).map((i) => `r${i}`));
    });

    it('splits partitions between two members of a group, and moves them with a higher epoch when one leaves', async () => {
      const transport = await openTransport();
      const topic = unique('split');
      const groupId = unique('split');
      await transport.createTopic(topic, 4);

      const a = await consume(transport, { groupId, topics: [topic] });
      await waitFor('member a to hold all 4 partitions', () => a.assigned.size === 4);
      const b = await consume(transport, { groupId, topics: [topic] });
      await waitFor('a 2/2 split', () => a.assigned.size === 2 && b.assigned.size === 2);
      const splitEpoch = a.epoch!;
      expect(b.epoch).toBe(splitEpoch);

      await transport.send(range(0, 200).map((i) => record(topic, `key-${i % 23}`, `r${i}`)));
      await waitFor('200 records between a and b', () => a.records.length + b.records.length >= 200);
      const all = [...a.records, ...b.records].map(text);
      expect(new Set(all).size).toBe(200);
      expect(all).toHaveLength(200);
      for (const received of a.records) expect(a.assigned.has(`${topic}/${received.partition}`)).toBe(true);
      for (const received of b.records) expect(b.assigned.has(`${topic}/${received.partition}`)).toBe(true);
      expect(a.records.length).toBeGreaterThan(0);
      expect(b.records.length).toBeGreaterThan(0);

      await b.subscription.close();
      await waitFor('member a to take over all 4 partitions', () => a.assigned.size === 4 && a.epoch! > splitEpoch);
      const aBefore = a.records.length;
      const bBefore = b.records.length;
      await transport.send(range(200, 300).map((i) => record(topic, `key-${i % 23}`, `r${i}`)));
      await waitFor('100 more records at a', () => a.records.length - aBefore >= 100);
      expect(a.records.slice(aBefore).map(text).sort()).toEqual(
        range(200, 300)
          .map((i) => `r${i}`)
          .sort(),
      );
      expect(b.records.length).toBe(bBefore);
    });

    it('hands out a higher epoch after the group is closed and reopened, and batches carry it', async () => {
      const topic = unique('epoch');
      const groupId = unique('epoch');
      const first = await openTransport();
      await first.createTopic(topic, 1);
      // Nothing is consumed, so no commit carries the epoch to disk: assigning it must.
      const before = await consume(first, { groupId, topics: [topic] });
      await waitFor('the first assignment', () => before.epoch !== undefined);
      await closeTransport(first);

      const second = await openTransport();
      const after = await consume(second, { groupId, topics: [topic] });
      await waitFor('the assignment after reopening', () => after.epoch !== undefined);
      expect(after.epoch).toBeGreaterThan(before.epoch!);
      await second.send([record(topic, 'k', 'v')]);
      await waitFor('a batch', () => after.batches.length > 0);
      expect(after.batches[0]!.epoch).toBe(after.epoch);
    });

    it('delivers the unresolved records of a batch again when its handler throws', async () => {
      const transport = await openTransport();
      const topic = unique('throw');
      await transport.createTopic(topic, 1);
      await transport.send(range(0, 10).map((i) => record(topic, 'k', `r${i}`)));

      let resolvedBeforeThrow = -1;
      const delivered: number[] = [];
      const consumer = await consume(transport, {
        groupId: unique('throw'),
        topics: [topic],
        async handle(batch) {
          if (resolvedBeforeThrow < 0) {
            resolvedBeforeThrow = Math.floor(batch.records.length / 2);
            for (const received of batch.records.slice(0, resolvedBeforeThrow)) {
              delivered.push(received.offset);
              batch.resolveOffset(received.offset);
            }
            throw new Error('conformance: a handler failing on purpose');
          }
          delivered.push(...batch.records.map((r) => r.offset));
          batch.resolveOffset(batch.records.at(-1)!.offset);
        },
      });
      await waitFor('offset 9 to be handled', () => delivered.includes(9));
      const [failed, retried] = consumer.batches;
      expect(retried!.records[0]!.offset).toBe(failed!.records[0]!.offset + resolvedBeforeThrow);
      expect(delivered).toEqual(range(0, 10));
    });

    it('refuses to resolve an offset past its batch, or once its batch ended', async () => {
      const transport = await openTransport();
      const topic = unique('resolve');
      await transport.createTopic(topic, 1);
      await transport.send(range(0, 3).map((i) => record(topic, 'k', `r${i}`)));

      let held: PartitionBatch | undefined;
      let pastTheEnd: unknown;
      await consume(transport, {
        groupId: unique('resolve'),
        topics: [topic],
        async handle(batch) {
          const last = batch.records.at(-1)!.offset;
          try {
            batch.resolveOffset(last + 1);
          } catch (error) {
            pastTheEnd ??= error;
          }
          batch.resolveOffset(last);
          held = batch;
        },
      });
      await waitFor('offset 2 to be handled', () => held?.records.at(-1)?.offset === 2);

      expect(pastTheEnd).toMatchObject({
        code: RuntimeErrorCode.InvalidOptions,
        message: expect.stringMatching(/past the batch's last offset/),
      });
      expect(() => held!.resolveOffset(held!.records[0]!.offset)).toThrow(/called after its batch ended/);
    });

    it("skips the records already in the log when a new group starts at 'latest', and delivers every one appended once it subscribed", async () => {
      const transport = await openTransport();
      const topic = unique('latest');
      await transport.createTopic(topic, 2);
      await transport.send(range(0, 20).map((i) => record(topic, `key-${i}`, `old-${i}`)));

      const consumer = await consume(transport, { groupId: unique('latest'), topics: [topic], start: 'latest' });
      // Sent at once: an ask's reply comes this soon after its client subscribed.
      await transport.send(range(0, 20).map((i) => record(topic, `key-${i}`, `new-${i}`)));
      await waitFor('20 new records', () => consumer.records.filter((r) => text(r).startsWith('new-')).length >= 20);
      expect(consumer.records.filter((r) => text(r).startsWith('old-')).map(text)).toEqual([]);
    });
  });
}

/** A running crash-test child: its mid-batch report, and a SIGKILL that waits for the exit. */
function spawnCrashChild(args: CrashChildArgs): { midBatch: Promise<CrashChildMessage>; kill(): Promise<void> } {
  const program = fileURLToPath(new URL('./conformance-child.ts', import.meta.url));
  // The cwd lets `--import tsx` resolve from this workspace's node_modules.
  const child = spawn(process.execPath, ['--import', 'tsx', program, JSON.stringify(args)], {
    cwd: dirname(program),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

  const midBatch = new Promise<CrashChildMessage>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const message = JSON.parse(line) as CrashChildMessage;
      if (message.type === 'mid-batch') resolve(message);
    });
    void exited.then(() =>
      reject(new Error(`the crash-test child exited before reporting mid-batch (code ${child.exitCode}):\n${stderr}`)),
    );
    setTimeout(
      () => reject(new Error(`the crash-test child did not report mid-batch within ${DEADLINE_MS} ms:\n${stderr}`)),
      DEADLINE_MS,
    ).unref();
  });

  return {
    midBatch,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
