/**
 * The runtime's view of the pools (busy, queue depth, tokens, cost), polled from RuntimeService
 * ListPools while the operator leads. Pools whose numbers changed are handed to the AgentPool
 * controller; while the runtime does not answer, `get` knows nothing, so the controller leaves
 * those status fields as they were.
 */
import type { PoolStatus } from '@troupe/proto';
import { isDeepStrictEqual } from 'node:util';
import type { RuntimeClient } from '../clients/runtime.js';
import { checkOption, isPositiveInteger, toError } from '../errors.js';
import { silentLogger, type Logger } from '../kube/log.js';
import type { Runnable } from '../kube/manager.js';
import type { ObjectKey } from '../kube/types.js';

export interface PoolMetricsOptions {
  runtime: RuntimeClient;
  /** Namespaces to ask about; all when empty (default). */
  namespaces: readonly string[];
  /** Time between polls (default 10 s). */
  intervalMs: number;
  /** Called with the key of every pool whose numbers changed. */
  onChange: (key: ObjectKey) => void;
  log: Logger;
}

export const POOL_METRICS_DEFAULTS = {
  namespaces: [],
  intervalMs: 10_000,
  log: silentLogger,
} as const satisfies Partial<PoolMetricsOptions>;

export class PoolMetrics implements Runnable {
  readonly options: PoolMetricsOptions;
  private latest = new Map<ObjectKey, PoolStatus>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private reachable = true;
  private stopped = false;

  constructor(options: Pick<PoolMetricsOptions, 'runtime' | 'onChange'> & Partial<PoolMetricsOptions>) {
    this.options = { ...POOL_METRICS_DEFAULTS, ...options };
    checkOption(
      isPositiveInteger(this.options.intervalMs),
      'PoolMetrics',
      'intervalMs',
      'must be a positive integer',
      this.options.intervalMs,
    );
  }

  /** The pool's numbers from the last poll, or undefined when the runtime did not answer it. */
  get(key: ObjectKey): PoolStatus | undefined {
    return this.latest.get(key);
  }

  start(): void {
    const tick = () => {
      this.polling = this.poll().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
  }

  private async poll(): Promise<void> {
    const { runtime, namespaces, onChange, log } = this.options;
    let next: Map<ObjectKey, PoolStatus>;
    try {
      const entries =
        namespaces.length === 0
          ? await runtime.listPools()
          : (await Promise.all(namespaces.map((namespace) => runtime.listPools(namespace)))).flat();
      next = new Map(
        entries.flatMap((entry) =>
          entry.status === undefined ? [] : [[`${entry.namespace}/${entry.status.pool}`, entry.status] as const],
        ),
      );
      if (!this.reachable) log.info('runtime answers ListPools again');
      this.reachable = true;
    } catch (error) {
      if (this.reachable) log.warn('runtime did not answer ListPools; pool load stays as last written', { error: toError(error).message });
      this.reachable = false;
      this.latest = new Map();
      return;
    }
    const previous = this.latest;
    this.latest = next;
    for (const [key, status] of next) if (!isDeepStrictEqual(previous.get(key), status)) onChange(key);
  }
}
