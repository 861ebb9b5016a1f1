/**
 * AgentPool controller: runs each pool as a Deployment of agent pods (from the pure builder
 * `desiredDeployment`, applied server-side, owned by the pool) configured with the ModelProvider
 * the pool names: a change of the provider rolls the pods, and while the provider does not exist
 * the Deployment is neither made nor changed and the pool is Degraded. It keeps the pool's Kafka
 * topic with enough partitions for its replicas, and reports status from the Deployment (replicas,
 * readiness, the selector HPAs scale by) and from the runtime (busy, queue depth, tokens, cost).
 * In embedded mode (no kubelet) it runs each pool inside the runtime instead (`runtimePools`),
 * and replicas and readiness come from the runtime's ListPools.
 */
import { poolTopic, type PoolStatus } from '@troupe/proto';
import { AgentPools, type AgentPool, type AgentPoolStatus } from '../api/v1alpha1/agentpool.types.js';
import { ModelProviders, type ModelProvider } from '../api/v1alpha1/modelprovider.types.js';
import type { RuntimePools } from '../clients/pools.js';
import type { PoolTopics } from '../clients/topics.js';
import { OperatorError, OperatorErrorCode, TerminalError, toError } from '../errors.js';
import type { Controller, Reconciler, ReconcileResult } from '../kube/controller.js';
import type { KindRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import type { Manager } from '../kube/manager.js';
import { Deployments } from '../kube/resources.js';
import { keyOf, splitKey, type Condition, type Deployment, type ObjectKey } from '../kube/types.js';
import {
  MANAGED_BY_SELECTOR,
  desiredDeployment,
  deploymentName,
  selectorString,
  type AgentDeploymentSettings,
} from './agentpool.deployment.js';
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

/** Where a pool's replicas run, as its status reports them: a Deployment, or the runtime itself. */
export interface PoolWorkload {
  /** Replicas that exist. */
  replicas: number;
  ready: number;
  /** Why the workload is failing, when it says so. */
  failure?: string;
}

/**
 * The pool's status from its Deployment, the problems found while reconciling and, when the
 * runtime answered, its load. Load fields stay as they were when `load` is undefined.
 */
export function poolStatus(
  pool: AgentPool,
  deployment: Deployment | undefined,
  problems: PoolProblems,
  load: PoolStatus | undefined,
  now: Date,
): AgentPoolStatus {
  const failure = deploymentFailure(deployment);
  const workload: PoolWorkload = { replicas: deployment?.status?.replicas ?? 0, ready: deployment?.status?.readyReplicas ?? 0 };
  return workloadStatus(pool, failure === undefined ? workload : { ...workload, failure }, problems, load, now);
}

/** The pool's status from wherever its replicas run (see `poolStatus`). */
export function workloadStatus(
  pool: AgentPool,
  workload: PoolWorkload,
  problems: PoolProblems,
  load: PoolStatus | undefined,
  now: Date,
): AgentPoolStatus {
  const observedGeneration = pool.metadata.generation;
  const desired = pool.spec.replicas ?? 1;
  const ready = workload.ready;
  const readiness: DesiredCondition =
    desired === 0
      ? { type: ConditionType.Ready, status: 'True', reason: PoolReason.ScaledToZero, message: 'spec.replicas is 0', observedGeneration }
      : ready >= desired
        ? {
            type: ConditionType.Ready,
            status: 'True',
            reason: PoolReason.ReplicasReady,
            message: `${ready}/${desired} replicas ready`,
            observedGeneration,
          }
        : {
            type: ConditionType.Ready,
            status: 'False',
            reason: PoolReason.ReplicasNotReady,
            message: `${ready}/${desired} replicas ready`,
            observedGeneration,
          };
  const failing = workload.failure;
  const degraded: DesiredCondition =
    failing !== undefined
      ? { type: ConditionType.Degraded, status: 'True', reason: PoolReason.DeploymentFailing, message: failing, observedGeneration }
      : problems.topic !== undefined
        ? { type: ConditionType.Degraded, status: 'True', reason: PoolReason.TopicUnavailable, message: problems.topic, observedGeneration }
        : problems.provider !== undefined
          ? {
              type: ConditionType.Degraded,
              status: 'True',
              reason: PoolReason.ProviderNotReady,
              message: problems.provider,
              observedGeneration,
            }
          : {
              type: ConditionType.Degraded,
              status: 'False',
              reason: PoolReason.AsExpected,
              message: 'no problems found',
              observedGeneration,
            };
  let conditions: Condition[] = setCondition(pool.status?.conditions, readiness, now);
  conditions = setCondition(conditions, degraded, now);
  return {
    ...pool.status,
    observedGeneration,
    replicas: workload.replicas,
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
  const stalled = conditions.find(
    (condition) => condition.type === 'Progressing' && condition.status === 'False' && condition.reason === 'ProgressDeadlineExceeded',
  );
  return stalled === undefined ? undefined : `Deployment: ${stalled.message ?? 'progress deadline exceeded'}`;
}

export interface AgentPoolReconcilerOptions {
  deployment: AgentDeploymentSettings;
  /**
   * Runs pools inside the runtime instead of as Deployments (embedded mode, where no kubelet
   * runs pods); `deployment` is then unused and no Deployment is read or written.
   */
  runtimePools?: RuntimePools;
  /** Manages the pool topics; without it (no Kafka, e.g. embedded mode) topics are left alone. */
  topics?: PoolTopics;
  sizing: TopicSizing;
  metrics: PoolMetrics;
}

export class AgentPoolReconciler implements Reconciler {
  private readonly pools: Informer<AgentPool>;
  /** Unset when pools run in the runtime. */
  private readonly deployments: Informer<Deployment> | undefined;
  private readonly providers: Informer<ModelProvider>;
  private readonly events: KindRecorder;

  constructor(
    private readonly manager: Manager,
    private readonly options: AgentPoolReconcilerOptions,
  ) {
    this.pools = manager.informer(AgentPools);
    this.deployments =
      options.runtimePools === undefined ? manager.informer(Deployments, { labelSelector: MANAGED_BY_SELECTOR }) : undefined;
    this.providers = manager.informer(ModelProviders);
    this.events = manager.eventsFor(AgentPools);
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const pool = this.pools.get(namespace, name);
    if (this.deployments === undefined) return this.reconcileInRuntime(key, pool, this.options.runtimePools as RuntimePools);
    // A deleted pool's Deployment goes with it: the garbage collector follows the owner reference.
    if (pool === undefined || pool.metadata.deletionTimestamp !== undefined) return {};
    const { client } = this.manager;
    const now = new Date(this.manager.options.clock.now());

    // Only Deployments this operator labels are cached; one it did not make may still hold the name.
    const existing =
      this.deployments.get(namespace, deploymentName(pool)) ?? (await client.get(Deployments, namespace, deploymentName(pool)));
    if (existing !== undefined && !controlledBy(existing, pool)) {
      const message = `Deployment ${deploymentName(pool)} exists and is not controlled by this AgentPool`;
      const conditions = setCondition(
        pool.status?.conditions,
        {
          type: ConditionType.Ready,
          status: 'False',
          reason: PoolReason.DeploymentNotOwned,
          message,
          observedGeneration: pool.metadata.generation,
        },
        now,
      );
      await updateStatus(client, AgentPools, pool, { ...pool.status, observedGeneration: pool.metadata.generation, conditions });
      throw new TerminalError(PoolReason.DeploymentNotOwned, message);
    }
    const provider = this.providers.get(namespace, pool.spec.model.provider);
    const applied = provider === undefined ? existing : await this.applyDeployment(pool, provider, existing);
    const problems: PoolProblems = {
      provider:
        provider === undefined
          ? `ModelProvider ${pool.spec.model.provider} not found in namespace ${namespace}: the pool's Deployment is not made or changed until it exists`
          : providerNotReady(provider),
    };
    let topicError: OperatorError | undefined;
    if (this.options.topics !== undefined) {
      const topic = poolTopic(namespace, name);
      const partitions = topicPartitions(pool.spec.replicas ?? 1, this.options.sizing);
      try {
        const change = await this.options.topics.ensure(topic, partitions);
        if (change === 'created')
          this.events.normal(pool, PoolReason.TopicCreated, `created Kafka topic ${topic} with ${partitions} partitions`);
        if (change === 'grown') this.events.normal(pool, PoolReason.TopicGrown, `grew Kafka topic ${topic} to ${partitions} partitions`);
      } catch (error) {
        topicError =
          error instanceof OperatorError
            ? error
            : new OperatorError(OperatorErrorCode.KafkaUnavailable, toError(error).message, { retriable: true, cause: error });
        problems.topic = topicError.message;
      }
    }

    const previous = findCondition(pool.status?.conditions, ConditionType.Degraded);
    const status = poolStatus(pool, applied, problems, this.options.metrics.get(key), now);
    await updateStatus(client, AgentPools, pool, status);
    const degraded = findCondition(status.conditions, ConditionType.Degraded);
    if (degraded?.status === 'True' && (previous?.status !== 'True' || previous.reason !== degraded.reason))
      this.events.warning(pool, degraded.reason, degraded.message);
    // Written down first, so that `kubectl describe` shows why; the retry comes with backoff.
    if (topicError !== undefined) throw topicError;
    return {};
  }

  /** Applies the pool's Deployment and tells what changed in Events. */
  private async applyDeployment(pool: AgentPool, provider: ModelProvider, existing: Deployment | undefined): Promise<Deployment> {
    const desired = desiredDeployment(pool, provider, this.options.deployment);
    const applied = await this.manager.client.apply(Deployments, desired);
    const name = desired.metadata.name;
    if (existing === undefined) {
      this.events.normal(pool, PoolReason.DeploymentCreated, `created Deployment ${name} with ${desired.spec.replicas} replicas`);
    } else if (existing.spec.replicas !== applied.spec.replicas) {
      this.events.normal(
        pool,
        PoolReason.DeploymentUpdated,
        `scaled Deployment ${name} from ${existing.spec.replicas} to ${applied.spec.replicas} replicas`,
      );
    } else if (existing.metadata.generation !== applied.metadata.generation) {
      // The same replicas and a new generation: the pod template changed (the pool's spec or its provider's).
      this.events.normal(pool, PoolReason.DeploymentUpdated, `updated the pod template of Deployment ${name}: its pods roll`);
    }
    return applied;
  }

  /** Embedded mode: the pool runs in the runtime's process, and its replicas and readiness are the runtime's. */
  private async reconcileInRuntime(key: ObjectKey, pool: AgentPool | undefined, runtime: RuntimePools): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    // Nothing garbage-collects a pool in the runtime: the resource going is the signal to stop it.
    if (pool === undefined || pool.metadata.deletionTimestamp !== undefined) {
      await runtime.remove(namespace, name);
      return {};
    }
    const change = await runtime.apply(pool);
    if (change === 'started') this.events.normal(pool, PoolReason.RuntimePoolStarted, 'started the pool in the runtime');
    if (change === 'updated')
      this.events.normal(
        pool,
        PoolReason.RuntimePoolUpdated,
        `gave the pool in the runtime generation ${pool.metadata.generation ?? 0} of its spec`,
      );
    const desired = pool.spec.replicas ?? 1;
    const load = this.options.metrics.get(key);
    // ListPools is polled: until it reports the new count, ScalePool goes again under the same id, which changes nothing.
    if (load?.replicas !== desired) {
      await runtime.scale(`scale/${pool.metadata.uid ?? key}/${pool.metadata.generation ?? 0}`, {
        namespace,
        pool: name,
        replicas: desired,
      });
      if (load !== undefined && pool.status?.observedGeneration !== pool.metadata.generation) {
        this.events.normal(
          pool,
          PoolReason.RuntimePoolScaled,
          `scaled the pool in the runtime from ${load.replicas} to ${desired} replicas`,
        );
      }
    }
    const previous = findCondition(pool.status?.conditions, ConditionType.Degraded);
    const workload: PoolWorkload = { replicas: load?.replicas ?? 0, ready: load?.ready ?? 0 };
    const status = workloadStatus(
      pool,
      workload,
      { provider: this.providerProblem(pool) },
      load,
      new Date(this.manager.options.clock.now()),
    );
    await updateStatus(this.manager.client, AgentPools, pool, status);
    const degraded = findCondition(status.conditions, ConditionType.Degraded);
    if (degraded?.status === 'True' && (previous?.status !== 'True' || previous.reason !== degraded.reason))
      this.events.warning(pool, degraded.reason, degraded.message);
    return {};
  }

  private providerProblem(pool: AgentPool): string | undefined {
    const provider = this.providers.get(pool.metadata.namespace ?? '', pool.spec.model.provider);
    return provider === undefined ? `ModelProvider ${pool.spec.model.provider} not found` : providerNotReady(provider);
  }

  /**
   * Reconciles pools on their own changes, on changes of their Deployments (when they have
   * them) and ModelProviders, and when the runtime reports new load.
   */
  setupWithManager(manager: Manager): Controller<AgentPool> {
    const controller = manager.controller({ name: 'agentpool', primary: this.pools, reconciler: this, recorder: this.events });
    if (this.deployments !== undefined) controller.owns(this.deployments, AgentPools.kind);
    return controller.watches(this.providers, (provider) =>
      this.pools
        .list(provider.metadata.namespace ?? '')
        .filter((pool) => pool.spec.model.provider === provider.metadata.name)
        .map(keyOf),
    );
  }
}

/** Why the provider cannot be called yet, or undefined when it is Ready. */
function providerNotReady(provider: ModelProvider): string | undefined {
  const ready = findCondition(provider.status?.conditions, ConditionType.Ready);
  return ready?.status === 'True' ? undefined : `ModelProvider ${provider.metadata.name} is not Ready${ready ? `: ${ready.message}` : ''}`;
}

function controlledBy(deployment: Deployment, pool: AgentPool): boolean {
  return (deployment.metadata.ownerReferences ?? []).some((owner) => owner.controller === true && owner.uid === pool.metadata.uid);
}
