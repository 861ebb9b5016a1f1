/**
 * A controller: informers feed keys into a work queue, workers take keys and call the
 * reconciler, level-based (it is never told what changed, only which object to look at).
 * A Conflict waits for the newer version the informer brings; any other retriable error
 * requeues the key with backoff; a TerminalError (or an error that is not retriable) is
 * recorded as a Warning Event on the object and the key is dropped until the object changes.
 */
import { OperatorError, OperatorErrorCode, TerminalError, checkOption, isPositiveInteger, toError } from '../errors.js';
import type { KindRecorder } from './events.js';
import type { Informer } from './informer.js';
import { silentLogger, type Logger } from './log.js';
import { traceReconcile } from './tracing.js';
import type { KubeObject, ObjectKey } from './types.js';
import { keyOf, splitKey } from './types.js';
import { WorkQueue, type WorkQueueOptions } from './work-queue.js';

/** What a reconcile asks for beyond success: to be looked at again after a while. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface Reconciler {
  /** Makes the world match the object named by `key` (`namespace/name`), which may be gone. */
  reconcile(key: ObjectKey): Promise<ReconcileResult>;
}

/** One finished reconcile, for metrics and benchmarks. */
export interface ReconcileOutcome {
  controller: string;
  key: ObjectKey;
  durationMs: number;
  result: 'success' | 'requeue' | 'error' | 'terminal';
}

export interface ControllerOptions<T extends KubeObject> {
  /** Names the controller in logs and outcomes, e.g. `project`. */
  name: string;
  /** The informer of the kind this controller reconciles. */
  primary: Informer<T>;
  reconciler: Reconciler;
  /** Records TerminalErrors as Warning Events on the primary object. */
  recorder: KindRecorder;
  /** Keys reconciled at once; one key is never reconciled twice at once (default 4). */
  concurrency: number;
  queue: Partial<WorkQueueOptions>;
  log: Logger;
  /** Called after every reconcile. */
  onReconciled?: (outcome: ReconcileOutcome) => void;
}

/** When to look again at a key whose write hit a Conflict, should no watch event bring it back sooner. */
const CONFLICT_RECHECK_MS = 1_000;

export const CONTROLLER_DEFAULTS = {
  concurrency: 4,
  queue: {},
  log: silentLogger,
} as const satisfies Partial<ControllerOptions<KubeObject>>;

/**
 * @example
 * const controller = new Controller({ name: 'agentpool', primary: pools, reconciler, recorder });
 * controller.owns(deployments, 'AgentPool');
 * controller.start();
 */
export class Controller<T extends KubeObject> {
  readonly options: ControllerOptions<T>;
  readonly queue: WorkQueue;
  private workers: Promise<void>[] = [];

  constructor(options: Pick<ControllerOptions<T>, 'name' | 'primary' | 'reconciler' | 'recorder'> & Partial<ControllerOptions<T>>) {
    this.options = { ...CONTROLLER_DEFAULTS, ...options };
    checkOption(
      isPositiveInteger(this.options.concurrency),
      'Controller',
      'concurrency',
      'must be a positive integer',
      this.options.concurrency,
    );
    this.queue = new WorkQueue(this.options.queue);
    this.watches(this.options.primary, (object) => [keyOf(object)]);
  }

  /** Reconciles the keys `map` returns for every change of an object of `informer`. */
  watches<O extends KubeObject>(informer: Informer<O>, map: (object: O) => ObjectKey[]): this {
    const enqueue = (object: O) => {
      for (const key of map(object)) this.queue.add(key);
    };
    informer.addHandler({ onAdd: enqueue, onUpdate: (_previous, current) => enqueue(current), onDelete: enqueue });
    return this;
  }

  /** Reconciles the owner (controller reference of kind `ownerKind`) of every changed object of `informer`. */
  owns<O extends KubeObject>(informer: Informer<O>, ownerKind: string): this {
    return this.watches(informer, (object) =>
      (object.metadata.ownerReferences ?? [])
        .filter((owner) => owner.controller === true && owner.kind === ownerKind)
        .map((owner) => `${object.metadata.namespace ?? ''}/${owner.name}`),
    );
  }

  /** Queues `key` now, for sources that are not informers. */
  enqueue(key: ObjectKey): void {
    this.queue.add(key);
  }

  start(): void {
    if (this.workers.length > 0) return;
    this.workers = Array.from({ length: this.options.concurrency }, () => this.work());
  }

  /** Hands out no more keys and waits for the reconciles in flight. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      await this.process(key);
    }
  }

  private async process(key: ObjectKey): Promise<void> {
    const { name, reconciler, log, onReconciled } = this.options;
    const started = performance.now();
    let result: ReconcileOutcome['result'];
    try {
      const { requeueAfterMs } = await traceReconcile(name, key, () => reconciler.reconcile(key));
      this.queue.forget(key);
      if (requeueAfterMs !== undefined) this.queue.addAfter(key, requeueAfterMs);
      result = requeueAfterMs === undefined ? 'success' : 'requeue';
    } catch (error) {
      if (error instanceof OperatorError && error.code === OperatorErrorCode.Conflict) {
        // The write was decided on a cached object that has moved on: the informer brings the
        // newer version and queues the key again. The delayed add covers a watch that broke meanwhile.
        result = 'requeue';
        log.debug('conflict, waiting for the newer version', { key });
        this.queue.addAfter(key, CONFLICT_RECHECK_MS);
      } else if (error instanceof TerminalError || (error instanceof OperatorError && !error.retriable)) {
        result = 'terminal';
        this.queue.forget(key);
        const reason = error instanceof TerminalError ? error.reason : 'ReconcileFailed';
        log.warn('reconcile failed for good', { key, reason, error: error.message });
        const { namespace, name: objectName } = splitKey(key);
        const object = this.options.primary.get(namespace, objectName);
        if (object !== undefined) this.options.recorder.warning(object, reason, error.message);
      } else {
        result = 'error';
        log.info('reconcile failed, retrying', { key, retries: this.queue.retries(key), error: toError(error).message });
        this.queue.addRateLimited(key);
      }
    } finally {
      this.queue.done(key);
    }
    onReconciled?.({ controller: name, key, durationMs: performance.now() - started, result });
  }
}
