import { infra } from '@troupe/harness';
import { runtimeConformance } from './conformance.js';

runtimeConformance('Kafka and Cassandra', async () => {
  const { kafka, cassandra } = infra();
  return {
    // A killed member's partitions move only after its session times out; keep that short.
    transport: { kind: 'kafka', brokers: kafka.brokers, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 },
    // Every test names its own actor types, so one keyspace serves them all.
    store: { kind: 'cassandra', ...cassandra, keyspace: 'troupe_conformance' },
    cleanup: async () => {},
  };
});
