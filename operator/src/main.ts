/**
 * The operator process: reads flags (or their environment variables), builds the Kubernetes
 * client from a kubeconfig or the in-cluster service account, the RuntimeService client and the
 * Kafka admin for pool topics, serves /healthz, /readyz and /metrics, campaigns for the leader Lease and
 * reconciles while it holds it. SIGTERM or SIGINT stops it gracefully: reconciles in flight
 * finish, the Lease is released so another replica takes over at once. A lost Lease exits 1.
 * Every RuntimeService call carries an admin token: TROUPE_RUNTIME_TOKEN, or else one the operator
 * signs itself with TROUPE_TOKEN_SECRET, the secret the runtime checks tokens with (both from a
 * Secret; never a flag, which `ps` would show). OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_*
 * variables of kube/tracing.ts) turns tracing on: a span per reconcile and per RuntimeService call.
 *
 *   TROUPE_TOKEN_SECRET=… tsx operator/src/main.ts --kubeconfig ~/.kube/config --runtime-address localhost:50051
 */
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { TokenError, Tokens } from '@troupe/proto';
import { GrpcRuntimeClient } from './clients/runtime.grpc.js';
import { KafkaPoolTopics } from './clients/topics.kafka.js';
import { AGENT_DEPLOYMENT_DEFAULTS } from './controllers/agentpool.deployment.js';
import { OperatorError, OperatorErrorCode, toError } from './errors.js';
import { jsonLogger, type LogLevel } from './kube/log.js';
import { OperatorMetrics } from './kube/metrics.js';
import { startTracing, tracingConfig } from './kube/tracing.js';
import { OPERATOR_DEFAULTS, startOperator } from './operator.js';

/** Each flag, the environment variable read when the flag is absent, and its default. */
const FLAGS = {
  kubeconfig: { env: 'KUBECONFIG', default: '' },
  'runtime-address': { env: 'TROUPE_RUNTIME_ADDRESS', default: 'troupe-runtime:50051' },
  'kafka-brokers': { env: 'TROUPE_KAFKA_BROKERS', default: '' },
  'kafka-session-timeout-ms': { env: 'TROUPE_KAFKA_SESSION_TIMEOUT_MS', default: '' },
  'cassandra-contact-points': { env: 'TROUPE_CASSANDRA_CONTACT_POINTS', default: '' },
  'cassandra-datacenter': { env: 'TROUPE_CASSANDRA_DATACENTER', default: '' },
  'cassandra-keyspace': { env: 'TROUPE_CASSANDRA_KEYSPACE', default: AGENT_DEPLOYMENT_DEFAULTS.cassandraKeyspace },
  'redis-url': { env: 'TROUPE_REDIS_URL', default: '' },
  namespaces: { env: 'TROUPE_WATCH_NAMESPACES', default: '' },
  identity: { env: 'POD_NAME', default: `${hostname()}-${randomBytes(3).toString('hex')}` },
  'leader-elect': { env: 'TROUPE_LEADER_ELECT', default: 'true' },
  'lease-namespace': { env: 'POD_NAMESPACE', default: 'troupe-system' },
  'lease-name': { env: 'TROUPE_LEASE_NAME', default: 'troupe-operator' },
  'lease-duration-ms': { env: 'TROUPE_LEASE_DURATION_MS', default: '15000' },
  'renew-deadline-ms': { env: 'TROUPE_RENEW_DEADLINE_MS', default: '10000' },
  'retry-period-ms': { env: 'TROUPE_RETRY_PERIOD_MS', default: '2000' },
  'agent-image': { env: 'TROUPE_AGENT_IMAGE', default: AGENT_DEPLOYMENT_DEFAULTS.image },
  'agent-health-port': { env: 'TROUPE_AGENT_HEALTH_PORT', default: String(AGENT_DEPLOYMENT_DEFAULTS.healthPort) },
  'agent-artifacts-claim': { env: 'TROUPE_AGENT_ARTIFACTS_CLAIM', default: AGENT_DEPLOYMENT_DEFAULTS.artifactsClaim },
  'agent-artifacts-dir': { env: 'TROUPE_AGENT_ARTIFACTS_DIR', default: AGENT_DEPLOYMENT_DEFAULTS.artifactsDir },
  'health-port': { env: 'TROUPE_HEALTH_PORT', default: '8081' },
  'status-interval-ms': { env: 'TROUPE_STATUS_INTERVAL_MS', default: String(OPERATOR_DEFAULTS.statusIntervalMs) },
  'project-poll-ms': { env: 'TROUPE_PROJECT_POLL_MS', default: String(OPERATOR_DEFAULTS.projectPollMs) },
  'metrics-interval-ms': { env: 'TROUPE_METRICS_INTERVAL_MS', default: String(OPERATOR_DEFAULTS.metricsIntervalMs) },
  'resync-ms': { env: 'TROUPE_RESYNC_MS', default: String(OPERATOR_DEFAULTS.resyncMs) },
  concurrency: { env: 'TROUPE_CONCURRENCY', default: String(OPERATOR_DEFAULTS.concurrency) },
  'log-level': { env: 'TROUPE_LOG_LEVEL', default: 'info' },
} as const;

type Flag = keyof typeof FLAGS;

/** Who the admin tokens the operator signs for itself name. */
const OPERATOR_SUBJECT = 'system:troupe-operator';
/** Their lifetime: short, as each is signed anew at half of it. */
const OPERATOR_TOKEN_TTL_SECONDS = 3600;

function readFlags(argv: readonly string[], env: NodeJS.ProcessEnv): Record<Flag, string> {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' }])) as Record<Flag, { type: 'string' }>,
    strict: true,
  });
  return Object.fromEntries(
    (Object.keys(FLAGS) as Flag[]).map((flag) => [
      flag,
      (values[flag] as string | undefined) ?? env[FLAGS[flag].env] ?? FLAGS[flag].default,
    ]),
  ) as Record<Flag, string>;
}

function integer(flags: Record<Flag, string>, flag: Flag, range?: { min: number; max: number }): number {
  const value = Number(flags[flag]);
  const { min, max } = range ?? { min: 0, max: Infinity };
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new OperatorError(
      OperatorErrorCode.InvalidOptions,
      `--${flag} (${FLAGS[flag].env}) must be ${range === undefined ? 'a non-negative integer' : `an integer in ${min}..${max}`}, got "${flags[flag]}"`,
    );
  }
  return value;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

function kubeConfig(path: string): KubeConfig {
  const config = new KubeConfig();
  if (path !== '') config.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST !== undefined) config.loadFromCluster();
  else config.loadFromDefault();
  return config;
}

/**
 * The bearer token of RuntimeService calls: TROUPE_RUNTIME_TOKEN as given, else short-lived admin
 * tokens signed with TROUPE_TOKEN_SECRET and renewed before they expire. Both values are trimmed,
 * as the runtime trims its secret.
 */
function runtimeToken(env: NodeJS.ProcessEnv): string | (() => string) {
  const token = env.TROUPE_RUNTIME_TOKEN?.trim();
  if (token) return token;
  const secret = env.TROUPE_TOKEN_SECRET?.trim();
  if (!secret) {
    throw new OperatorError(
      OperatorErrorCode.InvalidOptions,
      "TROUPE_RUNTIME_TOKEN or TROUPE_TOKEN_SECRET is required, from a Secret: an admin token signed with the runtime's TROUPE_TOKEN_SECRET, or that secret itself (the operator then signs its own tokens)",
    );
  }
  try {
    return new Tokens({ secret, ttlSeconds: OPERATOR_TOKEN_TTL_SECONDS }).renewing({ sub: OPERATOR_SUBJECT, role: 'admin' });
  } catch (error) {
    if (error instanceof TokenError)
      throw new OperatorError(OperatorErrorCode.InvalidOptions, `TROUPE_TOKEN_SECRET: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * /healthz: the process answers; /readyz: it is campaigning or leading (a standby is ready to take
 * over); /metrics: the Prometheus metrics.
 */
function healthServer(port: number, ready: () => boolean, metrics: OperatorMetrics): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url === '/metrics') {
      metrics.exposition().then(
        (body) => response.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${toError(error).message}\n`),
      );
      return;
    }
    const ok = request.url === '/healthz' || (request.url === '/readyz' && ready());
    response.writeHead(request.url === '/healthz' || request.url === '/readyz' ? (ok ? 200 : 503) : 404, { 'content-type': 'text/plain' });
    response.end(ok ? 'ok\n' : 'not ready\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}

async function main(): Promise<number> {
  const flags = readFlags(process.argv.slice(2), process.env);
  const level = flags['log-level'];
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new OperatorError(
      OperatorErrorCode.InvalidOptions,
      `--log-level (TROUPE_LOG_LEVEL) must be debug, info, warn or error, got "${level}"`,
    );
  }
  const log = jsonLogger(level as LogLevel).with({ identity: flags.identity });
  const traces = tracingConfig(process.env, { serviceName: 'troupe-operator', resource: { 'service.instance.id': flags.identity } });
  const tracing = traces === undefined ? undefined : await startTracing(traces);
  if (traces?.otlp !== undefined) log.info('tracing', { collector: new URL(traces.otlp.url).origin, protocol: traces.otlp.protocol });
  const brokers = list(flags['kafka-brokers']);
  const runtime = new GrpcRuntimeClient({ address: flags['runtime-address'], token: runtimeToken(process.env) });
  const topics = brokers.length === 0 ? undefined : new KafkaPoolTopics({ brokers, log });
  if (topics === undefined) log.info('no Kafka brokers given: pool topics are not managed');
  const metrics = new OperatorMetrics();
  const operator = startOperator({
    kubeConfig: kubeConfig(flags.kubeconfig),
    identity: flags.identity,
    runtime,
    topics,
    namespaces: list(flags.namespaces),
    leaderElection:
      flags['leader-elect'] === 'false'
        ? false
        : {
            namespace: flags['lease-namespace'],
            name: flags['lease-name'],
            leaseDurationMs: integer(flags, 'lease-duration-ms'),
            renewDeadlineMs: integer(flags, 'renew-deadline-ms'),
            retryPeriodMs: integer(flags, 'retry-period-ms'),
          },
    deployment: {
      ...AGENT_DEPLOYMENT_DEFAULTS,
      image: flags['agent-image'],
      kafkaBrokers: brokers,
      // Empty leaves the agent pods' default. The range is the brokers' default
      // group.min/max.session.timeout.ms: a value they refuse stops the operator here instead of
      // crash-looping every agent pod.
      kafkaSessionTimeoutMs:
        flags['kafka-session-timeout-ms'] === '' ? undefined : integer(flags, 'kafka-session-timeout-ms', { min: 6_000, max: 1_800_000 }),
      cassandraContactPoints: list(flags['cassandra-contact-points']),
      cassandraDatacenter: flags['cassandra-datacenter'],
      cassandraKeyspace: flags['cassandra-keyspace'],
      redisUrl: flags['redis-url'],
      healthPort: integer(flags, 'agent-health-port'),
      artifactsClaim: flags['agent-artifacts-claim'],
      artifactsDir: flags['agent-artifacts-dir'],
    },
    statusIntervalMs: integer(flags, 'status-interval-ms'),
    projectPollMs: integer(flags, 'project-poll-ms', { min: 1_000, max: 3_600_000 }),
    metricsIntervalMs: integer(flags, 'metrics-interval-ms'),
    resyncMs: integer(flags, 'resync-ms'),
    concurrency: integer(flags, 'concurrency'),
    log,
    onReconciled: metrics.onReconciled,
  });
  metrics.watchQueues(() => operator.manager.queueDepths());
  const healthPort = integer(flags, 'health-port');
  let stopping = false;
  const health = healthPort === 0 ? undefined : await healthServer(healthPort, () => !stopping, metrics);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info('stopping', { signal });
      stopping = true;
      void operator.stop();
      // A second signal means "now".
      process.once(signal, () => process.exit(130));
    });
  }
  const end = await operator.done;
  health?.close();
  runtime.close();
  await topics?.close();
  await tracing?.shutdown().catch((error: unknown) => log.warn('spans not exported', { error: toError(error).message }));
  log.info('stopped', { end });
  return end === 'lost' ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const failure = toError(error);
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'operator failed', error: failure.message, code: (failure as OperatorError).code })}\n`,
    );
    process.exit(1);
  },
);
