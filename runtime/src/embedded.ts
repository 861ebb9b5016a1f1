/**
 * The whole runtime in one process: the embedded log, the SQLite store, the company and its
 * journaled LLM pools, and the gRPC API. `npm start` and tests start it; a cluster runs the
 * same pieces on Kafka and Cassandra instead.
 */
import { join } from 'node:path';
import { startGrpcServer, type GrpcServerHandle } from './api/grpc-server.js';
import { FileArtifactStore } from './domain/artifacts.js';
import { Company } from './domain/company.js';
import type { PoolResource } from './domain/pools.js';
import { Budgets } from './llm/budget.js';
import { LlmClient, type RegisteredProvider } from './llm/client.js';
import { CostLedger } from './llm/ledger.js';
import { openStore } from './store/open.js';
import { openTransport } from './transport/open.js';

export interface EmbeddedRuntimeOptions {
  /** Everything durable lives here: log, state, artefacts. */
  dataDir: string;
  /** The model providers pools may name (see `createProvider`). */
  providers: readonly RegisteredProvider[];
  /** Agent pools to run from the start. */
  pools?: readonly PoolResource[];
  /** Serve gRPC on 127.0.0.1 at this port (0: any free port); no gRPC when absent. */
  grpcPort?: number;
  /** How often a project checks its running tasks are alive (default 30 s; tests use less). */
  taskCheckMs?: number;
  onError?: (error: Error) => void;
}

export interface EmbeddedRuntime {
  company: Company;
  ledger: CostLedger;
  /** host:port of the gRPC API, when it was asked for. */
  grpcAddress?: string;
  stop(): Promise<void>;
}

/**
 * @example
 * const runtime = await startEmbeddedRuntime({ dataDir: '.troupe/data', providers: [createProvider('simulated', { type: 'simulated' })], grpcPort: 0 });
 * await runtime.company.submitProject('cmd-1', command);
 * await runtime.stop();
 */
export async function startEmbeddedRuntime(options: EmbeddedRuntimeOptions): Promise<EmbeddedRuntime> {
  const transport = await openTransport({ kind: 'embedded', dir: join(options.dataDir, 'log') });
  const store = await openStore({ kind: 'embedded', path: join(options.dataDir, 'state.db') });
  const budgets = new Budgets();
  const ledger = new CostLedger();
  const llm = new LlmClient({ providers: options.providers, budgets, ledger });
  const company = await Company.start({
    transport,
    store,
    llm,
    budgets,
    artifacts: new FileArtifactStore(join(options.dataDir, 'artifacts')),
    nodeId: 'embedded',
    partitions: 4,
    ...(options.taskCheckMs === undefined ? {} : { taskCheckMs: options.taskCheckMs }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  });
  for (const pool of options.pools ?? []) await company.applyPool(pool);
  let grpc: GrpcServerHandle | undefined;
  if (options.grpcPort !== undefined) grpc = await startGrpcServer(company, { port: options.grpcPort });
  return {
    company,
    ledger,
    ...(grpc === undefined ? {} : { grpcAddress: grpc.address }),
    async stop() {
      await grpc?.close();
      await company.stop();
      await transport.close();
      await store.close();
      for (const { provider } of options.providers) provider.close?.();
    },
  };
}
