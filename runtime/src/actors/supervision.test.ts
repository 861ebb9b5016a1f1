import { describe, expect, it } from 'vitest';
import { retryDelay } from './supervision.js';

describe('retry backoff', () => {
  const policy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1_000 };

  it('doubles per try and stays within the upper half of its ceiling', () => {
    expect(retryDelay(policy, 1, () => 0)).toBe(50);
    expect(retryDelay(policy, 1, () => 1)).toBe(100);
    expect(retryDelay(policy, 3, () => 0)).toBe(200);
    expect(retryDelay(policy, 3, () => 1)).toBe(400);
  });

  it('never waits longer than the cap', () => {
    expect(retryDelay(policy, 30, () => 1)).toBe(1_000);
  });
});
