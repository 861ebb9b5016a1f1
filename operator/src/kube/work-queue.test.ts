/**
 * The work queue's guarantees, on a manual clock: one reconcile per key at a time, dedupe, the
 * earliest delayed add wins, per-key backoff that grows until forgotten.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../testing/manual-clock.js';
import { WorkQueue } from './work-queue.js';

/** No jitter, so delays are exact. */
const random = () => 1;

describe('WorkQueue', () => {
  it('queues a key once however often it is added, in first-added order', async () => {
    const queue = new WorkQueue({ clock: new ManualClock(), random });
    for (const key of ['a', 'b', 'a', 'c', 'b']) queue.add(key);
    expect(queue.length).toBe(3);
    expect([await queue.get(), await queue.get(), await queue.get()]).toEqual(['a', 'b', 'c']);
  });

  it('never hands out a key that is being processed; a re-add waits for done', async () => {
    const queue = new WorkQueue({ clock: new ManualClock(), random });
    queue.add('a');
    const first = await queue.get();
    queue.add('a');
    queue.add('a');
    expect(queue.length).toBe(0);
    let second: string | undefined;
    void queue.get().then((key) => (second = key));
    await Promise.resolve();
    expect(second).toBeUndefined();
    queue.done(first as string);
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('keeps the earliest of several delayed adds of a key', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, random });
    queue.addAfter('a', 1_000);
    queue.addAfter('a', 5_000);
    queue.addAfter('a', 300);
    expect(clock.pending).toBe(1);
    clock.advance(299);
    expect(queue.length).toBe(0);
    clock.advance(1);
    expect(queue.length).toBe(1);
    clock.advance(10_000);
    expect(queue.length).toBe(1);
  });

  it('backs a failing key off exponentially up to the cap, and starts over after forget', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, random, backoff: { initialMs: 100, maxMs: 1_000 } });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = clock.now();
      queue.addRateLimited('a');
      for (let waited = 0; queue.length === 0 && waited < 10_000; waited++) clock.advance(1);
      delays.push(clock.now() - before);
      queue.done((await queue.get()) as string);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(queue.retries('a')).toBe(6);
    queue.forget('a');
    expect(queue.retries('a')).toBe(0);
  });

  it('jitters backoff into the upper half of the delay, so keys failing together spread out', () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, random: () => 0, backoff: { initialMs: 100, maxMs: 1_000 } });
    queue.addRateLimited('a');
    clock.advance(49);
    expect(queue.length).toBe(0);
    clock.advance(1);
    expect(queue.length).toBe(1);
  });

  it('after shutDown hands out nothing and drops pending delayed adds', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, random });
    const waiting = queue.get();
    queue.addAfter('a', 100);
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    clock.advance(1_000);
    expect(await queue.get()).toBeUndefined();
    expect(clock.pending).toBe(0);
  });
});
