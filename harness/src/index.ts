/**
 * @troupe/harness: real Kafka, Cassandra, Redis, etcd + kube-apiserver, helm and Chromium on
 * loopback, installed and cached per machine, for tests and benchmarks only. Production code
 * never imports this package.
 */
import { HarnessError, HarnessErrorCode } from './errors.js';
import { readInfra, startInfra, stopInfra, type InfraEndpoints } from './infra.js';
import { REPO_ROOT, defaultCacheDir } from './paths.js';

export { HarnessError, HarnessErrorCode } from './errors.js';
export { freePort } from './ports.js';
export { startPrivateServer, type PrivateServer } from './private.js';
export { parsePrometheus, sampleValue, type MetricFamily, type MetricType, type Sample } from './prometheus.js';
export { CHROMIUM_ARGS, type ChromiumEndpoint } from './servers/chromium.js';
export type { CassandraEndpoint } from './servers/cassandra.js';
export type { HelmEndpoint } from './servers/helm.js';
export type { KafkaEndpoint } from './servers/kafka.js';
export type { KubeEndpoint } from './servers/kube.js';
export type { RedisEndpoint } from './servers/redis.js';
export type { InfraEndpoints, InfraState, ServerName } from './infra.js';

/**
 * The endpoints of the servers started for this test run (by vitest's global setup) or kept
 * running by `npm run infra:up`.
 *
 * @example
 * const { kafka } = infra();
 * const client = new Kafka({ clientId: 'test', brokers: kafka.brokers });
 */
export function infra(): InfraEndpoints {
  const state = readInfra(REPO_ROOT);
  if (state === undefined) {
    throw new HarnessError(
      HarnessErrorCode.NotRunning,
      'the test servers are not running: run the tests with `npm test`, or start them with `npm run infra:up`',
    );
  }
  return state.endpoints;
}

/**
 * For benchmarks and scripts outside vitest: the servers of `npm run infra:up` or a test run
 * when they are up, else servers started now; `release` stops only what it started.
 *
 * @example
 * const { endpoints, release } = await acquireInfra();
 * try { await measure(endpoints.kafka.brokers); } finally { await release(); }
 */
export async function acquireInfra(): Promise<{ endpoints: InfraEndpoints; release(): Promise<void> }> {
  const running = readInfra(REPO_ROOT);
  if (running !== undefined) return { endpoints: running.endpoints, release: async () => {} };
  const { state } = await startInfra({ repoRoot: REPO_ROOT, cacheDir: defaultCacheDir(process.env) }, 'test-run');
  return { endpoints: state.endpoints, release: () => stopInfra(REPO_ROOT) };
}
