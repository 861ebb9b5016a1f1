import { describe, expect, it } from 'vitest';
import { defineActor } from './actor.js';
import { partitionFor } from '../transport/partitioner.js';

describe('defineActor', () => {
  const base = { initialState: () => 0, receive: () => undefined, apply: (state: number) => state };

  it('refuses a type name that cannot name a topic, naming the rule', () => {
    expect(() => defineActor({ ...base, type: 'Project Manager' })).toThrow(/actor type "Project Manager" must match/);
  });

  it('refuses a snapshot interval that is not a positive integer', () => {
    expect(() => defineActor({ ...base, type: 'p', snapshotEvery: 0 })).toThrow(/snapshotEvery must be a positive integer, got 0/);
  });
});

describe('partitionFor', () => {
  it('puts a key in the same partition every time and spreads keys over all partitions', () => {
    expect(partitionFor('acme/storefront', 12)).toBe(partitionFor('acme/storefront', 12));
    const used = new Set(Array.from({ length: 1_000 }, (_, i) => partitionFor(`project-${i}`, 12)));
    expect(used.size).toBe(12);
  });

  it('keeps every key in the partition it has always had, whatever its characters', () => {
    // Records already in a topic stay where these numbers put them: the hash must never change.
    const keys = ['acme/storefront', 'actor-17', 'café/ünïcødé', '🎭/troupe', '', 'x'.repeat(500)];
    expect(keys.map((key) => partitionFor(key, 1_000))).toEqual([644, 801, 313, 259, 261, 933]);
  });
});
