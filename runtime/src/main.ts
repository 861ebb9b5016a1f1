/**
 * `npm start`: the whole company embedded in one process. An embedded resource store (the
 * Kubernetes API subset the operator uses, in SQLite) holds the company's resources; the
 * operator's reconcilers run over it and drive the runtime (embedded log, SQLite store, agent
 * pools in this process) through its gRPC API; the gateway serves the dashboard. The sample
 * company from crds/samples (or TROUPE_SAMPLES_DIR) is applied once, through the store. It runs
 * on the simulated provider unless OPENAI_API_KEY, ANTHROPIC_API_KEY or a reachable Ollama says
 * otherwise, keeps its state in TROUPE_DATA_DIR (default .troupe/data), writes a kubeconfig
 * there for the `troupe` CLI, and prints the projects' progress as they go. Every gRPC call and
 * every gateway request carries a bearer token signed with TROUPE_TOKEN_SECRET (default: a
 * secret of this run): the embedded operator mints its own, the CLI finds one in the kubeconfig.
 * Projects' notice emails go through the SMTP relay at TROUPE_SMTP_URL, and their webhook and
 * git Secrets are files under TROUPE_SECRETS_DIR (default: the data directory's secrets/).
 * OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables of @troupe/operator/tracing), when
 * set, sends the traces of the whole company, reconciles to LLM calls, to that collector.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import {
  AgentPools,
  GrpcRuntimeClient,
  KindCatalog,
  KubeClient,
  ModelProviders,
  OperatorError,
  OperatorErrorCode,
  Projects,
  applyManifest,
  jsonLogger,
  readKubeconfig,
  readManifests,
  refusals,
  resourceType,
  startEmbeddedApiServer,
  startOperator,
  writeKubeconfig,
  type AgentPool,
  type EmbeddedApiServer,
  type KubeObject,
  type ModelProvider,
  type RuntimePoolChange,
  type RuntimePools,
} from '@troupe/operator';
import { startTracing, tracingConfig } from '@troupe/operator/tracing';
import { ProjectPhase } from '@troupe/proto';
import type { RuntimeApi } from './api/runtime-api.js';
import type { Company } from './domain/company.js';
import type { PoolResource } from './domain/pools.js';
import { smtpRelay } from './domain/delivery/smtp-client.js';
import { startEmbeddedRuntime, type EmbeddedRuntimeOptions } from './embedded.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import { Gateway } from './gateway/gateway.js';
import { phaseName } from './gateway/views.js';
import { Tokens } from './gateway/tokens.js';
import { createProvider, type ModelProviderSpec } from './llm/providers/create-provider.js';
import { redact } from './security/redact.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

interface ProviderChoice {
  name: string;
  spec: ModelProviderSpec;
  apiKey?: string;
  /** The model every pool uses, when the samples' simulated models do not exist there. */
  model?: string;
}

/**
 * The provider to run: a hosted one when its key is set, a local Ollama when it answers, else the
 * simulated ModelProvider of the store (as applied from the samples).
 */
async function chooseProvider(env: NodeJS.ProcessEnv, providers: readonly ModelProvider[]): Promise<ProviderChoice> {
  if (env.OPENAI_API_KEY)
    return { name: 'openai', spec: { type: 'openai' }, apiKey: env.OPENAI_API_KEY, model: env.TROUPE_MODEL ?? 'gpt-4o-mini' };
  if (env.ANTHROPIC_API_KEY)
    return { name: 'anthropic', spec: { type: 'anthropic' }, apiKey: env.ANTHROPIC_API_KEY, model: env.TROUPE_MODEL ?? 'claude-haiku-4-5' };
  const ollama = env.OLLAMA_HOST ?? 'http://127.0.0.1:11434';
  const reachable = await fetch(`${ollama}/api/tags`, { signal: AbortSignal.timeout(500) }).then(
    (response) => response.ok,
    () => false,
  );
  if (reachable) return { name: 'ollama', spec: { type: 'ollama', baseURL: ollama }, model: env.TROUPE_MODEL ?? 'llama3.2' };
  const simulated = providers.find((provider) => provider.spec.type === 'simulated');
  return {
    name: simulated?.metadata.name ?? 'simulated',
    spec: (simulated?.spec as ModelProviderSpec | undefined) ?? { type: 'simulated' },
  };
}

/** An AgentPool resource as the runtime runs it, on the chosen provider's model when that is not the samples' own. */
function poolResource(pool: AgentPool, choice: ProviderChoice): PoolResource {
  const { spec } = pool;
  const model = choice.model === undefined ? spec.model : { ...spec.model, provider: choice.name, name: choice.model };
  return {
    namespace: pool.metadata.namespace ?? 'default',
    name: pool.metadata.name,
    replicas: spec.replicas ?? 1,
    spec: {
      role: spec.role,
      model: { provider: model.provider, name: model.name, temperature: model.temperature, maxOutputTokens: model.maxOutputTokens },
      concurrency: spec.concurrency ?? 4,
      ...(spec.rateLimit === undefined ? {} : { rateLimit: spec.rateLimit }),
      ...(spec.systemPrompt === undefined ? {} : { systemPrompt: spec.systemPrompt }),
    },
  };
}

/**
 * The AgentPool reconciler's pools, run in this process: there is no kubelet to run a
 * Deployment's pods. `running` are the pools the runtime was started with.
 */
function embeddedPools(company: Company, choice: ProviderChoice, running: readonly PoolResource[]): RuntimePools {
  const specs = new Map(running.map((pool) => [`${pool.namespace}/${pool.name}`, JSON.stringify(pool.spec)]));
  return {
    async apply(pool): Promise<RuntimePoolChange> {
      const resource = poolResource(pool, choice);
      const key = `${resource.namespace}/${resource.name}`;
      const known = specs.get(key);
      if (known === JSON.stringify(resource.spec)) return 'unchanged';
      // A new pool starts at its replicas; a running one keeps its count until ScalePool changes it.
      const current = (await company.listPools(resource.namespace)).find((entry) => entry.status?.pool === resource.name);
      await company.applyPool({ ...resource, replicas: current?.status?.replicas ?? resource.replicas });
      specs.set(key, JSON.stringify(resource.spec));
      return known === undefined ? 'started' : 'updated';
    },
    scale: (commandId, command) => company.scalePool(commandId, command),
    async remove(namespace, name) {
      specs.delete(`${namespace}/${name}`);
      await company.removePool(namespace, name);
    },
  };
}

/** The dashboard's Scale: sets the AgentPool resource's replicas, which the operator then gives the pool. */
function scaleByResource(client: KubeClient): RuntimeApi['scalePool'] {
  return async (_commandId, { namespace, pool, replicas }) => {
    try {
      await client.patch(AgentPools, namespace, pool, { spec: { replicas } }, { strategy: 'merge' });
    } catch (error) {
      if (error instanceof OperatorError && error.code === OperatorErrorCode.NotFound)
        throw new RuntimeError(RuntimeErrorCode.NotFound, `no AgentPool ${pool} in namespace ${namespace}`, { cause: error });
      throw error;
    }
  };
}

/** The token of the last run's kubeconfig, so that a CLI watching across a restart keeps its access. */
function previousToken(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const user = readKubeconfig(path).config.getCurrentUser();
  return user?.token || undefined;
}

/** Marks a store the samples were applied to, so that what a user deletes afterwards stays deleted. */
const SAMPLES_MARKER = { namespace: 'default', name: 'troupe-samples' };
const ConfigMaps = resourceType<KubeObject & { data?: Record<string, string> }>('', 'v1', 'ConfigMap', 'configmaps');

/**
 * Applies the samples on the first start, creating only what the store lacks: a restart (even
 * one after a crash half-way through) changes nothing that was applied or edited since.
 */
async function applySamples(client: KubeClient, api: EmbeddedApiServer, dir: string): Promise<number> {
  if ((await client.get(ConfigMaps, SAMPLES_MARKER.namespace, SAMPLES_MARKER.name)) !== undefined) return 0;
  const manifests = readManifests(dir, new KindCatalog(api.validator.kinds()), { name: 'default', explicit: false });
  const refused = refusals(manifests, api.validator);
  if (refused.length > 0) throw new Error(`the samples in ${dir} are refused: ${refused.join('; ')}`);
  let created = 0;
  for (const manifest of manifests) if ((await applyManifest(client, manifest, { createOnly: true })) === 'created') created++;
  await client.create(ConfigMaps, { metadata: SAMPLES_MARKER, data: { appliedFrom: dir } });
  return created;
}

/** Notice emails go through TROUPE_SMTP_URL (`smtp://host:port`) from TROUPE_MAIL_FROM; Secrets are read under TROUPE_SECRETS_DIR. */
function deliveryConfig(env: NodeJS.ProcessEnv): NonNullable<EmbeddedRuntimeOptions['delivery']> {
  return {
    ...(env.TROUPE_SMTP_URL ? { smtp: smtpRelay(env.TROUPE_SMTP_URL, 'TROUPE_SMTP_URL') } : {}),
    ...(env.TROUPE_MAIL_FROM ? { mailFrom: env.TROUPE_MAIL_FROM } : {}),
    ...(env.TROUPE_SECRETS_DIR ? { secretsDir: resolve(env.TROUPE_SECRETS_DIR) } : {}),
  };
}

async function main(env: NodeJS.ProcessEnv): Promise<void> {
  const traces = tracingConfig(env, { serviceName: 'troupe-embedded' });
  const tracing = traces === undefined ? undefined : await startTracing(traces);
  const dataDir = resolve(env.TROUPE_DATA_DIR ?? resolve(ROOT, '.troupe', 'data'));
  const samplesDir = resolve(env.TROUPE_SAMPLES_DIR ?? resolve(ROOT, 'crds', 'samples'));
  const kubeconfig = join(dataDir, 'kubeconfig');
  const token = env.TROUPE_API_TOKEN ?? previousToken(kubeconfig) ?? randomBytes(32).toString('hex');
  const api = await startEmbeddedApiServer({ dataDir, crdsDir: resolve(ROOT, 'crds'), token, port: Number(env.TROUPE_API_PORT ?? 8081) });
  writeKubeconfig(kubeconfig, { server: api.url, token });
  const kubeConfig = readKubeconfig(kubeconfig).config;
  const client = new KubeClient({ config: kubeConfig, fieldManager: 'troupe-start' });
  const created = await applySamples(client, api, samplesDir);

  const choice = await chooseProvider(env, (await client.list(ModelProviders)).items);
  const stored = (await client.list(AgentPools)).items;
  const projects = (await client.list(Projects)).items;
  // The runtime starts with the stored pools, so that work resumed after a restart finds its
  // pool at once; from then on the AgentPool reconciler keeps them as the resources say.
  const pools = stored.map((pool) => poolResource(pool, choice));
  // A secret of this run unless one is given, so the printed tokens stop working with it.
  const tokens = new Tokens({ secret: env.TROUPE_TOKEN_SECRET ?? randomBytes(32).toString('hex'), ttlSeconds: 7 * 24 * 3600 });
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider(choice.name, choice.spec, { apiKey: choice.apiKey })],
    pools,
    grpc: { port: Number(env.TROUPE_GRPC_PORT ?? 0), tokens },
    delivery: deliveryConfig(env),
  });
  const grpcAddress = runtime.grpcAddress as string;
  const namespace = projects[0]?.metadata.namespace ?? stored[0]?.metadata.namespace ?? 'default';
  const runtimeToken = tokens.sign({ sub: 'cli', role: 'admin' });
  writeKubeconfig(kubeconfig, { server: api.url, token, runtimeAddress: grpcAddress, runtimeToken, namespace });
  console.log(`troupe: the company runs embedded, state in ${dataDir}`);
  console.log(`troupe: provider ${choice.name} (${choice.spec.type})${choice.model ? `, model ${choice.model}` : ''}`);
  console.log(
    `troupe: ${pools.length} agent pools: ${pools.map((pool) => `${pool.namespace}/${pool.name} (${pool.spec.role})`).join(', ')}`,
  );
  console.log(`troupe: gRPC RuntimeService on ${grpcAddress}`);
  console.log(`troupe: resources served at ${api.url}${created > 0 ? `, ${created} applied from ${samplesDir}` : ''}`);

  const operatorLog = createWriteStream(join(dataDir, 'operator.log'), { flags: 'a' });
  // Minted per call, so the operator's token never expires however long the company runs.
  const grpc = new GrpcRuntimeClient({ address: grpcAddress, token: () => tokens.sign({ sub: 'embedded-operator', role: 'admin' }) });
  const operator = startOperator({
    kubeConfig,
    identity: 'embedded',
    runtime: grpc,
    leaderElection: false,
    runtimePools: embeddedPools(runtime.company, choice, pools),
    // Pools live in this process: their load is cheap to read, and readiness shows sooner.
    metricsIntervalMs: 1_000,
    // The operator's lines quote the runtime's errors: an API key from the environment must not reach the file.
    log: jsonLogger('info', (line) => operatorLog.write(`${redact(line)}\n`)),
  });

  const staticDir = resolve(ROOT, 'dashboard', 'build');
  if (!existsSync(resolve(staticDir, 'index.html'))) {
    console.log('troupe: building the dashboard once (dashboard/build)…');
    execFileSync('npm', ['run', 'build', '-w', 'dashboard'], { cwd: ROOT, stdio: 'ignore' });
  }
  const gateway = await Gateway.start({
    api: runtime.company,
    scalePool: scaleByResource(client),
    tokens,
    staticDir,
    port: Number(env.TROUPE_PORT ?? 8080),
  });
  console.log(`troupe: dashboard at ${gateway.url}`);
  console.log(`troupe:   admin token:       ${tokens.sign({ sub: 'admin', role: 'admin' })}`);
  for (const tenant of new Set(pools.map((pool) => pool.namespace))) {
    console.log(`troupe:   ${tenant} client token: ${tokens.sign({ sub: `client@${tenant}`, tenant })}`);
  }
  // The CLI finds the kubeconfig by itself when run from the repository with the default data directory.
  const cli =
    relative(process.cwd(), kubeconfig) === join('.troupe', 'data', 'kubeconfig')
      ? 'npx troupe'
      : `TROUPE_KUBECONFIG=${kubeconfig} npx troupe`;
  console.log(
    `troupe: the CLI (kubeconfig ${kubeconfig}): try \`${cli} get projects\`, \`${cli} logs -f ${projects[0]?.metadata.name ?? 'PROJECT'}\`, \`${cli} --help\``,
  );

  const progress = new ProgressLines(runtime.company);
  const stopWatching = await runtime.company.watch({}, (event) => progress.print(event.namespace, event.project));
  for (const project of projects) await progress.print(project.metadata.namespace ?? 'default', project.metadata.name);

  const shutdown = async () => {
    await stopWatching();
    await operator.stop();
    grpc.close();
    client.close();
    await gateway.stop();
    await runtime.stop();
    await api.stop();
    await tracing?.shutdown().catch((error: unknown) => console.error(`troupe: spans not exported: ${redact(String(error))}`));
    operatorLog.end();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
}

/** Prints a project's progress line whenever it changes. */
class ProgressLines {
  private readonly last = new Map<string, string>();

  constructor(private readonly company: Company) {}

  async print(namespace: string, name: string): Promise<void> {
    if (name === '') return;
    const key = `${namespace}/${name}`;
    const status = (await this.company.getProject(namespace, name))?.status;
    if (status === undefined) return;
    const phase = phaseName(status.phase);
    const bar = '█'.repeat(Math.round((status.progress?.percent ?? 0) / 5)).padEnd(20, '░');
    const line = `${key} ${bar} ${String(status.progress?.percent ?? 0).padStart(3)}% ${phase.padEnd(16)} ${status.currentPhase.padEnd(14)} tasks ${status.progress?.tasksDone ?? 0}/${status.progress?.tasksTotal ?? 0}  $${(status.cost?.usd ?? 0).toFixed(4)}`;
    if (line === this.last.get(key)) return;
    this.last.set(key, line);
    console.log(line);
    if (status.phase === ProjectPhase.AWAITING_APPROVAL)
      console.log(
        `  ${key} waits for approval of ${status.currentPhase}: approve it on the dashboard or with npx troupe approve ${name} ${status.currentPhase} -n ${namespace}`,
      );
    if (status.phase === ProjectPhase.DELIVERED)
      console.log(`  delivered: ${status.artifacts.map((artifact) => artifact.name).join(', ')}`);
  }
}

main(process.env).catch((error: unknown) => {
  console.error(`troupe: ${redact(error instanceof Error ? error.message : String(error))}`);
  process.exit(1);
});
