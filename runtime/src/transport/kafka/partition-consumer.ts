/**
 * Delivers one kafkajs batch (what one fetch returned for one partition) to `eachBatch` in
 * chunks of at most `maxBatchSize` records, committing past the last resolved record after each
 * chunk, and says whether the partition should pause before its unresolved records come again.
 *
 * With `eachBatchAutoResolve` off, kafkajs fetches each partition from the offset after the last
 * one resolved through it, so stopping at the first unresolved record is all it takes for that
 * record to be fetched and delivered again: no seek is needed.
 */
import type { EachBatchPayload } from 'kafkajs';

import { toError } from '../../errors.js';
import { checkResolvable } from '../refusals.js';
import type { ConsumedRecord, PartitionAssignment, PartitionBatch, SubscribeOptions } from '../transport.js';

/** What delivering one batch needs from the group member that fetched it. */
export interface PartitionDelivery {
  /** The partition, and the epoch of the assignment the batch was fetched for. */
  assignment: PartitionAssignment;
  /** Aborted when that assignment is revoked: no further chunk is delivered. */
  signal: AbortSignal;
  maxBatchSize: number;
  eachBatch: SubscribeOptions['eachBatch'];
  /** kafkajs's handle on the batch; resolving through it moves kafkajs's fetch position. */
  payload: EachBatchPayload;
  /** Keeps the membership alive; when it is lost, aborts `signal` rather than rejecting. */
  heartbeat(): Promise<void>;
  /** How often `heartbeat` runs by itself while a handler is busy, in ms. */
  heartbeatEveryMs: number;
  /** Commits `offset` as the next one the group reads; reports a failure itself and never rejects. */
  commit(offset: number): Promise<void>;
  retryDelayMs: number;
  report(message: string, error?: Error): void;
}

/**
 * Delivers `records` chunk by chunk until one is left partly unresolved or the signal aborts.
 * Never rejects: a handler's throw is reported, and `pause` asks the caller to hold the
 * partition for `retryDelayMs` before its unresolved records are fetched again.
 */
export async function deliverBatch(delivery: PartitionDelivery, records: readonly ConsumedRecord[]): Promise<{ pause: boolean }> {
  for (let start = 0; start < records.length && !delivery.signal.aborted; start += delivery.maxBatchSize) {
    const outcome = await deliverChunk(delivery, records.slice(start, start + delivery.maxBatchSize));
    if (outcome.pause || !outcome.complete) return { pause: outcome.pause };
  }
  return { pause: false };
}

async function deliverChunk(
  delivery: PartitionDelivery,
  records: readonly ConsumedRecord[],
): Promise<{ complete: boolean; pause: boolean }> {
  const { topic, partition, epoch } = delivery.assignment;
  const first = records[0]!.offset;
  const last = records.at(-1)!.offset;
  let resolved = first - 1;
  let ended = false;
  const batch: PartitionBatch = {
    ...delivery.assignment,
    records,
    signal: delivery.signal,
    resolveOffset(offset) {
      checkResolvable(delivery.assignment, offset, last, ended);
      // kafkajs sets its position to whatever it is given, so only forward moves reach it.
      if (offset <= resolved) return;
      resolved = offset;
      delivery.payload.resolveOffset(String(offset));
    },
    heartbeat: delivery.heartbeat,
  };

  // A handler that awaits one long call (an LLM) cannot heartbeat; this keeps its membership and,
  // more to the point, notices a rebalance while it runs, so `signal` aborts promptly.
  const keepAlive = setInterval(() => void delivery.heartbeat(), delivery.heartbeatEveryMs);
  let failure: Error | undefined;
  try {
    await delivery.eachBatch(batch);
  } catch (error) {
    failure = toError(error);
  } finally {
    ended = true;
    clearInterval(keepAlive);
  }
  if (resolved >= first) await delivery.commit(resolved + 1);
  if (failure) {
    delivery.report(
      `${topic}[${partition}]: eachBatch threw at epoch ${epoch}; its ${last - resolved} unresolved records are delivered again in ${delivery.retryDelayMs} ms`,
      failure,
    );
  }
  // Returning with nothing resolved means the handler cannot make progress now; fetching again at
  // once would spin. Returning with some resolved continues at once from the first unresolved.
  return { complete: resolved === last, pause: failure !== undefined || resolved < first };
}
