/** PoolTopics on Kafka's admin API (kafkajs), with one admin connection opened on first use. */
import { Kafka, logLevel, type Admin, type LogEntry } from 'kafkajs';
import { OperatorError, OperatorErrorCode, checkOption, isPositiveInteger } from '../errors.js';
import { silentLogger, type Logger } from '../kube/log.js';
import type { PoolTopics, TopicChange } from './topics.js';

export interface KafkaPoolTopicsOptions {
  brokers: string[];
  /** Default `troupe-operator`. */
  clientId: string;
  /** Replicas of each partition; -1 (default) takes the broker's default.replication.factor. */
  replicationFactor: number;
  /** Admin requests fail after this long (default 10 s). */
  requestTimeoutMs: number;
  log: Logger;
}

export const KAFKA_POOL_TOPICS_DEFAULTS = {
  clientId: 'troupe-operator',
  replicationFactor: -1,
  requestTimeoutMs: 10_000,
  log: silentLogger,
} as const satisfies Partial<KafkaPoolTopicsOptions>;

/**
 * @example
 * const topics = new KafkaPoolTopics({ brokers: ['kafka:9092'] });
 * await topics.ensure('troupe.pool.acme.developers', 8);   // 'created'
 */
export class KafkaPoolTopics implements PoolTopics {
  readonly options: KafkaPoolTopicsOptions;
  private readonly kafka: Kafka;
  private admin: Promise<Admin> | undefined;
  /** Partitions each topic is known to have, so that a reconcile that changes nothing asks Kafka nothing. */
  private readonly known = new Map<string, number>();

  constructor(options: Pick<KafkaPoolTopicsOptions, 'brokers'> & Partial<KafkaPoolTopicsOptions>) {
    this.options = { ...KAFKA_POOL_TOPICS_DEFAULTS, ...options };
    validate(this.options);
    const log = this.options.log.with({ component: 'kafka' });
    this.kafka = new Kafka({
      clientId: this.options.clientId,
      brokers: this.options.brokers,
      requestTimeout: this.options.requestTimeoutMs,
      retry: { retries: 2 },
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) =>
        (entry.level === logLevel.ERROR ? log.error : log.warn)(entry.log.message, { kafka: entry.namespace }),
    });
  }

  async ensure(topic: string, partitions: number): Promise<TopicChange> {
    if ((this.known.get(topic) ?? 0) >= partitions) return 'unchanged';
    try {
      const admin = await this.connect();
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: partitions, replicationFactor: this.options.replicationFactor }],
        waitForLeaders: true,
      });
      if (created) {
        this.known.set(topic, partitions);
        return 'created';
      }
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const existing = metadata.topics[0]?.partitions.length ?? 0;
      if (existing >= partitions) {
        this.known.set(topic, existing);
        return 'unchanged';
      }
      await admin.createPartitions({ topicPartitions: [{ topic, count: partitions }] });
      this.known.set(topic, partitions);
      return 'grown';
    } catch (error) {
      throw new OperatorError(OperatorErrorCode.KafkaUnavailable, `topic ${topic}: ${(error as Error).message}`, {
        retriable: true,
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    if (admin !== undefined) await (await admin.catch(() => undefined))?.disconnect();
  }

  private connect(): Promise<Admin> {
    if (this.admin === undefined) {
      const admin = this.kafka.admin();
      const connecting = admin.connect().then(() => admin);
      this.admin = connecting;
      connecting.catch(() => {
        if (this.admin === connecting) this.admin = undefined;
      });
    }
    return this.admin;
  }
}

function validate({ brokers, replicationFactor, requestTimeoutMs }: KafkaPoolTopicsOptions): void {
  const component = 'KafkaPoolTopics';
  checkOption(
    brokers.length > 0 && brokers.every((broker) => /^[^\s:]+:\d+$/.test(broker)),
    component,
    'brokers',
    'must list host:port entries',
    brokers,
  );
  checkOption(
    replicationFactor === -1 || isPositiveInteger(replicationFactor),
    component,
    'replicationFactor',
    'must be -1 or a positive integer',
    replicationFactor,
  );
  checkOption(isPositiveInteger(requestTimeoutMs), component, 'requestTimeoutMs', 'must be a positive integer', requestTimeoutMs);
}
