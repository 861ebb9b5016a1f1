/**
 * The child process of the Transport conformance suite's crash test. It joins a consumer group,
 * resolves records one by one, and after `resolveBeforeHanging` of them stops in the middle of
 * a batch, says so on stdout (one JSON line) and waits to be killed with SIGKILL.
 *
 * Run: node --import tsx conformance-child.ts '<CrashChildArgs as JSON>'
 */
import { openTransport, type TransportConfig } from './open.js';

/** The child's one argument, as JSON. */
export interface CrashChildArgs {
  config: TransportConfig;
  topic: string;
  groupId: string;
  maxBatchSize: number;
  /** How many records to resolve before hanging mid-batch. */
  resolveBeforeHanging: number;
}

/** What the child prints on stdout, one JSON line each. */
export type CrashChildMessage = {
  type: 'mid-batch';
  partition: number;
  /** The first offset of the batch it hangs in; earlier batches returned and were committed. */
  batchFirstOffset: number;
  /** The first record of that batch it did not resolve. */
  firstUnresolvedOffset: number;
};

/** Longer than any test waits; keeps an orphaned child from living on if the suite dies. */
const GIVE_UP_MS = 120_000;

const args = JSON.parse(process.argv[2] ?? '') as CrashChildArgs;
// Also what keeps the process alive while the handler hangs on a promise that never settles.
setTimeout(() => {
  console.error('conformance-child: never killed; exiting');
  process.exit(2);
}, GIVE_UP_MS);

const transport = await openTransport(args.config);
let resolved = 0;
await transport.subscribe({
  groupId: args.groupId,
  topics: [args.topic],
  maxBatchSize: args.maxBatchSize,
  async eachBatch(batch) {
    for (const record of batch.records) {
      if (resolved === args.resolveBeforeHanging) {
        const message: CrashChildMessage = {
          type: 'mid-batch',
          partition: batch.partition,
          batchFirstOffset: batch.records[0]!.offset,
          firstUnresolvedOffset: record.offset,
        };
        process.stdout.write(`${JSON.stringify(message)}\n`);
        await new Promise<never>(() => {});
      }
      batch.resolveOffset(record.offset);
      resolved++;
    }
  },
});
