/**
 * The in-process ResponseCache: a Map in least-recently-used order with a TTL per entry,
 * bounded in entries and bytes so a long-running embedded node holds a fixed amount of memory.
 * Also holds the argument rules both ResponseCaches enforce.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ResponseCache } from '../services.js';
import { shown } from './rate-limiter.js';

interface Entry {
  value: Uint8Array;
  expiresAt: number;
}

/** Refuses arguments neither cache can store, naming the argument. */
export function checkCacheArguments(method: 'get' | 'set', key: string, value?: Uint8Array, ttlMs?: number): void {
  const refuse = (argument: string, rule: string, got: unknown) =>
    new RuntimeError(RuntimeErrorCode.InvalidArgument, `ResponseCache.${method}: \`${argument}\` ${rule}, got ${shown(got)}`);
  if (typeof key !== 'string' || key === '') throw refuse('key', 'must be a non-empty string', key);
  if (method === 'get') return;
  if (!(value instanceof Uint8Array)) throw refuse('value', 'must be a Uint8Array', value);
  // Redis takes PX in whole milliseconds and refuses 0.
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw refuse('ttlMs', 'must be an integer > 0', ttlMs);
}

/**
 * An LRU map of responses. `get` and `set` count as uses; past `maxEntries` or `maxBytes` the
 * least recently used entries go first. Expired entries are dropped when met and otherwise
 * age out of the LRU order like any other.
 */
export class EmbeddedResponseCache implements ResponseCache {
  // A Map iterates in insertion order, so re-inserting on use keeps the LRU entry first.
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly options: { maxEntries: number; maxBytes: number; clock: () => number }) {}

  async get(key: string): Promise<Uint8Array | undefined> {
    checkCacheArguments('get', key);
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.remove(key, entry);
    if (entry.expiresAt <= this.options.clock()) return undefined;
    this.insert(key, entry);
    // A copy, as from Redis: a caller editing its answer must not edit the cache.
    return entry.value.slice();
  }

  async set(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    checkCacheArguments('set', key, value, ttlMs);
    const previous = this.entries.get(key);
    if (previous !== undefined) this.remove(key, previous);
    // Larger than the whole cache: storing it would only evict everything else, then itself.
    if (value.byteLength > this.options.maxBytes) return;
    // A copy, as into Redis: the caller may reuse its buffer.
    this.insert(key, { value: value.slice(), expiresAt: this.options.clock() + ttlMs });
    for (const [oldest, entry] of this.entries) {
      if (this.entries.size <= this.options.maxEntries && this.bytes <= this.options.maxBytes) break;
      this.remove(oldest, entry);
    }
  }

  private insert(key: string, entry: Entry): void {
    this.entries.set(key, entry);
    this.bytes += entry.value.byteLength;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.value.byteLength;
  }
}
