/** How a failing turn is retried before its message is dead-lettered. */
export interface RetryPolicy {
  /** Tries per message, the first included (default 5). */
  maxAttempts: number;
  /** Delay before the second try (default 50 ms); doubles per try. */
  baseDelayMs: number;
  /** Cap of the delay (default 5 s). */
  maxDelayMs: number;
}

export const RETRY_DEFAULTS = { maxAttempts: 5, baseDelayMs: 50, maxDelayMs: 5_000 } as const satisfies RetryPolicy;

/**
 * The pause before try `attempt + 1`: exponential, capped, with full jitter in its upper half
 * so that actors failing together do not retry in lockstep.
 */
export function retryDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}
