/**
 * The ClusterServices conformance suite: the behaviour every implementation must show,
 * registered as vitest tests. Each implementation's test file calls `servicesConformance` with a
 * fixture. The suite opens two instances, as two nodes of one cluster, and every test uses its
 * own bucket keys, cache keys and channels, so it can run against a shared live server.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { RuntimeErrorCode } from '../errors.js';
import type { BucketLimit, ClusterServices, TakeResult } from './services.js';

/** How the suite reaches one implementation. */
export interface ServicesFixture {
  /** Opens one more instance on the fixture's shared state: another node of the same cluster. */
  open(): Promise<ClusterServices>;
  /** Removes what the fixture created; called once, after the last test and after every instance is closed. */
  cleanup(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const text = (data: Uint8Array): string => decoder.decode(data);

/** Polls for what real time makes true; generous, as a loaded machine is slow, not wrong. */
const EVENTUALLY = { timeout: 10_000, interval: 5 };

/** So slow that no token comes back while a test runs. */
const NO_REFILL = 1 / 3600;

/** A subscriber that records what it hears, and whether it heard it inside `publish`. */
function inbox() {
  const messages: string[] = [];
  const state = { publishing: false, heardWhilePublishing: false };
  const onMessage = (message: Uint8Array): void => {
    if (state.publishing) state.heardWhilePublishing = true;
    messages.push(text(message));
  };
  return { messages, onMessage, state };
}

/**
 * Registers the ClusterServices conformance tests for one implementation.
 *
 * @param name shown in the test names, e.g. `redis`.
 * @param setup creates the fixture once, before the first test.
 * @example
 * servicesConformance('redis', async () => {
 *   const keyPrefix = `troupe-test-${randomUUID()}:`;
 *   return {
 *     open: () => openServices({ kind: 'redis', url: infra().redis.url, keyPrefix }),
 *     cleanup: () => deleteKeys(keyPrefix),
 *   };
 * });
 */
export function servicesConformance(name: string, setup: () => Promise<ServicesFixture>): void {
  describe(`ClusterServices conformance: ${name}`, () => {
    const run = randomUUID().slice(0, 8);
    const unique = (label: string): string => `conformance-${run}-${label}`;
    let fixture: ServicesFixture | undefined;
    const opened: ClusterServices[] = [];
    /** Two nodes of one cluster. */
    let a: ClusterServices;
    let b: ClusterServices;

    const open = async (): Promise<ClusterServices> => {
      const services = await fixture!.open();
      opened.push(services);
      return services;
    };

    beforeAll(async () => {
      fixture = await setup();
      a = await open();
      b = await open();
    });

    afterAll(async () => {
      await Promise.all(opened.map((services) => services.close()));
      await fixture?.cleanup();
    });

    describe('rate limiter', () => {
      it('grants up to capacity, then refuses with the wait for the missing tokens', async () => {
        const key = unique('grants');
        // One token per 10 s: seconds of a slow machine move the waits below by a little only.
        const limit: BucketLimit = { capacity: 5, refillPerSecond: 0.1 };
        for (let taken = 1; taken <= 5; taken++) {
          expect(await a.rateLimiter.take(key, 1, limit)).toEqual({ granted: true, remaining: 5 - taken, retryAfterMs: 0 });
        }

        const refused = await b.rateLimiter.take(key, 1, limit);
        expect(refused).toMatchObject({ granted: false, remaining: 0 });
        expect(refused.retryAfterMs).toBeGreaterThan(5_000);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(10_000);

        const refusedThree = await a.rateLimiter.take(key, 3, limit);
        expect(refusedThree).toMatchObject({ granted: false, remaining: 0 });
        expect(refusedThree.retryAfterMs).toBeGreaterThan(25_000);
        expect(refusedThree.retryAfterMs).toBeLessThanOrEqual(30_000);
      });

      it('takes nothing when it refuses', async () => {
        const key = unique('refusal-takes-nothing');
        const limit: BucketLimit = { capacity: 5, refillPerSecond: NO_REFILL };
        expect(await a.rateLimiter.take(key, 2, limit)).toMatchObject({ granted: true, remaining: 3 });
        expect(await b.rateLimiter.take(key, 4, limit)).toMatchObject({ granted: false, remaining: 3 });
        expect(await b.rateLimiter.take(key, 3, limit)).toMatchObject({ granted: true, remaining: 0 });
      });

      it('refills with time, and a wait of retryAfterMs is enough', async () => {
        const key = unique('refills');
        const limit: BucketLimit = { capacity: 2, refillPerSecond: 20 };
        expect(await a.rateLimiter.take(key, 2, limit)).toMatchObject({ granted: true, remaining: 0 });
        const refused = await b.rateLimiter.take(key, 2, limit);
        expect(refused.granted).toBe(false);
        expect(refused.retryAfterMs).toBeGreaterThan(0);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(100);

        await sleep(refused.retryAfterMs);
        await vi.waitFor(async () => expect((await b.rateLimiter.take(key, 2, limit)).granted).toBe(true), EVENTUALLY);
      });

      it('refills no further than capacity', async () => {
        const key = unique('refill-cap');
        const limit: BucketLimit = { capacity: 2, refillPerSecond: 50 };
        expect(await a.rateLimiter.take(key, 1, limit)).toMatchObject({ granted: true, remaining: 1 });
        // Idle for ten times its refill time: had it refilled past capacity, some would be left.
        await sleep(200);
        expect(await b.rateLimiter.take(key, 2, limit)).toMatchObject({ granted: true, remaining: 0 });
      });

      it('grants exactly capacity to 200 concurrent takes from two nodes', async () => {
        const key = unique('concurrent');
        const limit: BucketLimit = { capacity: 50, refillPerSecond: NO_REFILL };
        const takes: Promise<TakeResult>[] = [];
        for (let i = 0; i < 200; i++) takes.push((i % 2 === 0 ? a : b).rateLimiter.take(key, 1, limit));
        const results = await Promise.all(takes);

        const granted = results.filter((result) => result.granted);
        expect(granted).toHaveLength(50);
        // Each grant saw a different count: no two takers read the same tokens.
        expect(granted.map((result) => result.remaining).sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
        for (const result of results.filter((r) => !r.granted)) expect(result).toMatchObject({ remaining: 0 });
      });

      it('puts refunded tokens back, never above capacity', async () => {
        const key = unique('refund');
        const limit: BucketLimit = { capacity: 5, refillPerSecond: NO_REFILL };
        await a.rateLimiter.refund(key, 3, limit);
        expect(await a.rateLimiter.take(key, 3, limit)).toMatchObject({ granted: true, remaining: 2 });
        await b.rateLimiter.refund(key, 2, limit);
        expect(await a.rateLimiter.take(key, 4, limit)).toMatchObject({ granted: true, remaining: 0 });

        await b.rateLimiter.refund(key, 5, limit);
        await a.rateLimiter.refund(key, 5, limit);
        expect(await b.rateLimiter.take(key, 5, limit)).toMatchObject({ granted: true, remaining: 0 });
        expect(await a.rateLimiter.take(key, 1, limit)).toMatchObject({ granted: false, remaining: 0 });
      });

      const valid: BucketLimit = { capacity: 5, refillPerSecond: 1 };
      it.each([
        ['amount', 'zero', 0, valid],
        ['amount', 'negative', -1, valid],
        ['amount', 'NaN', Number.NaN, valid],
        ['amount', 'above capacity', 6, valid],
        ['limit.capacity', 'zero', 1, { capacity: 0, refillPerSecond: 1 }],
        ['limit.capacity', 'infinite', 1, { capacity: Number.POSITIVE_INFINITY, refillPerSecond: 1 }],
        ['limit.refillPerSecond', 'zero', 1, { capacity: 5, refillPerSecond: 0 }],
        ['limit.refillPerSecond', 'negative', 1, { capacity: 5, refillPerSecond: -2 }],
        ['key', 'empty', 1, valid],
      ] satisfies [string, string, number, BucketLimit][])(
        'refuses %s (%s) in take and refund, naming it',
        async (argument, _, amount, limit) => {
          const key = argument === 'key' ? '' : unique('invalid');
          const naming = { code: RuntimeErrorCode.InvalidArgument, message: expect.stringContaining(`\`${argument}\``) };
          await expect(a.rateLimiter.take(key, amount, limit)).rejects.toMatchObject(naming);
          await expect(a.rateLimiter.refund(key, amount, limit)).rejects.toMatchObject(naming);
        },
      );
    });

    describe('response cache', () => {
      it('returns what was set, on every node, and nothing for a key never set', async () => {
        const key = unique('cache-get');
        const value = new Uint8Array([0, 1, 2, 253, 254, 255]);
        await a.responseCache.set(key, value, 60_000);
        expect([...((await b.responseCache.get(key)) ?? [])]).toEqual([...value]);
        expect(await a.responseCache.get(unique('cache-never-set'))).toBeUndefined();
      });

      it('replaces a value and its ttl on a later set', async () => {
        const renewed = unique('cache-renewed');
        const short = unique('cache-short');
        await a.responseCache.set(renewed, bytes('first'), 100);
        await b.responseCache.set(renewed, bytes('second'), 60_000);
        await a.responseCache.set(short, bytes('short-lived'), 100);
        expect(text((await a.responseCache.get(renewed))!)).toBe('second');

        await vi.waitFor(async () => expect(await b.responseCache.get(short)).toBeUndefined(), EVENTUALLY);
        expect(text((await b.responseCache.get(renewed))!)).toBe('second');
      });

      it('keeps its own copy of a value', async () => {
        const key = unique('cache-copy');
        const value = bytes('abc');
        await a.responseCache.set(key, value, 60_000);
        value[0] = 0x7a;
        const first = (await a.responseCache.get(key))!;
        first[1] = 0x7a;
        expect(text((await a.responseCache.get(key))!)).toBe('abc');
      });

      it.each([
        ['ttlMs', 'zero', 'k', 0],
        ['ttlMs', 'negative', 'k', -5],
        ['ttlMs', 'fractional', 'k', 1.5],
        ['ttlMs', 'NaN', 'k', Number.NaN],
        ['key', 'empty', '', 1_000],
      ] satisfies [string, string, string, number][])('refuses %s (%s), naming it', async (argument, _, key, ttlMs) => {
        await expect(a.responseCache.set(key, bytes('v'), ttlMs)).rejects.toMatchObject({
          code: RuntimeErrorCode.InvalidArgument,
          message: expect.stringContaining(`\`${argument}\``),
        });
      });
    });

    describe('pub/sub', () => {
      it('delivers each message to every subscriber on every node, never inside publish', async () => {
        const channel = unique('fan-out');
        // Two subscribers on each node: they share one Redis subscription there.
        const subscriptions = [a, a, b, b].map((node) => ({ node, heard: inbox() }));
        for (const { node, heard } of subscriptions) await node.pubSub.subscribe(channel, heard.onMessage);
        const inboxes = subscriptions.map(({ heard }) => heard);

        for (const [node, message] of [
          [a, 'from a'],
          [b, 'from b'],
        ] as const) {
          for (const each of inboxes) each.state.publishing = true;
          const published = node.pubSub.publish(channel, bytes(message));
          for (const each of inboxes) each.state.publishing = false;
          await published;
        }

        await vi.waitFor(() => {
          for (const each of inboxes) expect([...each.messages].sort()).toEqual(['from a', 'from b']);
        }, EVENTUALLY);
        for (const each of inboxes) expect(each.state.heardWhilePublishing).toBe(false);
      });

      it("keeps each publisher's order over 1,000 messages", async () => {
        const channel = unique('order');
        const onA = inbox();
        const onB = inbox();
        await a.pubSub.subscribe(channel, onA.onMessage);
        await b.pubSub.subscribe(channel, onB.onMessage);

        const publishes: Promise<void>[] = [];
        for (let i = 0; i < 1_000; i++) {
          publishes.push(a.pubSub.publish(channel, bytes(`a:${i}`)), b.pubSub.publish(channel, bytes(`b:${i}`)));
        }
        await Promise.all(publishes);

        await vi.waitFor(() => {
          expect(onA.messages).toHaveLength(2_000);
          expect(onB.messages).toHaveLength(2_000);
        }, EVENTUALLY);
        const sequence = (publisher: string) => [...Array(1_000).keys()].map((i) => `${publisher}:${i}`);
        for (const { messages } of [onA, onB]) {
          expect(messages.filter((m) => m.startsWith('a:'))).toEqual(sequence('a'));
          expect(messages.filter((m) => m.startsWith('b:'))).toEqual(sequence('b'));
        }
      });

      it('stops delivering once unsubscribe resolves, and a channel can be joined again', async () => {
        const channel = unique('unsubscribe');
        const leavingA = inbox();
        const leavingB = inbox();
        const stayingA = inbox();
        const stayingB = inbox();
        const leaveA = await a.pubSub.subscribe(channel, leavingA.onMessage);
        const leaveB = await b.pubSub.subscribe(channel, leavingB.onMessage);
        const stayA = await a.pubSub.subscribe(channel, stayingA.onMessage);
        const stayB = await b.pubSub.subscribe(channel, stayingB.onMessage);

        await a.pubSub.publish(channel, bytes('first'));
        await vi.waitFor(() => {
          for (const each of [leavingA, leavingB, stayingA, stayingB]) expect(each.messages).toEqual(['first']);
        }, EVENTUALLY);

        await Promise.all([leaveA(), leaveB()]);
        await leaveA();
        await a.pubSub.publish(channel, bytes('second'));
        await b.pubSub.publish(channel, bytes('third'));
        // The staying subscribers share the leaving ones' connections and delivery order, so once
        // they have heard both, the leaving ones would have too.
        await vi.waitFor(() => {
          for (const each of [stayingA, stayingB]) expect(each.messages).toEqual(['first', 'second', 'third']);
        }, EVENTUALLY);
        expect(leavingA.messages).toEqual(['first']);
        expect(leavingB.messages).toEqual(['first']);

        await Promise.all([stayA(), stayB()]);
        const rejoined = inbox();
        await b.pubSub.subscribe(channel, rejoined.onMessage);
        await a.pubSub.publish(channel, bytes('fourth'));
        await vi.waitFor(() => expect(rejoined.messages).toEqual(['fourth']), EVENTUALLY);
        expect(stayingA.messages).toEqual(['first', 'second', 'third']);
      });

      it('refuses an empty channel, naming it', async () => {
        const naming = { code: RuntimeErrorCode.InvalidArgument, message: expect.stringContaining('`channel`') };
        await expect(a.pubSub.publish('', bytes('x'))).rejects.toMatchObject(naming);
        await expect(a.pubSub.subscribe('', () => undefined)).rejects.toMatchObject(naming);
      });
    });

    describe('close', () => {
      it('refuses work with CLOSED, ends its subscriptions and leaves other nodes alone', async () => {
        const channel = unique('close');
        const node = await open();
        const closing = inbox();
        const staying = inbox();
        const unsubscribe = await node.pubSub.subscribe(channel, closing.onMessage);
        await a.pubSub.subscribe(channel, staying.onMessage);

        await node.close();
        await node.close();
        const closed = { code: RuntimeErrorCode.Closed };
        const limit: BucketLimit = { capacity: 1, refillPerSecond: 1 };
        await expect(node.rateLimiter.take(unique('closed'), 1, limit)).rejects.toMatchObject(closed);
        await expect(node.rateLimiter.refund(unique('closed'), 1, limit)).rejects.toMatchObject(closed);
        await expect(node.responseCache.get(unique('closed'))).rejects.toMatchObject(closed);
        await expect(node.responseCache.set(unique('closed'), bytes('x'), 1_000)).rejects.toMatchObject(closed);
        await expect(node.pubSub.publish(channel, bytes('x'))).rejects.toMatchObject(closed);
        await expect(node.pubSub.subscribe(channel, () => undefined)).rejects.toMatchObject(closed);
        await unsubscribe();

        await b.pubSub.publish(channel, bytes('after close'));
        await vi.waitFor(() => expect(staying.messages).toEqual(['after close']), EVENTUALLY);
        expect(closing.messages).toEqual([]);
        expect(await b.rateLimiter.take(unique('after-close'), 1, limit)).toMatchObject({ granted: true });
      });
    });
  });
}
