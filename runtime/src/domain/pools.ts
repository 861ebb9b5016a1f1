/**
 * The agent pools this process runs, by namespace and name. Each is a replica of its AgentPool:
 * it consumes the pool's topic `troupe.pool.<namespace>.<pool>` in the pool's consumer group,
 * so the replicas of a pool — here and in other processes — share its work; it runs each task
 * in its LLM worker pool, tells the project how it went, and reports its load on
 * `troupe.events` for the directories of every process.
 *
 * Taking a task is not durable: its offset is resolved when the task starts. A task lost with
 * its replica is dispatched again by its project's check, and its journaled LLM calls are not
 * bought twice. A task dispatched again to the replica that runs or ran it is not run twice, but
 * every dispatch is answered: the project may have dropped an earlier answer (one it had taken
 * under the same dispatch id, or that came while the task waited to be retried).
 */
import { Event, poolTopic, type PoolEntry, type PoolStatus } from '@troupe/proto';
import { RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { AgentPool, AgentPoolSpec } from '../llm/agent-pool.js';
import { traceTask } from '../tracing/runtime-tracing.js';
import type { Subscription, Transport } from '../transport/transport.js';
import { EVENTS_TOPIC } from './project-events.js';
import type { ProjectMessage } from './project.types.js';
import { decodeTaskRun, runKey, runTask, type TaskDeps } from './task-runner.js';

export interface PoolResource {
  namespace: string;
  name: string;
  replicas: number;
  spec: AgentPoolSpec;
}

export interface PoolRegistryOptions extends Omit<TaskDeps, 'pool'> {
  transport: Transport;
  /** This replica's name in reports: the node id. */
  nodeId: string;
  /** Partitions of a pool topic that no one has created yet (the operator sizes them in a cluster). */
  partitions: number;
  /** Makes the worker pool of a pool resource. */
  create(name: string, spec: AgentPoolSpec): AgentPool;
  /** Tells project `key` how a task went; `id` makes a repeat of the same report a duplicate. */
  report(key: string, outcome: ProjectMessage, id: string): Promise<void>;
  /** How often each pool's load is published (default 5 s). */
  reportMs: number;
  /**
   * How long a stopping pool waits for its tasks in flight (default 10 s); the outcomes of those
   * still running then are dropped, and their projects dispatch them again.
   */
  drainMs: number;
  onError(error: Error): void;
}

export const POOL_REGISTRY_DEFAULTS = {
  reportMs: 5_000,
  drainMs: 10_000,
} as const satisfies Partial<PoolRegistryOptions>;

interface Entry {
  resource: PoolResource;
  pool: AgentPool;
  /** Its consumer-group membership, once it has joined. */
  subscription?: Subscription;
  /** Runs taken and not finished, by run key, with the ids of their dispatches received so far. */
  running: Map<string, Set<string>>;
  /** The outcomes of the last runs done here and told, by run key, oldest first. */
  finished: Map<string, ProjectMessage>;
  /** The next offset to take, per partition of the pool topic this replica owns. */
  next: Map<number, number>;
  /** Runs waiting in those partitions, as last counted. */
  waiting: number;
  /** Set once the pool stopped: outcomes of runs it cut short are not told. */
  stopped: boolean;
}

/** Finished runs remembered per pool, for answering the dispatches of each that come again. */
const FINISHED_KEPT = 10_000;

function remember(finished: Map<string, ProjectMessage>, key: string, outcome: ProjectMessage): void {
  finished.set(key, outcome);
  if (finished.size > FINISHED_KEPT) finished.delete(finished.keys().next().value as string);
}

export class PoolRegistry {
  private readonly options: PoolRegistryOptions;
  private readonly pools = new Map<string, Entry>();
  private readonly reporter: NodeJS.Timeout;

  constructor(options: Omit<PoolRegistryOptions, keyof typeof POOL_REGISTRY_DEFAULTS> & Partial<PoolRegistryOptions>) {
    this.options = { ...POOL_REGISTRY_DEFAULTS, ...options };
    this.reporter = setInterval(
      () => void this.publishLoad().catch((error: unknown) => this.options.onError(toError(error))),
      this.options.reportMs,
    );
    this.reporter.unref();
  }

  /** Creates the pool, or replaces it when its spec changed (tasks running on the old one finish there). */
  async apply(resource: PoolResource): Promise<void> {
    const key = `${resource.namespace}/${resource.name}`;
    const existing = this.pools.get(key);
    if (existing && JSON.stringify(existing.resource.spec) === JSON.stringify(resource.spec)) {
      existing.resource = resource;
      return;
    }
    if (existing !== undefined) await this.stop(key, existing);
    const pool = this.options.create(key, resource.spec);
    const entry: Entry = { resource, pool, running: new Map(), finished: new Map(), next: new Map(), waiting: 0, stopped: false };
    try {
      entry.subscription = await this.consume(entry);
    } catch (error) {
      await pool.close();
      throw error;
    }
    this.pools.set(key, entry);
  }

  async remove(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    const existing = this.pools.get(key);
    if (existing !== undefined) await this.stop(key, existing);
  }

  /** Scales a pool: replicas are pods in a cluster; here they only show in its status. */
  scale(namespace: string, name: string, replicas: number): void {
    const entry = this.pools.get(`${namespace}/${name}`);
    if (entry === undefined) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `no AgentPool ${name} in namespace ${namespace}`);
    entry.resource = { ...entry.resource, replicas };
  }

  /** The pools of this process, each with this replica's load. */
  list(namespace?: string): PoolEntry[] {
    return [...this.pools.values()]
      .filter(({ resource }) => namespace === undefined || resource.namespace === namespace)
      .map((entry) => ({ namespace: entry.resource.namespace, status: this.status(entry) }));
  }

  async close(): Promise<void> {
    clearInterval(this.reporter);
    await Promise.all([...this.pools].map(([key, entry]) => this.stop(key, entry)));
  }

  /** Takes no more tasks, lets the ones in flight finish for a while, then closes the pool. */
  private async stop(key: string, entry: Entry): Promise<void> {
    this.pools.delete(key);
    await entry.subscription?.close();
    const deadline = Date.now() + this.options.drainMs;
    while (entry.running.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    entry.stopped = true;
    await entry.pool.close();
  }

  private async consume(entry: Entry): Promise<Subscription> {
    const { namespace, name, spec } = entry.resource;
    const topic = poolTopic(namespace, name);
    // The operator creates and sizes pool topics in a cluster; elsewhere the first replica does.
    await this.options.transport.partitionCount(topic).catch(() => this.options.transport.createTopic(topic, this.options.partitions));
    // Enough queued here for the pool's priorities to matter; the rest waits in the topic, where
    // the pool's queue depth shows it.
    const intake = Math.max(2 * spec.concurrency, 8);
    return this.options.transport.subscribe({
      groupId: topic,
      topics: [topic],
      onAssigned: async (assignments) => {
        for (const { partition } of assignments) {
          entry.next.set(partition, (await this.options.transport.committedOffset(topic, topic, partition)) ?? 0);
        }
      },
      onRevoked: async (assignments) => {
        for (const { partition } of assignments) entry.next.delete(partition);
      },
      eachBatch: async (batch) => {
        for (const record of batch.records) {
          while (entry.pool.stats.queued >= intake && !batch.signal.aborted) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            await batch.heartbeat();
          }
          if (batch.signal.aborted) return;
          batch.resolveOffset(record.offset);
          entry.next.set(batch.partition, record.offset + 1);
          this.start(entry, record.value);
        }
      },
    });
  }

  private start(entry: Entry, value: Uint8Array): void {
    let dispatched: ReturnType<typeof decodeTaskRun>;
    try {
      dispatched = decodeTaskRun(value);
    } catch (error) {
      this.options.onError(toError(error));
      return;
    }
    const { id, run } = dispatched;
    const project = `${run.namespace}/${run.project}`;
    const key = runKey(run);
    const done = entry.finished.get(key);
    if (done !== undefined) {
      void this.options.report(project, done, `${id}/outcome`).catch((error: unknown) => this.options.onError(toError(error)));
      return;
    }
    const running = entry.running.get(key);
    if (running !== undefined) {
      running.add(id);
      return;
    }
    const dispatches = new Set([id]);
    entry.running.set(key, dispatches);
    void traceTask(run, async () => {
      try {
        const outcome = await runTask(run, { ...this.options, pool: entry.pool });
        if (entry.stopped) return outcome;
        // Told in the task's span: the project's turn that takes the outcome continues the task's
        // trace. The project takes the first answer it has not seen and drops the others.
        for (const dispatch of dispatches) await this.options.report(project, outcome, `${dispatch}/outcome`);
        // In the turn of the last report: a dispatch that comes from now on finds the outcome.
        entry.running.delete(key);
        // A failed run may be sent again on purpose (a retry, a raised budget); a finished one not.
        if (outcome.type === 'task-done') remember(entry.finished, key, outcome);
        return outcome;
      } finally {
        if (entry.running.get(key) === dispatches) entry.running.delete(key);
      }
    }).catch((error: unknown) => this.options.onError(toError(error)));
  }

  /** Publishes each pool's load: what this replica runs and queues, and what waits in its partitions. */
  private async publishLoad(): Promise<void> {
    const now = Date.now();
    const records = await Promise.all(
      [...this.pools.values()].map(async (entry) => {
        const { namespace, name } = entry.resource;
        const topic = poolTopic(namespace, name);
        try {
          entry.waiting = await this.countWaiting(topic, entry.next);
        } catch (error) {
          // One pool's count failing (its topic deleted, a broker away) holds back no pool's load.
          this.options.onError(
            new RuntimeError(
              RuntimeErrorCode.Unavailable,
              `pool ${namespace}/${name}: cannot count the runs waiting in ${topic}; its load goes out with the last count, ${entry.waiting}`,
              { retriable: true, cause: error },
            ),
          );
        }
        const event = Event.encode({
          id: `pool/${namespace}/${name}/${this.options.nodeId}/${now}`,
          sequence: 0,
          occurredAt: now,
          namespace,
          project: '',
          event: { $case: 'poolStatus', value: this.status(entry) },
        }).finish();
        return { topic: EVENTS_TOPIC, key: `${namespace}/${name}`, value: event };
      }),
    );
    if (records.length > 0) await this.options.transport.send(records);
  }

  /** The runs in `topic` past `next`, the next offset to take of each partition owned here. */
  private async countWaiting(topic: string, next: ReadonlyMap<number, number>): Promise<number> {
    // Taken before the reads: an assignment may change the map while they are under way.
    const owned = [...next];
    const ends = await Promise.all(owned.map(([partition]) => this.options.transport.endOffset(topic, partition)));
    return owned.reduce((waiting, [, offset], i) => waiting + Math.max(0, ends[i]! - offset), 0);
  }

  private status(entry: Entry): PoolStatus {
    const { resource, pool, waiting } = entry;
    const stats = pool.stats;
    return {
      pool: resource.name,
      role: resource.spec.role,
      replicas: resource.replicas,
      ready: resource.replicas,
      busy: stats.running,
      queueDepth: stats.queued + waiting,
      tokens: 0,
      costUsd: 0,
      replica: this.options.nodeId,
    };
  }
}
