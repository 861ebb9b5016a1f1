/**
 * The operator assembled: a Manager with the AgentPool, ModelProvider, Workflow and Project
 * controllers, the pool-load poller, and the clients they use. `main.ts` builds the clients from
 * flags and environment and calls `createOperator`; tests and benchmarks call it directly.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { RuntimePools } from './clients/pools.js';
import type { RuntimeClient } from './clients/runtime.js';
import type { PoolTopics } from './clients/topics.js';
import { AgentPoolReconciler, TOPIC_SIZING_DEFAULTS, type TopicSizing } from './controllers/agentpool.controller.js';
import { AGENT_DEPLOYMENT_DEFAULTS, type AgentDeploymentSettings } from './controllers/agentpool.deployment.js';
import { ModelProviderReconciler } from './controllers/modelprovider.controller.js';
import { PoolMetrics } from './controllers/pool-metrics.js';
import { PROJECT_RECONCILER_DEFAULTS, ProjectReconciler } from './controllers/project.controller.js';
import { WorkflowReconciler } from './controllers/workflow.controller.js';
import { checkOption, isPositiveInteger } from './errors.js';
import { KubeClient, type ApiRequest } from './kube/client.js';
import type { Clock } from './kube/clock.js';
import type { ReconcileOutcome } from './kube/controller.js';
import type { LeadershipEnd } from './kube/leader-election.js';
import { silentLogger, type Logger } from './kube/log.js';
import { MANAGER_DEFAULTS, Manager, type LeaderElectionSettings } from './kube/manager.js';

export interface OperatorOptions {
  /** Where the API server is and who the operator is to it (a kubeconfig or in-cluster). */
  kubeConfig: KubeConfig;
  /** This replica's name: the Lease holder and the Events' reportingInstance. */
  identity: string;
  /** The runtime's RuntimeService. */
  runtime: RuntimeClient;
  /** Creates and grows pool topics; without it pool topics are left alone (no Kafka). */
  topics?: PoolTopics;
  /** Namespaces to reconcile; all when empty (default). */
  namespaces: readonly string[];
  /** The leader Lease; `false` runs without election, as a single replica. */
  leaderElection: LeaderElectionSettings | false;
  /** How agent pods run (image, brokers, health port). */
  deployment: AgentDeploymentSettings;
  /** Runs AgentPools inside the runtime instead of as Deployments (embedded mode, no kubelet). */
  runtimePools?: RuntimePools;
  /** Pool topic partitions per replica, and the fewest per topic. */
  topicSizing: TopicSizing;
  /** At most one Project status write per project per interval (default 500 ms). */
  statusIntervalMs: number;
  /** How often an unfinished Project's status is read from the runtime even when its stream is quiet (default 60 s). */
  projectPollMs: number;
  /** How often pool load is read from the runtime (default 10 s). */
  metricsIntervalMs: number;
  /** Informer resync period (default 10 min). */
  resyncMs: number;
  /** Reconciles at once per controller (default 4). */
  concurrency: number;
  log: Logger;
  clock?: Clock;
  /** Called after every reconcile of every controller. */
  onReconciled?: (outcome: ReconcileOutcome) => void;
  /** Told of every Kubernetes API request before it is sent. */
  onRequest?: (request: ApiRequest) => void;
}

export const OPERATOR_DEFAULTS = {
  namespaces: [],
  deployment: AGENT_DEPLOYMENT_DEFAULTS,
  topicSizing: TOPIC_SIZING_DEFAULTS,
  statusIntervalMs: PROJECT_RECONCILER_DEFAULTS.statusIntervalMs,
  projectPollMs: PROJECT_RECONCILER_DEFAULTS.pollMs,
  metricsIntervalMs: 10_000,
  resyncMs: MANAGER_DEFAULTS.resyncMs,
  concurrency: MANAGER_DEFAULTS.concurrency,
  log: silentLogger,
} as const satisfies Partial<OperatorOptions>;

/** A running operator replica. */
export interface Operator {
  readonly manager: Manager;
  /** Resolves when the replica stopped leading: 'stopped' after `stop`, 'lost' when the Lease was lost. */
  readonly done: Promise<LeadershipEnd>;
  /** Stops reconciling, drains, releases the Lease and closes the Kubernetes client. */
  stop(): Promise<LeadershipEnd>;
}

/**
 * Starts an operator replica: it campaigns for the Lease and reconciles while it holds it.
 *
 * @example
 * const operator = startOperator({ kubeConfig, identity: 'operator-0', runtime, leaderElection: { namespace: 'troupe-system', name: 'troupe-operator' } });
 * process.once('SIGTERM', () => void operator.stop());
 * await operator.done;
 */
export function startOperator(
  options: Pick<OperatorOptions, 'kubeConfig' | 'identity' | 'runtime' | 'leaderElection'> & Partial<OperatorOptions>,
): Operator {
  const resolved: OperatorOptions = { ...OPERATOR_DEFAULTS, ...options };
  validate(resolved);
  const client = new KubeClient({ config: resolved.kubeConfig, onRequest: resolved.onRequest });
  const manager = new Manager({
    client,
    identity: resolved.identity,
    namespaces: resolved.namespaces,
    leaderElection: resolved.leaderElection,
    resyncMs: resolved.resyncMs,
    concurrency: resolved.concurrency,
    log: resolved.log,
    onReconciled: resolved.onReconciled,
    ...(resolved.clock === undefined ? {} : { clock: resolved.clock }),
  });

  let pools: ReturnType<AgentPoolReconciler['setupWithManager']> | undefined;
  const metrics = new PoolMetrics({
    runtime: resolved.runtime,
    namespaces: resolved.namespaces,
    intervalMs: resolved.metricsIntervalMs,
    onChange: (key) => pools?.enqueue(key),
    log: resolved.log.with({ component: 'pool-metrics' }),
  });
  pools = new AgentPoolReconciler(manager, {
    deployment: resolved.deployment,
    runtimePools: resolved.runtimePools,
    topics: resolved.topics,
    sizing: resolved.topicSizing,
    metrics,
  }).setupWithManager(manager);
  manager.add(metrics);
  new ModelProviderReconciler(manager).setupWithManager(manager);
  new WorkflowReconciler(manager).setupWithManager(manager);
  new ProjectReconciler(manager, {
    runtime: resolved.runtime,
    statusIntervalMs: resolved.statusIntervalMs,
    pollMs: resolved.projectPollMs,
  }).setupWithManager(manager);

  const done = manager.run().finally(() => client.close());
  return {
    manager,
    done,
    async stop() {
      await manager.stop();
      return done;
    },
  };
}

function validate(options: OperatorOptions): void {
  const component = 'startOperator';
  const { topicSizing, deployment } = options;
  checkOption(
    isPositiveInteger(topicSizing.partitionsPerReplica),
    component,
    'topicSizing.partitionsPerReplica',
    'must be a positive integer',
    topicSizing.partitionsPerReplica,
  );
  checkOption(
    isPositiveInteger(topicSizing.minPartitions),
    component,
    'topicSizing.minPartitions',
    'must be a positive integer',
    topicSizing.minPartitions,
  );
  checkOption(deployment.image.length > 0, component, 'deployment.image', 'must not be empty');
  checkOption(
    isPositiveInteger(deployment.healthPort) && deployment.healthPort <= 65535,
    component,
    'deployment.healthPort',
    'must be a port number',
    deployment.healthPort,
  );
  checkOption(
    deployment.artifactsClaim === '' || /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(deployment.artifactsClaim),
    component,
    'deployment.artifactsClaim',
    'must be empty or a PersistentVolumeClaim name',
    deployment.artifactsClaim,
  );
  checkOption(
    deployment.artifactsDir.startsWith('/'),
    component,
    'deployment.artifactsDir',
    'must be an absolute path',
    deployment.artifactsDir,
  );
}
