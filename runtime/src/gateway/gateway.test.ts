/**
 * The gateway on the real embedded runtime: the HTTP API's answers and refusals, artefact
 * downloads, the static build, and the stream following a project from submission to delivery
 * — across a reconnect — in step with what the HTTP API reports.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../testing/eventually.js';
import type { DeltaMessage, ProjectDelta, ProjectDetail, ProjectsResponse, ServerMessage, SnapshotMessage } from './protocol.js';
import { StreamClient } from './testing/stream-client.js';
import { startLiveCompany, submitCommand, type LiveCompany } from './testing/live-company.js';

const isSnapshot = (message: ServerMessage): message is SnapshotMessage => message.type === 'snapshot';
const isDelta = (message: ServerMessage): message is DeltaMessage => message.type === 'delta';

describe('the gateway on the embedded runtime', () => {
  let company: LiveCompany;
  let staticDir: string;
  let acme: string;
  let globex: string;
  let sre: string;
  let admin: string;

  beforeAll(async () => {
    staticDir = mkdtempSync(join(tmpdir(), 'troupe-gateway-static-'));
    mkdirSync(join(staticDir, '_app', 'immutable'), { recursive: true });
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Troupe</title><script>start()</script>');
    writeFileSync(join(staticDir, '_app', 'immutable', 'start.js'), `export const start = ${JSON.stringify('s'.repeat(3000))};`);
    company = await startLiveCompany({ latencyMs: 20, gateway: { staticDir } });
    acme = company.token({ sub: 'cto@acme', tenant: 'acme' });
    globex = company.token({ sub: 'cfo@globex', tenant: 'globex' });
    sre = company.token({ sub: 'oncall', role: 'sre' });
    admin = company.token({ sub: 'root', role: 'admin' });
  });

  afterAll(async () => {
    await company?.stop();
    rmSync(staticDir, { recursive: true, force: true });
  });

  async function call(
    path: string,
    token: string | undefined,
    init: RequestInit = {},
  ): Promise<{ status: number; body: unknown; headers: Headers }> {
    const headers = new Headers(init.headers);
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
    const response = await fetch(`${company.gateway.url}${path}`, { ...init, headers });
    const text = await response.text();
    const json = response.headers.get('content-type')?.startsWith('application/json') === true;
    return { status: response.status, headers: response.headers, body: json ? JSON.parse(text) : text };
  }

  const post = (path: string, token: string, body: unknown, contentType = 'application/json') =>
    call(path, token, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('streams a project from submission to delivery, resumes across a reconnect, and ends where the HTTP API does', async () => {
    const url = `${company.gateway.url.replace('http', 'ws')}/api/stream`;
    await company.api.submitProject('submit-shop', submitCommand('acme', 'shop', { approvals: ['architecture'] }));
    await eventually(async () => expect((await call('/api/projects/acme/shop', acme)).status).toBe(200));

    const watcher = await StreamClient.connect(url, acme);
    watcher.send({ type: 'subscribe', topic: 'project/acme/shop' });
    const snapshot = await watcher.next(isSnapshot);
    const awaiting = (message: ServerMessage) =>
      isDelta(message) && (message.data as ProjectDelta).card.awaitingApproval === 'architecture';
    const gate =
      (snapshot.data as ProjectDetail).card.awaitingApproval === 'architecture' ? snapshot : await watcher.next(awaiting, 0, 30_000);
    const before = watcher.messages.filter(isDelta);
    const lastSeen = before.at(-1)?.seq ?? snapshot.seq;
    watcher.close();
    expect(gate).toBeDefined();

    // While nobody watches, the approval lets the project run on; the reconnecting client catches up from the buffer.
    expect(await post('/api/projects/acme/shop/approve', acme, { phase: 'architecture' })).toMatchObject({
      status: 202,
      body: { commandId: expect.stringMatching(/^gateway\/approve\//) },
    });
    await eventually(
      async () => expect(((await call('/api/projects/acme/shop', acme)).body as ProjectDetail).card.phase).toBe('Delivered'),
      30_000,
    );

    const resumed = await StreamClient.connect(url, acme);
    resumed.send({ type: 'subscribe', topic: 'project/acme/shop', resume: { epoch: snapshot.epoch, seq: lastSeen } });
    await resumed.next((message) => message.type === 'resumed');
    const delivered = await resumed.next(
      (message) =>
        isDelta(message) &&
        (message.data as ProjectDelta).card.phase === 'Delivered' &&
        (message.data as ProjectDelta).card.progress.percent === 100,
    );
    resumed.close();
    const after = resumed.messages.filter(isDelta);
    expect([...before, ...after].map((delta) => delta.seq)).toEqual(
      Array.from({ length: before.length + after.length }, (_, i) => snapshot.seq + i + 1),
    );

    const detail = (await call('/api/projects/acme/shop', acme)).body as ProjectDetail;
    expect({ ...((delivered as DeltaMessage).data as ProjectDelta).card, updatedAt: 0 }).toEqual({ ...detail.card, updatedAt: 0 });
    expect(detail.timeline.map((step) => [step.phase, step.state])).toEqual([
      ['requirements', 'done'],
      ['architecture', 'done'],
      ['implementation', 'done'],
      ['review', 'done'],
      ['docs', 'done'],
      ['delivery', 'done'],
    ]);
    expect(detail.tasks.every((task) => task.status === 'Succeeded')).toBe(true);
    expect(detail.costSeries.at(-1)?.usd).toBe(detail.card.cost.usd);
  });

  it('serves artefacts with their hash, to their tenant only', async () => {
    await eventually(
      async () => expect((await company.api.getProject('acme', 'shop'))?.status?.artifacts.length ?? 0).toBeGreaterThan(0),
      30_000,
    );
    const detail = (await call('/api/projects/acme/shop', acme)).body as ProjectDetail;
    const code = detail.artifacts.find((artifact) => artifact.name.includes('/')) ?? detail.artifacts[0]!;
    const response = await fetch(`${company.gateway.url}${code.href}`, { headers: { authorization: `Bearer ${acme}` } });
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(response.status).toBe(200);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(code.sha256);
    expect(bytes.equals(Buffer.from((await company.api.artifact('acme', 'shop', code.name))!.bytes))).toBe(true);
    expect(response.headers.get('etag')).toBe(`"${code.sha256}"`);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const unchanged = await fetch(`${company.gateway.url}${code.href}`, {
      headers: { authorization: `Bearer ${acme}`, 'if-none-match': `"${code.sha256}"` },
    });
    expect(unchanged.status).toBe(304);
    // A slash in the name may also be sent unescaped.
    expect((await call(`/api/projects/acme/shop/artifacts/${code.name}`, acme)).status).toBe(200);
    expect(await call(code.href, globex)).toMatchObject({ status: 403, body: { error: { code: 'PERMISSION_DENIED' } } });
    expect(await call('/api/projects/acme/shop/artifacts/nope.md', acme)).toMatchObject({
      status: 404,
      body: { error: { message: 'project acme/shop has no artefact nope.md' } },
    });
  });

  it('answers reads by tenant: a client sees its namespace, platform roles see all', async () => {
    await company.api.submitProject('submit-ledger', submitCommand('globex', 'ledger'));
    await eventually(async () => expect((await company.api.listProjects('globex')).length).toBe(1));
    const names = (body: unknown) => (body as ProjectsResponse).projects.map((card) => `${card.namespace}/${card.name}`).sort();

    expect(names((await call('/api/projects', acme)).body)).toEqual(['acme/shop']);
    expect(names((await call('/api/projects', globex)).body)).toEqual(['globex/ledger']);
    expect(names((await call('/api/projects', admin)).body)).toEqual(['acme/shop', 'globex/ledger']);
    expect(names((await call('/api/projects?namespace=globex', sre)).body)).toEqual(['globex/ledger']);
    expect(await call('/api/projects?namespace=acme', globex)).toMatchObject({
      status: 403,
      body: { error: { message: 'a token of tenant globex may not read namespace acme' } },
    });
    expect(await call('/api/projects/acme/shop', globex)).toMatchObject({ status: 403 });
    expect(await call('/api/projects/acme/nothing', acme)).toMatchObject({
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: 'no project nothing in namespace acme' } },
    });
    const pools = (await call('/api/pools', acme)).body as { pools: { namespace: string }[] };
    expect(new Set(pools.pools.map((pool) => pool.namespace))).toEqual(new Set(['acme']));
    expect(await call('/api/me', sre)).toMatchObject({
      status: 200,
      body: { sub: 'oncall', role: 'sre', tenant: null, can: { allNamespaces: true, approve: false, scale: true } },
    });
  });

  it('refuses what a caller may not do, and bad input, with a clear 4xx', async () => {
    expect(await call('/api/projects', undefined)).toMatchObject({
      status: 401,
      body: { error: { code: 'UNAUTHENTICATED', message: 'send the token as Authorization: Bearer <token>' } },
    });
    expect((await call('/api/projects', undefined)).headers.get('www-authenticate')).toBe('Bearer');
    expect(await call('/api/projects', 'v1.e30.bad')).toMatchObject({
      status: 401,
      body: { error: { message: 'the token signature is invalid' } },
    });
    expect(await call('/api/nothing/here', acme)).toMatchObject({
      status: 404,
      body: { error: { message: 'no API route GET /api/nothing/here' } },
    });
    expect(await call('/api/projects/Bad_Name/shop', acme)).toMatchObject({
      status: 400,
      body: { error: { message: 'namespace "Bad_Name" is not a namespace name (a DNS label)' } },
    });

    expect(await post('/api/projects/acme/shop/approve', acme, { phase: 'review' })).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/does not wait for approval of review/) } },
    });
    expect(await post('/api/projects/acme/shop/approve', acme, { stage: 'x' })).toMatchObject({
      status: 400,
      body: { error: { message: expect.stringMatching(/^phase must name the workflow phase/) } },
    });
    expect(await post('/api/projects/acme/shop/approve', acme, '{"phase":', 'application/json')).toMatchObject({
      status: 400,
      body: { error: { message: 'the body is not valid JSON' } },
    });
    expect(await post('/api/projects/acme/shop/approve', acme, 'phase=x', 'application/x-www-form-urlencoded')).toMatchObject({
      status: 400,
      body: { error: { message: 'the body must be JSON, sent with Content-Type: application/json' } },
    });
    expect(await post('/api/projects/acme/shop/approve', acme, { phase: 'x'.repeat(20_000) })).toMatchObject({
      status: 413,
      body: { error: { code: 'TOO_LARGE', message: 'the body is larger than 16384 bytes' } },
    });
    expect(await post('/api/projects/acme/shop/approve', sre, { phase: 'architecture' })).toMatchObject({
      status: 403,
      body: { error: { message: 'role sre may not approve gates; a token of role admin or client may' } },
    });
    expect(await post('/api/projects/acme/shop/approve', globex, { phase: 'architecture' })).toMatchObject({ status: 403 });

    expect(await post('/api/pools/acme/developers/scale', acme, { replicas: 3 })).toMatchObject({
      status: 403,
      body: { error: { message: 'role client may not scale pools; a token of role admin or sre may' } },
    });
    expect(await post('/api/pools/acme/developers/scale', sre, { replicas: 1001 })).toMatchObject({
      status: 400,
      body: { error: { message: 'replicas must be an integer in 0..1000, e.g. {"replicas": 4}' } },
    });
    expect(await post('/api/pools/acme/nobody/scale', sre, { replicas: 2 })).toMatchObject({
      status: 400,
      body: { error: { message: 'no AgentPool nobody in namespace acme' } },
    });
  });

  it('keeps a client out of another tenant on every route, and refuses an expired or tampered token', async () => {
    const denied = {
      status: 403,
      body: { error: { code: 'PERMISSION_DENIED', message: 'a token of tenant globex may not read namespace acme' } },
    };
    expect(await call('/api/projects/acme/shop', globex)).toMatchObject(denied);
    expect(await call('/api/projects?namespace=acme', globex)).toMatchObject(denied);
    expect(await call('/api/pools?namespace=acme', globex)).toMatchObject(denied);
    expect(await call('/api/projects/acme/shop/artifacts/README.md', globex)).toMatchObject(denied);
    expect(await post('/api/projects/acme/shop/approve', globex, { phase: 'architecture' })).toMatchObject(denied);
    expect(await post('/api/pools/acme/developers/scale', globex, { replicas: 2 })).toMatchObject(denied);
    // An admin gets past every check to the runtime, which says what the project waits for.
    expect(await post('/api/projects/acme/shop/approve', admin, { phase: 'architecture' })).toMatchObject({
      status: 400,
      body: { error: { message: 'project acme/shop does not wait for approval of architecture: it is Delivered' } },
    });

    const expired = company.token({ sub: 'cto@acme', tenant: 'acme', exp: Math.floor(Date.now() / 1000) - 1 });
    expect(await call('/api/projects', expired)).toMatchObject({
      status: 401,
      body: { error: { code: 'UNAUTHENTICATED', message: 'the token has expired' } },
    });
    const [version, , signature] = acme.split('.');
    const escalated = Buffer.from(JSON.stringify({ sub: 'cto@acme', role: 'admin', exp: 4_000_000_000 })).toString('base64url');
    expect(await call('/api/projects', `${version}.${escalated}.${signature}`)).toMatchObject({
      status: 401,
      body: { error: { message: 'the token signature is invalid' } },
    });
  });

  it('refuses oversized and malformed bodies, parameters and paths with a clear 4xx, and keeps serving', async () => {
    // A body sent in chunks, with no Content-Length to refuse it by up front.
    const chunked = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 40; i += 1) controller.enqueue(new TextEncoder().encode(`{"phase":"${'x'.repeat(1000)}"`));
        controller.close();
      },
    });
    expect(
      await call('/api/projects/acme/shop/approve', acme, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: chunked,
        duplex: 'half',
      } as RequestInit),
    ).toMatchObject({ status: 413, body: { error: { code: 'TOO_LARGE', message: 'the body is larger than 16384 bytes' } } });
    for (const body of ['[]', 'null', '"architecture"', '{"phase": 7}']) {
      expect(await post('/api/projects/acme/shop/approve', acme, body)).toMatchObject({
        status: 400,
        body: { error: { message: expect.stringMatching(/^phase must name the workflow phase to approve/) } },
      });
    }
    expect(await post('/api/pools/acme/developers/scale', sre, { replicas: 1.5 })).toMatchObject({
      status: 400,
      body: { error: { message: 'replicas must be an integer in 0..1000, e.g. {"replicas": 4}' } },
    });
    expect(await call('/api/projects/acme/%E0%A4%A', acme)).toMatchObject({
      status: 400,
      body: { error: { message: '"%E0%A4%A" is not valid percent-encoding' } },
    });
    expect(await call('/api/projects?namespace=..%2F..', acme)).toMatchObject({
      status: 400,
      body: { error: { message: 'namespace "../.." is not a namespace name (a DNS label)' } },
    });
    expect(await call(`/api/projects/acme/${'n'.repeat(2000)}`, acme)).toMatchObject({
      status: 400,
      body: { error: { message: `project "${'n'.repeat(80)}…" is not a valid object name` } },
    });
    expect(await call('/api/me', acme)).toMatchObject({ status: 200, body: { sub: 'cto@acme' } });
  });

  it('scales a pool for an SRE and streams the new size', async () => {
    const url = `${company.gateway.url.replace('http', 'ws')}/api/stream`;
    const watcher = await StreamClient.connect(url, sre);
    watcher.send({ type: 'subscribe', topic: 'pools/*' });
    await watcher.next(isSnapshot);
    expect(await post('/api/pools/globex/qa/scale', sre, { replicas: 5 })).toMatchObject({ status: 202 });
    const scaled = await watcher.next(
      (message) => isDelta(message) && JSON.stringify(message.data).includes('"name":"qa","role":"qa","replicas":5'),
    );
    expect(scaled).toMatchObject({ kind: 'pools', data: { pool: { namespace: 'globex', name: 'qa', replicas: 5 }, removed: false } });
    watcher.close();
    expect((await company.api.listPools('globex')).find((entry) => entry.status?.pool === 'qa')?.status?.replicas).toBe(5);
  });

  it('serves the static build: the shell for client routes, assets with their type, 404 for missing files', async () => {
    const shell = await fetch(`${company.gateway.url}/projects/acme/shop`);
    expect(shell.status).toBe(200);
    expect(shell.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(shell.headers.get('cache-control')).toBe('no-cache');
    expect(shell.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-/);
    expect(await shell.text()).toContain('<title>Troupe</title>');
    const asset = await fetch(`${company.gateway.url}/_app/immutable/start.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.headers.get('content-encoding')).toBe('gzip');
    expect(await asset.text()).toContain('export const start');
    const etag = asset.headers.get('etag')!;
    expect((await fetch(`${company.gateway.url}/_app/immutable/start.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${company.gateway.url}/_app/immutable/gone.js`)).status).toBe(404);
    expect((await fetch(`${company.gateway.url}/healthz`)).status).toBe(200);
  });
});
