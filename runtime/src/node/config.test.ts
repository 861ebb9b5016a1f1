/**
 * A node's environment as the Helm chart and the operator's agent Deployments write it, read into
 * its options; every mistake is refused with the variable's name.
 */
import { describe, expect, it } from 'vitest';
import { RuntimeErrorCode } from '../errors.js';
import { nodeConfig, type Env } from './config.js';

const CLUSTER: Env = {
  TROUPE_KAFKA_BROKERS: 'kafka-0.kafka:9092, kafka-1.kafka:9092',
  TROUPE_CASSANDRA_CONTACT_POINTS: 'cassandra-0.cassandra,cassandra-1.cassandra',
  TROUPE_CASSANDRA_DATACENTER: 'dc1',
  TROUPE_REDIS_URL: 'redis://:secret@redis:6379/0',
  TROUPE_TOKEN_SECRET: 'a-token-secret-of-at-least-32-bytes',
  POD_NAME: 'troupe-runtime-7f9c-x2k4q',
};

/** What the operator's Deployment sets for an agent pool (agentpool.deployment.ts). */
const POOL: Env = {
  TROUPE_POOL_NAMESPACE: 'acme',
  TROUPE_POOL_NAME: 'developers',
  TROUPE_POOL_ROLE: 'developer',
  TROUPE_MODEL_PROVIDER: 'openai-prod',
  TROUPE_MODEL_NAME: 'gpt-4.1-mini',
  TROUPE_MODEL_TEMPERATURE: '0.2',
  TROUPE_CONCURRENCY: '8',
  TROUPE_RATE_LIMIT_RPM: '600',
  TROUPE_PROVIDER_TYPE: 'openai',
  TROUPE_PROVIDER_API_KEY: 'sk-test-0123456789abcdef',
  TROUPE_PROVIDER_PRICING: '[{"model":"gpt-4.1-mini","inputPerMTokUSD":0.4,"outputPerMTokUSD":1.6}]',
};

describe('nodeConfig', () => {
  it('reads a runtime node with the defaults of the ports, keyspace and shutdown', () => {
    const { options, shutdownTimeoutMs } = nodeConfig({ ...CLUSTER, TROUPE_COMPONENTS: 'runtime' });
    expect(options).toMatchObject({
      components: ['runtime'],
      transport: { kind: 'kafka', brokers: ['kafka-0.kafka:9092', 'kafka-1.kafka:9092'], clientId: 'troupe-runtime-7f9c-x2k4q' },
      store: {
        kind: 'cassandra',
        contactPoints: ['cassandra-0.cassandra', 'cassandra-1.cassandra'],
        localDataCenter: 'dc1',
        keyspace: 'troupe',
      },
      services: { kind: 'redis', url: 'redis://:secret@redis:6379/0' },
      nodeId: 'troupe-runtime-7f9c-x2k4q',
      host: '0.0.0.0',
      grpcPort: 50051,
      httpPort: 8081,
      partitions: 16,
      pools: [],
      tokenSecret: 'a-token-secret-of-at-least-32-bytes',
    });
    expect(options.gateway).toBeUndefined();
    expect(shutdownTimeoutMs).toBe(25_000);
    // Unset, the transport's own default session timeout applies.
    expect(options.transport).not.toHaveProperty('sessionTimeoutMs');
  });

  it("sets the consumer groups' session timeout, how long a dead node keeps its partitions", () => {
    const { options } = nodeConfig({ ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_KAFKA_SESSION_TIMEOUT_MS: '10000' });
    expect(options.transport).toEqual({
      kind: 'kafka',
      brokers: ['kafka-0.kafka:9092', 'kafka-1.kafka:9092'],
      clientId: 'troupe-runtime-7f9c-x2k4q',
      sessionTimeoutMs: 10_000,
    });
  });

  it('reads the pool the operator describes, with its provider', () => {
    const { TROUPE_TOKEN_SECRET: _, ...env } = CLUSTER;
    // An agent pod runs the pool alone: no gRPC, no gateway, so no token secret and no deliveries.
    const { options } = nodeConfig({ ...env, ...POOL, TROUPE_COMPONENTS: 'pool', TROUPE_HTTP_PORT: '8080' });
    expect(options.httpPort).toBe(8080);
    expect(options.store).toMatchObject({ kind: 'cassandra', localDataCenter: 'dc1' });
    expect(options.services).toEqual({ kind: 'redis', url: 'redis://:secret@redis:6379/0' });
    expect(options.tokenSecret).toBeUndefined();
    expect(options.delivery).toBeUndefined();
    expect(options.pools).toEqual([
      {
        namespace: 'acme',
        name: 'developers',
        replicas: 1,
        spec: {
          role: 'developer',
          model: { provider: 'openai-prod', name: 'gpt-4.1-mini', temperature: 0.2 },
          concurrency: 8,
          rateLimit: { requestsPerMinute: 600 },
        },
      },
    ]);
    expect(options.providers.map(({ provider }) => [provider.name, provider.type])).toEqual([['openai-prod', 'openai']]);
    expect(options.providers[0]?.pricing.has('gpt-4.1-mini')).toBe(true);
  });

  it('reads a gateway alone, which needs no Cassandra or Redis', () => {
    const { options } = nodeConfig(
      {
        TROUPE_COMPONENTS: 'gateway',
        TROUPE_KAFKA_BROKERS: 'kafka:9092',
        TROUPE_TOKEN_SECRET: 'x'.repeat(32),
        TROUPE_GATEWAY_PORT: '9000',
      },
      { dashboardDir: '/app/dashboard/build' },
    );
    expect(options.gateway).toEqual({ port: 9000, staticDir: '/app/dashboard/build' });
    expect(options.tokenSecret).toBe('x'.repeat(32));
    expect(options.store).toBeUndefined();
    expect(options.services).toBeUndefined();
  });

  it('refuses a missing or bad setting, naming its variable', () => {
    const refused = (env: Env, message: RegExp) =>
      expect(() => nodeConfig(env), message.source).toThrow(
        expect.objectContaining({ code: RuntimeErrorCode.InvalidOptions, message: expect.stringMatching(message) }),
      );
    refused(CLUSTER, /^TROUPE_COMPONENTS is required: a comma-separated list of runtime, pool, gateway$/);
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime,scheduler' },
      /^TROUPE_COMPONENTS must list some of runtime, pool, gateway, got "runtime,scheduler"$/,
    );
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_KAFKA_BROKERS: 'kafka' },
      /^TROUPE_KAFKA_BROKERS must list 'host:port' entries, got "kafka"$/,
    );
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_GRPC_PORT: '70000' },
      /^TROUPE_GRPC_PORT must be an integer in 0\.\.65535, got "70000"$/,
    );
    refused({ ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_HTTP_PORT: 'http' }, /^TROUPE_HTTP_PORT must be an integer/);
    // Below the brokers' group.min.session.timeout.ms, every join of the group would be refused.
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_KAFKA_SESSION_TIMEOUT_MS: '5000' },
      /^TROUPE_KAFKA_SESSION_TIMEOUT_MS must be an integer in 6000\.\.1800000, got "5000"$/,
    );
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'gateway', TROUPE_KAFKA_SESSION_TIMEOUT_MS: '1800001' },
      /^TROUPE_KAFKA_SESSION_TIMEOUT_MS must be an integer in 6000\.\.1800000, got "1800001"$/,
    );
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_KAFKA_SESSION_TIMEOUT_MS: 'abc' },
      /^TROUPE_KAFKA_SESSION_TIMEOUT_MS must be an integer in 6000\.\.1800000, got "abc"$/,
    );
    refused({ ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_CASSANDRA_DATACENTER: '' }, /^TROUPE_CASSANDRA_DATACENTER is required/);
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_REDIS_URL: 'http://redis:6379' },
      /^TROUPE_REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL$/,
    );
    // No entry point takes anonymous calls: the gRPC API of a runtime node checks tokens as the gateway does.
    refused({ ...CLUSTER, TROUPE_COMPONENTS: 'runtime', TROUPE_TOKEN_SECRET: undefined }, /^TROUPE_TOKEN_SECRET is required/);
    refused({ ...CLUSTER, TROUPE_COMPONENTS: 'gateway', TROUPE_TOKEN_SECRET: '' }, /^TROUPE_TOKEN_SECRET is required/);
    refused(
      { ...CLUSTER, TROUPE_COMPONENTS: 'gateway', TROUPE_TOKEN_SECRET: 'short' },
      /^TROUPE_TOKEN_SECRET must be at least 32 bytes, got 5$/,
    );
    refused({ ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_POOL_ROLE: undefined }, /^TROUPE_POOL_ROLE is required/);
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_CONCURRENCY: '0' },
      /^TROUPE_CONCURRENCY must be an integer in 1\.\.1024, got "0"$/,
    );
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_MODEL_TEMPERATURE: 'warm' },
      /^TROUPE_MODEL_TEMPERATURE must be a number in 0\.\.2/,
    );
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_PROVIDER_TYPE: 'gemini' },
      /^TROUPE_PROVIDER_TYPE must be one of openai, anthropic, ollama, simulated, got "gemini"$/,
    );
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_PROVIDER_PRICING: '{oops' },
      /^TROUPE_PROVIDER_PRICING must be JSON like/,
    );
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'pool', TROUPE_PROVIDER_SIMULATED: 'fast' },
      /^TROUPE_PROVIDER_SIMULATED must be JSON like/,
    );
    refused(
      { ...CLUSTER, ...POOL, TROUPE_COMPONENTS: 'runtime,pool', TROUPE_PROVIDER_API_KEY: undefined },
      /^TROUPE_PROVIDER_TYPE, TROUPE_PROVIDER_API_KEY, TROUPE_PROVIDER_PRICING or TROUPE_PROVIDER_SIMULATED describe no usable provider: ModelProvider openai-prod of type openai needs an API key/,
    );
  });
});
