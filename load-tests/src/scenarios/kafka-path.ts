/**
 * The Kafka path: actor messages end to end through the real broker — a client's tell, the
 * runtime's consumer group, a durable turn — side by side with raw kafkajs producing and
 * consuming the same number of messages on the same topic layout of the same broker. Both are
 * measured warm: a first message to every partition has gone through before the clock starts,
 * so neither side's consumer-group join is timed. CPU per message is this process's user + system
 * time over the measured run, all its threads (the embedded store's writer among them); the
 * broker's is not counted. Each side deletes its topic afterwards, so runs do not pile up
 * topics on the broker. In the full run the two sides take turns three times and each side's
 * median run counts: on two cores shared with the broker, one run of either side can be a third
 * faster or slower than the next.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ActorClient, ActorSystem, actorTopic, defineActor, openStore, openTransport, partitionFor } from '@troupe/runtime';
import { Kafka, logLevel } from 'kafkajs';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';
import { deleteTopics } from './kafka-topics.js';

const PARTITIONS = 8;
const ACTORS = 256;
const BATCH = 500;

interface Stamp {
  n: number;
  /** performance.timeOrigin-relative send time, in ms. */
  sentAt: number;
}

/** An actor id on every partition, so that a warm-up message per id reaches all of them. */
function warmUpKeys(): string[] {
  const keys = new Map<number, string>();
  for (let n = 0; keys.size < PARTITIONS; n += 1) {
    const key = `warm-up-${n}`;
    if (!keys.has(partitionFor(key, PARTITIONS))) keys.set(partitionFor(key, PARTITIONS), key);
  }
  return [...keys.values()];
}

function collector(total: number) {
  const latencies = new Float64Array(total);
  let received = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    latencies,
    done,
    got(stamp: Stamp): void {
      if (latencies[stamp.n] !== 0) return;
      latencies[stamp.n] = performance.now() - stamp.sentAt;
      received += 1;
      if (received === total) finish();
    },
  };
}

/** The process's CPU time since `start` (a `process.cpuUsage()`), per message, in µs. */
function cpuPerMessage(start: NodeJS.CpuUsage, total: number): string {
  const { user, system } = process.cpuUsage(start);
  return `CPU ${((user + system) / total).toFixed(1)} µs/msg`;
}

function measured(name: string, total: number, elapsedMs: number, cpu: string, latencies: Float64Array): Measurement {
  return {
    name,
    detail: cpu,
    rate: total / (elapsedMs / 1000),
    unit: 'msg/s',
    p50Micros: percentileMicros(latencies, 50),
    p99Micros: percentileMicros(latencies, 99),
  };
}

async function rawKafkajs(brokers: string[], total: number): Promise<Measurement> {
  const kafka = new Kafka({ clientId: 'bench-raw', brokers, logLevel: logLevel.NOTHING });
  const topic = `bench.raw.${randomUUID().slice(0, 8)}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const keys = warmUpKeys();
  const warmUp = collector(keys.length);
  let received = warmUp;
  const consumer = kafka.consumer({ groupId: `${topic}.group`, maxWaitTimeInMs: 10 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch, resolveOffset }) => {
      for (const message of batch.messages) {
        received.got(JSON.parse(message.value?.toString() ?? '{}') as Stamp);
        resolveOffset(message.offset);
      }
    },
  });
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  await producer.send({
    topic,
    acks: -1,
    messages: keys.map((key, n) => ({
      key,
      partition: partitionFor(key, PARTITIONS),
      value: JSON.stringify({ n, sentAt: performance.now() }),
    })),
  });
  await warmUp.done;
  received = collector(total);
  // kafkajs at its best: messages batched 500 to a request, the requests in flight together.
  const t0 = performance.now();
  const cpuAtStart = process.cpuUsage();
  const sends: Promise<unknown>[] = [];
  for (let first = 0; first < total; first += BATCH) {
    const messages = Array.from({ length: Math.min(BATCH, total - first) }, (_, i) => {
      const n = first + i;
      const key = `actor-${n % ACTORS}`;
      return { key, partition: partitionFor(key, PARTITIONS), value: JSON.stringify({ n, sentAt: performance.now() }) };
    });
    sends.push(producer.send({ topic, acks: -1, messages }));
  }
  await Promise.all(sends);
  await received.done;
  const elapsed = performance.now() - t0;
  const cpu = cpuPerMessage(cpuAtStart, total);
  await producer.disconnect();
  await consumer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  return measured('raw kafkajs produce → consume', total, elapsed, cpu, received.latencies);
}

async function troupeActors(brokers: string[], total: number): Promise<Measurement> {
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const keys = warmUpKeys();
  const warmUp = collector(keys.length);
  let received = warmUp;
  const counter = defineActor<number, Stamp, { n: number }, void>({
    type: `${prefix}-counter`,
    snapshotEvery: 1_000,
    initialState: () => 0,
    receive(ctx, stamp) {
      ctx.emit({ n: stamp.n });
      received.got(stamp);
    },
    apply: (count) => count + 1,
  });
  const dir = mkdtempSync(join(tmpdir(), 'troupe-bench-kafka-'));
  const transport = await openTransport({ kind: 'kafka', brokers, logLevel: 'nothing' });
  const store = await openStore({ kind: 'embedded', path: join(dir, 'state.db') });
  const system = await ActorSystem.start({ transport, store, actors: [counter], partitions: PARTITIONS, groupId: prefix });
  const client = new ActorClient(transport);
  await Promise.all(keys.map((key, n) => client.tell(counter, key, { n, sentAt: performance.now() })));
  await warmUp.done;
  const topic = actorTopic(counter.type);
  const records = () => Promise.all(Array.from({ length: PARTITIONS }, (_, partition) => transport.endOffset(topic, partition)));
  const recordsBefore = await records();
  received = collector(total);
  const t0 = performance.now();
  const cpuAtStart = process.cpuUsage();
  const sends: Promise<void>[] = [];
  for (let n = 0; n < total; n += 1) sends.push(client.tell(counter, `actor-${n % ACTORS}`, { n, sentAt: performance.now() }));
  await Promise.all(sends);
  await received.done;
  const elapsed = performance.now() - t0;
  const cpu = cpuPerMessage(cpuAtStart, total);
  const packed = (await records()).reduce((sum, end, partition) => sum + end - recordsBefore[partition]!, 0);
  await client.close();
  await system.stop();
  await transport.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  await deleteTopics(brokers, [topic]);
  const detail = `${cpu}; ${packed.toLocaleString('en-US')} Kafka records (packs)`;
  return measured(
    'troupe actors on Kafka (durable turns in SQLite; messages packed per partition)',
    total,
    elapsed,
    detail,
    received.latencies,
  );
}

/** The run of median rate, its detail followed by every run's rate. */
function medianRun(runs: readonly Measurement[]): Measurement {
  const sorted = [...runs].sort((a, b) => a.rate - b.rate);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  if (runs.length === 1) return median;
  const rates = runs.map((run) => Math.round(run.rate).toLocaleString('en-US')).join(', ');
  return { ...median, detail: `${median.detail}; median of ${runs.length} runs: ${rates} msg/s` };
}

/** Runs both at `total` messages against the brokers, taking turns `rounds` times. */
export async function kafkaPath(brokers: string[], total: number, rounds: number): Promise<Comparison[]> {
  const baselines: Measurement[] = [];
  const ours: Measurement[] = [];
  for (let round = 0; round < rounds; round += 1) {
    baselines.push(await rawKafkajs(brokers, total));
    ours.push(await troupeActors(brokers, total));
  }
  return [{ benchmark: 'Kafka path, end to end', size: total, ours: medianRun(ours), baseline: medianRun(baselines) }];
}
