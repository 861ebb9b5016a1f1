/**
 * One WatchProject stream per project the runtime runs: every snapshot or event means "look
 * again", so the key is queued and the reconcile reads the project with GetProject (the
 * stream's messages are notifications; the level is what GetProject returns). Only why a
 * project last changed phase is kept, as GetProject does not say. A stream that ends is not
 * reopened here: the key is queued after a backoff and the reconcile reopens it.
 */
import type { ProjectStream, RuntimeClient } from '../clients/runtime.js';
import { checkOption } from '../errors.js';
import { backoffDelay, systemClock, type BackoffPolicy, type CancelTimer, type Clock } from '../kube/clock.js';
import { silentLogger, type Logger } from '../kube/log.js';
import type { Runnable } from '../kube/manager.js';
import { splitKey, type ObjectKey } from '../kube/types.js';
import { phaseChangeOf, type PhaseChange } from './project.mapping.js';

export interface ProjectStreamsOptions {
  runtime: RuntimeClient;
  /** Called for every update of a project's stream and after a stream ended. */
  onChange: (key: ObjectKey) => void;
  /** Delay before a project whose stream ended is looked at again (default 500 ms doubling to 30 s). */
  backoff: BackoffPolicy;
  clock: Clock;
  log: Logger;
}

export const PROJECT_STREAMS_DEFAULTS = {
  backoff: { initialMs: 500, maxMs: 30_000 },
  clock: systemClock,
  log: silentLogger,
} as const satisfies Partial<ProjectStreamsOptions>;

export class ProjectStreams implements Runnable {
  readonly options: ProjectStreamsOptions;
  private readonly streams = new Map<ObjectKey, ProjectStream>();
  /** Consecutive stream failures per key, reset by any update. */
  private readonly failures = new Map<ObjectKey, number>();
  private readonly retries = new Map<ObjectKey, CancelTimer>();
  private readonly changes = new Map<ObjectKey, PhaseChange>();
  private stopped = false;

  constructor(options: Pick<ProjectStreamsOptions, 'runtime' | 'onChange'> & Partial<ProjectStreamsOptions>) {
    this.options = { ...PROJECT_STREAMS_DEFAULTS, ...options };
    const { backoff } = this.options;
    checkOption(
      backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs,
      'ProjectStreams',
      'backoff',
      'needs 0 < initialMs <= maxMs',
      backoff,
    );
  }

  /** Why the project last changed phase, if its stream reported it. */
  lastChange(key: ObjectKey): PhaseChange | undefined {
    return this.changes.get(key);
  }

  /** Opens the project's stream unless it is open. */
  open(key: ObjectKey): void {
    if (this.stopped || this.streams.has(key)) return;
    const { namespace, name } = splitKey(key);
    const { runtime, onChange, log, clock, backoff } = this.options;
    const stream = runtime.watchProject(namespace, name, {
      onUpdate: (update) => {
        this.failures.delete(key);
        const change = update.update?.$case === 'event' ? phaseChangeOf(update.update.value) : undefined;
        if (change !== undefined) this.changes.set(key, change);
        onChange(key);
      },
      onEnd: (error) => {
        this.streams.delete(key);
        const attempt = this.failures.get(key) ?? 0;
        this.failures.set(key, attempt + 1);
        const delayMs = backoffDelay(backoff, attempt);
        log.debug('project stream ended', { key, delayMs, error: error?.message });
        this.retries.get(key)?.();
        this.retries.set(
          key,
          clock.setTimer(delayMs, () => {
            this.retries.delete(key);
            onChange(key);
          }),
        );
      },
    });
    this.streams.set(key, stream);
  }

  /** Closes the project's stream and forgets it. */
  close(key: ObjectKey): void {
    this.streams.get(key)?.close();
    this.streams.delete(key);
    this.failures.delete(key);
    this.changes.delete(key);
    this.retries.get(key)?.();
    this.retries.delete(key);
  }

  start(): void {
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const key of [...this.streams.keys(), ...this.retries.keys()]) this.close(key);
  }
}
