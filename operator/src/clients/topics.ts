/**
 * The pool topics `troupe.pool.<namespace>.<pool>`, as an interface: the AgentPool controller
 * needs each to exist with at least a number of partitions, and only the composition root picks
 * the implementation (Kafka's admin API). Failures are KAFKA_UNAVAILABLE OperatorErrors.
 */

/** What `ensure` had to do. */
export type TopicChange = 'created' | 'grown' | 'unchanged';

export interface PoolTopics {
  /** Creates `topic` with `partitions`, or grows it to that many; never shrinks (Kafka cannot). */
  ensure(topic: string, partitions: number): Promise<TopicChange>;
  close(): Promise<void>;
}
