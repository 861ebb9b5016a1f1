/**
 * Time as the controller runtime sees it, injected so that queues and backoff can be tested
 * without sleeping.
 */

/** Cancels a timer set by `Clock.setTimer`. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; the timer does not keep the process alive. */
  setTimer(ms: number, fn: () => void): CancelTimer;
}

/** The wall clock and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** Capped exponential backoff: `initialMs × 2^attempt`, at most `maxMs`. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * The delay before retry number `attempt` (from 0), jittered into [½d, d] so that many keys or
 * replicas failing together do not retry in lockstep.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const capped = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (random() * capped) / 2);
}
