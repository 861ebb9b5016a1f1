/**
 * The operator's Prometheus metrics (prom-client), as controller-runtime keeps them: how long
 * each reconcile took and how it ended, per controller, and how many keys wait in each
 * controller's work queue. One registry per process, served on the health port's /metrics.
 */
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReconcileOutcome } from './controller.js';

/** Reconciles take milliseconds against a warm cache and seconds when the API server or the runtime is slow. */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * @example
 * const metrics = new OperatorMetrics();
 * const operator = startOperator({ …, onReconciled: metrics.onReconciled });
 * metrics.watchQueues(() => operator.manager.queueDepths());
 * response.end(await metrics.exposition());
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly reconciles: Histogram<'controller' | 'result'>;
  private queues: () => readonly { controller: string; depth: number }[] = () => [];

  /** `processMetrics`: also export Node's process metrics (`process_*`, `nodejs_*`); default true. */
  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.reconciles = new Histogram({
      name: 'troupe_operator_reconcile_duration_seconds',
      help: 'Time a reconcile took, by controller and result: success, requeue, error (retried with backoff) or terminal.',
      labelNames: ['controller', 'result'] as const,
      buckets: RECONCILE_BUCKETS,
      registers: [this.registry],
    });
    const depth = new Gauge({
      name: 'troupe_operator_workqueue_depth',
      help: "Keys waiting in a controller's work queue.",
      labelNames: ['controller'] as const,
      registers: [this.registry],
      collect: () => {
        depth.reset();
        for (const queue of this.queues()) depth.set({ controller: queue.controller }, queue.depth);
      },
    });
  }

  /** Records a finished reconcile: hand it to the operator's `onReconciled`. */
  readonly onReconciled = (outcome: ReconcileOutcome): void => {
    this.reconciles.observe({ controller: outcome.controller, result: outcome.result }, outcome.durationMs / 1000);
  };

  /** Where the queue depths are read from when scraped (the Manager's `queueDepths`). */
  watchQueues(queues: () => readonly { controller: string; depth: number }[]): void {
    this.queues = queues;
  }

  /** The content type of {@link exposition}: the Prometheus text format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}
