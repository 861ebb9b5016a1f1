/** What both transports refuse, worded once. */
import { RuntimeErrorCode, TransportError } from '../errors.js';
import type { PartitionAssignment, ProducerRecord } from './transport.js';

/** Refuses a `resolveOffset` call after its batch ended, or past the batch's last offset. */
export function checkResolvable(assignment: PartitionAssignment, offset: number, last: number, ended: boolean): void {
  const { topic, partition } = assignment;
  if (ended) {
    throw new TransportError(RuntimeErrorCode.InvalidOptions, topic, partition, `resolveOffset(${offset}) called after its batch ended`);
  }
  if (!Number.isInteger(offset) || offset > last) {
    throw new TransportError(
      RuntimeErrorCode.InvalidOptions,
      topic,
      partition,
      `resolveOffset(${offset}) is past the batch's last offset ${last}`,
    );
  }
}

/** The error of a send whose record could not be encoded (`cause` says why). */
export function unencodable(record: ProducerRecord, partition: number, cause: unknown): TransportError {
  return new TransportError(
    RuntimeErrorCode.InvalidArgument,
    record.topic,
    partition,
    `cannot encode record with key ${JSON.stringify(record.key)}`,
    { cause },
  );
}
