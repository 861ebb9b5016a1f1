/**
 * Tracing from the OTEL_* variables a main.ts reads, and one project's trace across processes:
 * the operator's main.ts in its own process, exporting over OTLP/HTTP to a collector this test
 * serves, reconciles a Project against the real API server and submits it over gRPC to a runtime
 * in this process, whose spans are collected here — the gRPC server span is the child of the
 * operator's client span, the project's turn (after a hop through the runtime's log) of that, and
 * the task and its LLM call follow. No span, in either process, carries a secret.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SpanKind } from '@opentelemetry/api';
import { tracing as sdk } from '@opentelemetry/sdk-node';
import { freePort, infra } from '@troupe/harness';
import { SimulatedServer, Tokens, createProvider, startEmbeddedRuntime, type EmbeddedRuntime } from '@troupe/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperatorErrorCode } from '../errors.js';
import { adminKubeConfig, createNamespace, ensureCrds, kubectl, kubectlOk } from '../testing/cluster.js';
import { startOperatorProcess, type OperatorProcess } from '../testing/operator-process.js';
import { startTracing, tracingConfig, type Tracing } from './tracing.js';

describe('tracingConfig', () => {
  const defaults = { serviceName: 'troupe-operator', resource: { 'service.instance.id': 'operator-0' } };

  it('leaves tracing off unless a collector endpoint is set, and when it is disabled', () => {
    expect(tracingConfig({}, defaults)).toBeUndefined();
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(tracingConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }, defaults)).toBeUndefined();
    expect(tracingConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }, defaults)).toBeUndefined();
  });

  it('sends to the traces path of the shared endpoint over HTTP, and to a gRPC or traces endpoint as given', () => {
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, defaults)).toEqual({
      serviceName: 'troupe-operator',
      otlp: { url: 'http://collector:4318/v1/traces', protocol: 'http/protobuf', headers: {} },
      resource: { 'service.instance.id': 'operator-0' },
      sampleRatio: 1,
    });
    expect(
      tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, defaults)?.otlp,
    ).toEqual({ url: 'http://collector:4317', protocol: 'grpc', headers: {} });
    expect(
      tracingConfig(
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/otlp/spans',
          OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        },
        defaults,
      )?.otlp,
    ).toEqual({ url: 'https://traces.example.com/otlp/spans', protocol: 'http/json', headers: {} });
  });

  it('reads headers, the service name, resource attributes and a sampling ratio', () => {
    const config = tracingConfig(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-team=sre, authorization=Bearer%20abc%3D',
        OTEL_SERVICE_NAME: 'operator-eu',
        OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=troupe-operator-0,deployment.environment=prod',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
      },
      defaults,
    );
    expect(config?.otlp?.headers).toEqual({ 'x-team': 'sre', authorization: 'Bearer abc=' });
    expect(config?.serviceName).toBe('operator-eu');
    expect(config?.resource).toEqual({
      'service.instance.id': 'operator-0',
      'k8s.pod.name': 'troupe-operator-0',
      'deployment.environment': 'prod',
    });
    expect(config?.sampleRatio).toBe(0.25);
  });

  it('refuses bad values with an error that names the variable and never shows a header value', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    const refusal = (env: Record<string, string>) => {
      try {
        tracingConfig({ ...on, ...env }, defaults);
      } catch (error) {
        expect((error as { code?: string }).code).toBe(OperatorErrorCode.InvalidOptions);
        return (error as Error).message;
      }
      throw new Error(`${JSON.stringify(env)} was accepted`);
    };
    expect(refusal({ OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' })).toBe(
      'OTEL_EXPORTER_OTLP_PROTOCOL must be one of grpc, http/protobuf, http/json, got "thrift"',
    );
    expect(refusal({ OTEL_EXPORTER_OTLP_ENDPOINT: 'user:password@collector:4318' })).toBe(
      'OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL',
    );
    expect(refusal({ OTEL_TRACES_EXPORTER: 'zipkin' })).toMatch(/^OTEL_TRACES_EXPORTER must be otlp or none/);
    expect(refusal({ OTEL_TRACES_SAMPLER: 'always_on' })).toMatch(
      /^OTEL_TRACES_SAMPLER must be parentbased_always_on or parentbased_traceidratio/,
    );
    expect(refusal({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toMatch(
      /^OTEL_TRACES_SAMPLER_ARG must be a ratio in 0\.\.1/,
    );
    const secret = 'api-key-that-must-not-be-printed';
    const message = refusal({ OTEL_EXPORTER_OTLP_HEADERS: `authorization ${secret}` });
    expect(message).toBe('OTEL_EXPORTER_OTLP_HEADERS must be a comma-separated list of key=value pairs');
    expect(refusal({ OTEL_EXPORTER_OTLP_TRACES_HEADERS: `key=%ZZ${secret}` })).not.toContain(secret);
  });

  it('starts the SDK only with exactly one place for spans to go', async () => {
    await expect(startTracing({ serviceName: 'troupe-operator' })).rejects.toThrow(
      'startTracing option otlp, exporter must give exactly one of the two',
    );
  });
});

/** What the test's collector received: one request per export. */
interface Export {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An OTLP/JSON span, as much of it as the test reads. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string } }[];
}

interface OtlpRequest {
  resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

/** OTLP's SpanKind numbers. */
const OTLP_KIND_CLIENT = 3;

describe('one project traced from the operator process to an LLM call in the runtime', () => {
  const spans = new sdk.InMemorySpanExporter();
  const exports: Export[] = [];
  const apiKey = `sk-tracing-${randomBytes(12).toString('hex')}`;
  const tokenSecret = randomBytes(32).toString('hex');
  const collectorSecret = `collector-${randomBytes(12).toString('hex')}`;
  let namespace = '';
  let dataDir = '';
  let tracing: Tracing;
  let collector: Server;
  let llm: SimulatedServer;
  let runtime: EmbeddedRuntime;
  let operator: OperatorProcess | undefined;
  let runtimeToken = '';

  beforeAll(async () => {
    tracing = await startTracing({ serviceName: 'troupe-runtime', exporter: spans });
    await ensureCrds();
    namespace = await createNamespace('tracing');
    dataDir = mkdtempSync(join(tmpdir(), 'troupe-tracing-'));
    collector = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = (request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        exports.push({ path: request.url ?? '', headers: request.headers, body });
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const collectorPort = await freePort();
    await new Promise<void>((resolve) => collector.listen(collectorPort, '127.0.0.1', resolve));

    llm = await SimulatedServer.start({ apiKey, latencyMs: 5, tokensPerSecond: Infinity, seed: 11 });
    const tokens = new Tokens({ secret: tokenSecret });
    runtime = await startEmbeddedRuntime({
      dataDir,
      providers: [
        createProvider(
          'simulated',
          {
            type: 'simulated',
            baseURL: llm.openaiBaseURL,
            pricing: [{ model: 'sim-small', inputPerMTokUSD: 0.25, outputPerMTokUSD: 1.25 }],
          },
          { apiKey },
        ),
      ],
      pools: [
        {
          namespace,
          name: 'product-managers',
          replicas: 1,
          spec: { role: 'pm', model: { provider: 'simulated', name: 'sim-small', maxOutputTokens: 256 }, concurrency: 2 },
        },
      ],
      grpc: { port: 0, tokens },
    });
    runtimeToken = tokens.sign({ sub: 'troupe-operator', role: 'admin' });
    operator = startOperatorProcess({
      KUBECONFIG: infra().kube.kubeconfig,
      POD_NAME: 'operator-tracing',
      POD_NAMESPACE: namespace,
      TROUPE_WATCH_NAMESPACES: namespace,
      TROUPE_LEADER_ELECT: 'false',
      TROUPE_RUNTIME_ADDRESS: runtime.grpcAddress!,
      TROUPE_RUNTIME_TOKEN: runtimeToken,
      TROUPE_HEALTH_PORT: '0',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${collectorSecret}`,
    });
    await operator.waitForLog('caches synced, starting controllers');
  });
  afterAll(async () => {
    await operator?.stop('SIGTERM');
    // No operator is left to release its finalizer.
    await kubectl(['patch', 'project', 'climbing-wall', '-n', namespace, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await kubectl(['delete', 'project', 'climbing-wall', '-n', namespace, '--wait=false']);
    await runtime?.stop();
    await llm?.close();
    await new Promise((resolve) => collector?.close(resolve));
    await tracing?.shutdown();
    rmSync(dataDir, { recursive: true, force: true });
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('continues the reconcile trace through gRPC, the project turn and the task to the LLM call, and carries no secret', async () => {
    await kubectlOk(
      ['apply', '-n', namespace, '-f', '-'],
      `apiVersion: troupe.dev/v1alpha1
kind: Project
metadata:
  name: climbing-wall
spec:
  client: acme
  brief: A booking page for the climbing wall, with a calendar and card payments.
  budget:
    maxCostUSD: 1
  approvals: [requirements]
`,
    );
    const finished = () => spans.getFinishedSpans();
    const named = (name: string, trace: string) => finished().filter((span) => span.name === name && span.spanContext().traceId === trace);
    const submitted = () =>
      finished().find((span) => span.name === 'troupe.v1.RuntimeService/SubmitProject' && span.kind === SpanKind.SERVER);
    await expect.poll(() => submitted(), { timeout: 60_000, interval: 200 }).toBeDefined();
    const server = submitted()!;
    const traceId = server.spanContext().traceId;
    // The operator's client span, in the other process: this process knows only its id.
    expect(server.parentSpanContext).toMatchObject({ traceId, isRemote: true });
    const clientSpanId = server.parentSpanContext!.spanId;
    expect(server.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'troupe.v1.RuntimeService',
      'rpc.method': 'SubmitProject',
    });

    // The runtime's side: gRPC → the project's turn (through the log) → its task → the task's LLM call.
    await expect.poll(() => named('chat sim-small', traceId).length, { timeout: 60_000, interval: 200 }).toBeGreaterThan(0);
    const key = `${namespace}/climbing-wall`;
    const submitTurn = named('turn project', traceId).find((span) => span.attributes['troupe.message.type'] === 'submit');
    expect(submitTurn?.attributes['troupe.actor.id']).toBe(key);
    expect(submitTurn?.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    const task = named('task requirements', traceId)[0];
    expect(task?.attributes).toMatchObject({ 'troupe.project': key, 'troupe.task.role': 'pm', 'troupe.task.phase': 'requirements' });
    const projectTurns = new Set(named('turn project', traceId).map((span) => span.spanContext().spanId));
    expect(projectTurns.has(task!.parentSpanContext!.spanId)).toBe(true);
    const chat = named('chat sim-small', traceId)[0]!;
    expect(chat.kind).toBe(SpanKind.CLIENT);
    expect(chat.parentSpanContext?.spanId).toBe(task!.spanContext().spanId);
    expect(chat.attributes).toMatchObject({
      'gen_ai.request.model': 'sim-small',
      'gen_ai.provider.name': 'simulated',
      'troupe.project': key,
    });
    expect(chat.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
    // The journal's turns, asked from inside a call, are that call's children.
    const calls = new Set(named('chat sim-small', traceId).map((span) => span.spanContext().spanId));
    const journal = named('turn llm-call', traceId);
    expect(journal.some((span) => span.parentSpanContext?.spanId === chat.spanContext().spanId)).toBe(true);
    expect(journal.every((span) => calls.has(span.parentSpanContext?.spanId ?? ''))).toBe(true);

    // The operator's side, exported when it stops: its reconcile, and the client span the runtime continued.
    expect(await operator!.stop('SIGTERM')).toBe(0);
    await expect.poll(() => exports.length, { timeout: 15_000, interval: 100 }).toBeGreaterThan(0);
    expect(exports.every((request) => request.path === '/v1/traces' && request.headers.authorization === `Bearer ${collectorSecret}`)).toBe(
      true,
    );
    const exported = exports.flatMap((request) =>
      (JSON.parse(request.body) as OtlpRequest).resourceSpans.flatMap((resourceSpans) =>
        resourceSpans.scopeSpans.flatMap((scope) => scope.spans.map((span) => ({ span, resource: resourceSpans.resource }))),
      ),
    );
    const client = exported.find(({ span }) => span.spanId === clientSpanId);
    expect(client?.span).toMatchObject({ traceId, name: 'troupe.v1.RuntimeService/SubmitProject', kind: OTLP_KIND_CLIENT });
    expect(client?.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'troupe-operator' } });
    const reconcile = exported.find(({ span }) => span.spanId === client?.span.parentSpanId)?.span;
    expect(reconcile?.name).toBe('reconcile project');
    expect(reconcile?.traceId).toBe(traceId);
    expect(reconcile?.parentSpanId ?? '').toBe('');
    expect(reconcile?.attributes).toContainEqual({ key: 'troupe.object.name', value: { stringValue: 'climbing-wall' } });

    // Secrets stay out of spans: the provider's API key, the runtime's bearer token and the secret
    // it is signed with, the collector's credentials and the API server's token.
    const secrets = [apiKey, runtimeToken, tokenSecret, collectorSecret, adminKubeConfig().getCurrentUser()?.token].filter(
      (secret): secret is string => secret !== undefined && secret !== '',
    );
    expect(secrets).toHaveLength(5);
    const recorded = JSON.stringify(
      finished().map((span) => ({
        name: span.name,
        attributes: span.attributes,
        events: span.events,
        status: span.status,
        links: span.links,
      })),
    );
    const sent = exports.map((request) => request.body).join('\n');
    for (const secret of secrets) {
      expect(recorded).not.toContain(secret);
      expect(sent).not.toContain(secret);
    }
  });
});
