/**
 * The gateway's HTTP API under `/api`: read projects and pools, download artefacts, approve a
 * gate, scale a pool. Every route checks the bearer token and the tenancy rules of access.ts;
 * commands are queued on the runtime and answered 202 with their command id.
 */
import { randomUUID } from 'node:crypto';
import { extname } from 'node:path';
import type { Invoice, RuntimeApi } from '../api/runtime-api.js';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { authorize, checkCanRead, checkName, checkNamespace, identityOf, readScope } from './access.js';
import { decodePath, json, serve, type Handler, type Reply, type Request } from './http.js';
import type { LiveState } from './live-state.js';
import type { Accepted, ApproveRequest, Identity, PoolsResponse, ProjectsResponse, ScaleRequest } from './protocol.js';
import type { Tokens } from './tokens.js';
import type { TemplatedApp } from './uws.js';
import { poolView, projectCard } from './views.js';

export interface ApiOptions {
  api: RuntimeApi;
  /** Sets a pool's replicas (see GatewayOptions.scalePool). */
  scalePool: RuntimeApi['scalePool'];
  live: LiveState;
  tokens: Tokens;
  maxBodyBytes: number;
  now: () => number;
  onError: (error: Error) => void;
}

const ARTIFACTS_PREFIX = /^\/api\/projects\/([^/]+)\/([^/]+)\/artifacts\/(.+)$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_REPLICAS = 1000;

/** Text kinds the artefact viewer shows inline; anything else downloads as bytes. */
const TEXT_EXTENSIONS = new Set([
  '',
  '.md',
  '.txt',
  '.ts',
  '.js',
  '.json',
  '.yaml',
  '.yml',
  '.py',
  '.go',
  '.java',
  '.css',
  '.html',
  '.sql',
  '.sh',
  '.toml',
  '.csv',
]);

/** Mounts the API routes on `app`. */
export function mountApi(app: TemplatedApp, options: ApiOptions): void {
  const { api, live } = options;
  const identify = (request: Request): Identity => {
    const authorization = request.header('authorization');
    if (!/^bearer /i.test(authorization))
      throw new RuntimeError(RuntimeErrorCode.Unauthenticated, 'send the token as Authorization: Bearer <token>');
    return identityOf(options.tokens.verify(authorization.slice(7).trim()));
  };
  const route = (method: 'get' | 'post', pattern: string, handler: (request: Request, identity: Identity) => Reply | Promise<Reply>) => {
    const paramCount = pattern.split('/').filter((part) => part.startsWith(':')).length;
    const authenticated: Handler = (request) => handler(request, identify(request));
    app[method](pattern, (res, req) =>
      serve(res, req, paramCount, authenticated, {
        withBody: method === 'post',
        maxBodyBytes: options.maxBodyBytes,
        onError: options.onError,
      }),
    );
  };

  route('get', '/api/me', (_request, identity) => json('200 OK', identity));

  route('get', '/api/projects', async (request, identity) => {
    const namespace = readScope(identity, request.query.get('namespace') ?? undefined);
    const now = options.now();
    const projects = (await api.listProjects(namespace)).map((summary) => projectCard(summary, now));
    return json('200 OK', { projects } satisfies ProjectsResponse);
  });

  route('get', '/api/projects/:namespace/:name', async (request, identity) => {
    const [namespace, name] = projectParams(request, identity);
    const summary = await api.getProject(namespace, name);
    if (summary === undefined) throw new RuntimeError(RuntimeErrorCode.NotFound, `no project ${name} in namespace ${namespace}`);
    return json('200 OK', live.detail(projectCard(summary, options.now())));
  });

  // Artefact names are relative paths (`src/cart.ts`): the route takes the rest of the URL.
  route('get', '/api/projects/:namespace/:name/artifacts/*', async (request, identity) => {
    const [namespace, name] = projectParams(request, identity);
    const artifactName = decodePath(ARTIFACTS_PREFIX.exec(request.url)?.[3] ?? '');
    if (artifactName === '' || artifactName.length > 512)
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'name the artefact after /artifacts/');
    const artifact = await api.artifact(namespace, name, artifactName);
    if (artifact === undefined)
      throw new RuntimeError(RuntimeErrorCode.NotFound, `project ${namespace}/${name} has no artefact ${artifactName}`);
    const etag = `"${artifact.sha256}"`;
    const headers: [string, string][] = [
      ['Content-Type', TEXT_EXTENSIONS.has(extname(artifactName)) ? 'text/plain; charset=utf-8' : 'application/octet-stream'],
      ['Content-Disposition', `attachment; filename*=UTF-8''${encodeURIComponent(artifactName.split('/').at(-1) ?? artifactName)}`],
      ['ETag', etag],
      ['Cache-Control', 'private, no-cache'],
      ['X-Content-Type-Options', 'nosniff'],
      ['Content-Security-Policy', 'sandbox'],
      ['X-Artifact-Kind', artifact.kind],
    ];
    if (request.header('if-none-match') === etag) return { status: '304 Not Modified', headers, body: '' };
    return { status: '200 OK', headers, body: artifact.bytes };
  });

  route('post', '/api/projects/:namespace/:name/approve', async (request, identity) => {
    const [namespace, name] = projectParams(request, identity);
    authorize(identity, 'approve', namespace);
    const { phase } = (request.body ?? {}) as Partial<ApproveRequest>;
    if (typeof phase !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(phase)) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidArgument,
        'phase must name the workflow phase to approve (a DNS label), e.g. {"phase": "architecture"}',
      );
    }
    const commandId = commandIdOf(request, identity, 'approve');
    await api.approve(commandId, { namespace, name, phase, approvedBy: identity.sub });
    return json('202 Accepted', { commandId } satisfies Accepted);
  });

  route('get', '/api/pools', async (request, identity) => {
    const namespace = readScope(identity, request.query.get('namespace') ?? undefined);
    const now = options.now();
    const pools = (await api.listPools(namespace)).map((entry) => poolView(entry, now));
    return json('200 OK', { pools } satisfies PoolsResponse);
  });

  route('post', '/api/pools/:namespace/:pool/scale', async (request, identity) => {
    const [namespaceParam, poolParam] = request.params;
    const namespace = checkNamespace(namespaceParam ?? '');
    const pool = checkName(poolParam ?? '', 'pool');
    authorize(identity, 'scale', namespace);
    const { replicas } = (request.body ?? {}) as Partial<ScaleRequest>;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `replicas must be an integer in 0..${MAX_REPLICAS}, e.g. {"replicas": 4}`);
    }
    const commandId = commandIdOf(request, identity, 'scale');
    await options.scalePool(commandId, { namespace, pool, replicas });
    void live.samplePools();
    return json('202 Accepted', { commandId } satisfies Accepted);
  });

  // A client's bill, as JSON or CSV; a tenant's token sees the projects of its own namespace only.
  route('get', '/api/invoices/:client', async (request, identity) => {
    const client = checkNamespace(request.params[0] ?? '', 'client');
    const namespace = readScope(identity, request.query.get('namespace') ?? undefined);
    const format = request.query.get('format') ?? 'json';
    if (format !== 'json' && format !== 'csv')
      throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `format must be json or csv, got "${format.slice(0, 20)}"`);
    const invoice = await api.invoice(client, namespace);
    if (format === 'json') return json('200 OK', invoice);
    return {
      status: '200 OK',
      headers: [
        ['Content-Type', 'text/csv; charset=utf-8'],
        ['Content-Disposition', `attachment; filename="invoice-${client}.csv"`],
        ['Cache-Control', 'no-store'],
        ['X-Content-Type-Options', 'nosniff'],
      ],
      body: invoiceCsv(invoice),
    };
  });

  app.get('/healthz', (res) => {
    res.writeHeader('Content-Type', 'text/plain').end('ok');
  });
  app.any('/api/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    const url = req.getUrl();
    serve(
      res,
      req,
      0,
      () => {
        throw new RuntimeError(RuntimeErrorCode.NotFound, `no API route ${method} ${url}`);
      },
      { withBody: false, maxBodyBytes: 0, onError: options.onError },
    );
  });
}

/** The namespace and name of a project route, checked for shape and for the caller's tenancy. */
function projectParams(request: Request, identity: Identity): [string, string] {
  const [namespaceParam, nameParam] = request.params;
  const namespace = checkNamespace(namespaceParam ?? '');
  const name = checkName(nameParam ?? '', 'project');
  checkCanRead(identity, namespace);
  return [namespace, name];
}

/**
 * The command's idempotency key: the client's `Idempotency-Key`, scoped to the caller (so a
 * retried click is applied once), else a fresh one. Not derived from the arguments: approving the same phase again in a
 * later review loop, or scaling back to an earlier size, must not be dropped as a repeat.
 */
function commandIdOf(request: Request, identity: Identity, action: string): string {
  const key = request.header('idempotency-key');
  if (key !== '' && !IDEMPOTENCY_KEY.test(key)) {
    throw new RuntimeError(RuntimeErrorCode.InvalidArgument, 'Idempotency-Key must be 1..128 characters of [A-Za-z0-9._:-]');
  }
  return key === '' ? `gateway/${action}/${randomUUID()}` : `gateway/${action}/${identity.sub}/${key}`;
}

/** The invoice as CSV (RFC 4180): a header, a row per line, and a `total` row; dollars to the nano-dollar. */
function invoiceCsv(invoice: Invoice): string {
  const field = (value: string | number) => {
    const text = typeof value === 'number' ? String(value) : value;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const row = (cells: (string | number)[]) => `${cells.map(field).join(',')}\r\n`;
  const { total } = invoice;
  return [
    row(['project', 'role', 'model', 'calls', 'input_tokens', 'output_tokens', 'cost_usd']),
    ...invoice.lines.map((line) =>
      row([line.project, line.role, line.model, line.calls, line.inputTokens, line.outputTokens, line.costUSD.toFixed(9)]),
    ),
    row(['total', '', '', total.calls, total.inputTokens, total.outputTokens, total.costUSD.toFixed(9)]),
  ].join('');
}
