import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError, HarnessErrorCode } from './errors.js';
import { stopPrivateServers } from './private.js';
import { isAlive, residentBytes, stopServer } from './process.js';
import { startCassandra, type CassandraEndpoint } from './servers/cassandra.js';
import { startChromium, type ChromiumEndpoint } from './servers/chromium.js';
import { installHelm, type HelmEndpoint } from './servers/helm.js';
import { installCrds, startKube, type KubeEndpoint } from './servers/kube.js';
import { startKafka, type KafkaEndpoint } from './servers/kafka.js';
import { startRedis, type RedisEndpoint } from './servers/redis.js';
import type { ServerContext, Started } from './servers/types.js';

/** Where each real server of a run listens. */
export interface InfraEndpoints {
  kafka: KafkaEndpoint;
  cassandra: CassandraEndpoint;
  redis: RedisEndpoint;
  kube: KubeEndpoint;
  helm: HelmEndpoint;
  chromium: ChromiumEndpoint;
}

export type ServerName = keyof InfraEndpoints;

/** Who started the servers: a test run stops its own; `infra:up` leaves them for later runs. */
export type InfraOwner = 'test-run' | 'infra-up';

/** The state file of running servers, shared by `infra:*`, vitest's global setup and benchmarks. */
export interface InfraState {
  owner: InfraOwner;
  startedAt: string;
  runDir: string;
  endpoints: InfraEndpoints;
  pids: Record<ServerName, number[]>;
}

export interface InfraOptions {
  /** The repository root: crds/ is read from it and .troupe/infra/ holds the run. */
  repoRoot: string;
  /** The machine-wide cache of built servers (default ~/.cache/troupe). */
  cacheDir: string;
}

function stateFile(repoRoot: string): string {
  return join(repoRoot, '.troupe', 'infra', 'state.json');
}

/** The running servers, or undefined when none run or any of them has died. */
export function readInfra(repoRoot: string): InfraState | undefined {
  const file = stateFile(repoRoot);
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as InfraState;
  return Object.values(state.pids).flat().every(isAlive) ? state : undefined;
}

/**
 * Returns the servers kept by `infra:up` when all of them are alive (refreshing the CRDs from
 * crds/), else stops whatever an earlier run left behind and starts all six anew, in parallel.
 */
export async function startInfra(options: InfraOptions, owner: InfraOwner): Promise<{ state: InfraState; reused: boolean }> {
  const running = readInfra(options.repoRoot);
  if (running?.owner === 'infra-up') {
    await installCrds(running.endpoints.kube, join(options.repoRoot, 'crds'));
    return { state: running, reused: true };
  }
  await stopInfra(options.repoRoot);

  const runDir = join(options.repoRoot, '.troupe', 'infra', 'run');
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const context: ServerContext = { cacheDir: options.cacheDir, runDir, repoRoot: options.repoRoot };
  const starts = {
    kafka: startKafka(context),
    cassandra: startCassandra(context),
    redis: startRedis(context),
    kube: startKube(context),
    helm: installHelm(options.cacheDir).then((endpoint): Started<HelmEndpoint> => ({ endpoint, pids: [] })),
    chromium: startChromium(context),
  } satisfies { [K in ServerName]: Promise<Started<InfraEndpoints[K]>> };

  const names = Object.keys(starts) as ServerName[];
  const settled = await Promise.allSettled(names.map((name) => starts[name]));
  const failures = settled.flatMap((result, i) => (result.status === 'rejected' ? [`${names[i]}: ${message(result.reason)}`] : []));
  const started = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  if (failures.length > 0) {
    await Promise.all(started.flatMap((server) => server.pids.map((pid) => stopServer(pid))));
    throw new HarnessError(HarnessErrorCode.StartFailed, `could not start every server:\n${failures.join('\n')}`);
  }

  const value = <K extends ServerName>(name: K) =>
    (settled[names.indexOf(name)] as PromiseFulfilledResult<Started<InfraEndpoints[K]>>).value;
  const state: InfraState = {
    owner,
    startedAt: new Date().toISOString(),
    runDir,
    endpoints: {
      kafka: value('kafka').endpoint,
      cassandra: value('cassandra').endpoint,
      redis: value('redis').endpoint,
      kube: value('kube').endpoint,
      helm: value('helm').endpoint,
      chromium: value('chromium').endpoint,
    },
    pids: Object.fromEntries(names.map((name) => [name, value(name).pids])) as Record<ServerName, number[]>,
  };
  writeFileSync(stateFile(options.repoRoot), `${JSON.stringify(state, null, 2)}\n`);
  return { state, reused: false };
}

/** Stops every server recorded in the state file, alive or not, and every private one, and forgets them. */
export async function stopInfra(repoRoot: string): Promise<void> {
  await stopPrivateServers();
  const file = stateFile(repoRoot);
  if (!existsSync(file)) return;
  const state = JSON.parse(readFileSync(file, 'utf8')) as InfraState;
  await Promise.all(
    Object.values(state.pids)
      .flat()
      .map((pid) => stopServer(pid)),
  );
  rmSync(file, { force: true });
}

/** One row per server: whether it is alive and how much memory it holds. */
export function infraStatus(state: InfraState): { server: ServerName; alive: boolean; residentBytes: number; pids: number[] }[] {
  return (Object.keys(state.pids) as ServerName[]).map((server) => {
    const pids = state.pids[server];
    return {
      server,
      pids,
      alive: pids.every(isAlive),
      residentBytes: pids.reduce((sum, pid) => sum + residentBytes(pid), 0),
    };
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
