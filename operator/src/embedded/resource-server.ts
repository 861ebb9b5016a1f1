/**
 * The embedded resource store over HTTP: the subset of the Kubernetes REST API that the
 * operator's KubeClient and informers use (and so the troupe CLI), on loopback, behind one
 * bearer token. Collections and objects of every served resource under `/api/v1/…` and
 * `/apis/<group>/<version>/…`; list (paged), watch (JSON lines, resumable, 410 when too old,
 * bookmarks), get, create, replace, merge and JSON patch, delete, and the status and scale
 * subresources. Failures are metav1.Status bodies with the API server's codes and reasons.
 * There is no discovery: clients know the paths of the kinds they use.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkOption, isPositiveInteger, toError } from '../errors.js';
import { silentLogger, type Logger } from '../kube/log.js';
import type { KubeObject } from '../kube/types.js';
import {
  StatusError,
  badRequest,
  internalError,
  methodNotAllowed,
  noSuchResource,
  unauthorized,
  unsupportedMediaType,
  type Status,
} from './api-status.js';
import { parseLabelSelector } from './label-selector.js';
import { jsonPatch, mergePatch } from './patch.js';
import type { ResourceStore, StopWatch } from './resource-store.js';
import { apiVersionOfResource, type ServedResource } from './served-resources.js';

export interface ResourceServerOptions {
  store: ResourceStore;
  /** The bearer token every request but /healthz and /readyz must carry. */
  token: string;
  /** Loopback only by default: the store has one admin token and no TLS. */
  host: string;
  /** 0: any free port. */
  port: number;
  /** A watch that asks for no timeout ends after this long, as the API server's do (default 30 min). */
  maxWatchSeconds: number;
  /** Largest request body accepted (default 3 MiB, the API server's limit). */
  maxBodyBytes: number;
  log: Logger;
}

export const RESOURCE_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  maxWatchSeconds: 1800,
  maxBodyBytes: 3 * 1024 * 1024,
  log: silentLogger,
} as const satisfies Partial<ResourceServerOptions>;

/** What a request path names. */
interface Target {
  resource: ServedResource;
  namespace: string;
  name?: string;
  subresource?: 'status' | 'scale';
}

const PATCH_TYPES = {
  'application/merge-patch+json': mergePatch,
  'application/json-patch+json': jsonPatch,
} as const;

/**
 * @example
 * const server = await ResourceServer.start({ store, token, port: 8081 });
 * console.log(server.url); // http://127.0.0.1:8081
 * await server.stop();
 */
export class ResourceServer {
  readonly options: ResourceServerOptions;
  private readonly watches = new Set<() => void>();

  private constructor(
    options: ResourceServerOptions,
    private readonly server: Server,
  ) {
    this.options = options;
  }

  /** Listens on `host:port` and serves the store. */
  static async start(options: Pick<ResourceServerOptions, 'store' | 'token'> & Partial<ResourceServerOptions>): Promise<ResourceServer> {
    const resolved: ResourceServerOptions = { ...RESOURCE_SERVER_DEFAULTS, ...options };
    checkOption(resolved.token.length >= 16, 'ResourceServer', 'token', 'must be at least 16 characters');
    checkOption(
      Number.isInteger(resolved.port) && resolved.port >= 0 && resolved.port <= 65535,
      'ResourceServer',
      'port',
      'must be a port number or 0',
      resolved.port,
    );
    checkOption(
      isPositiveInteger(resolved.maxWatchSeconds),
      'ResourceServer',
      'maxWatchSeconds',
      'must be a positive integer',
      resolved.maxWatchSeconds,
    );
    checkOption(
      isPositiveInteger(resolved.maxBodyBytes),
      'ResourceServer',
      'maxBodyBytes',
      'must be a positive integer',
      resolved.maxBodyBytes,
    );
    const server = createServer();
    const instance = new ResourceServer(resolved, server);
    server.on('request', (request: IncomingMessage, response: ServerResponse) => void instance.handle(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(resolved.port, resolved.host, () => resolve());
    });
    return instance;
  }

  /** `http://host:port`, what a kubeconfig's `server` says. */
  get url(): string {
    const { address, port } = this.server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /** Ends every watch and stops listening; resolves once the server is closed. */
  async stop(): Promise<void> {
    for (const end of [...this.watches]) end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    try {
      if (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez') {
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      if (!this.authorized(request)) throw unauthorized();
      const target = this.route(url.pathname);
      const method = request.method ?? 'GET';
      if (url.searchParams.has('dryRun')) throw badRequest('dryRun is not supported by the embedded resource store');
      if (method === 'GET' && target.name === undefined && ['true', '1'].includes(url.searchParams.get('watch') ?? '')) {
        this.watch(target, url.searchParams, response);
        return;
      }
      const body = method === 'GET' ? undefined : await this.readBody(request);
      const answer = this.answer(method, target, url.searchParams, request.headers['content-type'] ?? '', body);
      respond(response, method === 'POST' ? 201 : 200, answer);
    } catch (thrown) {
      const error = thrown instanceof StatusError ? thrown : internalError(toError(thrown).message);
      if (!(thrown instanceof StatusError))
        this.options.log.error('request failed', { method: request.method, path: url.pathname, error: toError(thrown).message });
      respond(response, error.status.code, error.status);
    }
  }

  private authorized(request: IncomingMessage): boolean {
    const header = request.headers.authorization ?? '';
    const expected = Buffer.from(`Bearer ${this.options.token}`);
    const given = Buffer.from(header);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Parses `/api/v1/…` and `/apis/<group>/<version>/…` into the resource, namespace, name and subresource. */
  private route(pathname: string): Target {
    const parts = pathname
      .split('/')
      .filter((part) => part.length > 0)
      .map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 3) {
      group = '';
      rest = parts.slice(1);
    } else if (parts[0] === 'apis' && parts.length >= 4) {
      group = parts[1] as string;
      rest = parts.slice(2);
    } else {
      throw noSuchResource();
    }
    const [version, ...path] = rest as [string, ...string[]];
    let namespace = '';
    if (
      path[0] === 'namespaces' &&
      path.length >= 3 &&
      !(group === '' && path.length === 3 && ['status', 'finalize'].includes(path[2] as string))
    ) {
      namespace = path[1] as string;
      path.splice(0, 2);
    }
    const [plural, name, subresource, ...extra] = path;
    const resource = plural === undefined ? undefined : this.options.store.resource(group, version, plural);
    if (resource === undefined || extra.length > 0 || (resource.namespaced === false && namespace !== '')) throw noSuchResource();
    if (
      subresource !== undefined &&
      !((subresource === 'status' && resource.statusSubresource) || (subresource === 'scale' && resource.scale !== undefined))
    )
      throw noSuchResource();
    return {
      resource,
      namespace,
      ...(name === undefined ? {} : { name }),
      ...(subresource === undefined ? {} : { subresource: subresource as 'status' | 'scale' }),
    };
  }

  private answer(method: string, target: Target, query: URLSearchParams, contentType: string, body: unknown): unknown {
    const { store } = this.options;
    const { resource, namespace, name, subresource } = target;
    if (name === undefined) {
      if (method === 'GET') {
        const limit = query.get('limit');
        return store.list(resource, {
          namespace,
          selector: query.get('labelSelector') ? parseLabelSelector(query.get('labelSelector') as string) : undefined,
          ...(limit ? { limit: positive(limit, 'limit') } : {}),
          ...(query.get('continue') ? { continue: query.get('continue') as string } : {}),
        });
      }
      if (method === 'POST') return store.create(resource, namespace, objectBody(body));
      throw methodNotAllowed(`${method} is not supported on a collection by the embedded resource store`);
    }
    if (subresource === 'scale') {
      if (method === 'GET') return store.getScale(resource, namespace, name);
      if (method === 'PUT') return store.updateScale(resource, namespace, name, () => objectBody(body));
      if (method === 'PATCH') return store.updateScale(resource, namespace, name, (current) => patchWith(contentType)(current, body));
      throw methodNotAllowed(`${method} is not supported on the scale subresource`);
    }
    const status = subresource === 'status' ? 'status' : undefined;
    switch (method) {
      case 'GET':
        return store.get(resource, namespace, name);
      case 'PUT':
        return store.update(resource, namespace, name, objectBody(body), status);
      case 'PATCH': {
        const apply = patchWith(contentType);
        return store.patch(resource, namespace, name, (current) => apply(current, body), status);
      }
      case 'DELETE': {
        if (status !== undefined) throw methodNotAllowed('DELETE is not supported on the status subresource');
        const preconditions = (body as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined)?.preconditions ?? {};
        return store.delete(resource, namespace, name, preconditions);
      }
      default:
        throw methodNotAllowed(`${method} is not supported by the embedded resource store`);
    }
  }

  /** Streams changes as JSON lines until the timeout, the client leaving, or `stop`. */
  private watch(target: Target, query: URLSearchParams, response: ServerResponse): void {
    const { store } = this.options;
    const timeout = query.get('timeoutSeconds');
    const seconds = timeout ? Math.min(positive(timeout, 'timeoutSeconds'), this.options.maxWatchSeconds) : this.options.maxWatchSeconds;
    const bookmarks = ['true', '1'].includes(query.get('allowWatchBookmarks') ?? '');
    const selector = query.get('labelSelector') ? parseLabelSelector(query.get('labelSelector') as string) : undefined;
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    // The client waits for the headers before it reads events; a quiet watch must not keep it waiting.
    response.flushHeaders();
    const send = (event: { type: string; object: unknown }) => response.write(`${JSON.stringify(event)}\n`);
    let stop: StopWatch | undefined;
    let timer: NodeJS.Timeout | undefined;
    const end = () => {
      if (!this.watches.delete(end)) return;
      stop?.();
      clearTimeout(timer);
      response.end();
    };
    this.watches.add(end);
    try {
      stop = store.watch(
        target.resource,
        { namespace: target.namespace, resourceVersion: query.get('resourceVersion') ?? '', selector },
        send,
      );
    } catch (thrown) {
      const error: Status = thrown instanceof StatusError ? thrown.status : internalError(toError(thrown).message).status;
      send({ type: 'ERROR', object: error });
      end();
      return;
    }
    timer = setTimeout(() => {
      // Where to resume: every change up to the store's version was sent already.
      if (bookmarks)
        send({
          type: 'BOOKMARK',
          object: {
            apiVersion: apiVersionOfResource(target.resource),
            kind: target.resource.kind,
            metadata: { resourceVersion: store.resourceVersion },
          },
        });
      end();
    }, seconds * 1000);
    response.once('close', end);
  }

  private readBody(request: IncomingMessage): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.options.maxBodyBytes) {
          reject(new StatusError({ ...badRequest('the request body is too large').status, code: 413, reason: 'RequestEntityTooLarge' }));
          request.destroy();
          return;
        }
        chunks.push(chunk);
      });
      request.once('error', reject);
      request.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') return resolve(undefined);
        try {
          resolve(JSON.parse(text) as unknown);
        } catch (error) {
          reject(badRequest(`the request body is not JSON: ${toError(error).message}`));
        }
      });
    });
  }
}

function respond(response: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function objectBody(body: unknown): KubeObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const object = body as KubeObject;
  if (typeof object.metadata !== 'object' || object.metadata === null) (object as { metadata: object }).metadata = {};
  return object;
}

function patchWith(contentType: string): (current: unknown, patch: unknown) => unknown {
  const type = contentType.split(';')[0]?.trim() ?? '';
  const apply = PATCH_TYPES[type as keyof typeof PATCH_TYPES];
  if (apply === undefined) throw unsupportedMediaType(type || 'no content type');
  return apply;
}

function positive(value: string, name: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw badRequest(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return number;
}
