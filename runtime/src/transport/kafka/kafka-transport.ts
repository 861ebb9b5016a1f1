/**
 * The Kafka Transport, on kafkajs: topics created through the admin client with a fixed
 * partition count, records appended by one idempotent producer that group-commits concurrent
 * sends into one request, and one kafkajs consumer per subscription (consumer-group.ts), whose
 * group generation is the epoch of its partitions.
 */
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';

import { Kafka, Partitioners, logLevel as KafkaLogLevel, type Admin, type LogEntry, type Message, type Producer } from 'kafkajs';

import { RuntimeError, RuntimeErrorCode, TransportError, toError } from '../../errors.js';
import { partitionFor } from '../partitioner.js';
import { unencodable } from '../refusals.js';
import type { ProducerRecord, SubscribeOptions, Subscription, Transport } from '../transport.js';
import { GroupMember, type MemberHost, type ReportLevel } from './consumer-group.js';
import { isRetriable, isUnknownTopic, toTransportError } from './kafka-error.js';
import { toMessage } from './record-codec.js';

/** How long a topic that another client is creating may take to get leaders for its partitions. */
const TOPIC_READY_MS = 30_000;

/** Options of {@link KafkaTransport.open}. */
export interface KafkaTransportOptions {
  /** `host:port` of one or more brokers to bootstrap from. Required. */
  brokers: readonly string[];
  /** Names this process to the brokers (default `'troupe'`). */
  clientId?: string;
  /** Replicas of each partition of a topic made by createTopic (default 1). */
  replicationFactor?: number;
  /**
   * How long the group waits for a member that stopped heartbeating (a crashed process) before
   * its partitions move, in ms (default 30,000; brokers accept 6,000 and up unless configured).
   */
  sessionTimeoutMs?: number;
  /** How long a rebalance waits for members to end their batches and rejoin before dropping them, in ms (default 60,000). */
  rebalanceTimeoutMs?: number;
  /**
   * How often members heartbeat, in ms; below `sessionTimeoutMs` (default 1,000). It also
   * bounds how long a new assignment waits for its epoch and a busy member to notice a rebalance.
   */
  heartbeatIntervalMs?: number;
  /** How long a fetch waits for records; bounds how long an idle member takes to notice a rebalance, in ms (default 1,000). */
  maxWaitTimeMs?: number;
  /** How many partitions' batches a subscription hands to `eachBatch` at once (default 64). */
  partitionsConsumedConcurrently?: number;
  /** The `maxBatchSize` of subscriptions that do not set one (default 500). */
  maxBatchSize?: number;
  /** The pause before records whose handler threw (or resolved none) are delivered again, in ms (default 500). */
  retryDelayMs?: number;
  /**
   * How long a send waits for others to join its produce request, in ms (default 0: sends made
   * in the same turn of the event loop, and those made while a request is under way, go together).
   */
  lingerMs?: number;
  /** Most bytes of one partition's records in one produce request (default 1,000,000, under the broker's default `message.max.bytes`). */
  maxBatchBytes?: number;
  /**
   * Most bytes of records in one produce request, over all partitions (default 131,072). A
   * burst of sends goes out as a train of requests of this size rather than one large one, so
   * the broker appends, and consumers fetch, the first records while later ones are encoded.
   */
  maxRequestBytes?: number;
  /** Which messages, kafkajs's own and this transport's, reach `log` (default `'warn'`). */
  logLevel?: 'nothing' | 'error' | 'warn' | 'info' | 'debug';
  /** Receives kafkajs's log and this transport's reports (default: console.warn). */
  log?: (message: string, error?: Error) => void;
}

const DEFAULTS = {
  clientId: 'troupe',
  replicationFactor: 1,
  sessionTimeoutMs: 30_000,
  rebalanceTimeoutMs: 60_000,
  heartbeatIntervalMs: 1_000,
  maxWaitTimeMs: 1_000,
  partitionsConsumedConcurrently: 64,
  maxBatchSize: 500,
  retryDelayMs: 500,
  lingerMs: 0,
  maxBatchBytes: 1_000_000,
  maxRequestBytes: 131_072,
  logLevel: 'warn',
  log: (message: string, error?: Error) => console.warn(`troupe kafka transport: ${message}`, ...(error ? [error] : [])),
} satisfies Required<Omit<KafkaTransportOptions, 'brokers'>>;

type ResolvedOptions = Required<KafkaTransportOptions>;

/** kafkajs's levels, which this transport's reports share. */
const LOG_LEVELS = {
  nothing: KafkaLogLevel.NOTHING,
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG,
} as const;

/** Kafka's topic-name rule, also applied to group ids. */
const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

interface PendingSend {
  /** Records of the send not yet answered for. */
  remaining: number;
  failure?: TransportError;
  resolve(): void;
  reject(error: Error): void;
}

interface QueuedRecord {
  topic: string;
  message: Message;
  bytes: number;
  send: PendingSend;
}

/**
 * A Transport on Kafka. Partition counts are fixed at creation and cached, so a record's
 * partition is `partitionFor(key, count)` unless it names one. Every send is acknowledged by all
 * in-sync replicas (acks -1) and written by an idempotent producer, so kafkajs's retries neither
 * duplicate nor reorder records; one produce request is in flight at a time, carrying every send
 * made while the previous one was under way.
 *
 * @example
 * const transport = await KafkaTransport.open({ brokers: ['kafka-0.kafka:9092'] });
 * await transport.createTopic('troupe.commands', 12);
 * await transport.send([{ topic: 'troupe.commands', key: 'acme/storefront', value }]);
 */
export class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  readonly #options: ResolvedOptions;
  readonly #admin: Admin;
  /**
   * Looks topics up (fetchTopicMetadata) on a client of its own: kafkajs replaces a client's
   * topic metadata with the answer for the topics looked up, and an offset read under way on the
   * same client would find its own topic gone.
   */
  readonly #lookups: Admin;
  readonly #producer: Producer;
  readonly #memberHost: MemberHost;
  readonly #partitionCounts = new Map<string, Promise<number>>();
  /** The counts of `#partitionCounts` that have resolved, for sends to read without waiting. */
  readonly #knownCounts = new Map<string, number>();
  readonly #members = new Set<GroupMember>();
  /** Reads of a topic's end offsets not sent yet, which calls made meanwhile share. */
  readonly #endOffsetReads = new Map<string, Promise<ReadonlyMap<number, number>>>();
  #queue: QueuedRecord[] = [];
  #flushing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Stays true while closing until the subscriptions are gone: their last batches may still send. */
  #acceptingSends = true;

  private constructor(options: KafkaTransportOptions) {
    this.#options = resolveOptions(options);
    const { clientId, brokers, logLevel } = this.#options;
    const kafka = new Kafka({
      clientId,
      brokers: [...brokers],
      logLevel: LOG_LEVELS[logLevel],
      logCreator: () => (entry) => this.#kafkaLog(entry),
    });
    this.#admin = kafka.admin();
    this.#lookups = kafka.admin();
    // Every record names its partition, so the partitioner only silences kafkajs's warning about its default.
    this.#producer = kafka.producer({
      idempotent: true,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const { sessionTimeoutMs, rebalanceTimeoutMs, heartbeatIntervalMs, maxWaitTimeMs, partitionsConsumedConcurrently, retryDelayMs } =
      this.#options;
    this.#memberHost = {
      kafka,
      admin: this.#admin,
      sessionTimeoutMs,
      rebalanceTimeoutMs,
      heartbeatIntervalMs,
      maxWaitTimeMs,
      partitionsConsumedConcurrently,
      retryDelayMs,
      report: (level, message, error) => this.#report(level, message, error),
    };
  }

  /** Validates the options and connects the admin client and the producer. */
  static async open(options: KafkaTransportOptions): Promise<KafkaTransport> {
    const transport = new KafkaTransport(options);
    await transport.#connect();
    return transport;
  }

  /**
   * Creates the topic, or checks that it exists with this partition count: a different count
   * fails, naming both, since every key's partition depends on it.
   */
  async createTopic(topic: string, partitions: number): Promise<void> {
    this.#assertOpen();
    checkName('topic', topic);
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new TransportError(
        RuntimeErrorCode.InvalidArgument,
        topic,
        undefined,
        `partition count must be a positive integer, got ${partitions}`,
      );
    }
    let created: boolean;
    try {
      created = await this.#admin.createTopics({
        topics: [{ topic, numPartitions: partitions, replicationFactor: this.#options.replicationFactor }],
        waitForLeaders: true,
      });
    } catch (error) {
      // A broker that has just started may answer the wait for leaders with metadata that does
      // not know the new topic yet; the topic is being created, so wait for it here instead.
      if (!isUnknownTopic(error)) throw toTransportError(error, topic, undefined, `create the topic with ${partitions} partitions`);
      created = false;
    }
    // Asked afresh, not from the cache, when the topic was already there: someone else made it,
    // perhaps a moment ago, so wait until its partitions have leaders as the creator did.
    const count = created ? partitions : await this.#awaitPartitionCount(topic);
    this.#partitionCounts.set(topic, Promise.resolve(count));
    this.#knownCounts.set(topic, count);
    if (count !== partitions)
      throw new TransportError(RuntimeErrorCode.InvalidArgument, topic, undefined, `exists with ${count} partitions, not ${partitions}`);
  }

  async partitionCount(topic: string): Promise<number> {
    this.#assertOpen();
    return this.#partitionCountOf(topic);
  }

  send(records: readonly ProducerRecord[]): Promise<void> {
    if (!this.#acceptingSends) return Promise.reject(this.#closedError());
    // Once every topic's partition count is known — the usual case — a send is queued without
    // waiting: sends are the hot path, and a pause here would only split their group commits.
    for (const record of records) {
      const known = this.#knownCounts.get(record.topic);
      if (known === undefined || (record.partition ?? 0) >= known) return this.#sendOnceCountsKnown(records);
    }
    return this.#enqueue(records);
  }

  /** Queues records whose topics' partition counts are known, checking and encoding every one first. */
  #enqueue(records: readonly ProducerRecord[]): Promise<void> {
    if (!this.#acceptingSends) return Promise.reject(this.#closedError());
    let queued: QueuedRecord[];
    let settle!: PendingSend;
    const sent = new Promise<void>((resolve, reject) => (settle = { remaining: records.length, resolve, reject }));
    try {
      // Every record is checked and encoded before any is queued, so a bad one fails the whole send.
      queued = records.map((record) => this.#encode(record, settle));
    } catch (error) {
      return Promise.reject(error);
    }
    if (queued.length === 0) return Promise.resolve();
    for (const record of queued) this.#queue.push(record);
    this.#flushing ??= this.#flush();
    return sent;
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.#assertOpen();
    checkName('groupId', options.groupId);
    if (!Array.isArray(options.topics) || options.topics.length === 0) throw invalidSubscribe('topics', 'must name at least one topic');
    // An unknown topic fails here, by name, rather than later inside a rebalance.
    await Promise.all(options.topics.map((topic) => this.#partitionCountOf(topic)));
    if (typeof options.eachBatch !== 'function') throw invalidSubscribe('eachBatch', 'must be a function');
    const start = options.start ?? 'earliest';
    if (start !== 'earliest' && start !== 'latest')
      throw invalidSubscribe('start', `must be 'earliest' or 'latest', got ${JSON.stringify(start)}`);
    const maxBatchSize = options.maxBatchSize ?? this.#options.maxBatchSize;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1)
      throw invalidSubscribe('maxBatchSize', `must be a positive integer, got ${maxBatchSize}`);

    const member = await GroupMember.join({ ...options, start, maxBatchSize }, this.#memberHost);
    if (this.#closing) {
      await member.close();
      throw this.#closedError();
    }
    this.#members.add(member);
    return {
      close: async () => {
        try {
          await member.close();
        } finally {
          this.#members.delete(member);
        }
      },
    };
  }

  async committedOffset(groupId: string, topic: string, partition: number): Promise<number | undefined> {
    this.#assertOpen();
    checkName('groupId', groupId);
    // An unknown topic or partition is a mistake to report, not a group that committed nothing.
    checkPartition(topic, partition, await this.#partitionCountWith(topic, partition));
    let offsets;
    try {
      offsets = await this.#admin.fetchOffsets({ groupId, topics: [topic] });
    } catch (error) {
      throw toTransportError(error, topic, partition, `read the committed offset of group ${groupId}`);
    }
    const offset = Number(
      offsets.find((answer) => answer.topic === topic)?.partitions.find((answer) => answer.partition === partition)?.offset ?? -1,
    );
    // Kafka answers -1 for a partition the group never committed.
    return offset < 0 ? undefined : offset;
  }

  async endOffset(topic: string, partition: number): Promise<number> {
    this.#assertOpen();
    checkPartition(topic, partition, await this.#partitionCountWith(topic, partition));
    const end = (await this.#endOffsetsOf(topic)).get(partition);
    if (end === undefined)
      throw new TransportError(RuntimeErrorCode.Unavailable, topic, partition, 'the broker left the partition out of its offsets', {
        retriable: true,
      });
    return end;
  }

  /** Ends every subscription (in-flight batches finish and commit, members leave), flushes sends, disconnects. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #connect(): Promise<void> {
    try {
      await Promise.all([this.#admin.connect(), this.#lookups.connect(), this.#producer.connect()]);
    } catch (error) {
      // The connect failure is the one to report; a failing disconnect after it adds nothing.
      await Promise.allSettled([this.#admin.disconnect(), this.#lookups.disconnect(), this.#producer.disconnect()]);
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `cannot connect to the Kafka brokers ${this.#options.brokers.join(', ')}: ${toError(error).message}`,
        {
          retriable: isRetriable(error),
          cause: error,
        },
      );
    }
  }

  async #sendOnceCountsKnown(records: readonly ProducerRecord[]): Promise<void> {
    await Promise.all(records.map((record) => this.#partitionCountWith(record.topic, record.partition)));
    return this.#enqueue(records);
  }

  #encode(record: ProducerRecord, send: PendingSend): QueuedRecord {
    const count = this.#knownCounts.get(record.topic)!;
    const partition = record.partition ?? partitionFor(record.key, count);
    checkPartition(record.topic, partition, count);
    try {
      const { message, bytes } = toMessage(record, partition);
      return { topic: record.topic, message, bytes, send };
    } catch (cause) {
      throw unencodable(record, partition, cause);
    }
  }

  /**
   * The end offsets of every partition of `topic`, read once for all the calls made in the same
   * turn of the event loop (a metrics scrape, a pool counting its backlog): each partition's call
   * would fetch them all. A read already sent is not shared, so an answer never predates its call.
   */
  #endOffsetsOf(topic: string): Promise<ReadonlyMap<number, number>> {
    let read = this.#endOffsetReads.get(topic);
    if (read === undefined) {
      read = setImmediate().then(() => {
        this.#endOffsetReads.delete(topic);
        return this.#readEndOffsets(topic);
      });
      this.#endOffsetReads.set(topic, read);
    }
    return read;
  }

  async #readEndOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    let offsets;
    try {
      offsets = await this.#admin.fetchTopicOffsets(topic);
    } catch (error) {
      // kafkajs 2.2.4 fails to destructure an answer without the topic, which it makes when its
      // metadata lacked the topic during the read (a refresh under way, a broker just restarted):
      // a moment's unavailability, not a fault of the call.
      if (error instanceof TypeError)
        throw new TransportError(
          RuntimeErrorCode.Unavailable,
          topic,
          undefined,
          'cannot read the end offsets: kafkajs answered without the topic',
          { retriable: true, cause: error },
        );
      throw toTransportError(error, topic, undefined, 'read the end offsets');
    }
    return new Map(offsets.map((answer) => [answer.partition, Number(answer.high)]));
  }

  /**
   * The partition count of `topic`, read again when `partition` lies past the count known:
   * topics grow (the operator adds partitions to a pool's topic as the pool scales up).
   */
  async #partitionCountWith(topic: string, partition: number | undefined): Promise<number> {
    const known = this.#partitionCountOf(topic);
    const count = await known;
    if (partition === undefined || partition < count) return count;
    // Calls that found the same count stale share one lookup.
    if (this.#partitionCounts.get(topic) === known) this.#partitionCounts.delete(topic);
    return this.#partitionCountOf(topic);
  }

  #partitionCountOf(topic: string): Promise<number> {
    checkName('topic', topic);
    let count = this.#partitionCounts.get(topic);
    if (!count) {
      count = this.#fetchPartitionCount(topic);
      this.#partitionCounts.set(topic, count);
      count.then(
        (known) => this.#knownCounts.set(topic, known),
        // A failed lookup is not cached: the topic may be created next.
        () => this.#partitionCounts.delete(topic),
      );
    }
    return count;
  }

  async #awaitPartitionCount(topic: string): Promise<number> {
    const deadline = Date.now() + TOPIC_READY_MS;
    for (;;) {
      try {
        const metadata = await this.#lookups.fetchTopicMetadata({ topics: [topic] });
        const partitions = metadata.topics.find((answer) => answer.name === topic)?.partitions ?? [];
        if (partitions.length > 0 && partitions.every((partition) => partition.leader >= 0)) return partitions.length;
      } catch (error) {
        if (Date.now() > deadline) throw toTransportError(error, topic, undefined, 'read its partitions');
      }
      if (Date.now() > deadline)
        throw new TransportError(
          RuntimeErrorCode.Unavailable,
          topic,
          undefined,
          `its partitions had no leaders within ${TOPIC_READY_MS} ms`,
          { retriable: true },
        );
      await sleep(100);
    }
  }

  async #fetchPartitionCount(topic: string): Promise<number> {
    let metadata;
    try {
      metadata = await this.#lookups.fetchTopicMetadata({ topics: [topic] });
    } catch (error) {
      throw toTransportError(error, topic, undefined, 'read its partitions');
    }
    const count = metadata.topics.find((answer) => answer.name === topic)?.partitions.length ?? 0;
    if (count === 0)
      throw new TransportError(RuntimeErrorCode.InvalidOptions, topic, undefined, 'no such topic; create it with createTopic first');
    return count;
  }

  /** Sends what is queued, then whatever arrived meanwhile, one request at a time, until nothing is left. */
  async #flush(): Promise<void> {
    await (this.#options.lingerMs > 0 ? sleep(this.#options.lingerMs) : setImmediate());
    while (this.#queue.length > 0) {
      const request = this.#takeRequest();
      const byTopic = new Map<string, Message[]>();
      for (const { topic, message } of request) {
        const messages = byTopic.get(topic);
        if (messages) messages.push(message);
        else byTopic.set(topic, [message]);
      }
      let failure: Error | undefined;
      try {
        await this.#producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      } catch (error) {
        failure = toError(error);
      }
      for (const { topic, message, send } of request) {
        if (failure) send.failure ??= toTransportError(failure, topic, message.partition, 'send records');
        send.remaining -= 1;
        if (send.remaining > 0) continue;
        if (send.failure) send.reject(send.failure);
        else send.resolve();
      }
    }
    // Cleared in the same synchronous step as the emptiness check, so no send can slip between.
    this.#flushing = undefined;
  }

  /**
   * The longest head of the queue (but at least one record) in which no partition gets more than
   * `maxBatchBytes`, and all of them together no more than `maxRequestBytes`: Kafka refuses a
   * partition's record batch over `message.max.bytes`, and a head keeps each partition's records
   * in send order across requests.
   */
  #takeRequest(): QueuedRecord[] {
    const { maxRequestBytes, maxBatchBytes } = this.#options;
    // A request within maxBatchBytes holds no partition's records over it: counted only when it could.
    const perPartition = maxRequestBytes > maxBatchBytes ? new Map<string, number>() : undefined;
    let total = 0;
    let end = 0;
    for (; end < this.#queue.length; end++) {
      const { topic, message, bytes: size } = this.#queue[end]!;
      const key = perPartition ? `${topic}\0${message.partition}` : undefined;
      const held = key === undefined ? 0 : (perPartition!.get(key) ?? 0);
      if (end > 0 && (total + size > maxRequestBytes || held + size > maxBatchBytes)) break;
      if (key !== undefined) perPartition!.set(key, held + size);
      total += size;
    }
    return this.#queue.splice(0, end);
  }

  async #close(): Promise<void> {
    const closed = await Promise.allSettled([...this.#members].map((member) => member.close()));
    this.#members.clear();
    this.#acceptingSends = false;
    await this.#flushing;
    await Promise.all([this.#producer.disconnect(), this.#admin.disconnect(), this.#lookups.disconnect()]);
    const failed = closed.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  #kafkaLog({ namespace, log }: LogEntry): void {
    // kafkajs logs every error answer of the broker, and also throws it to the code that sent
    // the request, which handles it or reports it; logging it here too would report routine
    // answers (a rebalance under way, a topic that exists) as errors.
    if (namespace === 'Connection' && log.message.startsWith('Response ')) return;
    const { timestamp: _timestamp, logger: _logger, message, stack: _stack, ...context } = log;
    const details = Object.keys(context).length > 0 ? ` ${JSON.stringify(context)}` : '';
    this.#options.log(`kafkajs ${namespace}: ${message}${details}`);
  }

  #report(level: ReportLevel, message: string, error?: Error): void {
    if (LOG_LEVELS[level] <= LOG_LEVELS[this.#options.logLevel]) this.#options.log(message, error);
  }

  #assertOpen(): void {
    if (this.#closing) throw this.#closedError();
  }

  #closedError(): RuntimeError {
    return new RuntimeError(RuntimeErrorCode.Closed, `the Kafka transport on ${this.#options.brokers.join(', ')} is closed`);
  }
}

function resolveOptions(options: KafkaTransportOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw invalidOption('options', 'must be an object');
  for (const key of Object.keys(options)) {
    if (key !== 'brokers' && !(key in DEFAULTS)) throw invalidOption(key, 'is not an option of KafkaTransport');
  }
  // Explicit undefineds (e.g. from an optional config field) mean "the default", not "unset".
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<KafkaTransportOptions>;
  const resolved: ResolvedOptions = { ...DEFAULTS, brokers: [], ...given };
  if (
    !Array.isArray(resolved.brokers) ||
    resolved.brokers.length === 0 ||
    !resolved.brokers.every((broker) => typeof broker === 'string' && /^\S+:\d+$/.test(broker))
  ) {
    throw invalidOption('brokers', `is required: one or more 'host:port', got ${JSON.stringify(resolved.brokers)}`);
  }
  if (typeof resolved.clientId !== 'string' || resolved.clientId === '') throw invalidOption('clientId', 'must be a non-empty string');
  for (const key of [
    'replicationFactor',
    'sessionTimeoutMs',
    'rebalanceTimeoutMs',
    'heartbeatIntervalMs',
    'maxWaitTimeMs',
    'partitionsConsumedConcurrently',
    'maxBatchSize',
    'maxBatchBytes',
    'maxRequestBytes',
  ] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 1)
      throw invalidOption(key, `must be a positive integer, got ${JSON.stringify(resolved[key])}`);
  }
  if (resolved.heartbeatIntervalMs >= resolved.sessionTimeoutMs) {
    throw invalidOption(
      'heartbeatIntervalMs',
      `must be below sessionTimeoutMs (${resolved.sessionTimeoutMs}), got ${resolved.heartbeatIntervalMs}`,
    );
  }
  for (const key of ['retryDelayMs', 'lingerMs'] as const) {
    if (!Number.isFinite(resolved[key]) || resolved[key] < 0)
      throw invalidOption(key, `must be a non-negative number of ms, got ${JSON.stringify(resolved[key])}`);
  }
  if (!Object.hasOwn(LOG_LEVELS, resolved.logLevel)) {
    throw invalidOption('logLevel', `must be one of ${Object.keys(LOG_LEVELS).join(', ')}, got ${JSON.stringify(resolved.logLevel)}`);
  }
  if (typeof resolved.log !== 'function') throw invalidOption('log', 'must be a function');
  return resolved;
}

function invalidOption(key: string, problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `KafkaTransport option \`${key}\` ${problem}`);
}

function invalidSubscribe(key: keyof SubscribeOptions, problem: string): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `subscribe option \`${key}\` ${problem}`);
}

function checkName(key: 'topic' | 'groupId', name: string): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name === '.' || name === '..') {
    throw new RuntimeError(
      RuntimeErrorCode.InvalidOptions,
      `${key} ${JSON.stringify(name)} must be 1..249 of [a-zA-Z0-9._-], not '.' or '..'`,
    );
  }
}

function checkPartition(topic: string, partition: number, count: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
    throw new TransportError(
      RuntimeErrorCode.InvalidOptions,
      topic,
      partition,
      `no such partition; the topic has partitions 0..${count - 1}`,
    );
  }
}
