/**
 * The runtime node's process, the runtime image's entry point: it reads its configuration from
 * the environment (see config.ts: TROUPE_COMPONENTS, TROUPE_KAFKA_BROKERS, TROUPE_CASSANDRA_*,
 * TROUPE_REDIS_URL, TROUPE_GRPC_PORT, TROUPE_HTTP_PORT, …), starts the node, and stops it
 * gracefully on SIGTERM or SIGINT: readiness fails, the ports close, turns in flight finish,
 * offsets are committed, the node leaves its consumer group, and the process exits 0. A second
 * signal, or TROUPE_SHUTDOWN_TIMEOUT_MS (default 25 s) passing, ends it at once with a non-zero code.
 * OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables of @troupe/operator/tracing) turns
 * tracing on; the spans still buffered are exported after the node stopped.
 *
 *   TROUPE_COMPONENTS=runtime TROUPE_KAFKA_BROKERS=kafka:9092 TROUPE_CASSANDRA_CONTACT_POINTS=cassandra \
 *   TROUPE_CASSANDRA_DATACENTER=datacenter1 TROUPE_REDIS_URL=redis://redis:6379 node --import tsx runtime/src/node/main.ts
 */
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { startTracing, tracingConfig } from '@troupe/operator/tracing';
import { toError } from '../errors.js';
import { redact } from '../security/redact.js';
import { nodeConfig } from './config.js';
import { startNode } from './start-node.js';

/** The dashboard's build in the image (and in a repository where it was built). */
const DASHBOARD = resolve(import.meta.dirname, '..', '..', '..', 'dashboard', 'build');

async function main(): Promise<void> {
  const { options, shutdownTimeoutMs } = nodeConfig(
    process.env,
    existsSync(resolve(DASHBOARD, 'index.html')) ? { dashboardDir: DASHBOARD } : {},
  );
  const traces = tracingConfig(process.env, {
    serviceName: 'troupe-runtime',
    resource: { 'service.instance.id': options.nodeId, 'troupe.components': options.components.join(',') },
  });
  // Before the node starts, so that its first turns are traced too.
  const tracing = traces === undefined ? undefined : await startTracing(traces);
  const node = await startNode(options);
  const ports = [
    `ops ${node.opsUrl}`,
    ...(node.grpcAddress === undefined ? [] : [`gRPC ${node.grpcAddress}`]),
    ...(node.gatewayUrl === undefined ? [] : [`gateway ${node.gatewayUrl}`]),
  ];
  console.log(`troupe node ${options.nodeId}: running ${options.components.join(', ')}; ${ports.join(', ')}`);
  if (traces?.otlp !== undefined)
    console.log(`troupe node ${options.nodeId}: traces go to ${new URL(traces.otlp.url).origin} over OTLP ${traces.otlp.protocol}`);

  let stopping = false;
  const onSignal = (signal: 'SIGTERM' | 'SIGINT') => {
    // A second signal means "now".
    if (stopping) process.exit(128 + constants.signals[signal]);
    stopping = true;
    console.log(`troupe node ${options.nodeId}: ${signal}, draining (at most ${shutdownTimeoutMs} ms)`);
    const deadline = setTimeout(() => {
      console.error(`troupe node ${options.nodeId}: not stopped within ${shutdownTimeoutMs} ms; exiting anyway`);
      process.exit(1);
    }, shutdownTimeoutMs);
    node.stop().then(
      async () => {
        await tracing
          ?.shutdown()
          .catch((error: unknown) => console.error(`troupe node ${options.nodeId}: spans not exported: ${redact(toError(error).message)}`));
        clearTimeout(deadline);
        console.log(`troupe node ${options.nodeId}: stopped`);
        process.exit(0);
      },
      (error: unknown) => {
        console.error(`troupe node ${options.nodeId}: stopping failed: ${redact(toError(error).message)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((error: unknown) => {
  console.error(`troupe node: ${redact(toError(error).message)}`);
  process.exit(1);
});
