/**
 * Failover time: two runtime nodes share an actor topic of P partitions on Kafka (state in
 * Cassandra), messages stream to one actor on every partition, one node is killed with SIGKILL,
 * and the clock runs until the survivor has taken a turn on each partition the killed node
 * owned. The full run does it three times in a row (a new member joins before each further
 * kill) and counts the median. The nodes are the failover tests' own program
 * (runtime/src/actors/failover-node.ts) in child processes. The baseline is the same
 * experiment with raw kafkajs consumer-group members and the same session, heartbeat and
 * rebalance timeouts: what Kafka's group protocol alone costs, since no member can take over
 * before the coordinator gives up on the dead one (the session timeout). Both run against the
 * harness's broker and Cassandra.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CassandraEndpoint } from '@troupe/harness';
import { ActorClient, actorTopic, openTransport, partitionFor, type StoreConfig, type TransportConfig } from '@troupe/runtime';
import { eventually, FAILOVER_NODE, failoverActors, startChild, type ChildProgram } from '@troupe/runtime/testing';
import { Kafka, logLevel } from 'kafkajs';
import { percentileMicros, type Comparison, type Measurement } from '../measure.js';
import type { KafkajsNodePlan } from './failover-kafkajs-node.js';
import { deleteTopics } from './kafka-topics.js';

const KAFKAJS_NODE = fileURLToPath(new URL('./failover-kafkajs-node.ts', import.meta.url));
/** The failover tests' timeouts: a dead member leaves the group 6 s after its last heartbeat. */
const TIMEOUTS = { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, rebalanceTimeoutMs: 10_000, maxWaitTimeMs: 250 } as const;
const KEYSPACE = 'troupe_bench_failover';
/** Messages sent per second, spread over the partitions: enough to see each resume, light enough for two nodes on two cores. */
const MESSAGES_PER_SECOND = 400;
/** A partition's turns within this window name its owner. */
const OWNER_WINDOW_MS = 1_500;
const SETTLE_TIMEOUT_MS = 120_000;

/** One side of the comparison: how to start a group member and feed the partitions. */
interface Group {
  name: string;
  /** A member in a child process: it prints STARTED, then `TURN <partition> <unix ms>` per message. */
  start(nodeId: string): ChildProgram;
  send(partition: number, n: number): Promise<void>;
  close(): Promise<void>;
}

interface Member {
  program: ChildProgram;
  /** Per partition, when the member last took a turn on it. */
  turns: Map<number, number>;
}

/**
 * Waits until the victim and the survivor own every partition between them, kills the victim,
 * and returns, per partition it owned, ms from SIGKILL to the survivor's first turn on it.
 */
async function killAndResume(name: string, victim: Member, survivor: Member, partitions: number, healthy: () => void): Promise<number[]> {
  await eventually(
    async () => {
      healthy();
      const since = Date.now() - OWNER_WINDOW_MS;
      const owns = (member: Member, p: number) => (member.turns.get(p) ?? 0) > since;
      const all = Array.from({ length: partitions }, (_, p) => p);
      const unowned = all.filter((p) => !owns(victim, p) && !owns(survivor, p));
      const shared = all.filter((p) => owns(victim, p) && owns(survivor, p));
      const idle = [victim, survivor].filter((member) => !all.some((p) => owns(member, p))).length;
      if (unowned.length > 0 || shared.length > 0 || idle > 0) {
        throw new Error(
          `${name}: the two members did not settle on owning the ${partitions} partitions between them ` +
            `(in the last ${OWNER_WINDOW_MS} ms: ${unowned.length} had turns on neither, ${shared.length} on both, ${idle} member(s) took none)`,
        );
      }
    },
    SETTLE_TIMEOUT_MS,
    100,
  );
  const since = Date.now() - OWNER_WINDOW_MS;
  const moved = [...victim.turns].filter(([, at]) => at > since).map(([partition]) => partition);
  const resumed = new Map<number, number>();
  const killedAt = Date.now();
  survivor.program.onLine((line) => {
    const [word, partition, at] = line.split(' ');
    const p = Number(partition);
    if (word === 'TURN' && moved.includes(p) && Number(at) >= killedAt && !resumed.has(p)) resumed.set(p, Number(at) - killedAt);
  });
  await victim.program.kill();
  await eventually(
    async () => {
      healthy();
      if (resumed.size < moved.length) {
        throw new Error(`${name}: the survivor resumed ${resumed.size} of the ${moved.length} partitions of the killed member`);
      }
    },
    SETTLE_TIMEOUT_MS,
    50,
  );
  return [...resumed.values()];
}

/**
 * `trials` failovers in a row under a steady stream of messages: two members, kill the older,
 * then each further trial adds a member and kills the older of the two again. Returns each
 * trial's resume times.
 */
async function measure(group: Group, partitions: number, trials: number): Promise<number[][]> {
  const members: Member[] = [];
  const join = async (): Promise<Member> => {
    const program = group.start(`member-${members.length}`);
    const member = { program, turns: new Map<number, number>() };
    program.onLine((line) => {
      const [word, partition, at] = line.split(' ');
      if (word === 'TURN') member.turns.set(Number(partition), Number(at));
    });
    members.push(member);
    await program.waitFor('STARTED', SETTLE_TIMEOUT_MS);
    return member;
  };
  let sending = true;
  let sendError: unknown;
  const healthy = () => {
    if (sendError !== undefined) throw sendError;
  };
  let traffic: Promise<void> | undefined;
  try {
    // Members join one at a time, as they would after a kill, and messages flow once two run.
    let older = await join();
    let younger = await join();
    traffic = (async () => {
      const roundMs = Math.max(20, (partitions * 1000) / MESSAGES_PER_SECOND);
      for (let n = 0; sending;) {
        for (let partition = 0; partition < partitions; partition += 1) {
          group.send(partition, n++).catch((error: Error) => {
            sendError ??= new Error(`${group.name}: a send to partition ${partition} failed: ${error.message}`, { cause: error });
          });
        }
        await sleep(roundMs);
      }
    })();
    const resumes: number[][] = [];
    for (let trial = 0; trial < trials; trial += 1) {
      if (trial > 0) [older, younger] = [younger, await join()];
      resumes.push(await killAndResume(group.name, older, younger, partitions, healthy));
    }
    return resumes;
  } finally {
    sending = false;
    await traffic;
    await Promise.all(members.map((member) => member.program.kill()));
  }
}

/**
 * Creates topics and waits until every partition's leader serves it. kafkajs's own wait
 * (`waitForLeaders`) gives up when a busy broker's metadata does not know a new topic yet
 * (UNKNOWN_TOPIC_OR_PARTITION), and so does the runtime's createTopic, which uses it: made here
 * first, a node finds its topics there and only reads their partition count. A leader in the
 * metadata may not host its partition yet, and then refuses sends to it; reading every
 * partition's offsets asks each leader itself.
 */
async function createTopics(brokers: string[], topics: string[], partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: 'bench-failover-admin', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions })) });
    await eventually(async () => {
      const metadata = await admin.fetchTopicMetadata({ topics });
      const led = metadata.topics.flatMap((topic) => topic.partitions).filter((partition) => partition.leader >= 0).length;
      if (led < topics.length * partitions)
        throw new Error(`topics ${topics.join(', ')}: ${led} of ${topics.length * partitions} partitions have a leader`);
      await Promise.all(topics.map((topic) => admin.fetchTopicOffsets(topic)));
    }, SETTLE_TIMEOUT_MS);
  } finally {
    await admin.disconnect();
  }
}

/** The runtime's failover nodes: counters journaled in Cassandra, one counter per partition. */
async function runtimeGroup(brokers: string[], cassandra: CassandraEndpoint, partitions: number): Promise<Group> {
  const prefix = `bench-failover-${randomUUID().slice(0, 8)}`;
  const transport: TransportConfig = { kind: 'kafka', brokers, ...TIMEOUTS, logLevel: 'error' };
  const store: StoreConfig = { kind: 'cassandra', ...cassandra, keyspace: KEYSPACE };
  const { counter, sink } = failoverActors(prefix);
  // One counter per partition: the first ids that hash to each.
  const keys = new Map<number, string>();
  for (let i = 0; keys.size < partitions; i += 1) {
    const partition = partitionFor(`c${i}`, partitions);
    if (!keys.has(partition)) keys.set(partition, `c${i}`);
  }
  await createTopics(brokers, [actorTopic(counter.type), actorTopic(sink.type)], partitions);
  const producer = await openTransport(transport);
  const client = new ActorClient(producer);
  return {
    name: 'troupe runtime nodes (Kafka transport, Cassandra store)',
    start: (nodeId) => startChild(FAILOVER_NODE, { transport, store, prefix, partitions, groupId: prefix, nodeId: `${prefix}-${nodeId}` }),
    send: (partition, n) => client.tell(counter, keys.get(partition) as string, { type: 'add', n }, { id: `${prefix}/${n}` }),
    async close() {
      await client.close();
      await producer.close();
      await deleteTopics(brokers, [actorTopic(counter.type), actorTopic(sink.type)]);
    },
  };
}

/** Raw kafkajs group members on a topic of their own, fed straight by a kafkajs producer. */
async function kafkajsGroup(brokers: string[], partitions: number): Promise<Group> {
  const topic = `bench.failover.raw.${randomUUID().slice(0, 8)}`;
  await createTopics(brokers, [topic], partitions);
  const producer = new Kafka({ clientId: 'bench-failover', brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  return {
    name: 'raw kafkajs consumer group (same timeouts)',
    start: (nodeId) => startChild(KAFKAJS_NODE, { brokers, topic, groupId: topic, nodeId, ...TIMEOUTS } satisfies KafkajsNodePlan),
    send: async (partition, n) => void (await producer.send({ topic, acks: -1, messages: [{ partition, value: String(n) }] })),
    async close() {
      await producer.disconnect();
      await deleteTopics(brokers, [topic]);
    },
  };
}

/** The median trial's time until every moved partition resumed; p50/p99 over every moved partition of every trial. */
function measured(group: Group, trials: number[][], partitions: number): Measurement {
  const lasts = trials.map((resumes) => Math.max(...resumes) / 1000);
  const sorted = [...lasts].sort((a, b) => a - b);
  const latencies = Float64Array.from(trials.flat());
  return {
    name: group.name,
    detail:
      `${trials.length} kill${trials.length === 1 ? '' : 's'} moving ${trials.map((resumes) => resumes.length).join(', ')} of ${partitions} partitions; ` +
      `all resumed after ${lasts.map((seconds) => `${seconds.toFixed(2)} s`).join(', ')}`,
    rate: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    unit: 's',
    lowerIsBetter: true,
    p50Micros: percentileMicros(latencies, 50),
    p99Micros: percentileMicros(latencies, 99),
  };
}

/**
 * SIGKILL → every moved partition at work again on the survivor, ours beside raw kafkajs, with
 * P partitions; `trials` kills in a row on each side (the median counts).
 */
export async function failover(brokers: string[], cassandra: CassandraEndpoint, partitions: number, trials: number): Promise<Comparison[]> {
  const results: Measurement[] = [];
  for (const open of [() => kafkajsGroup(brokers, partitions), () => runtimeGroup(brokers, cassandra, partitions)]) {
    const group = await open();
    try {
      results.push(measured(group, await measure(group, partitions, trials), partitions));
    } finally {
      await group.close();
    }
  }
  const [baseline, ours] = results as [Measurement, Measurement];
  return [
    {
      benchmark: `failover: SIGKILL of a node → its partitions at work on the survivor (median kill; p50/p99 per partition; session timeout ${TIMEOUTS.sessionTimeoutMs / 1000} s)`,
      size: partitions,
      ours,
      baseline,
    },
  ];
}
