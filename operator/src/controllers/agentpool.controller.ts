/**
 * AgentPool controller: runs each pool as a Deployment of agent pods (from the pure builder
 * `desiredDeployment`, applied server-side, owned by the pool), keeps the pool's Kafka topic
 * with enough partitions for its replicas, and reports status from the Deployment (replicas,
 * readiness, the selector HPAs scale by) and from the runtime (busy, queue depth, tokens, cost).
 */
import type { PoolStatus } from '@troupe/proto';
import { AgentPools, type AgentPool, type AgentPoolStatus } from '../api/v1alpha1/agentpool.types.js';
import { ModelProviders, type ModelProvider } from '../api/v1alpha1/modelprovider.types.js';
import { poolTopic, type PoolTopics } from '../clients/topics.js';
import { OperatorError, OperatorErrorCode, TerminalError, toError } from '../errors.js';
import type { Controller, Reconciler, ReconcileResult } from '../kube/controller.js';
import type { KindRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { Manager } from '../kube/manager.js';
import { Deployments } from '../kube/resources.js';
import { keyOf, splitKey, type Condition, type Deployment, type ObjectKey } from '../kube/types.js';
import { MANAGED_BY_SELECTOR, desiredDeployment, deploymentName, selectorString, type AgentDeploymentSettings } from './agentpool.deployment.js';
import { ConditionType, PoolReason, findCondition, setCondition, type DesiredCondition } from './conditions.js';
import type { PoolMetrics } from './pool-metrics.js';
import { updateStatus } from './status.js';

/** How many partitions a pool's topic gets: every replica can own some, and scaling up finds room. */
export interface TopicSizing {
  /** Partitions per desired replica (default 2). */
  partitionsPerReplica: number;
  /** Fewest partitions of any pool topic, so a pool scaled to 0 or 1 still spreads (default 4). */
  minPartitions: number;
}

export const TOPIC_SIZING_DEFAULTS = { partitionsPerReplica: 2, minPartitions: 4 } as const satisfies TopicSizing;

/** The partitions a pool's topic needs for `replicas`. */
export function topicPartitions(replicas: number, sizing: TopicSizing): number {
  return Math.max(sizing.minPartitions, replicas * sizing.partitionsPerReplica);
}

/** What stands in the pool's way, beside its replicas. */
export interface PoolProblems {
  /** The topic could not be created or grown. */
  topic?: string;
  /** The ModelProvider is missing or not Ready. */
  provider?: string;
}

/**
 * The pool's status from its Deployment, the problems found while reconciling and, when the
 * runtime answered, its load. Load fields stay as they were when `load` is undefined.
 */
export function poolStatus(pool: AgentPool, deployment: Deployment | undefined, problems: PoolProblems, load: PoolStatus | undefined, now: Date): AgentPoolStatus {
  const observedGeneration = pool.metadata.generation;
  const desired = pool.spec.replicas ?? 1;
  const ready = deployment?.status?.readyReplicas ?? 0;
  const readiness: DesiredCondition =
    desired === 0
      ? { type: ConditionType.Ready, status: 'True', reason: PoolReason.ScaledToZero, message: 'spec.replicas is 0', observedGeneration }
      : ready >= desired
        ? { type: ConditionType.Ready, status: 'True', reason: PoolReason.ReplicasReady, message: `${ready}/${desired} replicas ready`, observedGeneration }
        : { type: ConditionType.Ready, status: 'False', reason: PoolReason.ReplicasNotReady, message: `${ready}/${desired} replicas ready`, observedGeneration };
  const failing = deploymentFailure(deployment);
  const degraded: DesiredCondition =
    failing !== undefined
      ? { type: ConditionType.Degraded, status: 'True', reason: PoolReason.DeploymentFailing, message: failing, observedGeneration }
      : problems.topic !== undefined
        ? { type: ConditionType.Degraded, status: 'True', reason: PoolReason.TopicUnavailable, message: problems.topic, observedGeneration }
        : problems.provider !== undefined
          ? { type: ConditionType.Degraded, status: 'True', reason: PoolReason.ProviderNotReady, message: problems.provider, observedGeneration }
          : { type: ConditionType.Degraded, status: 'False', reason: PoolReason.AsExpected, message: 'no problems found', observedGeneration };
  let conditions: Condition[] = setCondition(pool.status?.conditions, readiness, now);
  conditions = setCondition(conditions, degraded, now);
  return {
    ...pool.status,
    observedGeneration,
    replicas: deployment?.status?.replicas ?? 0,
    readyReplicas: ready,
    selector: selectorString(pool),
    ...(load === undefined ? {} : { busy: load.busy, queueDepth: load.queueDepth, tokens: load.tokens, costUSD: load.costUsd }),
    conditions,
  };
}

/** Why the Deployment is failing, if it says so. */
function deploymentFailure(deployment: Deployment | undefined): string | undefined {
  const conditions = deployment?.status?.conditions ?? [];
  const failure = conditions.find((condition) => condition.type === 'ReplicaFailure' && condition.status === 'True');
  if (failure !== undefined) return `Deployment: ${failure.message ?? failure.reason ?? 'ReplicaFailure'}`;
  const stalled = conditions.find((condition) => condition.type === 'Progressing' && condition.status === 'False' && condition.reason === 'ProgressDeadlineExceeded');
  return stalled === undefined ? undefined : `Deployment: ${stalled.message ?? 'progress deadline exceeded'}`;
}

export interface AgentPoolReconcilerOptions {
  deployment: AgentDeploymentSettings;
  /** Manages the pool topics; without it (no Kafka, e.g. embedded mode) topics are left alone. */
  topics?: PoolTopics;
  sizing: TopicSizing;
  metrics: PoolMetrics;
}

export class AgentPoolReconciler implements Reconciler {
  private readonly pools: Informer<AgentPool>;
  private readonly deployments: Informer<Deployment>;
  private readonly providers: Informer<ModelProvider>;
  private readonly events: KindRecorder;

  constructor(
    private readonly manager: Manager,
    private readonly options: AgentPoolReconcilerOptions,
  ) {
    this.pools = manager.informer(AgentPools);
    this.deployments = manager.informer(Deployments, { labelSelector: MANAGED_BY_SELECTOR });
    this.providers = manager.informer(ModelProviders);
    this.events = manager.eventsFor(AgentPools);
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const pool = this.pools.get(namespace, name);
    // A deleted pool's Deployment goes with it: the garbage collector follows the owner reference.
    if (pool === undefined || pool.metadata.deletionTimestamp !== undefined) return {};
    const { client } = this.manager;
    const now = new Date(this.manager.options.clock.now());

    // Only Deployments this operator labels are cached; one it did not make may still hold the name.
    const existing = this.deployments.get(namespace, deploymentName(pool)) ?? (await client.get(Deployments, namespace, deploymentName(pool)));
    if (existing !== undefined && !controlledBy(existing, pool)) {
      const message = `Deployment ${deploymentName(pool)} exists and is not controlled by this AgentPool`;
      const conditions = setCondition(pool.status?.conditions, { type: ConditionType.Ready, status: 'False', reason: PoolReason.DeploymentNotOwned, message, observedGeneration: pool.metadata.generation }, now);
      await updateStatus(client, AgentPools, pool, { ...pool.status, observedGeneration: pool.metadata.generation, conditions });
      throw new TerminalError(PoolReason.DeploymentNotOwned, message);
    }
    const desired = desiredDeployment(pool, this.options.deployment);
    const applied = await client.apply(Deployments, desired);
    if (existing === undefined) {
      this.events.normal(pool, PoolReason.DeploymentCreated, `created Deployment ${desired.metadata.name} with ${desired.spec.replicas} replicas`);
    } else if (existing.spec.replicas !== applied.spec.replicas) {
      this.events.normal(pool, PoolReason.DeploymentUpdated, `scaled Deployment ${desired.metadata.name} from ${existing.spec.replicas} to ${applied.spec.replicas} replicas`);
    }

    const problems: PoolProblems = { provider: this.providerProblem(pool) };
    let topicError: OperatorError | undefined;
    if (this.options.topics !== undefined) {
      const topic = poolTopic(namespace, name);
      const partitions = topicPartitions(pool.spec.replicas ?? 1, this.options.sizing);
      try {
        const change = await this.options.topics.ensure(topic, partitions);
        if (change === 'created') this.events.normal(pool, PoolReason.TopicCreated, `created Kafka topic ${topic} with ${partitions} partitions`);
        if (change === 'grown') this.events.normal(pool, PoolReason.TopicGrown, `grew Kafka topic ${topic} to ${partitions} partitions`);
      } catch (error) {
        topicError = error instanceof OperatorError ? error : new OperatorError(OperatorErrorCode.KafkaUnavailable, toError(error).message, { retriable: true, cause: error });
        problems.topic = topicError.message;
      }
    }

    const previous = findCondition(pool.status?.conditions, ConditionType.Degraded);
    const status = poolStatus(pool, applied, problems, this.options.metrics.get(key), now);
    await updateStatus(client, AgentPools, pool, status);
    const degraded = findCondition(status.conditions, ConditionType.Degraded);
    if (degraded?.status === 'True' && (previous?.status !== 'True' || previous.reason !== degraded.reason)) this.events.warning(pool, degraded.reason, degraded.message);
    // Written down first, so that `kubectl describe` shows why; the retry comes with backoff.
    if (topicError !== undefined) throw topicError;
    return {};
  }

  private providerProblem(pool: AgentPool): string | undefined {
    const provider = this.providers.get(pool.metadata.namespace ?? '', pool.spec.model.provider);
    if (provider === undefined) return `ModelProvider ${pool.spec.model.provider} not found`;
    const ready = findCondition(provider.status?.conditions, ConditionType.Ready);
    return ready?.status === 'True' ? undefined : `ModelProvider ${pool.spec.model.provider} is not Ready${ready ? `: ${ready.message}` : ''}`;
  }

  /**
   * Reconciles pools on their own changes, on changes of their Deployments and ModelProviders,
   * and when the runtime reports new load.
   */
  setupWithManager(manager: Manager): Controller<AgentPool> {
    return manager
      .controller({ name: 'agentpool', primary: this.pools, reconciler: this, recorder: this.events })
      .owns(this.deployments, AgentPools.kind)
      .watches(this.providers, (provider) =>
        this.pools
          .list(provider.metadata.namespace ?? '')
          .filter((pool) => pool.spec.model.provider === provider.metadata.name)
          .map(keyOf),
      );
  }
}

function controlledBy(deployment: Deployment, pool: AgentPool): boolean {
  return (deployment.metadata.ownerReferences ?? []).some((owner) => owner.controller === true && owner.uid === pool.metadata.uid);
}
