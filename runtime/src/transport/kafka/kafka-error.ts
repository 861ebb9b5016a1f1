/**
 * What kafkajs throws, seen through the runtime's errors: a TransportError naming the topic (and
 * partition) the request was about, and which broker answers mean that a consumer-group member's
 * generation is over.
 *
 * kafkajs's error classes are not importable by name from ESM (its index spreads them into
 * `module.exports`), so errors are recognised by their `type` (the broker's error name) and
 * `retriable` fields, which every kafkajs error carries.
 */
import { RuntimeErrorCode, TransportError, toError } from '../../errors.js';

/** Broker answers saying this member's generation is over: it must rejoin, and its partitions are revoked. */
const MEMBERSHIP_LOST = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']);

/** Broker answers saying the request itself is wrong, so repeating it cannot help. */
const INVALID_REQUEST = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_PARTITIONS',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_CONFIG',
  'POLICY_VIOLATION',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
]);

interface KafkaJSErrorFields {
  type?: unknown;
  retriable?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/**
 * The broker's error name behind a kafkajs error, looking through kafkajs's wrappers: a retrier
 * that gave up keeps the last failure as `cause`, and admin calls aggregate per-topic `errors`.
 */
function brokerErrorType(thrown: unknown): string | undefined {
  for (let error = thrown, depth = 0; typeof error === 'object' && error !== null && depth < 5; depth++) {
    const fields = error as KafkaJSErrorFields;
    if (typeof fields.type === 'string') return fields.type;
    error = fields.cause ?? (Array.isArray(fields.errors) ? fields.errors[0] : undefined);
  }
  return undefined;
}

/** Whether a heartbeat's or commit's failure means the member's current generation is over. */
export function isMembershipLost(thrown: unknown): boolean {
  const type = brokerErrorType(thrown);
  return type !== undefined && MEMBERSHIP_LOST.has(type);
}

/** Whether the broker answered that it knows no such topic or partition (yet, or at all). */
export function isUnknownTopic(thrown: unknown): boolean {
  return brokerErrorType(thrown) === 'UNKNOWN_TOPIC_OR_PARTITION';
}

/**
 * Wraps what kafkajs threw while `doing` something with a topic, once, at the transport's
 * boundary. A request the broker refuses as malformed is INVALID_ARGUMENT; anything else is
 * UNAVAILABLE, retriable when the cause was transient. kafkajs marks a retrier that
 * gave up as not retriable (so that it stops), but the failure it gave up on usually is.
 */
export function toTransportError(thrown: unknown, topic: string, partition: number | undefined, doing: string): TransportError {
  const error = toError(thrown);
  const type = brokerErrorType(error);
  if (type !== undefined && INVALID_REQUEST.has(type)) {
    const problem =
      type === 'UNKNOWN_TOPIC_OR_PARTITION' ? 'no such topic or partition; create the topic with createTopic first' : error.message;
    return new TransportError(RuntimeErrorCode.InvalidArgument, topic, partition, `cannot ${doing}: ${problem} (${type})`, {
      cause: error,
    });
  }
  return new TransportError(RuntimeErrorCode.Unavailable, topic, partition, `cannot ${doing}: ${error.message}`, {
    retriable: isRetriable(error),
    cause: error,
  });
}

/** Whether what kafkajs threw, or the failure a kafkajs retrier gave up on, is transient. */
export function isRetriable(error: unknown): boolean {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 5; depth++) {
    const fields = current as KafkaJSErrorFields;
    if (fields.retriable === true) return true;
    current = fields.cause;
  }
  return false;
}
