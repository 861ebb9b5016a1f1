/**
 * The delivery loop of one partition assigned to one group member: read a batch from the
 * member's position, hand it to `eachBatch`, commit past the last resolved record, repeat;
 * when caught up, sleep until the log announces an append.
 */
import { toError } from '../../errors.js';
import { checkResolvable } from '../refusals.js';
import type { ConsumedRecord, PartitionAssignment, PartitionBatch, SubscribeOptions } from '../transport.js';
import type { PartitionLog } from './partition-log.js';

export interface PartitionConsumer {
  log: PartitionLog;
  assignment: PartitionAssignment;
  /** Aborted on revocation: the loop ends after the in-flight batch and its commit. */
  signal: AbortSignal;
  /** The first offset to deliver. */
  from: number;
  maxBatchSize: number;
  retryDelayMs: number;
  eachBatch: SubscribeOptions['eachBatch'];
  /** Records the group's committed offset (the next one to read) durably. */
  commit(offset: number): Promise<void>;
  report(message: string, error?: Error): void;
}

/**
 * Runs until the signal aborts; never rejects. Any failure (a handler throw, a read or commit
 * error) is reported and the unresolved records are delivered again after `retryDelayMs`.
 */
export async function consumePartition(consumer: PartitionConsumer): Promise<void> {
  const { log, signal, assignment } = consumer;
  let next = consumer.from;
  while (!signal.aborted) {
    try {
      if (next >= log.endOffset) {
        await log.waitForAppend(next, signal);
        continue;
      }
      const outcome = await deliver(consumer, await log.read(next, consumer.maxBatchSize));
      next = outcome.next;
      if (outcome.pause) await pause(consumer.retryDelayMs, signal);
    } catch (error) {
      consumer.report(
        `${assignment.topic}[${assignment.partition}]: delivery from offset ${next} failed; retrying in ${consumer.retryDelayMs} ms`,
        toError(error),
      );
      await pause(consumer.retryDelayMs, signal);
    }
  }
}

async function deliver(consumer: PartitionConsumer, records: readonly ConsumedRecord[]): Promise<{ next: number; pause: boolean }> {
  const { topic, partition } = consumer.assignment;
  const first = records[0]!.offset;
  const last = records.at(-1)!.offset;
  let resolved = first - 1;
  let ended = false;
  const batch: PartitionBatch = {
    ...consumer.assignment,
    records,
    signal: consumer.signal,
    resolveOffset(offset) {
      checkResolvable(consumer.assignment, offset, last, ended);
      resolved = Math.max(resolved, offset);
    },
    // Membership in the embedded log cannot expire, so there is nothing to keep alive.
    heartbeat: () => Promise.resolve(),
  };

  let failure: Error | undefined;
  try {
    await consumer.eachBatch(batch);
  } catch (error) {
    failure = toError(error);
  } finally {
    ended = true;
  }
  if (resolved >= first) await consumer.commit(resolved + 1);
  if (failure) {
    consumer.report(
      `${topic}[${partition}]: eachBatch threw at epoch ${consumer.assignment.epoch}; its ${last - resolved} unresolved records are delivered again in ${consumer.retryDelayMs} ms`,
      failure,
    );
  }
  // Returning with nothing resolved means the handler cannot make progress now; redelivering at
  // once would spin. Returning with some resolved continues at once from the first unresolved.
  return { next: resolved + 1, pause: failure !== undefined || resolved < first };
}

/** Waits `ms`, or less when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
