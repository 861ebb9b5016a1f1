/**
 * A node's options from its environment, as the Helm chart and the operator's agent Deployments
 * set it. `main.ts` hands `process.env` in; every bad or missing value is refused here with an
 * error that names the variable.
 */
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { smtpRelay } from '../domain/delivery/smtp-client.js';
import type { PoolResource } from '../domain/pools.js';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import { createProvider } from '../llm/providers/create-provider.js';
import type { ProviderType } from '../llm/providers/provider.js';
import type { SimulatedModelOptions } from '../llm/providers/simulated.js';
import type { ModelPrice } from '../llm/pricing.js';
import { NODE_COMPONENTS, NODE_DEFAULTS, type NodeComponent, type NodeOptions } from './start-node.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** A node's options, and how long its shutdown may take. */
export interface NodeConfig {
  options: NodeOptions;
  /** After SIGTERM, the node is stopped forcibly once this much time has passed, in ms. */
  shutdownTimeoutMs: number;
}

/** What the environment does not say and the process knows. */
export interface ConfigDefaults {
  /** The dashboard's static build, when the process has one (the image does). */
  dashboardDir?: string;
}

const PROVIDER_TYPES: readonly ProviderType[] = ['openai', 'anthropic', 'ollama', 'simulated'];

function invalid(variable: string, problem: string, cause?: unknown): RuntimeError {
  return new RuntimeError(RuntimeErrorCode.InvalidOptions, `${variable} ${problem}`, { cause });
}

/** The variable's trimmed value; empty counts as unset. */
function optional(env: Env, variable: string): string | undefined {
  const value = env[variable]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function required(env: Env, variable: string, what: string): string {
  const value = optional(env, variable);
  if (value === undefined) throw invalid(variable, `is required: ${what}`);
  return value;
}

function list(env: Env, variable: string, what: string): string[] {
  return required(env, variable, what)
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function integer(env: Env, variable: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = optional(env, variable);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^-?\d+$/.test(text) || value < min || value > max)
    throw invalid(variable, `must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  return value;
}

function number(env: Env, variable: string, min: number, max: number): number | undefined {
  const text = optional(env, variable);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max)
    throw invalid(variable, `must be a number in ${min}..${max}, got ${JSON.stringify(text)}`);
  return value;
}

function port(env: Env, variable: string, fallback: number): number {
  return integer(env, variable, fallback, 0, 65_535)!;
}

/**
 * The node's options from `env`.
 *
 * @example
 * const { options, shutdownTimeoutMs } = nodeConfig(process.env);
 */
export function nodeConfig(env: Env, defaults: ConfigDefaults = {}): NodeConfig {
  const components = list(env, 'TROUPE_COMPONENTS', `a comma-separated list of ${NODE_COMPONENTS.join(', ')}`);
  const unknown = components.find((component) => !(NODE_COMPONENTS as readonly string[]).includes(component));
  if (unknown !== undefined || components.length === 0) {
    throw invalid('TROUPE_COMPONENTS', `must list some of ${NODE_COMPONENTS.join(', ')}, got ${JSON.stringify(env.TROUPE_COMPONENTS)}`);
  }
  const has = (component: NodeComponent) => components.includes(component);
  const brokers = list(env, 'TROUPE_KAFKA_BROKERS', "the Kafka bootstrap brokers, 'host:port' separated by commas");
  const bad = brokers.find((broker) => !/^\S+:\d+$/.test(broker));
  if (bad !== undefined) throw invalid('TROUPE_KAFKA_BROKERS', `must list 'host:port' entries, got ${JSON.stringify(bad)}`);
  // The brokers' default group.min/max.session.timeout.ms: a broker refuses a member whose timeout is outside them.
  const sessionTimeoutMs = integer(env, 'TROUPE_KAFKA_SESSION_TIMEOUT_MS', undefined, 6_000, 1_800_000);

  const nodeId = optional(env, 'TROUPE_NODE_ID') ?? optional(env, 'POD_NAME') ?? hostname();
  const options: NodeOptions = {
    ...NODE_DEFAULTS,
    components: components as NodeComponent[],
    // The node's name is its client id: brokers and consumer groups show which pod a member is.
    transport: { kind: 'kafka', brokers, clientId: nodeId, ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }) },
    nodeId,
    partitions: integer(env, 'TROUPE_PARTITIONS', NODE_DEFAULTS.partitions, 1, 10_000)!,
    host: optional(env, 'TROUPE_LISTEN_HOST') ?? NODE_DEFAULTS.host,
    grpcPort: port(env, 'TROUPE_GRPC_PORT', NODE_DEFAULTS.grpcPort),
    httpPort: port(env, 'TROUPE_HTTP_PORT', NODE_DEFAULTS.httpPort),
    artifactsDir: optional(env, 'TROUPE_ARTIFACTS_DIR') ?? join(tmpdir(), 'troupe-artifacts'),
  };
  if (has('runtime') || has('pool')) {
    options.store = {
      kind: 'cassandra',
      contactPoints: list(env, 'TROUPE_CASSANDRA_CONTACT_POINTS', "the Cassandra nodes, 'host' or 'host:port' separated by commas"),
      localDataCenter: required(env, 'TROUPE_CASSANDRA_DATACENTER', "the Cassandra data center this node is in, e.g. 'datacenter1'"),
      keyspace: optional(env, 'TROUPE_CASSANDRA_KEYSPACE') ?? 'troupe',
    };
    const url = required(env, 'TROUPE_REDIS_URL', 'redis://[user:password@]host:port[/db] of the Redis every node shares');
    if (!URL.canParse(url) || !['redis:', 'rediss:'].includes(new URL(url).protocol)) {
      // The value is not shown: a URL may carry a password.
      throw invalid('TROUPE_REDIS_URL', 'must be a redis:// or rediss:// URL');
    }
    options.services = { kind: 'redis', url };
  }
  if (has('runtime')) {
    const smtp = optional(env, 'TROUPE_SMTP_URL');
    const mailFrom = optional(env, 'TROUPE_MAIL_FROM');
    options.delivery = {
      scratchDir: optional(env, 'TROUPE_DELIVERY_DIR') ?? join(tmpdir(), 'troupe-delivery'),
      // Secret volumes mounted as <dir>/<namespace>/<name>/<key>.
      secretsDir: optional(env, 'TROUPE_SECRETS_DIR') ?? join(tmpdir(), 'troupe-secrets'),
      ...(smtp === undefined ? {} : { smtp: smtpRelay(smtp, 'TROUPE_SMTP_URL') }),
      ...(mailFrom === undefined ? {} : { mailFrom }),
    };
  }
  if (has('pool')) {
    const pool = poolFromEnv(env);
    options.pools = [pool];
    options.providers = [providerFromEnv(env, pool.spec.model.provider)];
  }
  if (has('runtime') || has('gateway')) {
    // Every entry point checks bearer tokens: there is no switch that turns that off.
    const tokenSecret = required(
      env,
      'TROUPE_TOKEN_SECRET',
      "the secret (32 bytes or more) the gRPC API's and the gateways' bearer tokens are signed and checked with",
    );
    // The length only: the value is a secret.
    if (Buffer.byteLength(tokenSecret) < 32)
      throw invalid('TROUPE_TOKEN_SECRET', `must be at least 32 bytes, got ${Buffer.byteLength(tokenSecret)}`);
    options.tokenSecret = tokenSecret;
  }
  if (has('gateway')) {
    const staticDir = optional(env, 'TROUPE_DASHBOARD_DIR') ?? defaults.dashboardDir;
    options.gateway = {
      port: port(env, 'TROUPE_GATEWAY_PORT', 8080),
      ...(staticDir === undefined ? {} : { staticDir }),
    };
  }
  return { options, shutdownTimeoutMs: integer(env, 'TROUPE_SHUTDOWN_TIMEOUT_MS', 25_000, 1)! };
}

/** The AgentPool the operator's Deployment describes (operator/src/controllers/agentpool.deployment.ts). */
function poolFromEnv(env: Env): PoolResource {
  const temperature = number(env, 'TROUPE_MODEL_TEMPERATURE', 0, 2);
  const maxOutputTokens = integer(env, 'TROUPE_MODEL_MAX_OUTPUT_TOKENS', undefined, 1);
  const requestsPerMinute = integer(env, 'TROUPE_RATE_LIMIT_RPM', undefined, 1);
  const tokensPerMinute = integer(env, 'TROUPE_RATE_LIMIT_TPM', undefined, 1);
  const systemPrompt = optional(env, 'TROUPE_SYSTEM_PROMPT');
  return {
    namespace: required(env, 'TROUPE_POOL_NAMESPACE', "the AgentPool's namespace"),
    name: required(env, 'TROUPE_POOL_NAME', "the AgentPool's name"),
    replicas: 1,
    spec: {
      role: required(env, 'TROUPE_POOL_ROLE', "the AgentPool's spec.role"),
      model: {
        provider: required(env, 'TROUPE_MODEL_PROVIDER', 'the ModelProvider the pool calls (spec.model.provider)'),
        name: required(env, 'TROUPE_MODEL_NAME', 'the model the pool calls (spec.model.name)'),
        ...(temperature === undefined ? {} : { temperature }),
        ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
      },
      concurrency: integer(env, 'TROUPE_CONCURRENCY', 4, 1, 1024)!,
      ...(requestsPerMinute === undefined && tokensPerMinute === undefined
        ? {}
        : {
            rateLimit: {
              ...(requestsPerMinute === undefined ? {} : { requestsPerMinute }),
              ...(tokensPerMinute === undefined ? {} : { tokensPerMinute }),
            },
          }),
      ...(systemPrompt === undefined ? {} : { systemPrompt }),
    },
  };
}

/** The pool's ModelProvider: its type, endpoint, key and prices, which the AgentPool only names. */
function providerFromEnv(env: Env, name: string) {
  const type = required(env, 'TROUPE_PROVIDER_TYPE', `the type of ModelProvider ${name}: ${PROVIDER_TYPES.join(', ')}`);
  if (!(PROVIDER_TYPES as readonly string[]).includes(type)) {
    throw invalid('TROUPE_PROVIDER_TYPE', `must be one of ${PROVIDER_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  }
  const baseURL = optional(env, 'TROUPE_PROVIDER_BASE_URL');
  if (baseURL !== undefined && !URL.canParse(baseURL))
    throw invalid('TROUPE_PROVIDER_BASE_URL', `must be a URL, got ${JSON.stringify(baseURL)}`);
  const pricingText = optional(env, 'TROUPE_PROVIDER_PRICING');
  let pricing: ModelPrice[] | undefined;
  if (pricingText !== undefined) {
    try {
      pricing = JSON.parse(pricingText) as ModelPrice[];
    } catch (error) {
      throw invalid(
        'TROUPE_PROVIDER_PRICING',
        `must be JSON like [{"model":"gpt-4o-mini","inputPerMTokUSD":0.15,"outputPerMTokUSD":0.6}]: ${toError(error).message}`,
        error,
      );
    }
  }
  const simulatedText = optional(env, 'TROUPE_PROVIDER_SIMULATED');
  let simulated: Partial<SimulatedModelOptions> | undefined;
  if (simulatedText !== undefined) {
    try {
      simulated = JSON.parse(simulatedText) as Partial<SimulatedModelOptions>;
    } catch (error) {
      throw invalid(
        'TROUPE_PROVIDER_SIMULATED',
        `must be JSON like {"latencyMs":200,"tokensPerSecond":80,"seed":1}: ${toError(error).message}`,
        error,
      );
    }
  }
  try {
    return createProvider(
      name,
      {
        type: type as ProviderType,
        ...(baseURL === undefined ? {} : { baseURL }),
        ...(pricing === undefined ? {} : { pricing }),
        ...(simulated === undefined ? {} : { simulated }),
      },
      { apiKey: optional(env, 'TROUPE_PROVIDER_API_KEY') },
    );
  } catch (error) {
    throw invalid(
      'TROUPE_PROVIDER_TYPE, TROUPE_PROVIDER_API_KEY, TROUPE_PROVIDER_PRICING or TROUPE_PROVIDER_SIMULATED',
      `describe no usable provider: ${toError(error).message}`,
      error,
    );
  }
}
