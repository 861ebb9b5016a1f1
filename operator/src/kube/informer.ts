/**
 * An informer: lists a resource, then watches it from the list's resourceVersion, keeping an
 * in-memory cache that reconcilers read and telling handlers what changed. A watch that ends is
 * resumed from the last resourceVersion seen; `410 Gone` (the API server forgot that version)
 * means relist; any other failure retries with capped, jittered backoff. Every `resyncMs` the
 * handlers see each cached object again, so level-based reconcilers revisit everything.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { OperatorError, OperatorErrorCode, checkOption, isPositiveInteger, toError } from '../errors.js';
import type { KubeClient, ResourceType, WatchEvent } from './client.js';
import { backoffDelay, type BackoffPolicy } from './clock.js';
import { silentLogger, type Logger } from './log.js';
import type { KubeObject } from './types.js';

/** What an informer tells about changes; handlers only enqueue work and must not throw. */
export interface InformerHandler<T extends KubeObject> {
  onAdd?(object: T): void;
  /** Also called with `previous === current` on resync. */
  onUpdate?(previous: T, current: T): void;
  onDelete?(object: T): void;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  type: ResourceType<T>;
  /** Watch only these namespaces, one list+watch each; every namespace when empty (default). */
  namespaces: readonly string[];
  labelSelector?: string;
  /** How often handlers see every cached object again as an update (default 10 min; 0 never). */
  resyncMs: number;
  /** The API server ends each watch after about this long; it is resumed at once (default 300 s). */
  watchTimeoutSeconds: number;
  /** Objects per list page (default 500). */
  pageSize: number;
  /** Retry delays after a failed list or watch (default 250 ms doubling to 30 s, jittered). */
  backoff: BackoffPolicy;
  /** Applied to every object before it is cached (after managedFields are dropped), e.g. to drop Secret values. */
  transform?: (object: T) => T;
  log: Logger;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** A watch that ends sooner than this counts as a failure for backoff. */
const MIN_HEALTHY_WATCH_MS = 1_000;

export const INFORMER_DEFAULTS = {
  namespaces: [],
  resyncMs: 10 * 60_000,
  watchTimeoutSeconds: 300,
  pageSize: 500,
  backoff: { initialMs: 250, maxMs: 30_000 },
  log: silentLogger,
} as const satisfies Partial<InformerOptions<KubeObject>>;

/** What an informer has done, for logs and tests. */
export interface InformerStats {
  /** Full lists, the first ones included. */
  lists: number;
  /** Watches ended by `410 Gone` (each followed by a relist). */
  gone: number;
  /** Lists or watches that failed otherwise (each followed by a backoff). */
  failures: number;
}

/**
 * @example
 * const pools = new Informer({ client, type: AgentPools });
 * pools.addHandler({ onAdd: (pool) => queue.add(keyOf(pool)) });
 * pools.start();
 * await pools.synced();
 * pools.get('acme', 'developers');
 */
export class Informer<T extends KubeObject> {
  readonly options: InformerOptions<T>;
  readonly stats: InformerStats = { lists: 0, gone: 0, failures: 0 };
  /** namespace → name → object. */
  private readonly store = new Map<string, Map<string, T>>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly abort = new AbortController();
  private readonly unsynced: Set<string>;
  private readonly syncWaiters: (() => void)[] = [];
  private loops: Promise<void>[] = [];
  private resync: NodeJS.Timeout | undefined;

  constructor(options: Pick<InformerOptions<T>, 'client' | 'type'> & Partial<InformerOptions<T>>) {
    this.options = { ...INFORMER_DEFAULTS, ...options };
    validate(this.options);
    this.unsynced = new Set(this.scopes());
  }

  /** Adds a handler; add them all before `start`, as objects listed earlier are not replayed. */
  addHandler(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Starts a list+watch loop per namespace (or one for all) and the resync timer. */
  start(): void {
    if (this.loops.length > 0) return;
    this.loops = this.scopes().map((scope) => this.run(scope));
    if (this.options.resyncMs > 0) {
      this.resync = setInterval(() => {
        for (const object of this.list()) this.notify((handler) => handler.onUpdate?.(object, object));
      }, this.options.resyncMs);
    }
  }

  /** Resolves once every namespace has been listed once. */
  synced(): Promise<void> {
    if (this.unsynced.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(namespace)?.get(name);
  }

  /** Cached objects of one namespace, or of all. */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.store.get(namespace)?.values() ?? [])];
    return [...this.store.values()].flatMap((objects) => [...objects.values()]);
  }

  /** Ends the watches; resolves when every loop has returned. */
  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.resync);
    await Promise.all(this.loops);
  }

  /** '' stands for all namespaces. */
  private scopes(): string[] {
    return this.options.namespaces.length === 0 ? [''] : [...new Set(this.options.namespaces)];
  }

  private async run(scope: string): Promise<void> {
    const { log } = this.options;
    let resourceVersion = '';
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      try {
        if (resourceVersion === '') resourceVersion = await this.relist(scope);
        const started = Date.now();
        resourceVersion = await this.watch(scope, resourceVersion);
        // A watch the server ends at once, again and again, must not become a busy loop.
        if (Date.now() - started >= MIN_HEALTHY_WATCH_MS) attempt = 0;
        else await sleep(backoffDelay(this.options.backoff, attempt++), undefined, { signal: this.abort.signal }).catch(() => undefined);
      } catch (error) {
        if (this.abort.signal.aborted) break;
        if (error instanceof OperatorError && error.code === OperatorErrorCode.Gone) {
          // The API server no longer has our resourceVersion: only a fresh list is consistent.
          this.stats.gone += 1;
          log.info('resourceVersion expired, relisting', { resource: this.options.type.plural, namespace: scope || undefined });
          resourceVersion = '';
          continue;
        }
        this.stats.failures += 1;
        const delayMs = backoffDelay(this.options.backoff, attempt++);
        log.warn('list/watch failed, retrying', {
          resource: this.options.type.plural,
          namespace: scope || undefined,
          delayMs,
          error: toError(error).message,
        });
        await sleep(delayMs, undefined, { signal: this.abort.signal }).catch(() => undefined);
      }
    }
  }

  /** Lists every page and replaces the scope's cache; returns the resourceVersion to watch from. */
  private async relist(scope: string): Promise<string> {
    const { client, type, labelSelector, pageSize } = this.options;
    const items: T[] = [];
    let page = await client.list(type, { namespace: scope, labelSelector, limit: pageSize });
    items.push(...page.items);
    while (page.metadata.continue) {
      page = await client.list(type, { namespace: scope, labelSelector, limit: pageSize, continue: page.metadata.continue });
      items.push(...page.items);
    }
    this.stats.lists += 1;
    this.replace(scope, items);
    if (this.unsynced.delete(scope) && this.unsynced.size === 0) for (const resolve of this.syncWaiters.splice(0)) resolve();
    return page.metadata.resourceVersion ?? '';
  }

  /** Applies one watch's events; returns the last resourceVersion seen when the server ends it. */
  private async watch(scope: string, from: string): Promise<string> {
    const { client, type, labelSelector, watchTimeoutSeconds } = this.options;
    let resourceVersion = from;
    let streamError: Error | undefined;
    const stream = new AbortController();
    const stop = () => stream.abort();
    this.abort.signal.addEventListener('abort', stop);
    // A stop that came while the list was in flight would otherwise leave this watch open until it times out.
    if (this.abort.signal.aborted) stream.abort();
    // Spread the watches' ends so that many informers do not reconnect in one burst.
    const timeoutSeconds = Math.round(watchTimeoutSeconds * (0.75 + Math.random() * 0.5));
    try {
      await client.watch(
        type,
        { namespace: scope, resourceVersion, timeoutSeconds, labelSelector },
        (event: WatchEvent<T>) => {
          if (streamError !== undefined) return;
          if (event.type === 'ERROR') {
            const code = event.object.code ?? 0;
            streamError = new OperatorError(
              code === 410 ? OperatorErrorCode.Gone : OperatorErrorCode.KubeUnavailable,
              `watch ${type.plural}: ${event.object.message ?? 'error event'}`,
              { retriable: true },
            );
            stream.abort();
            return;
          }
          resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion;
          if (event.type !== 'BOOKMARK') this.apply(event.type, event.object);
        },
        stream.signal,
      );
    } catch (error) {
      if (streamError === undefined) throw error;
    } finally {
      this.abort.signal.removeEventListener('abort', stop);
    }
    if (streamError !== undefined) throw streamError;
    this.options.log.debug('watch ended, resuming', { resource: type.plural, namespace: scope || undefined, resourceVersion });
    return resourceVersion;
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', raw: T): void {
    const object = this.prepare(raw);
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name;
    const previous = this.get(namespace, name);
    if (type === 'DELETED') {
      this.store.get(namespace)?.delete(name);
      this.notify((handler) => handler.onDelete?.(object));
      return;
    }
    this.put(object);
    if (previous === undefined) this.notify((handler) => handler.onAdd?.(object));
    else this.notify((handler) => handler.onUpdate?.(previous, object));
  }

  private replace(scope: string, raw: T[]): void {
    const listed = raw.map((object) => this.prepare(object));
    const seen = new Set(listed.map((object) => `${object.metadata.namespace ?? ''}/${object.metadata.name}`));
    for (const object of scope === '' ? this.list() : this.list(scope)) {
      if (seen.has(`${object.metadata.namespace ?? ''}/${object.metadata.name}`)) continue;
      this.store.get(object.metadata.namespace ?? '')?.delete(object.metadata.name);
      this.notify((handler) => handler.onDelete?.(object));
    }
    for (const object of listed) {
      const previous = this.get(object.metadata.namespace ?? '', object.metadata.name);
      this.put(object);
      if (previous === undefined) this.notify((handler) => handler.onAdd?.(object));
      else if (previous.metadata.resourceVersion !== object.metadata.resourceVersion)
        this.notify((handler) => handler.onUpdate?.(previous, object));
    }
  }

  /**
   * Drops what no reconciler reads and what is often the larger part of an object — server-side
   * apply's managedFields and kubectl's copy of the whole applied object — then applies the
   * caller's transform.
   */
  private prepare(raw: T): T {
    const { managedFields: _fields, ...metadata } = raw.metadata as T['metadata'] & { managedFields?: unknown };
    if (metadata.annotations?.[LAST_APPLIED] !== undefined) {
      const { [LAST_APPLIED]: _applied, ...annotations } = metadata.annotations;
      metadata.annotations = annotations;
    }
    const object = { ...raw, metadata };
    return this.options.transform ? this.options.transform(object) : object;
  }

  private put(object: T): void {
    const namespace = object.metadata.namespace ?? '';
    let objects = this.store.get(namespace);
    if (objects === undefined) this.store.set(namespace, (objects = new Map()));
    objects.set(object.metadata.name, object);
  }

  private notify(call: (handler: InformerHandler<T>) => void): void {
    for (const handler of this.handlers) {
      try {
        call(handler);
      } catch (error) {
        this.options.log.error('informer handler threw', { resource: this.options.type.plural, error: toError(error).message });
      }
    }
  }
}

function validate(options: Pick<InformerOptions<KubeObject>, 'watchTimeoutSeconds' | 'pageSize' | 'backoff' | 'resyncMs'>): void {
  const component = 'Informer';
  const positive = {
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    pageSize: options.pageSize,
    'backoff.initialMs': options.backoff.initialMs,
  };
  for (const [key, value] of Object.entries(positive))
    checkOption(isPositiveInteger(value), component, key, 'must be a positive integer', value);
  checkOption(
    Number.isInteger(options.resyncMs) && options.resyncMs >= 0,
    component,
    'resyncMs',
    'must be a non-negative integer',
    options.resyncMs,
  );
  checkOption(
    options.backoff.maxMs >= options.backoff.initialMs,
    component,
    'backoff.maxMs',
    'must be at least backoff.initialMs',
    options.backoff.maxMs,
  );
}
