/**
 * The cluster the chaos suite breaks, on loopback, as processes: private Kafka, Cassandra and
 * Redis (their faults touch no other test's servers), runtime nodes run as Kubernetes would run
 * the AgentPool's pods — the runtime image's main.ts in child processes with the environment of
 * the Deployment the operator wrote, plus what a pod gets beside it (its name, its ports, the
 * shared artefacts volume, the token Secret) — and operator replicas, operator/src/main.ts in
 * child processes, electing their leader through a Lease on the harness's API server. Like a
 * kubelet, it starts again a process that exits without being killed, and says so.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  freePort,
  startPrivateServer,
  type CassandraEndpoint,
  type KafkaEndpoint,
  type PrivateServer,
  type RedisEndpoint,
} from '@troupe/harness';
import { resourceType, type KubeClient, type KubeObject } from '@troupe/operator';
import { eventually, startChild, type ChildProgram } from '@troupe/runtime/testing';

const require = createRequire(import.meta.url);
/** The runtime image's entry point and the operator's, beside their packages' index files. */
const NODE_MAIN = join(dirname(require.resolve('@troupe/runtime')), 'node', 'main.ts');
const OPERATOR_MAIN = join(dirname(require.resolve('@troupe/operator')), 'main.ts');

/** The Lease the operator replicas campaign for. */
const LEASE = 'troupe-operator';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

/** What the suite reads of a Deployment: its pod template's container environment. */
interface PodDeployment extends KubeObject {
  spec: { template: { spec: { containers: { name: string; env?: EnvVar[] }[] } } };
}

interface LeaseObject extends KubeObject {
  spec: { holderIdentity?: string | null };
}

const Deployments = resourceType<PodDeployment>('apps', 'v1', 'Deployment', 'deployments');
const Leases = resourceType<LeaseObject>('coordination.k8s.io', 'v1', 'Lease', 'leases');

/** The private servers the faults hit. */
export interface ClusterServers {
  kafka: PrivateServer<KafkaEndpoint>;
  cassandra: PrivateServer<CassandraEndpoint>;
  redis: PrivateServer<RedisEndpoint>;
}

/** Starts the three private servers at once; disposes of the started ones when one fails. */
export async function startServers(): Promise<ClusterServers> {
  const [kafka, cassandra, redis] = await Promise.allSettled([
    startPrivateServer('kafka'),
    startPrivateServer('cassandra'),
    startPrivateServer('redis'),
  ]);
  if (kafka.status === 'fulfilled' && cassandra.status === 'fulfilled' && redis.status === 'fulfilled')
    return { kafka: kafka.value, cassandra: cassandra.value, redis: redis.value };
  const results = [kafka, cassandra, redis];
  await Promise.all(results.map((result) => (result.status === 'fulfilled' ? result.value.dispose() : undefined)));
  throw results.find((result) => result.status === 'rejected')?.reason;
}

/** A process that exited while nobody was killing it. */
export interface UnplannedExit {
  process: string;
  code: number | null;
  at: number;
  /** Its last lines on stderr. */
  stderr: string;
}

/** A process the cluster keeps running under a fixed name. */
class Supervised {
  private program: ChildProgram | undefined;
  private killing = false;
  /** The stderr of the processes before the current one, each under the time it started. */
  private earlier = '';
  private startedAt = 0;

  constructor(
    readonly name: string,
    private readonly launch: () => ChildProgram,
    private readonly onUnplannedExit: (exit: UnplannedExit) => void,
  ) {}

  /** Starts the process, and starts it again a second after it exits on its own (a kubelet's restart, without its back-off growing). */
  start(): ChildProgram {
    if (this.program) this.earlier += this.section(this.program);
    const program = this.launch();
    this.program = program;
    this.startedAt = Date.now();
    this.killing = false;
    void program.exited.then((code) => {
      if (this.killing || this.program !== program) return;
      this.onUnplannedExit({ process: this.name, code, at: Date.now(), stderr: program.stderr.split('\n').slice(-6).join('\n') });
      setTimeout(() => {
        if (!this.killing && this.program === program) this.start();
      }, 1_000);
    });
    return program;
  }

  /** SIGKILL, as a crash or an OOM kill ends it; resolves once it is gone. */
  async kill(): Promise<void> {
    this.killing = true;
    await this.program?.kill();
  }

  /** Everything the current process printed on stderr so far. */
  get stderr(): string {
    return this.program?.stderr ?? '';
  }

  /** Everything every process under this name printed on stderr, each under the time it started. */
  get transcript(): string {
    return this.earlier + (this.program ? this.section(this.program) : '');
  }

  private section(program: ChildProgram): string {
    return `=== ${this.name}, started ${new Date(this.startedAt).toISOString()}\n${program.stderr}\n`;
  }
}

/** A runtime node: one pod of the AgentPool's Deployment, or a gateway replica. */
export interface RuntimeNode {
  name: string;
  /** TROUPE_COMPONENTS. */
  components: string;
  /** `http://127.0.0.1:port` of /readyz, /healthz and /metrics. */
  ops: string;
  grpcPort: number;
  /** `http://127.0.0.1:port` of the gateway, with the `gateway` component. */
  gateway?: string;
}

/** What every runtime node is given beside the Deployment's environment. */
export interface NodeSettings {
  /** The volume every node mounts for deliverables. */
  artifactsDir: string;
  /** The token Secret: the gRPC API checks the operator's token with it. */
  tokenSecret: string;
}

/**
 * The environment of the pods of a Deployment the operator wrote, once it exists. Values from
 * Secrets or ConfigMaps (`valueFrom`) are refused: this suite's resources need none.
 */
export async function podEnvironment(
  client: KubeClient,
  namespace: string,
  name: string,
  timeoutMs: number,
): Promise<Record<string, string>> {
  let deployment: PodDeployment | undefined;
  await eventually(
    async () => {
      deployment = await client.get(Deployments, namespace, name);
      if (deployment === undefined) throw new Error(`the operator wrote no Deployment ${namespace}/${name} within ${timeoutMs} ms`);
    },
    timeoutMs,
    250,
  );
  const env: Record<string, string> = {};
  for (const variable of deployment!.spec.template.spec.containers[0]?.env ?? []) {
    if (variable.value === undefined) {
      throw new Error(
        `Deployment ${namespace}/${name} sets ${variable.name} from ${JSON.stringify(variable.valueFrom)}, which the chaos suite does not resolve`,
      );
    }
    env[variable.name] = variable.value;
  }
  return env;
}

/**
 * `count` runtime nodes, each with ports of its own that it keeps across restarts (a restarted
 * pod keeps its name, and its Service its address), not started yet.
 */
export async function planNodes(count: number): Promise<RuntimeNode[]> {
  const nodes: RuntimeNode[] = [];
  for (let i = 0; i < count; i += 1) {
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    // The runtime and the pool in each process, so that every node does both jobs and any may die.
    nodes.push({ name: `chaos-node-${i}`, components: 'runtime,pool', ops: `http://127.0.0.1:${httpPort}`, grpcPort });
  }
  return nodes;
}

/** A gateway replica: it runs no actors, reaches the runtime nodes through Kafka and serves the HTTP API. */
export async function planGateway(): Promise<RuntimeNode> {
  const [httpPort, grpcPort, gatewayPort] = [await freePort(), await freePort(), await freePort()];
  return {
    name: 'chaos-gateway',
    components: 'gateway',
    ops: `http://127.0.0.1:${httpPort}`,
    grpcPort,
    gateway: `http://127.0.0.1:${gatewayPort}`,
  };
}

/** The gRPC target of the nodes, as a Service with their endpoints: a caller moves to another when one dies. */
export function grpcTarget(nodes: readonly RuntimeNode[]): string {
  return `ipv4:${nodes.map((node) => `127.0.0.1:${node.grpcPort}`).join(',')}`;
}

/** The runtime nodes, started and killed by name. */
export class RuntimeNodes {
  private readonly processes = new Map<string, Supervised>();

  /** The nodes, with the pods' environment `podEnv` and what a pod gets beside it; more may be started later by `start`. */
  constructor(
    readonly nodes: readonly RuntimeNode[],
    private readonly podEnv: Record<string, string>,
    private readonly settings: NodeSettings,
    private readonly onUnplannedExit: (exit: UnplannedExit) => void,
  ) {}

  private env(node: RuntimeNode): Record<string, string> {
    return {
      ...this.podEnv,
      TROUPE_COMPONENTS: node.components,
      TROUPE_NODE_ID: node.name,
      TROUPE_LISTEN_HOST: '127.0.0.1',
      TROUPE_HTTP_PORT: new URL(node.ops).port,
      TROUPE_GRPC_PORT: String(node.grpcPort),
      ...(node.gateway === undefined ? {} : { TROUPE_GATEWAY_PORT: new URL(node.gateway).port }),
      TROUPE_ARTIFACTS_DIR: this.settings.artifactsDir,
      TROUPE_TOKEN_SECRET: this.settings.tokenSecret,
    };
  }

  /** Starts the node and resolves once it is ready; rejects with its stderr when it exits or does not get ready. */
  async start(node: RuntimeNode, timeoutMs: number): Promise<void> {
    let supervised = this.processes.get(node.name);
    if (supervised === undefined) {
      supervised = new Supervised(node.name, () => startChild(NODE_MAIN, undefined, { env: this.env(node) }), this.onUnplannedExit);
      this.processes.set(node.name, supervised);
    }
    const program = supervised.start();
    const exited = program.exited.then((code) => {
      throw new Error(`${node.name} exited with ${code} before it was ready:\n${program.stderr}`);
    });
    await Promise.race([eventually(async () => void (await ready(node)), timeoutMs, 250), exited]);
    exited.catch(() => {});
  }

  /** SIGKILL of the node's process. */
  kill(node: RuntimeNode): Promise<void> {
    return this.processes.get(node.name)?.kill() ?? Promise.resolve();
  }

  /** What the node's current process printed on stderr. */
  stderr(node: RuntimeNode): string {
    return this.processes.get(node.name)?.stderr ?? '';
  }

  /** What every process of the node printed on stderr, the killed ones too. */
  transcript(node: RuntimeNode): string {
    return this.processes.get(node.name)?.transcript ?? '';
  }

  /** Kills every node. */
  async stop(): Promise<void> {
    await Promise.all([...this.processes.values()].map((process) => process.kill()));
  }
}

/** Resolves when the node's /readyz answers 200; throws with its body otherwise. */
export async function ready(node: RuntimeNode): Promise<void> {
  const response = await fetch(`${node.ops}/readyz`, { signal: AbortSignal.timeout(3_000) });
  if (response.status !== 200) throw new Error(`${node.name} is not ready: ${await response.text()}`);
}

/** Operator replicas of one namespace, electing a leader with short Lease timings. */
export class Operators {
  private readonly replicas = new Map<string, Supervised>();

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly env: Record<string, string>,
    private readonly onUnplannedExit: (exit: UnplannedExit) => void,
  ) {}

  /** The Lease's timings, in ms: a killed leader is replaced within about `durationMs`. */
  static readonly LEASE = { durationMs: 6_000, renewDeadlineMs: 4_000, retryPeriodMs: 500 } as const;

  /** Starts a replica named `identity` (its POD_NAME, the Lease holder's name when it leads). */
  start(identity: string): void {
    let replica = this.replicas.get(identity);
    if (replica === undefined) {
      const env = {
        ...this.env,
        POD_NAME: identity,
        POD_NAMESPACE: this.namespace,
        TROUPE_WATCH_NAMESPACES: this.namespace,
        TROUPE_LEASE_NAME: LEASE,
        TROUPE_LEASE_DURATION_MS: String(Operators.LEASE.durationMs),
        TROUPE_RENEW_DEADLINE_MS: String(Operators.LEASE.renewDeadlineMs),
        TROUPE_RETRY_PERIOD_MS: String(Operators.LEASE.retryPeriodMs),
        TROUPE_HEALTH_PORT: '0',
      };
      replica = new Supervised(identity, () => startChild(OPERATOR_MAIN, undefined, { env }), this.onUnplannedExit);
      this.replicas.set(identity, replica);
    }
    replica.start();
  }

  /** SIGKILL of the replica: it releases nothing, so the others wait for its Lease to run out. */
  kill(identity: string): Promise<void> {
    return this.replicas.get(identity)?.kill() ?? Promise.resolve();
  }

  /** Who holds the Lease, or undefined when nobody does. */
  async leader(): Promise<string | undefined> {
    const lease = await this.client.get(Leases, this.namespace, LEASE);
    return lease?.spec.holderIdentity ?? undefined;
  }

  /** What every process of each replica printed on stderr, by identity. */
  transcripts(): Map<string, string> {
    return new Map([...this.replicas].map(([identity, replica]) => [identity, replica.transcript]));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.replicas.values()].map((replica) => replica.kill()));
  }
}
