/**
 * Coalesces status writes: at most one per object per interval. Runtime events arrive far
 * faster than anyone reads `kubectl get`; the object is written once per interval with the
 * state at that moment, and every event in between is folded into that write.
 */
import { checkOption } from '../errors.js';
import type { Clock } from '../kube/clock.js';
import type { ObjectKey } from '../kube/types.js';

export class StatusGate {
  private readonly writtenAt = new Map<ObjectKey, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly clock: Clock,
  ) {
    checkOption(
      Number.isInteger(intervalMs) && intervalMs >= 0,
      'ProjectReconciler',
      'statusIntervalMs',
      'must be a non-negative integer',
      intervalMs,
    );
  }

  /** Milliseconds until `key` may be written again; 0 when it may be written now. */
  delay(key: ObjectKey): number {
    const last = this.writtenAt.get(key);
    return last === undefined ? 0 : Math.max(0, last + this.intervalMs - this.clock.now());
  }

  wrote(key: ObjectKey): void {
    this.writtenAt.set(key, this.clock.now());
  }

  forget(key: ObjectKey): void {
    this.writtenAt.delete(key);
  }
}
