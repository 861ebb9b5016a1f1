/**
 * The RuntimeService over gRPC on the embedded runtime: only callers with a genuine, unexpired
 * token get in; a client token sees and acts on its own namespace only, an SRE reads everything
 * but decides nothing, an admin (the operator) does it all; malformed, absurd and oversized
 * requests are refused with a status that names the problem, and the server keeps serving. A
 * WatchProject stream starts with the project's snapshot, and a server that stops ends its open
 * streams rather than waiting for watchers that never hang up, so that they reconnect to another
 * replica.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type Client, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import {
  ProjectPhase,
  RuntimeServiceClient,
  ServingStatus,
  type NewClaims,
  type SubmitProject,
  type WatchProjectResponse,
} from '@troupe/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { samplePools, submitCommand } from '../domain/company-fixtures.js';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../embedded.js';
import { Tokens } from '../gateway/tokens.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { eventually } from '../testing/eventually.js';

const SECRET = 'grpc-test-secret-of-at-least-32-bytes';

/** What a call ended with: the response, or the status it was refused with. */
type Outcome<T> = T | { code: status; details: string };

interface Started {
  runtime: EmbeddedRuntime;
  client: RuntimeServiceClient;
  tokens: Tokens;
  /** Stops the runtime, once. */
  stopRuntime(): Promise<void>;
  /** Closes the client, stops the runtime unless it was stopped, and removes its data. */
  stop(): Promise<void>;
}

async function start(): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), 'troupe-grpc-'));
  const tokens = new Tokens({ secret: SECRET });
  const runtime = await startEmbeddedRuntime({
    dataDir,
    providers: [createProvider('simulated', { type: 'simulated', simulated: { latencyMs: 1, tokensPerSecond: Infinity } })],
    pools: [...samplePools('acme'), ...samplePools('globex')],
    grpc: { port: 0, tokens },
    taskCheckMs: 1_000,
  });
  const client = new RuntimeServiceClient(runtime.grpcAddress!, credentials.createInsecure());
  let stopped: Promise<void> | undefined;
  const stopRuntime = () => (stopped ??= runtime.stop());
  return {
    runtime,
    client,
    tokens,
    stopRuntime,
    async stop() {
      client.close();
      await stopRuntime();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function metadata(token: string | undefined): Metadata {
  const sent = new Metadata();
  if (token !== undefined) sent.set('authorization', token.includes(' ') ? token : `Bearer ${token}`);
  return sent;
}

type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown;

/** Calls a unary method with `token` (a bare token is sent as `Bearer <token>`). */
function call<Request, Response>(method: UnaryMethod<Request, Response>, request: Request, token?: string): Promise<Outcome<Response>> {
  return new Promise((resolve) =>
    method(request, metadata(token), (error, response) => resolve(error ? { code: error.code, details: error.details } : response)),
  );
}

/** The first update of a WatchProject stream, or the status it ended with. */
function firstUpdate(client: RuntimeServiceClient, namespace: string, name: string, token?: string, afterSequence = 0) {
  return new Promise<Outcome<WatchProjectResponse>>((resolve) => {
    const stream = client.watchProject({ namespace, name, afterSequence }, metadata(token));
    stream.on('data', (update: WatchProjectResponse) => {
      resolve(update);
      stream.cancel();
    });
    stream.on('error', (error: ServiceError) => resolve({ code: error.code, details: error.details }));
  });
}

const refused = (code: status, details: string | RegExp) => ({
  code,
  details: typeof details === 'string' ? details : expect.stringMatching(details),
});

describe('the gRPC RuntimeService', () => {
  let company: Started;
  let token: (claims: NewClaims) => string;
  let admin: string;
  let sre: string;
  let acme: string;
  let globex: string;
  const suspended = (namespace: string, name: string): SubmitProject => {
    const command = submitCommand(namespace, name);
    return { ...command, spec: { ...command.spec!, suspend: true } };
  };

  beforeAll(async () => {
    company = await start();
    token = (claims) => company.tokens.sign(claims);
    admin = token({ sub: 'operator', role: 'admin' });
    sre = token({ sub: 'oncall', role: 'sre' });
    acme = token({ sub: 'cto@acme', tenant: 'acme' });
    globex = token({ sub: 'cfo@globex', tenant: 'globex' });
    await company.runtime.company.submitProject('gate', submitCommand('acme', 'gated', { approvals: ['requirements'] }));
    await company.runtime.company.submitProject('ledger', suspended('globex', 'ledger'));
    await eventually(async () => {
      expect((await company.runtime.company.getProject('acme', 'gated'))?.status?.phase).toBe(ProjectPhase.AWAITING_APPROVAL);
      expect(await company.runtime.company.getProject('globex', 'ledger')).toBeDefined();
    }, 30_000);
  });

  afterAll(async () => {
    await company?.stop();
  });

  it('answers only a caller with a genuine, unexpired bearer token, on unary calls and streams', async () => {
    const { client } = company;
    const health = client.health.bind(client);
    expect(await call(health, {})).toEqual(refused(status.UNAUTHENTICATED, 'send the token as the metadata authorization: Bearer <token>'));
    expect(await call(health, {}, `Basic ${Buffer.from('root:root').toString('base64')}`)).toEqual(
      refused(status.UNAUTHENTICATED, 'send the token as the metadata authorization: Bearer <token>'),
    );
    const [version, , signature] = acme.split('.');
    const escalated = Buffer.from(JSON.stringify({ sub: 'cto@acme', role: 'admin', exp: 4_000_000_000 })).toString('base64url');
    expect(await call(health, {}, `${version}.${escalated}.${signature}`)).toEqual(
      refused(status.UNAUTHENTICATED, 'the token signature is invalid'),
    );
    const forged = new Tokens({ secret: `${SECRET}-elsewhere` }).sign({ sub: 'root', role: 'admin' });
    expect(await call(health, {}, forged)).toEqual(refused(status.UNAUTHENTICATED, 'the token signature is invalid'));
    const expired = token({ sub: 'cto@acme', tenant: 'acme', exp: Math.floor(Date.now() / 1000) - 1 });
    expect(await call(health, {}, expired)).toEqual(refused(status.UNAUTHENTICATED, 'the token has expired'));
    expect(await firstUpdate(client, 'acme', 'gated', expired)).toEqual(refused(status.UNAUTHENTICATED, 'the token has expired'));
    expect(await firstUpdate(client, 'acme', 'gated')).toEqual(
      refused(status.UNAUTHENTICATED, 'send the token as the metadata authorization: Bearer <token>'),
    );

    expect(await call(health, {}, acme)).toMatchObject({ status: ServingStatus.SERVING });
  });

  it('keeps a client token to its own namespace on every RPC, naming the namespace it may not enter', async () => {
    const { client } = company;
    const names = (outcome: unknown) =>
      ((outcome as { projects: { namespace: string; name: string }[] }).projects ?? [])
        .map((project) => `${project.namespace}/${project.name}`)
        .sort();
    const deniedGlobex = refused(status.PERMISSION_DENIED, 'a token of tenant acme may not read namespace globex');

    expect(names(await call(client.listProjects.bind(client), { namespace: '' }, acme))).toEqual(['acme/gated']);
    expect(names(await call(client.listProjects.bind(client), { namespace: '' }, globex))).toEqual(['globex/ledger']);
    expect(await call(client.listProjects.bind(client), { namespace: 'globex' }, acme)).toEqual(deniedGlobex);
    const pools = (await call(client.listPools.bind(client), { namespace: '' }, acme)) as { pools: { namespace: string }[] };
    expect(new Set(pools.pools.map((pool) => pool.namespace))).toEqual(new Set(['acme']));
    expect(await call(client.listPools.bind(client), { namespace: 'globex' }, acme)).toEqual(deniedGlobex);

    expect(await call(client.getProject.bind(client), { namespace: 'globex', name: 'ledger' }, acme)).toEqual(deniedGlobex);
    expect(await firstUpdate(client, 'globex', 'ledger', acme)).toEqual(deniedGlobex);
    const approve = { namespace: 'globex', name: 'ledger', phase: 'requirements', approvedBy: 'cto@acme' };
    expect(await call(client.approve.bind(client), { commandId: '', command: approve }, acme)).toEqual(deniedGlobex);
    const cancel = { namespace: 'globex', name: 'ledger', reason: 'competitor' };
    expect(await call(client.cancelProject.bind(client), { commandId: '', command: cancel }, acme)).toEqual(deniedGlobex);
    expect(await call(client.submitProject.bind(client), { commandId: '', command: suspended('globex', 'ledger') }, acme)).toEqual(
      deniedGlobex,
    );
    // Nothing of globex's changed.
    expect((await company.runtime.company.getProject('globex', 'ledger'))?.status?.phase).not.toBe(ProjectPhase.FAILED);

    expect(await call(client.getProject.bind(client), { namespace: 'acme', name: 'gated' }, acme)).toMatchObject({
      status: { phase: ProjectPhase.AWAITING_APPROVAL },
    });
    expect(await firstUpdate(client, 'acme', 'gated', acme)).toMatchObject({ update: { $case: 'snapshot' } });
  });

  it('gives each role what the role table says: a client approves, an SRE reads, an admin submits and cancels', async () => {
    const { client } = company;
    const approve = (caller: string, phase = 'requirements') =>
      call(client.approve.bind(client), { commandId: '', command: { namespace: 'acme', name: 'gated', phase, approvedBy: '' } }, caller);

    expect(await approve(sre)).toEqual(
      refused(status.PERMISSION_DENIED, 'role sre may not approve gates; a token of role admin or client may'),
    );
    expect(await call(client.submitProject.bind(client), { commandId: '', command: suspended('acme', 'new') }, acme)).toEqual(
      refused(status.PERMISSION_DENIED, 'role client may not submit projects; a token of role admin may'),
    );
    expect(await call(client.submitProject.bind(client), { commandId: '', command: suspended('acme', 'new') }, sre)).toEqual(
      refused(status.PERMISSION_DENIED, 'role sre may not submit projects; a token of role admin may'),
    );
    expect(
      await call(client.cancelProject.bind(client), { commandId: '', command: { namespace: 'acme', name: 'gated', reason: '' } }, acme),
    ).toEqual(refused(status.PERMISSION_DENIED, 'role client may not cancel projects; a token of role admin may'));
    expect(await approve(acme)).toEqual({ commandId: expect.stringMatching(/^grpc\/approve\//) });
    await eventually(async () =>
      expect((await company.runtime.company.getProject('acme', 'gated'))?.status?.currentPhase).not.toBe('requirements'),
    );

    const everything = (await call(client.listProjects.bind(client), { namespace: '' }, sre)) as { projects: { name: string }[] };
    expect(everything.projects.map((project) => project.name).sort()).toEqual(['gated', 'ledger']);
    expect(await call(client.getProject.bind(client), { namespace: 'globex', name: 'ledger' }, sre)).toMatchObject({ status: {} });

    expect(await call(client.submitProject.bind(client), { commandId: 'submit/new/1', command: suspended('acme', 'new') }, admin)).toEqual({
      commandId: 'submit/new/1',
    });
    expect(
      await call(client.cancelProject.bind(client), { commandId: '', command: { namespace: 'acme', name: 'new', reason: 'done' } }, admin),
    ).toEqual({
      commandId: expect.stringMatching(/^grpc\/cancel\//),
    });
    await eventually(async () =>
      expect((await company.runtime.company.getProject('acme', 'new'))?.status?.phase).toBe(ProjectPhase.FAILED),
    );
  });

  it('refuses malformed, absurd and oversized requests with a status naming the problem, and keeps serving', async () => {
    const { client } = company;
    const get = (namespace: string, name: string) => call(client.getProject.bind(client), { namespace, name }, admin);
    const submit = (command: SubmitProject | undefined, commandId = '') =>
      call(client.submitProject.bind(client), { commandId, command }, admin);
    const spec = suspended('acme', 'odd').spec!;
    const bad = (message: string | RegExp) => refused(status.INVALID_ARGUMENT, message);

    expect(await get('', 'gated')).toEqual(bad('namespace is required'));
    expect(await get('Not_A_Namespace', 'gated')).toEqual(bad('namespace "Not_A_Namespace" is not a namespace name (a DNS label)'));
    expect(await get('acme', '')).toEqual(bad('name is required'));
    expect(await get('acme', 'nobody')).toEqual(refused(status.NOT_FOUND, 'project acme/nobody not found'));
    expect(await call(client.listProjects.bind(client), { namespace: 'no spaces allowed' }, sre)).toEqual(
      bad('namespace "no spaces allowed" is not a namespace name (a DNS label)'),
    );
    expect(await firstUpdate(client, 'acme', 'gated', admin, -1)).toEqual(bad('afterSequence must be an integer ≥ 0, got -1'));

    expect(await submit(undefined)).toEqual(bad('command is required'));
    expect(await submit({ ...suspended('acme', 'odd'), spec: { ...spec, priority: 1000 } })).toEqual(
      bad('command.spec.priority must be an integer in 0..100, got 1000'),
    );
    expect(await submit({ ...suspended('acme', 'odd'), spec: { ...spec, budget: { ...spec.budget!, maxCostUsd: Infinity } } })).toEqual(
      bad('command.spec.budget.maxCostUSD must be a finite number > 0, got Infinity'),
    );
    expect(await submit({ ...suspended('acme', 'odd'), spec: { ...spec, brief: '' } })).toEqual(
      bad('command.spec.brief must be 1..20000 characters, got 0'),
    );
    expect(await submit({ ...suspended('acme', 'odd'), spec: { ...spec, approvals: ['Review Phase'] } })).toEqual(
      bad(/^command\.spec\.approvals\[0\] "Review Phase" is not a phase or role name/),
    );
    expect(await submit({ ...suspended('acme', 'odd'), spec: { ...spec, deliverables: [42 as never] } })).toEqual(
      bad('command.spec.deliverables[0] is not a known deliverable, got 42'),
    );
    expect(
      await submit({ ...suspended('acme', 'odd'), spec: { ...spec, approvals: Array.from({ length: 40 }, (_, i) => `p${i}`) } }),
    ).toEqual(bad('command.spec.approvals may have at most 32 entries, got 40'));
    expect(await submit({ ...suspended('acme', 'odd'), name: 'x'.repeat(300) })).toEqual(
      bad(/^command\.name "x{80}…" is not a valid object name$/),
    );
    expect(await submit(suspended('acme', 'odd'), 'has spaces in it')).toEqual(
      bad('commandId must be 1..256 printable ASCII characters without spaces'),
    );
    expect(
      await call(
        client.approve.bind(client),
        { commandId: '', command: { namespace: 'acme', name: 'gated', phase: '', approvedBy: '' } },
        admin,
      ),
    ).toEqual(bad('command.phase is required'));

    // Bytes that are no GetProjectRequest, sent past the generated client's encoder.
    const garbage = await new Promise<Outcome<Buffer>>((resolve) =>
      (client as unknown as Client).makeUnaryRequest(
        '/troupe.v1.RuntimeService/GetProject',
        (bytes: Buffer) => bytes,
        (bytes: Buffer) => bytes,
        Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        metadata(admin),
        (error, response) => resolve(error ? { code: error.code, details: error.details } : response!),
      ),
    );
    expect(garbage).toEqual(bad(/^the request to \/troupe\.v1\.RuntimeService\/GetProject is not a valid message: /));
    expect(await get('acme', 'y'.repeat(2 * 1024 * 1024))).toEqual(refused(status.RESOURCE_EXHAUSTED, /larger than max/));

    expect(await call(client.health.bind(client), {}, sre)).toMatchObject({ status: ServingStatus.SERVING });
    expect(await company.runtime.company.getProject('acme', 'odd')).toBeUndefined();
  });
});

describe('the gRPC RuntimeService, stopping', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('ends a WatchProject stream when its token expires, and the open streams when it stops', async () => {
    const company = await start();
    cleanups.push(() => company.stop());
    const command = submitCommand('acme', 'watched');
    await company.runtime.company.submitProject('watched-1', { ...command, spec: { ...command.spec!, suspend: true } });
    await eventually(async () => expect(await company.runtime.company.getProject('acme', 'watched')).toBeDefined());

    const watch = (token: string) => {
      const stream = company.client.watchProject({ namespace: 'acme', name: 'watched', afterSequence: 0 }, metadata(token));
      const updates: WatchProjectResponse[] = [];
      stream.on('data', (update: WatchProjectResponse) => updates.push(update));
      stream.on('error', () => {});
      return { updates, ended: new Promise<StatusObject>((resolve) => stream.on('status', resolve)) };
    };
    const brief = watch(company.tokens.sign({ sub: 'brief', tenant: 'acme', exp: Math.floor(Date.now() / 1000) + 2 }));
    const lasting = watch(company.tokens.sign({ sub: 'operator', role: 'admin' }));
    await eventually(async () => {
      expect(brief.updates[0]?.update?.$case).toBe('snapshot');
      expect(lasting.updates[0]?.update?.$case).toBe('snapshot');
    });
    expect(await brief.ended).toMatchObject({ code: status.UNAUTHENTICATED, details: 'the token has expired' });

    await company.stopRuntime();
    expect((await lasting.ended).code).toBe(status.OK);
  });
});
