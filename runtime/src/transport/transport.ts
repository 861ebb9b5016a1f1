/**
 * The Transport contract: a partitioned, durable log with consumer groups. `embedded` (a file
 * log for one process) and `kafka` implement it, and one conformance suite runs against both.
 */

/** A record to append. Without `partition`, `partitionFor(key, count)` chooses it. */
export interface ProducerRecord {
  topic: string;
  key: string;
  value: Uint8Array;
  headers?: Readonly<Record<string, string>>;
  partition?: number;
}

/** A record as read back, with its place in the log. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  /** Position in the partition, from 0, one per record, never reused. */
  offset: number;
  key: string;
  value: Uint8Array;
  headers: Readonly<Record<string, string>>;
  /** When the record was appended, unix ms. */
  timestamp: number;
}

/** One partition's partition-ownership, as a consumer-group assignment gives it. */
export interface PartitionAssignment {
  topic: string;
  partition: number;
  /**
   * Grows with every assignment of the group (Kafka: the group generation) and across process
   * restarts, so stores can refuse writes from an owner that has since lost the partition.
   */
  epoch: number;
}

/** Records of one partition handed to `eachBatch`, in offset order. */
export interface PartitionBatch extends PartitionAssignment {
  records: readonly ConsumedRecord[];
  /**
   * Marks every record up to and including `offset` as processed. When the handler returns or
   * the partition is revoked, the group's committed offset moves past the last resolved one,
   * so unresolved records are delivered again to the partition's next owner.
   */
  resolveOffset(offset: number): void;
  /** Keeps the group membership alive during long batches. */
  heartbeat(): Promise<void>;
  /** Aborted when the partition is being revoked: finish or abandon in-flight work promptly. */
  signal: AbortSignal;
}

export interface SubscribeOptions {
  groupId: string;
  topics: readonly string[];
  /**
   * Handles one partition's records. Batches of one partition never overlap; batches of
   * different partitions may run concurrently. A throw leaves the unresolved records to be
   * delivered again after a pause.
   */
  eachBatch(batch: PartitionBatch): Promise<void>;
  /** Called after partitions are assigned to this member, before their first batch. */
  onAssigned?(assignments: readonly PartitionAssignment[]): Promise<void>;
  /** Called when partitions leave this member, after their in-flight batches ended. */
  onRevoked?(assignments: readonly PartitionAssignment[]): Promise<void>;
  /**
   * Where a group with no committed offset starts: the first record (default) or the end, as it
   * stood when `subscribe` resolved: every record appended after that is delivered.
   */
  start?: 'earliest' | 'latest';
  /** Most records in one batch (default 500). */
  maxBatchSize?: number;
}

/** A consumer-group membership; `close` finishes in-flight batches, commits and leaves. */
export interface Subscription {
  close(): Promise<void>;
}

export interface Transport {
  readonly kind: 'embedded' | 'kafka';
  /** Creates the topic with a fixed partition count; a no-op when it exists with that count. */
  createTopic(topic: string, partitions: number): Promise<void>;
  /** The partition count of an existing topic. */
  partitionCount(topic: string): Promise<number>;
  /** Appends records (batched, in order per partition); resolves once they are durable. */
  send(records: readonly ProducerRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** The group's committed offset for a partition: the next offset it will read. */
  committedOffset(groupId: string, topic: string, partition: number): Promise<number | undefined>;
  /** The offset the next appended record of the partition will get. */
  endOffset(topic: string, partition: number): Promise<number>;
  /** Closes every subscription and releases files or connections. */
  close(): Promise<void>;
}
