/**
 * Kubernetes Events about the objects the operator reconciles, the ones `kubectl describe`
 * lists. Like client-go's recorder, a repeat of the same event within a window bumps the count
 * of the existing Event instead of writing a new one, and recording never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import { checkOption, isNotFound, isPositiveInteger, toError } from '../errors.js';
import { apiVersionOf, type KubeClient, type ResourceType } from './client.js';
import { systemClock, type Clock } from './clock.js';
import { silentLogger, type Logger } from './log.js';
import { Events } from './resources.js';
import type { CoreEvent, KubeObject } from './types.js';

export interface EventRecorderOptions {
  client: KubeClient;
  /** `source.component` and `reportingComponent` (default `troupe-operator`). */
  component: string;
  /** `reportingInstance`: which replica wrote it (the leader election identity). */
  instance: string;
  /** Repeats within this window bump the existing Event's count (default 10 min). */
  dedupeWindowMs: number;
  /** Most distinct events remembered for deduplication (default 4096). */
  maxTracked: number;
  clock: Clock;
  log: Logger;
}

export const EVENT_RECORDER_DEFAULTS = {
  component: 'troupe-operator',
  dedupeWindowMs: 10 * 60_000,
  maxTracked: 4096,
  clock: systemClock,
  log: silentLogger,
} as const satisfies Partial<EventRecorderOptions>;

/** Records Events about objects of one kind. */
export interface KindRecorder {
  normal(object: KubeObject, reason: string, message: string): void;
  warning(object: KubeObject, reason: string, message: string): void;
}

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

/** Longest message written; Events are for humans skimming `kubectl describe`. */
const MAX_MESSAGE = 1024;

/**
 * @example
 * const recorder = new EventRecorder({ client, instance: 'operator-0' });
 * recorder.for(AgentPools).normal(pool, 'DeploymentCreated', 'created Deployment agentpool-developers');
 */
export class EventRecorder {
  readonly options: EventRecorderOptions;
  /** Insertion-ordered, so the oldest entry is evicted first. */
  private readonly recorded = new Map<string, Recorded>();
  /** One write at a time per distinct event, so a repeat patches what the first one created. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(options: Pick<EventRecorderOptions, 'client' | 'instance'> & Partial<EventRecorderOptions>) {
    this.options = { ...EVENT_RECORDER_DEFAULTS, ...options };
    const { dedupeWindowMs, maxTracked } = this.options;
    checkOption(
      Number.isInteger(dedupeWindowMs) && dedupeWindowMs >= 0,
      'EventRecorder',
      'dedupeWindowMs',
      'must be a non-negative integer',
      dedupeWindowMs,
    );
    checkOption(isPositiveInteger(maxTracked), 'EventRecorder', 'maxTracked', 'must be a positive integer', maxTracked);
  }

  for(type: ResourceType<KubeObject>): KindRecorder {
    return {
      normal: (object, reason, message) => this.record(type, object, 'Normal', reason, message),
      warning: (object, reason, message) => this.record(type, object, 'Warning', reason, message),
    };
  }

  /** Resolves when every write started so far has finished. */
  async flush(): Promise<void> {
    await Promise.all(this.writes.values());
  }

  private record(type: ResourceType<KubeObject>, object: KubeObject, eventType: CoreEvent['type'], reason: string, message: string): void {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const key = [object.metadata.uid, eventType, reason, text].join('\u0000');
    const previous = this.writes.get(key) ?? Promise.resolve();
    const write = previous
      .then(() => this.write(key, type, object, eventType, reason, text))
      .catch((error: unknown) =>
        this.options.log.warn('could not record event', { reason, object: object.metadata.name, error: toError(error).message }),
      )
      .finally(() => {
        if (this.writes.get(key) === write) this.writes.delete(key);
      });
    this.writes.set(key, write);
  }

  private async write(
    key: string,
    type: ResourceType<KubeObject>,
    object: KubeObject,
    eventType: CoreEvent['type'],
    reason: string,
    message: string,
  ): Promise<void> {
    const { client, clock, dedupeWindowMs, component, instance } = this.options;
    const now = clock.now();
    const timestamp = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
    const seen = this.recorded.get(key);
    if (seen !== undefined && now - seen.at < dedupeWindowMs) {
      const updated = await client
        .patch(Events, seen.namespace, seen.name, { count: seen.count + 1, lastTimestamp: timestamp }, { strategy: 'merge' })
        .then(() => true)
        .catch((error: unknown) => {
          // Events expire (one hour by default); a repeat after that starts a new one.
          if (isNotFound(error)) return false;
          throw error;
        });
      if (updated) {
        this.remember(key, { ...seen, count: seen.count + 1, at: now });
        return;
      }
    }
    const namespace = object.metadata.namespace ?? 'default';
    const name = `${object.metadata.name}.${randomBytes(8).toString('hex')}`;
    await client.create(Events, {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: apiVersionOf(type),
        kind: type.kind,
        name: object.metadata.name,
        namespace: object.metadata.namespace,
        uid: object.metadata.uid,
        resourceVersion: object.metadata.resourceVersion,
      },
      type: eventType,
      reason,
      message,
      count: 1,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      source: { component },
      reportingComponent: component,
      reportingInstance: instance,
    });
    this.remember(key, { name, namespace, count: 1, at: now });
  }

  private remember(key: string, recorded: Recorded): void {
    this.recorded.delete(key);
    this.recorded.set(key, recorded);
    if (this.recorded.size > this.options.maxTracked) this.recorded.delete(this.recorded.keys().next().value as string);
  }
}
