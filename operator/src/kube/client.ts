/**
 * A small REST client for the Kubernetes API, in the shape of controller-runtime's client: get,
 * list, create, replace, patch (merge, JSON, server-side apply, on the object or its status),
 * delete and watch, for any resource described by a `ResourceType`. Credentials and TLS come from
 * client-node's KubeConfig (a kubeconfig file or the in-cluster service account).
 */
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, OperatorError, OperatorErrorCode, checkOption, isPositiveInteger } from '../errors.js';
import type { KubeObject, ObjectList } from './types.js';

/** Where a kind's REST collection lives; `T` is the JSON shape of its objects. */
export interface ResourceType<T extends KubeObject> {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  /** Never set: carries `T` so that calls infer the object type from the resource. */
  readonly object?: T;
}

/** Declares a resource; `group` is '' for the core API. */
export function resourceType<T extends KubeObject>(group: string, version: string, kind: string, plural: string): ResourceType<T> {
  return { group, version, kind, plural };
}

/** `apps/v1`, or `v1` for the core group. */
export function apiVersionOf(type: ResourceType<KubeObject>): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** One event of a watch stream; ERROR carries a metav1.Status (410 Gone among others). */
export type WatchEvent<T extends KubeObject> =
  { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: T } | { type: 'ERROR'; object: ApiStatus };

/** metav1.Status, what the API server answers failures with. */
export interface ApiStatus {
  kind?: 'Status';
  code?: number;
  reason?: string;
  message?: string;
}

export type PatchStrategy = 'merge' | 'json' | 'apply';

/** An API request as RBAC sees it: the verb on a group's resource (and subresource). */
export interface ApiRequest {
  verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  /** The object's name; unset for list, watch and create. */
  name?: string;
}

const CONTENT_TYPES: Record<PatchStrategy, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface KubeClientOptions {
  /** Loaded kubeconfig or in-cluster config. */
  config: KubeConfig;
  /** The field manager of every write, also sent as the User-Agent (default `troupe-operator`). */
  fieldManager: string;
  /** A request that is not a watch fails after this long (default 30 s). */
  requestTimeoutMs: number;
  /** Connections for requests to the API server, watches not counted (default 16). */
  maxSockets: number;
  /** How long credentials read from the kubeconfig are reused before reading them again (default 10 s). */
  credentialTtlMs: number;
  /** Told of every request before it is sent, e.g. to count requests or check them against RBAC rules. */
  onRequest?: (request: ApiRequest) => void;
}

export const KUBE_CLIENT_DEFAULTS = {
  fieldManager: 'troupe-operator',
  requestTimeoutMs: 30_000,
  maxSockets: 16,
  credentialTtlMs: 10_000,
} as const satisfies Partial<KubeClientOptions>;

interface Credentials {
  headers: Record<string, string>;
  tls: Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
}

/**
 * @example
 * const client = new KubeClient({ config });
 * const deployment = await client.get(Deployments, 'acme', 'pool-developers');
 * await client.patch(AgentPools, 'acme', 'developers', { status }, { strategy: 'merge', subresource: 'status' });
 */
export class KubeClient {
  readonly options: KubeClientOptions;
  private readonly server: URL;
  private readonly agent: http.Agent;
  /** Watches hold their connection for minutes; in the request pool they would starve requests. */
  private readonly watchAgent: http.Agent;
  private credentials: { value: Promise<Credentials>; readAt: number } | undefined;

  constructor(options: Pick<KubeClientOptions, 'config'> & Partial<KubeClientOptions>) {
    this.options = { ...KUBE_CLIENT_DEFAULTS, ...options };
    validate(this.options);
    const cluster = this.options.config.getCurrentCluster();
    if (cluster === null) throw new OperatorError(OperatorErrorCode.InvalidOptions, 'KubeClient option config has no current cluster');
    this.server = new URL(cluster.server);
    // client-node makes a new Agent per request (a TLS handshake each time); one keep-alive
    // agent keeps a reconcile's few requests on warm connections.
    const Agent = this.server.protocol === 'http:' ? http.Agent : https.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.options.maxSockets });
    this.watchAgent = new Agent({ keepAlive: false });
  }

  /** The object, or undefined when it does not exist. */
  async get<T extends KubeObject>(type: ResourceType<T>, namespace: string, name: string): Promise<T | undefined> {
    this.audit('get', type, { namespace, name });
    try {
      return await this.json<T>('GET', objectPath(type, namespace, name));
    } catch (error) {
      if (error instanceof OperatorError && error.code === OperatorErrorCode.NotFound) return undefined;
      throw error;
    }
  }

  /** One page of a list; pass `continue` from the previous page's metadata for the next. */
  list<T extends KubeObject>(
    type: ResourceType<T>,
    query: { namespace?: string; labelSelector?: string; limit?: number; continue?: string } = {},
  ): Promise<ObjectList<T>> {
    const { namespace, ...params } = query;
    this.audit('list', type, { namespace });
    return this.json<ObjectList<T>>('GET', collectionPath(type, namespace) + search(params));
  }

  create<T extends KubeObject>(type: ResourceType<T>, object: T): Promise<T> {
    const path = collectionPath(type, object.metadata.namespace) + search({ fieldManager: this.options.fieldManager });
    this.audit('create', type, { namespace: object.metadata.namespace });
    return this.json<T>('POST', path, { body: { apiVersion: apiVersionOf(type), kind: type.kind, ...object } });
  }

  /** PUT: fails with Conflict when `object.metadata.resourceVersion` is not the stored one. */
  replace<T extends KubeObject>(type: ResourceType<T>, object: T): Promise<T> {
    const path =
      objectPath(type, object.metadata.namespace ?? '', object.metadata.name) + search({ fieldManager: this.options.fieldManager });
    this.audit('update', type, { namespace: object.metadata.namespace, name: object.metadata.name });
    return this.json<T>('PUT', path, { body: { apiVersion: apiVersionOf(type), kind: type.kind, ...object } });
  }

  /**
   * Patches the object or its status subresource. A merge patch that carries
   * `metadata.resourceVersion` is refused with Conflict when the object moved on.
   */
  patch<T extends KubeObject>(
    type: ResourceType<T>,
    namespace: string,
    name: string,
    patch: unknown,
    options: { strategy: PatchStrategy; subresource?: 'status' | 'scale' },
  ): Promise<T> {
    const params: Record<string, string> = { fieldManager: this.options.fieldManager };
    // Server-side apply owns the fields it sets; force takes them over from kubectl edits.
    if (options.strategy === 'apply') params.force = 'true';
    const path = objectPath(type, namespace, name) + (options.subresource ? `/${options.subresource}` : '') + search(params);
    this.audit('patch', type, { namespace, name, subresource: options.subresource });
    return this.json<T>('PATCH', path, { body: patch, contentType: CONTENT_TYPES[options.strategy] });
  }

  /** Server-side apply of a whole desired object, forcing ownership of the fields it names. */
  apply<T extends KubeObject>(type: ResourceType<T>, object: T): Promise<T> {
    // RBAC asks for create as well as patch when an apply creates the object.
    this.audit('create', type, { namespace: object.metadata.namespace });
    return this.patch(
      type,
      object.metadata.namespace ?? '',
      object.metadata.name,
      { apiVersion: apiVersionOf(type), kind: type.kind, ...object },
      { strategy: 'apply' },
    );
  }

  /** Deletes the object; false when it was gone already. */
  async delete(type: ResourceType<KubeObject>, namespace: string, name: string): Promise<boolean> {
    this.audit('delete', type, { namespace, name });
    try {
      await this.json('DELETE', objectPath(type, namespace, name));
      return true;
    } catch (error) {
      if (error instanceof OperatorError && error.code === OperatorErrorCode.NotFound) return false;
      throw error;
    }
  }

  /**
   * Streams changes after `resourceVersion` until the server ends the watch (after
   * `timeoutSeconds`) or `signal` aborts. Resolves when the stream ends; rejects with a
   * KubeApiError when the API server refuses the watch.
   */
  async watch<T extends KubeObject>(
    type: ResourceType<T>,
    query: { namespace?: string; resourceVersion: string; timeoutSeconds: number; labelSelector?: string },
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const { namespace, ...params } = query;
    const path = collectionPath(type, namespace) + search({ ...params, watch: 'true', allowWatchBookmarks: 'true' });
    this.audit('watch', type, { namespace });
    const response = await this.send('GET', path, { signal, agent: this.watchAgent });
    if (response.statusCode !== 200) throw await failure('GET', path, response);
    const lines = createInterface({ input: response, crlfDelay: Infinity });
    const ended = new Promise<void>((resolve, reject) => {
      // readline re-emits its input's errors (an aborted response among them) on itself.
      lines.once('error', reject);
      lines.once('close', resolve);
    });
    lines.on('line', (line) => {
      if (line.length > 0) onEvent(JSON.parse(line) as WatchEvent<T>);
    });
    await ended;
  }

  /** Closes the kept-alive connections and any watch still open. */
  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }

  private audit(
    verb: ApiRequest['verb'],
    type: ResourceType<KubeObject>,
    at: { namespace?: string; name?: string; subresource?: string } = {},
  ): void {
    this.options.onRequest?.({ verb, group: type.group, resource: type.plural, ...at });
  }

  private async json<T>(method: string, path: string, request: { body?: unknown; contentType?: string } = {}): Promise<T> {
    const signal = AbortSignal.timeout(this.options.requestTimeoutMs);
    const response = await this.send(method, path, { ...request, signal });
    if (response.statusCode === undefined || response.statusCode >= 300) throw await failure(method, path, response);
    return JSON.parse(await readAll(response)) as T;
  }

  private async send(
    method: string,
    path: string,
    request: { body?: unknown; contentType?: string; signal: AbortSignal; agent?: http.Agent },
  ): Promise<http.IncomingMessage> {
    const { headers, tls } = await this.readCredentials();
    const url = new URL(this.server.pathname.replace(/\/$/, '') + path, this.server);
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const outgoing = transport.request(
        url,
        {
          method,
          agent: request.agent ?? this.agent,
          signal: request.signal,
          ...tls,
          headers: {
            ...headers,
            accept: 'application/json',
            'user-agent': this.options.fieldManager,
            ...(body === undefined
              ? {}
              : { 'content-type': request.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body) }),
          },
        },
        resolve,
      );
      outgoing.once('error', (error) => {
        const aborted = request.signal.aborted;
        reject(new KubeApiError(0, aborted ? 'Timeout' : 'ConnectionFailed', `${method} ${path}`, error.message, { cause: error }));
      });
      outgoing.end(body);
    });
  }

  // In-cluster tokens are rotated on disk: reading them again every credentialTtlMs picks up
  // the new one. One read at a time, shared by every request that needs it.
  private readCredentials(): Promise<Credentials> {
    const now = Date.now();
    if (this.credentials === undefined || now - this.credentials.readAt >= this.options.credentialTtlMs) {
      const value = (async (): Promise<Credentials> => {
        const options: https.RequestOptions = {};
        await this.options.config.applyToHTTPSOptions(options);
        const headers = Object.fromEntries(Object.entries(options.headers ?? {}).map(([key, header]) => [key, String(header)]));
        if (options.auth) headers.authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
        const { ca, cert, key, rejectUnauthorized, servername } = options;
        return { headers, tls: { ca, cert, key, rejectUnauthorized, servername } };
      })();
      const entry = { value, readAt: now };
      this.credentials = entry;
      value.catch(() => {
        if (this.credentials === entry) this.credentials = undefined;
      });
    }
    return this.credentials.value;
  }
}

function collectionPath(type: ResourceType<KubeObject>, namespace?: string): string {
  const root = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return `${root}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${type.plural}`;
}

function objectPath(type: ResourceType<KubeObject>, namespace: string, name: string): string {
  return `${collectionPath(type, namespace)}/${encodeURIComponent(name)}`;
}

function search(params: Record<string, string | number | undefined>): string {
  const entries = Object.entries(params).filter((entry): entry is [string, string | number] => entry[1] !== undefined && entry[1] !== '');
  return entries.length === 0
    ? ''
    : `?${new URLSearchParams(entries.map(([key, value]): [string, string] => [key, String(value)])).toString()}`;
}

async function readAll(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function failure(method: string, path: string, response: http.IncomingMessage): Promise<KubeApiError> {
  const text = await readAll(response).catch(() => '');
  let status: ApiStatus = {};
  try {
    status = JSON.parse(text) as ApiStatus;
  } catch {
    // Proxies in front of the API server answer plain text; the text is the message then.
  }
  const code = response.statusCode ?? 0;
  return new KubeApiError(code, status.reason ?? `Http${code}`, `${method} ${path}`, status.message ?? (text || `HTTP ${code}`));
}

function validate(options: KubeClientOptions): void {
  const component = 'KubeClient';
  for (const key of ['requestTimeoutMs', 'maxSockets'] as const)
    checkOption(isPositiveInteger(options[key]), component, key, 'must be a positive integer', options[key]);
  checkOption(
    Number.isInteger(options.credentialTtlMs) && options.credentialTtlMs >= 0,
    component,
    'credentialTtlMs',
    'must be a non-negative integer',
    options.credentialTtlMs,
  );
  checkOption(
    options.fieldManager.length > 0 && options.fieldManager.length <= 128,
    component,
    'fieldManager',
    'must be 1..128 characters',
    options.fieldManager,
  );
}
