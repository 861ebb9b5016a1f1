/**
 * `npm start`: the whole company embedded in one process. It runs the sample company from
 * crds/samples (its pools and one project) on the simulated provider, unless OPENAI_API_KEY,
 * ANTHROPIC_API_KEY or a reachable Ollama says otherwise, keeps its state in TROUPE_DATA_DIR
 * (default .troupe/data), and prints the project's progress as it goes.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ProjectPhase, type SubmitProject } from '@troupe/proto';
import { startEmbeddedRuntime } from './embedded.js';
import { Gateway } from './gateway/gateway.js';
import { phaseName } from './gateway/views.js';
import { Tokens } from './gateway/tokens.js';
import { createProvider } from './llm/providers/create-provider.js';
import type { ModelProviderSpec } from './llm/providers/create-provider.js';
import { readManifests, type Manifests } from './manifests.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

interface ProviderChoice {
  name: string;
  spec: ModelProviderSpec;
  apiKey?: string;
  /** The model every pool uses, when the samples' simulated models do not exist there. */
  model?: string;
}

/** The provider to run: a hosted one when its key is set, a local Ollama when it answers, else the simulated one. */
async function chooseProvider(env: NodeJS.ProcessEnv, manifests: Manifests): Promise<ProviderChoice> {
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
  const simulated = manifests.providers.find((provider) => provider.spec.type === 'simulated');
  return { name: simulated?.name ?? 'simulated', spec: simulated?.spec ?? { type: 'simulated' } };
}

async function main(env: NodeJS.ProcessEnv): Promise<void> {
  const dataDir = resolve(env.TROUPE_DATA_DIR ?? resolve(ROOT, '.troupe', 'data'));
  const manifests = readManifests(resolve(ROOT, 'crds', 'samples'));
  const choice = await chooseProvider(env, manifests);
  const pools = manifests.pools.map((pool) =>
    choice.model === undefined
      ? pool
      : { ...pool, spec: { ...pool.spec, model: { ...pool.spec.model, provider: choice.name, name: choice.model } } },
  );
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider(choice.name, choice.spec, { apiKey: choice.apiKey })],
    pools,
    grpcPort: Number(env.TROUPE_GRPC_PORT ?? 0),
  });
  console.log(`troupe: the company runs embedded, state in ${dataDir}`);
  console.log(`troupe: provider ${choice.name} (${choice.spec.type})${choice.model ? `, model ${choice.model}` : ''}`);
  console.log(
    `troupe: ${pools.length} agent pools: ${pools.map((pool) => `${pool.namespace}/${pool.name} (${pool.spec.role})`).join(', ')}`,
  );
  console.log(`troupe: gRPC RuntimeService on ${runtime.grpcAddress}`);

  const staticDir = resolve(ROOT, 'dashboard', 'build');
  if (!existsSync(resolve(staticDir, 'index.html'))) {
    console.log('troupe: building the dashboard once (dashboard/build)…');
    execFileSync('npm', ['run', 'build', '-w', 'dashboard'], { cwd: ROOT, stdio: 'ignore' });
  }
  // A secret of this run unless one is given, so the printed tokens stop working with it.
  const tokens = new Tokens({ secret: env.TROUPE_TOKEN_SECRET ?? randomBytes(32).toString('hex'), ttlSeconds: 7 * 24 * 3600 });
  const gateway = await Gateway.start({ api: runtime.company, tokens, staticDir, port: Number(env.TROUPE_PORT ?? 8080) });
  console.log(`troupe: dashboard at ${gateway.url}`);
  console.log(`troupe:   admin token:       ${tokens.sign({ sub: 'admin', role: 'admin' })}`);
  for (const namespace of new Set(pools.map((pool) => pool.namespace))) {
    console.log(`troupe:   ${namespace} client token: ${tokens.sign({ sub: `client@${namespace}`, tenant: namespace })}`);
  }

  for (const project of manifests.projects) await submit(runtime.company, project);
  const shutdown = async () => {
    await gateway.stop();
    await runtime.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
  for (const project of manifests.projects) void follow(runtime.company, project);
}

type Company = Awaited<ReturnType<typeof startEmbeddedRuntime>>['company'];

/** Submits a sample once: the command id is its uid and generation, so a restart submits nothing new. */
async function submit(company: Company, project: SubmitProject): Promise<void> {
  await company.submitProject(`${project.uid}/${project.generation}`, project);
}

/** Prints a progress line whenever the project's state changes. */
async function follow(company: Company, project: SubmitProject): Promise<void> {
  let last = '';
  const print = async () => {
    const summary = await company.getProject(project.namespace, project.name);
    const status = summary?.status;
    if (status === undefined) return;
    const phase = phaseName(status.phase);
    const bar = '█'.repeat(Math.round((status.progress?.percent ?? 0) / 5)).padEnd(20, '░');
    const line = `${project.namespace}/${project.name} ${bar} ${String(status.progress?.percent ?? 0).padStart(3)}% ${phase.padEnd(16)} ${status.currentPhase.padEnd(14)} tasks ${status.progress?.tasksDone ?? 0}/${status.progress?.tasksTotal ?? 0}  $${(status.cost?.usd ?? 0).toFixed(4)}`;
    if (line === last) return;
    last = line;
    console.log(line);
    if (status.phase === ProjectPhase.AWAITING_APPROVAL)
      console.log(`  ${project.namespace}/${project.name} waits for approval of ${status.currentPhase}: approve it on the dashboard`);
    if (status.phase === ProjectPhase.DELIVERED)
      console.log(`  delivered: ${status.artifacts.map((artifact) => artifact.name).join(', ')}`);
  };
  await company.watch({ namespace: project.namespace, project: project.name }, () => void print());
  await print();
}

main(process.env).catch((error: unknown) => {
  console.error(`troupe: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
