/**
 * The embedded ClusterServices: the shared conformance suite (handles of one instance playing
 * the nodes), then what only the embedded services promise: exact bucket arithmetic on an
 * injected clock, a response cache bounded in entries and bytes that evicts the least recently
 * used, option validation, and handles closed one by one.
 */
import { describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../../errors.js';
import { servicesConformance } from '../conformance.js';
import { openServices, type ServicesConfig } from '../open.js';
import type { BucketLimit, ResponseCache } from '../services.js';
import { EmbeddedServices, type EmbeddedServicesOptions } from './embedded-services.js';

servicesConformance('embedded', async () => {
  const services = EmbeddedServices.open();
  return { open: async () => services.share(), cleanup: () => services.close() };
});

describe('EmbeddedServices', () => {
  const encoder = new TextEncoder();
  const bytes = (text: string) => encoder.encode(text);

  /** A clock that moves only when told. */
  const steppedClock = () => {
    let now = 1_700_000_000_000;
    return { clock: () => now, advance: (ms: number) => void (now += ms) };
  };

  const cached = async (cache: ResponseCache, keys: readonly string[]) => {
    const present: string[] = [];
    for (const key of keys) if ((await cache.get(key)) !== undefined) present.push(key);
    return present;
  };

  it('refills by the time elapsed on its clock, up to capacity', async () => {
    const time = steppedClock();
    const { rateLimiter } = EmbeddedServices.open({ clock: time.clock });
    // One token per 500 ms.
    const limit: BucketLimit = { capacity: 10, refillPerSecond: 2 };

    expect(await rateLimiter.take('b', 10, limit)).toEqual({ granted: true, remaining: 0, retryAfterMs: 0 });
    expect(await rateLimiter.take('b', 3, limit)).toEqual({ granted: false, remaining: 0, retryAfterMs: 1_500 });
    time.advance(1_000);
    expect(await rateLimiter.take('b', 3, limit)).toEqual({ granted: false, remaining: 2, retryAfterMs: 500 });
    time.advance(500);
    expect(await rateLimiter.take('b', 3, limit)).toEqual({ granted: true, remaining: 0, retryAfterMs: 0 });

    time.advance(1_000_000);
    expect(await rateLimiter.take('b', 10, limit)).toEqual({ granted: true, remaining: 0, retryAfterMs: 0 });
  });

  it('refills nothing while its clock runs backwards, and does not count that time twice', async () => {
    const time = steppedClock();
    const { rateLimiter } = EmbeddedServices.open({ clock: time.clock });
    const limit: BucketLimit = { capacity: 2, refillPerSecond: 2 };

    expect(await rateLimiter.take('b', 2, limit)).toMatchObject({ granted: true, remaining: 0 });
    time.advance(-10_000);
    expect(await rateLimiter.take('b', 1, limit)).toEqual({ granted: false, remaining: 0, retryAfterMs: 500 });
    // Written while the clock is behind: had it recorded that earlier time, the return to the
    // present would refill the bucket for the 10 s again.
    await rateLimiter.refund('b', 1, limit);
    time.advance(10_000);
    expect(await rateLimiter.take('b', 2, limit)).toEqual({ granted: false, remaining: 1, retryAfterMs: 500 });
    time.advance(500);
    expect(await rateLimiter.take('b', 2, limit)).toMatchObject({ granted: true, remaining: 0 });
  });

  it('expires responses by its clock', async () => {
    const time = steppedClock();
    const { responseCache } = EmbeddedServices.open({ clock: time.clock });
    await responseCache.set('r', bytes('response'), 100);
    time.advance(99);
    expect(await responseCache.get('r')).toEqual(bytes('response'));
    time.advance(1);
    expect(await responseCache.get('r')).toBeUndefined();
  });

  it('evicts the least recently used responses past cacheMaxEntries', async () => {
    const { responseCache } = EmbeddedServices.open({ cacheMaxEntries: 3 });
    for (const key of ['a', 'b', 'c']) await responseCache.set(key, bytes(key), 60_000);
    await responseCache.get('a');
    await responseCache.set('d', bytes('d'), 60_000);
    expect(await cached(responseCache, ['a', 'b', 'c', 'd'])).toEqual(['a', 'c', 'd']);

    // The reads above left 'a' the least recently used; replacing it is a use, so 'c' goes.
    await responseCache.set('a', bytes('a2'), 60_000);
    await responseCache.set('e', bytes('e'), 60_000);
    expect(await cached(responseCache, ['a', 'c', 'd', 'e'])).toEqual(['a', 'd', 'e']);
  });

  it('evicts the least recently used past cacheMaxBytes, and caches nothing larger than that', async () => {
    const { responseCache } = EmbeddedServices.open({ cacheMaxBytes: 10 });
    for (const key of ['x', 'y', 'z']) await responseCache.set(key, bytes(`${key}${key}${key}${key}`), 60_000);
    expect(await cached(responseCache, ['x', 'y', 'z'])).toEqual(['y', 'z']);

    await responseCache.set('huge', bytes('0123456789A'), 60_000);
    // A replacement too large to cache must not leave the old value behind either.
    await responseCache.set('y', bytes('0123456789A'), 60_000);
    expect(await cached(responseCache, ['huge', 'y', 'z'])).toEqual(['z']);
  });

  it.each([
    ['clock', { clock: 'now' as unknown as () => number }],
    ['cacheMaxEntries', { cacheMaxEntries: 0 }],
    ['cacheMaxEntries', { cacheMaxEntries: 1.5 }],
    ['cacheMaxBytes', { cacheMaxBytes: -1 }],
  ] satisfies [string, EmbeddedServicesOptions][])('refuses an invalid %s option, naming it', (key, options) => {
    expect(() => EmbeddedServices.open(options)).toThrow(
      expect.objectContaining({ code: RuntimeErrorCode.InvalidOptions, message: expect.stringContaining(`\`${key}\``) }),
    );
  });

  it('closes handles one by one', async () => {
    const services = EmbeddedServices.open();
    const handle = services.share();
    await handle.responseCache.set('k', bytes('v'), 60_000);
    await handle.close();

    expect(() => handle.share()).toThrow(expect.objectContaining({ code: RuntimeErrorCode.Closed }));
    expect(await services.responseCache.get('k')).toEqual(bytes('v'));
    await services.close();
  });

  it('is what openServices opens for kind embedded, and openServices refuses an unknown kind', async () => {
    const services = await openServices({ kind: 'embedded' });
    expect(services.kind).toBe('embedded');
    await services.close();
    await expect(openServices({ kind: 'memcached' } as unknown as ServicesConfig)).rejects.toMatchObject({
      code: RuntimeErrorCode.InvalidOptions,
      message: expect.stringContaining('`kind`'),
    });
  });
});
