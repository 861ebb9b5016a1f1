/**
 * The embedded resource store: Kubernetes objects in one SQLite file, with the API server's
 * semantics that reconcilers rely on — a global resourceVersion, optimistic concurrency,
 * generation bumped by spec writes only, status and scale subresources, finalizers holding a
 * deletion, and a history of changes that watches resume from (too old: 410 Gone). Writes are
 * synchronous SQLite transactions, and watchers are told after each commit, in order.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import { checkOption, isPositiveInteger } from '../errors.js';
import { systemClock, type Clock } from '../kube/clock.js';
import type { KubeObject } from '../kube/types.js';
import { alreadyExists, badRequest, conflict, expired, invalid, notFound, type StatusTarget } from './api-status.js';
import type { LabelSelector } from './label-selector.js';
import { apiVersionOfResource, resourceKey, type ServedResource } from './served-resources.js';

/** Checks and defaults an object before it is stored (the CRD schemas); throws a 422 StatusError to refuse it. */
export interface Admission {
  admit(resource: ServedResource, object: KubeObject, old: KubeObject | undefined): KubeObject;
}

export interface ResourceStoreOptions {
  /** The SQLite file; its directory is created when missing. */
  path: string;
  /** Every resource served; others are unknown. */
  resources: readonly ServedResource[];
  /** Runs on every create and update; none by default. */
  admission?: Admission;
  /** Changes kept for watches to resume from; a watch from before them gets 410 Gone (default 10,000). */
  historySize: number;
  /** Events older than this (by lastTimestamp) are deleted, as the API server expires them (default 24 h). */
  eventTtlMs: number;
  clock: Clock;
}

export const RESOURCE_STORE_DEFAULTS = {
  historySize: 10_000,
  eventTtlMs: 24 * 3600_000,
  clock: systemClock,
} as const satisfies Partial<ResourceStoreOptions>;

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change of a watch stream. */
export interface Change {
  type: ChangeType;
  object: KubeObject;
}

/** Stops a watch. */
export type StopWatch = () => void;

/** A List as the API server answers it. */
export interface ListResult {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: KubeObject[];
}

/** The autoscaling/v1 Scale of an object with the scale subresource. */
export interface Scale {
  apiVersion: 'autoscaling/v1';
  kind: 'Scale';
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; creationTimestamp?: string };
  spec: { replicas?: number };
  status: { replicas: number; selector?: string };
}

const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
  CREATE TABLE objects (
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
  ) STRICT;
  CREATE TABLE changes (
    rv INTEGER PRIMARY KEY,
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
  ) STRICT;
  CREATE INDEX changes_by_resource ON changes (resource, rv);
  `,
];

/** Compaction runs once per this many writes (or per `historySize`, when that is smaller). */
const COMPACT_EVERY = 256;
const EVENTS_KEY = '/events';
/** RFC 1123 subdomain: what the API server accepts as an object name. */
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

interface Row {
  rv: number;
  body: string;
}

interface Watcher {
  namespace: string;
  selector: LabelSelector | undefined;
  send: (change: Change) => void;
}

type Subresource = 'status' | undefined;

/**
 * @example
 * const store = ResourceStore.open({ path: join(dataDir, 'resources.db'), resources: CORE_RESOURCES });
 * const created = store.create(secrets, 'acme', { metadata: { name: 'openai' }, data: { apiKey } });
 * const stop = store.watch(secrets, { namespace: 'acme', resourceVersion: created.metadata.resourceVersion }, (change) => …);
 */
export class ResourceStore {
  readonly options: ResourceStoreOptions;
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepare>;
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly byPath = new Map<string, ServedResource>();
  private revision: number;
  private compacted: number;
  private writesSinceCompaction = 0;
  private readonly sweeper: NodeJS.Timeout;

  private constructor(options: ResourceStoreOptions) {
    this.options = options;
    mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let next = version; next < MIGRATIONS.length; next++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[next] as string);
        this.db.pragma(`user_version = ${next + 1}`);
      })();
    }
    this.statements = prepare(this.db);
    this.revision = Number(this.statements.meta.get('revision')?.value ?? 0);
    this.compacted = Number(this.statements.meta.get('compacted')?.value ?? 0);
    for (const resource of options.resources) this.byPath.set(`${apiVersionOfResource(resource)}/${resource.plural}`, resource);
    const namespaces = this.resource('', 'v1', 'namespaces');
    if (namespaces !== undefined && this.find(namespaces, '', 'default') === undefined)
      this.create(namespaces, '', { metadata: { name: 'default' } });
    this.sweeper = setInterval(() => this.expireEvents(), Math.min(60_000, options.eventTtlMs));
    this.sweeper.unref();
  }

  /** Opens (creating when missing) the store at `options.path`. */
  static open(options: Pick<ResourceStoreOptions, 'path' | 'resources'> & Partial<ResourceStoreOptions>): ResourceStore {
    const resolved: ResourceStoreOptions = { ...RESOURCE_STORE_DEFAULTS, ...options };
    checkOption(
      isPositiveInteger(resolved.historySize),
      'ResourceStore',
      'historySize',
      'must be a positive integer',
      resolved.historySize,
    );
    checkOption(isPositiveInteger(resolved.eventTtlMs), 'ResourceStore', 'eventTtlMs', 'must be a positive integer', resolved.eventTtlMs);
    return new ResourceStore(resolved);
  }

  /** The served resource at `<group>/<version>/<plural>`, if any. */
  resource(group: string, version: string, plural: string): ServedResource | undefined {
    return this.byPath.get(`${group === '' ? version : `${group}/${version}`}/${plural}`);
  }

  /** The current resourceVersion of the whole store. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  get(resource: ServedResource, namespace: string, name: string): KubeObject {
    const object = this.find(resource, namespace, name);
    if (object === undefined) throw notFound(target(resource, name));
    return object;
  }

  /**
   * Objects of one namespace (or all, with `namespace` ''), sorted by namespace and name, a page
   * of `limit` at a time; `continue` is the previous page's token.
   */
  list(resource: ServedResource, query: { namespace: string; selector?: LabelSelector; limit?: number; continue?: string }): ListResult {
    let after = '';
    let revision = this.revision;
    if (query.continue) {
      try {
        const token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8')) as { rv: number; after: string };
        after = token.after;
        revision = token.rv;
      } catch {
        throw badRequest('continue key is not valid');
      }
    }
    const rows = (
      query.namespace === ''
        ? this.statements.listAll.all(resourceKey(resource), after)
        : this.statements.listNamespace.all(resourceKey(resource), query.namespace, after)
    ) as (Row & { position: string })[];
    const items: KubeObject[] = [];
    let remaining = 0;
    let next: string | undefined;
    for (const row of rows) {
      const object = JSON.parse(row.body) as KubeObject;
      if (query.selector !== undefined && !query.selector.matches(object.metadata.labels)) continue;
      if (query.limit !== undefined && items.length >= query.limit) {
        remaining++;
        continue;
      }
      items.push(object);
      next = row.position;
    }
    const metadata: ListResult['metadata'] = { resourceVersion: String(revision) };
    if (remaining > 0 && next !== undefined) {
      metadata.continue = Buffer.from(JSON.stringify({ rv: revision, after: next })).toString('base64url');
      metadata.remainingItemCount = remaining;
    }
    return { apiVersion: apiVersionOfResource(resource), kind: `${resource.kind}List`, metadata, items };
  }

  /** Creates the object; AlreadyExists when the name is taken (also by an object being deleted). */
  create(resource: ServedResource, namespace: string, body: KubeObject): KubeObject {
    const metadata = body.metadata ?? ({} as KubeObject['metadata']);
    if (resource.namespaced && metadata.namespace !== undefined && metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const generateName = (metadata as { generateName?: string }).generateName;
    const name = metadata.name || (generateName ? `${generateName}${randomUUID().slice(0, 5)}` : '');
    this.checkName(resource, name);
    if (resource.namespaced) this.requireNamespace(namespace);
    if (this.find(resource, namespace, name) !== undefined) throw alreadyExists(target(resource, name));
    const { resourceVersion: _rv, deletionTimestamp: _deleted, generation: _generation, ...kept } = metadata;
    let object: KubeObject = {
      ...body,
      apiVersion: apiVersionOfResource(resource),
      kind: resource.kind,
      metadata: {
        ...kept,
        name,
        ...(resource.namespaced ? { namespace } : {}),
        uid: randomUUID(),
        creationTimestamp: this.timestamp(),
        ...(resource.generation ? { generation: 1 } : {}),
      },
    };
    if (resource.statusSubresource) delete (object as { status?: unknown }).status;
    if (resource.kind === 'Namespace')
      object = { ...object, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } } as KubeObject;
    object = this.admit(resource, object, undefined);
    return this.write(resource, namespace, 'ADDED', object);
  }

  /**
   * Replaces the object (`subresource` undefined) or its status. A `metadata.resourceVersion`
   * other than the stored one is a Conflict; without one, the write is unconditional.
   */
  update(resource: ServedResource, namespace: string, name: string, body: KubeObject, subresource?: Subresource): KubeObject {
    if (body.metadata?.name !== undefined && body.metadata.name !== name) {
      throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
    }
    const current = this.get(resource, namespace, name);
    const expected = body.metadata?.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== current.metadata.resourceVersion) throw conflict(target(resource, name));
    const next = this.nextVersion(resource, current, body, subresource);
    return this.commitUpdate(resource, namespace, current, next);
  }

  /**
   * Applies `patch` (a function of the stored object) to the object or its status; a
   * `metadata.resourceVersion` the patch sets must be the stored one.
   */
  patch(
    resource: ServedResource,
    namespace: string,
    name: string,
    patch: (current: KubeObject) => unknown,
    subresource?: Subresource,
  ): KubeObject {
    const current = this.get(resource, namespace, name);
    const patched = patch(structuredClone(current));
    if (typeof patched !== 'object' || patched === null || Array.isArray(patched))
      throw badRequest('the patched object is not a JSON object');
    const body = patched as KubeObject;
    if (body.metadata?.resourceVersion !== current.metadata.resourceVersion) throw conflict(target(resource, name));
    return this.commitUpdate(resource, namespace, current, this.nextVersion(resource, current, body, subresource));
  }

  /** The object's Scale (404 when the resource has no scale subresource). */
  getScale(resource: ServedResource, namespace: string, name: string): Scale {
    return this.scaleOf(resource, this.get(resource, namespace, name));
  }

  /** Sets the replicas a Scale asks for; `update` turns the current Scale into the desired one. */
  updateScale(resource: ServedResource, namespace: string, name: string, update: (current: Scale) => unknown): Scale {
    const current = this.get(resource, namespace, name);
    const scale = this.scaleOf(resource, current);
    const desired = update(structuredClone(scale)) as Partial<Scale> | null;
    const replicas = desired?.spec?.replicas;
    const expected = desired?.metadata?.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== current.metadata.resourceVersion) throw conflict(target(resource, name));
    if (!Number.isInteger(replicas) || (replicas as number) < 0) {
      throw invalid(
        { group: 'autoscaling', kind: 'Scale', name },
        `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
        [
          {
            reason: 'FieldValueInvalid',
            message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
            field: 'spec.replicas',
          },
        ],
      );
    }
    const next = structuredClone(current);
    setPath(next, (resource.scale as NonNullable<ServedResource['scale']>).specReplicasPath, replicas);
    return this.scaleOf(resource, this.commitUpdate(resource, namespace, current, this.nextVersion(resource, current, next, undefined)));
  }

  /**
   * Deletes the object. With finalizers it is only marked (deletionTimestamp), and goes when the
   * last finalizer is removed. Returns the object as it stands after the call.
   */
  delete(
    resource: ServedResource,
    namespace: string,
    name: string,
    preconditions: { resourceVersion?: string; uid?: string } = {},
  ): KubeObject {
    const current = this.get(resource, namespace, name);
    if (
      (preconditions.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) ||
      (preconditions.uid && preconditions.uid !== current.metadata.uid)
    ) {
      throw conflict(target(resource, name));
    }
    if ((current.metadata.finalizers ?? []).length === 0) return this.write(resource, namespace, 'DELETED', current);
    if (current.metadata.deletionTimestamp !== undefined) return current;
    const generation = current.metadata.generation;
    const marked: KubeObject = {
      ...current,
      metadata: {
        ...current.metadata,
        deletionTimestamp: this.timestamp(),
        ...(generation === undefined ? {} : { generation: generation + 1 }),
      },
    };
    (marked.metadata as { deletionGracePeriodSeconds?: number }).deletionGracePeriodSeconds = 0;
    return this.write(resource, namespace, 'MODIFIED', marked);
  }

  /**
   * Streams changes of `resource` in `namespace` ('' for all) after `resourceVersion`; '' or
   * '0' starts with the current objects as ADDED. Throws Expired (410) when the history no longer
   * reaches back that far. Changes already stored are sent before this returns.
   */
  watch(
    resource: ServedResource,
    query: { namespace: string; resourceVersion: string; selector?: LabelSelector },
    send: (change: Change) => void,
  ): StopWatch {
    const watcher: Watcher = { namespace: query.namespace, selector: query.selector, send };
    const matches = (object: KubeObject) => query.selector === undefined || query.selector.matches(object.metadata.labels);
    if (query.resourceVersion === '' || query.resourceVersion === '0') {
      for (const object of this.list(resource, { namespace: query.namespace }).items) if (matches(object)) send({ type: 'ADDED', object });
    } else {
      const from = Number(query.resourceVersion);
      if (!Number.isInteger(from) || from < 0) throw badRequest(`resourceVersion ${JSON.stringify(query.resourceVersion)} is not valid`);
      if (from < this.compacted) throw expired(query.resourceVersion, this.compacted + 1);
      const rows = this.statements.changesSince.all(resourceKey(resource), from) as { type: ChangeType; namespace: string; body: string }[];
      for (const row of rows) {
        if (query.namespace !== '' && row.namespace !== query.namespace) continue;
        const object = JSON.parse(row.body) as KubeObject;
        if (matches(object)) send({ type: row.type, object });
      }
    }
    const key = resourceKey(resource);
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(watcher);
    return () => set.delete(watcher);
  }

  /** Stops the event sweeper and closes the database; watches must be stopped first. */
  close(): void {
    clearInterval(this.sweeper);
    this.db.close();
  }

  private find(resource: ServedResource, namespace: string, name: string): KubeObject | undefined {
    const row = this.statements.get.get(resourceKey(resource), resource.namespaced ? namespace : '', name) as Row | undefined;
    return row === undefined ? undefined : (JSON.parse(row.body) as KubeObject);
  }

  /** The object a write of `body` makes of `current`: server-owned fields kept, status or spec left alone as the subresource says. */
  private nextVersion(resource: ServedResource, current: KubeObject, body: KubeObject, subresource: Subresource): KubeObject {
    if (subresource === 'status') return { ...current, status: (body as { status?: unknown }).status } as KubeObject;
    const { uid, creationTimestamp, deletionTimestamp, generation, namespace, name } = current.metadata;
    const next: KubeObject = {
      ...body,
      apiVersion: current.apiVersion,
      kind: current.kind,
      metadata: {
        ...body.metadata,
        name,
        ...(namespace === undefined ? {} : { namespace }),
        uid,
        creationTimestamp,
        ...(generation === undefined ? {} : { generation }),
      },
    };
    if (deletionTimestamp !== undefined) next.metadata.deletionTimestamp = deletionTimestamp;
    else delete next.metadata.deletionTimestamp;
    if (resource.statusSubresource) {
      const status = (current as { status?: unknown }).status;
      if (status === undefined) delete (next as { status?: unknown }).status;
      else (next as { status?: unknown }).status = status;
    }
    return next;
  }

  private commitUpdate(resource: ServedResource, namespace: string, current: KubeObject, proposed: KubeObject): KubeObject {
    const added = (proposed.metadata.finalizers ?? []).filter((finalizer) => !(current.metadata.finalizers ?? []).includes(finalizer));
    if (current.metadata.deletionTimestamp !== undefined && added.length > 0) {
      const message = 'Forbidden: no new finalizers can be added if the object is being deleted';
      throw invalid(
        { group: resource.group, kind: resource.kind, name: current.metadata.name },
        `${resource.kind}${resource.group ? `.${resource.group}` : ''} "${current.metadata.name}" is invalid: metadata.finalizers: ${message}, found new finalizers ${JSON.stringify(added)}`,
        [{ reason: 'FieldValueForbidden', message, field: 'metadata.finalizers' }],
      );
    }
    let next = this.admit(resource, proposed, current);
    const comparable = (object: KubeObject) => ({ ...object, metadata: { ...object.metadata, resourceVersion: undefined } });
    if (isDeepStrictEqual(withoutUndefined(comparable(next)), withoutUndefined(comparable(current)))) return current;
    if (resource.generation && !isDeepStrictEqual(withoutUndefined(specOf(next)), withoutUndefined(specOf(current)))) {
      next = { ...next, metadata: { ...next.metadata, generation: (current.metadata.generation ?? 0) + 1 } };
    }
    if (next.metadata.deletionTimestamp !== undefined && (next.metadata.finalizers ?? []).length === 0)
      return this.write(resource, namespace, 'DELETED', next);
    return this.write(resource, namespace, 'MODIFIED', next);
  }

  private admit(resource: ServedResource, object: KubeObject, old: KubeObject | undefined): KubeObject {
    return this.options.admission === undefined ? object : this.options.admission.admit(resource, object, old);
  }

  /** Stores one change under the next resourceVersion and tells the watchers. */
  private write(resource: ServedResource, namespace: string, type: ChangeType, object: KubeObject): KubeObject {
    const key = resourceKey(resource);
    const scope = resource.namespaced ? namespace : '';
    const revision = this.revision + 1;
    const stored: KubeObject = { ...object, metadata: { ...object.metadata, resourceVersion: String(revision) } };
    const body = JSON.stringify(stored);
    this.db.transaction(() => {
      if (type === 'DELETED') this.statements.remove.run(key, scope, stored.metadata.name);
      else this.statements.put.run(key, scope, stored.metadata.name, revision, body);
      this.statements.record.run(revision, key, scope, type, body);
      this.statements.setMeta.run('revision', String(revision));
    })();
    this.revision = revision;
    if (++this.writesSinceCompaction >= Math.min(COMPACT_EVERY, this.options.historySize)) this.compact();
    for (const watcher of this.watchers.get(key) ?? []) {
      if (watcher.namespace !== '' && watcher.namespace !== scope) continue;
      if (watcher.selector !== undefined && !watcher.selector.matches(stored.metadata.labels)) continue;
      watcher.send({ type, object: stored });
    }
    return stored;
  }

  /** Forgets changes older than the history keeps; watches from before them get 410 Gone. */
  private compact(): void {
    this.writesSinceCompaction = 0;
    const floor = this.revision - this.options.historySize;
    if (floor <= this.compacted) return;
    this.db.transaction(() => {
      this.statements.forget.run(floor);
      this.statements.setMeta.run('compacted', String(floor));
    })();
    this.compacted = floor;
  }

  private expireEvents(): void {
    const events = this.byPath.get('v1/events');
    if (events === undefined) return;
    const cutoff = this.options.clock.now() - this.options.eventTtlMs;
    const rows = this.statements.listAll.all(EVENTS_KEY, '') as Row[];
    for (const row of rows) {
      const event = JSON.parse(row.body) as KubeObject & { lastTimestamp?: string };
      const at = Date.parse(event.lastTimestamp ?? event.metadata.creationTimestamp ?? '');
      if (Number.isFinite(at) && at < cutoff) this.write(events, event.metadata.namespace ?? '', 'DELETED', event);
    }
  }

  private checkName(resource: ServedResource, name: string): void {
    const where = { group: resource.group, kind: resource.kind, name };
    const title = `${resource.kind}${resource.group ? `.${resource.group}` : ''} "${name}" is invalid`;
    if (name === '') {
      throw invalid(where, `${title}: metadata.name: Required value: name or generateName is required`, [
        { reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' },
      ]);
    }
    if (name.length > 253 || !NAME_PATTERN.test(name)) {
      const rule =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
      throw invalid(where, `${title}: metadata.name: Invalid value: "${name}": ${rule}`, [
        { reason: 'FieldValueInvalid', message: `Invalid value: "${name}": ${rule}`, field: 'metadata.name' },
      ]);
    }
  }

  private requireNamespace(namespace: string): void {
    const namespaces = this.byPath.get('v1/namespaces');
    if (namespace === '') throw badRequest('a namespaced object needs a namespace');
    if (namespaces !== undefined && this.find(namespaces, '', namespace) === undefined)
      throw notFound({ group: '', resource: 'namespaces', name: namespace });
  }

  private scaleOf(resource: ServedResource, object: KubeObject): Scale {
    const scale = resource.scale;
    if (scale === undefined) throw notFound(target(resource, object.metadata.name));
    const { name, namespace, uid, resourceVersion, creationTimestamp } = object.metadata;
    const selector = scale.labelSelectorPath === undefined ? undefined : getPath(object, scale.labelSelectorPath);
    return {
      apiVersion: 'autoscaling/v1',
      kind: 'Scale',
      metadata: { name, namespace, uid, resourceVersion, creationTimestamp },
      spec: { replicas: getPath(object, scale.specReplicasPath) as number | undefined },
      status: {
        replicas: (getPath(object, scale.statusReplicasPath) as number | undefined) ?? 0,
        ...(typeof selector === 'string' ? { selector } : {}),
      },
    };
  }

  private timestamp(): string {
    return new Date(this.options.clock.now()).toISOString().replace(/\.\d+Z$/, 'Z');
  }
}

function prepare(db: Database.Database) {
  return {
    meta: db.prepare<[key: string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[key: string, value: string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    get: db.prepare<[resource: string, namespace: string, name: string], Row>(
      'SELECT rv, body FROM objects WHERE resource = ? AND namespace = ? AND name = ?',
    ),
    listAll: db.prepare<[resource: string, after: string], Row & { position: string }>(
      "SELECT rv, body, namespace || '/' || name AS position FROM objects WHERE resource = ? AND namespace || '/' || name > ? ORDER BY namespace, name",
    ),
    listNamespace: db.prepare<[resource: string, namespace: string, after: string], Row & { position: string }>(
      "SELECT rv, body, namespace || '/' || name AS position FROM objects WHERE resource = ? AND namespace = ? AND namespace || '/' || name > ? ORDER BY name",
    ),
    put: db.prepare<[resource: string, namespace: string, name: string, rv: number, body: string]>(
      'INSERT INTO objects (resource, namespace, name, rv, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT (resource, namespace, name) DO UPDATE SET rv = excluded.rv, body = excluded.body',
    ),
    remove: db.prepare<[resource: string, namespace: string, name: string]>(
      'DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?',
    ),
    record: db.prepare<[rv: number, resource: string, namespace: string, type: string, body: string]>(
      'INSERT INTO changes (rv, resource, namespace, type, body) VALUES (?, ?, ?, ?, ?)',
    ),
    changesSince: db.prepare<[resource: string, rv: number], { type: string; namespace: string; body: string }>(
      'SELECT type, namespace, body FROM changes WHERE resource = ? AND rv > ? ORDER BY rv',
    ),
    forget: db.prepare<[rv: number]>('DELETE FROM changes WHERE rv <= ?'),
  };
}

function target(resource: ServedResource, name: string): StatusTarget {
  return { group: resource.group, resource: resource.plural, name };
}

/** Everything but metadata and status: what a generation counts. */
function specOf(object: KubeObject): Record<string, unknown> {
  const { metadata: _metadata, status: _status, ...rest } = object as KubeObject & { status?: unknown };
  return rest;
}

function withoutUndefined(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

/** Reads `.spec.replicas`-style paths. */
function getPath(object: unknown, path: string): unknown {
  let node = object;
  for (const key of path.replace(/^\./, '').split('.'))
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  return node;
}

function setPath(object: unknown, path: string, value: unknown): void {
  const keys = path.replace(/^\./, '').split('.');
  let node = object as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}
