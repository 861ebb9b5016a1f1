/**
 * An API key must not leak: when an LLM provider's error echoes the key it was sent (as OpenAI's
 * does for a wrong one), or a credential nobody in the process knows, the project fails with a
 * reason its owner can read — and neither the gRPC API, the gateway's HTTP API and stream, nor
 * the process's log carries the secret. The embedded runtime, its gRPC server and a gateway run
 * for real against the simulated provider over HTTP, which checks the key.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { ProjectPhase, RuntimeServiceClient, type WatchProjectResponse } from '@troupe/proto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { samplePools, submitCommand } from '../domain/company-fixtures.js';
import { startEmbeddedRuntime, type EmbeddedRuntime } from '../embedded.js';
import { Gateway } from '../gateway/gateway.js';
import type { ServerMessage } from '../gateway/protocol.js';
import { StreamClient } from '../gateway/testing/stream-client.js';
import { Tokens } from '../gateway/tokens.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { eventually } from '../testing/eventually.js';
import { REDACTED } from './redact.js';

const WRONG_KEY = 'sk-live-0123456789abcdef-wrong';
const RIGHT_KEY = 'sk-live-fedcba9876543210-right';
/** A credential a proxy in front of the provider quotes; no part of the process was given it. */
const PROXY_KEY = 'sk-proxy-9f8e7d6c5b4a39281716';
const SECRETS = [WRONG_KEY, RIGHT_KEY, PROXY_KEY];

describe('API keys', () => {
  let server: SimulatedServer;
  let runtime: EmbeddedRuntime;
  let gateway: Gateway;
  let grpc: RuntimeServiceClient;
  let tokens: Tokens;
  let dataDir: string;
  const logged: string[] = [];

  beforeAll(async () => {
    // Everything the process writes to stderr, where its parts log errors by default.
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(' ')));
    server = await SimulatedServer.start({ latencyMs: 5, tokensPerSecond: Infinity, seed: 5, apiKey: RIGHT_KEY });
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-secrets-'));
    tokens = new Tokens({ secret: 'secret-leaks-test-secret-of-32-bytes-at-least' });
    const onWrongKey = samplePools('acme').map((pool) => ({
      ...pool,
      spec: { ...pool.spec, model: { ...pool.spec.model, provider: 'misconfigured' } },
    }));
    runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [
        createProvider('misconfigured', { type: 'openai', baseURL: server.openaiBaseURL }, { apiKey: WRONG_KEY }),
        createProvider('simulated', { type: 'openai', baseURL: server.openaiBaseURL }, { apiKey: RIGHT_KEY }),
      ],
      pools: [...onWrongKey, ...samplePools('globex')],
      grpc: { port: 0, tokens },
      taskCheckMs: 1_000,
    });
    gateway = await Gateway.start({ api: runtime.company, tokens, port: 0, poolSampleMs: 0 });
    grpc = new RuntimeServiceClient(runtime.grpcAddress!, credentials.createInsecure());
  });

  afterAll(async () => {
    grpc?.close();
    await gateway?.stop();
    await runtime?.stop();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
    vi.restoreAllMocks();
  });

  it('never leave the process in an error, through gRPC, the HTTP API, the stream or the log', async () => {
    const admin = new Metadata();
    admin.set('authorization', `Bearer ${tokens.sign({ sub: 'operator', role: 'admin' })}`);
    const projects = [
      ['acme', 'wrong-key'],
      ['globex', 'proxied'],
    ] as const;
    // The operator's view: it watches each project from before it is submitted.
    const updates: WatchProjectResponse[] = [];
    const watches = projects.map(([namespace, name]) => {
      const stream = grpc.watchProject({ namespace, name, afterSequence: 0 }, admin);
      stream.on('data', (update: WatchProjectResponse) => updates.push(update));
      stream.on('error', () => {});
      return stream;
    });
    const failed = async (namespace: string, name: string) =>
      eventually(async () => expect((await runtime.company.getProject(namespace, name))?.status?.phase).toBe(ProjectPhase.FAILED), 30_000);
    // The provider answers the wrong key with a 401 that quotes it.
    await runtime.company.submitProject('leak-1', submitCommand('acme', 'wrong-key'));
    await failed('acme', 'wrong-key');
    // A proxy answers with a 400 that quotes a credential of its own.
    server.failNext(1, { type: 'status', status: 400, message: `upstream refused Authorization: Bearer ${PROXY_KEY}` });
    await runtime.company.submitProject('leak-2', submitCommand('globex', 'proxied'));
    await failed('globex', 'proxied');
    const failures = () =>
      updates.filter((update) => update.update?.$case === 'event' && update.update.value.event?.$case === 'projectFailed');
    await eventually(async () => expect(failures()).toHaveLength(2));
    for (const watch of watches) watch.cancel();

    const seen = [JSON.stringify(failures()[0]), JSON.stringify(failures()[1])];
    for (const [namespace, name] of projects) {
      const client = tokens.sign({ sub: `owner@${namespace}`, tenant: namespace });
      const detail = await fetch(`${gateway.url}/api/projects/${namespace}/${name}`, { headers: { authorization: `Bearer ${client}` } });
      expect(detail.status).toBe(200);
      seen.push(await detail.text());
      const stream = await StreamClient.connect(`${gateway.url.replace('http', 'ws')}/api/stream`, client);
      stream.send({ type: 'subscribe', topic: `project/${namespace}/${name}` });
      seen.push(JSON.stringify(await stream.next((message: ServerMessage) => message.type === 'snapshot')));
      stream.close();
    }

    // The owners can tell what went wrong...
    expect(seen[0]).toContain(`Incorrect API key provided: ${REDACTED}`);
    expect(seen[1]).toContain(`upstream refused Authorization: Bearer ${REDACTED}`);
    for (const text of seen) expect(text).toContain(REDACTED);
    // ...and no answer, and no line of the log, holds a secret.
    for (const text of [...seen, ...logged]) for (const secret of SECRETS) expect(text).not.toContain(secret);
  });
});
