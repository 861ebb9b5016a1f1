/**
 * The controller's work queue, with client-go's guarantees: a key is queued at most once, a key
 * being processed is never handed to a second worker (it is queued again when `done`), delayed
 * adds keep the earliest time, and failed keys come back after a per-key capped, jittered,
 * exponential delay until `forget`.
 */
import { checkOption } from '../errors.js';
import { backoffDelay, systemClock, type BackoffPolicy, type CancelTimer, type Clock } from './clock.js';

export interface WorkQueueOptions {
  /** Delay of a key's n-th consecutive failure (default 100 ms doubling to 60 s, jittered). */
  backoff: BackoffPolicy;
  clock: Clock;
  random: () => number;
}

export const WORK_QUEUE_DEFAULTS = {
  backoff: { initialMs: 100, maxMs: 60_000 },
  clock: systemClock,
  random: Math.random,
} as const satisfies Partial<WorkQueueOptions>;

/**
 * @example
 * const queue = new WorkQueue();
 * queue.add('acme/storefront');
 * const key = await queue.get();        // 'acme/storefront'
 * try { await reconcile(key); queue.forget(key); } catch { queue.addRateLimited(key); } finally { queue.done(key); }
 */
export class WorkQueue {
  readonly options: WorkQueueOptions;
  private readonly order: string[] = [];
  /** Keys that need processing: queued, or re-added while processing. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; cancel: CancelTimer }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;

  constructor(options: Partial<WorkQueueOptions> = {}) {
    this.options = { ...WORK_QUEUE_DEFAULTS, ...options };
    const { backoff } = this.options;
    checkOption(
      backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs,
      'WorkQueue',
      'backoff',
      'needs 0 < initialMs <= maxMs',
      backoff,
    );
  }

  /** Keys waiting to be handed out. */
  get length(): number {
    return this.order.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter === undefined) this.order.push(key);
    else this.handOut(key, waiter);
  }

  /** Adds `key` after `ms`; an earlier pending add of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.options.clock.now() + ms;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      pending.cancel();
    }
    const cancel = this.options.clock.setTimer(ms, () => {
      this.delayed.delete(key);
      this.add(key);
    });
    this.delayed.set(key, { at, cancel });
  }

  /** Adds `key` after its backoff delay, which doubles with every failure until `forget`. */
  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.addAfter(key, backoffDelay(this.options.backoff, failures, this.options.random));
  }

  /** Clears a key's failure count after it succeeded or failed for good. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Consecutive failures of `key` since its last `forget`. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.order.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (!this.dirty.has(key)) return;
    this.dirty.delete(key);
    this.add(key);
  }

  /** Hands out nothing more: pending and future `get`s resolve undefined, timers are cancelled. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { cancel } of this.delayed.values()) cancel();
    this.delayed.clear();
    this.order.length = 0;
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  private handOut(key: string, waiter: (key: string) => void): void {
    this.dirty.delete(key);
    this.processing.add(key);
    waiter(key);
  }
}
