/**
 * The whole runtime in one process: the embedded log, the SQLite store, the company and its
 * journaled LLM pools, and the gRPC API. `npm start` and tests start it; a cluster's runtime
 * node (node/start-node.ts) assembles the same stack (company-stack.ts) on Kafka, Cassandra and
 * Redis instead.
 */
import { join } from 'node:path';
import { startCompanyStack, type DeliveryConfig } from './company-stack.js';
import { BlobArtifactStore, FileBlobStore } from './domain/artifacts.js';
import type { Company } from './domain/company.js';
import type { PoolResource } from './domain/pools.js';
import type { Tokens } from './gateway/tokens.js';
import type { RegisteredProvider } from './llm/client.js';
import type { ClientLedgers } from './llm/ledger.actor.js';
import { openStore } from './store/open.js';
import { openTransport } from './transport/open.js';

export interface EmbeddedRuntimeOptions {
  /** Everything durable lives here: log, state, artefacts. */
  dataDir: string;
  /** The model providers pools may name (see `createProvider`). */
  providers: readonly RegisteredProvider[];
  /** Agent pools to run from the start. */
  pools?: readonly PoolResource[];
  /** Serve gRPC on 127.0.0.1 at `port` (0: any free port) to callers with a token `tokens` verifies; no gRPC when absent. */
  grpc?: { port: number; tokens: Tokens };
  /** How often a project checks its running tasks are alive (default 30 s; tests use less). */
  taskCheckMs?: number;
  /** The SMTP relay of notice emails, where Secrets are read (default `<dataDir>/secrets`), retry tuning. */
  delivery?: Partial<Omit<DeliveryConfig, 'scratchDir'>>;
  onError?: (error: Error) => void;
}

export interface EmbeddedRuntime {
  company: Company;
  /** The durable cost ledger, kept in the data directory with the rest. */
  ledger: ClientLedgers;
  /** host:port of the gRPC API, when it was asked for. */
  grpcAddress?: string;
  stop(): Promise<void>;
}

/**
 * @example
 * const tokens = new Tokens({ secret });
 * const runtime = await startEmbeddedRuntime({ dataDir: '.troupe/data', providers: [createProvider('simulated', { type: 'simulated' })], grpc: { port: 0, tokens } });
 * await runtime.company.submitProject('cmd-1', command);
 * await runtime.stop();
 */
export async function startEmbeddedRuntime(options: EmbeddedRuntimeOptions): Promise<EmbeddedRuntime> {
  const transport = await openTransport({ kind: 'embedded', dir: join(options.dataDir, 'log') });
  const store = await openStore({ kind: 'embedded', path: join(options.dataDir, 'state.db') });
  const stack = await startCompanyStack({
    transport,
    store,
    artifacts: new BlobArtifactStore({ blobs: new FileBlobStore(join(options.dataDir, 'artifacts')), catalog: store }),
    providers: options.providers,
    pools: options.pools,
    delivery: {
      ...options.delivery,
      scratchDir: join(options.dataDir, 'delivery'),
      secretsDir: options.delivery?.secretsDir ?? join(options.dataDir, 'secrets'),
    },
    ...(options.grpc === undefined ? {} : { grpc: options.grpc }),
    company: { nodeId: 'embedded', partitions: 4, taskCheckMs: options.taskCheckMs, onError: options.onError },
  });
  return {
    company: stack.company,
    ledger: stack.ledger,
    ...(stack.grpcAddress === undefined ? {} : { grpcAddress: stack.grpcAddress }),
    async stop() {
      await stack.stop();
      await transport.close();
      await store.close();
    },
  };
}
