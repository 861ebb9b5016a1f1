/**
 * OpenTelemetry tracing for every Troupe process, and the operator's own spans. A process's
 * main.ts hands its environment to `tracingConfig` (the standard OTEL_* variables) and, when that
 * turns tracing on, calls `startTracing`, which registers @opentelemetry/sdk-node with an OTLP
 * exporter. Without it the OpenTelemetry API stays a no-op: the spans below cost a no-op tracer's
 * calls and nothing is loaded, recorded or sent.
 *
 * The operator's spans: one per reconcile, the root of a trace, and a client span per unary
 * RuntimeService call, whose W3C `traceparent` travels in the call's metadata so that the runtime
 * continues the trace. Spans carry names, keys and codes, never Secret data: no API keys, tokens
 * or OTLP headers.
 */
import { InterceptingCall, Metadata, status as GrpcStatus, type Interceptor } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, context, trace, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { tracing } from '@opentelemetry/sdk-node';
import { OperatorError, OperatorErrorCode, checkOption } from '../errors.js';
import type { ReconcileResult } from './controller.js';
import { splitKey, type ObjectKey } from './types.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The OTLP transports a collector may take traces on. */
export const OTLP_PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** Where an OTLP exporter sends spans. */
export interface OtlpOptions {
  /** For `grpc` the collector's address (`http://collector:4317`); for HTTP the traces URL (`http://collector:4318/v1/traces`). */
  url: string;
  protocol: OtlpProtocol;
  /** Sent with every export, e.g. the collector's API key; never logged or recorded. */
  headers: Readonly<Record<string, string>>;
}

export interface TracingOptions {
  /** `service.name` of every span of the process, e.g. `troupe-operator`. */
  serviceName: string;
  /** An OTLP collector, which spans reach in batches. Exactly one of `otlp` and `exporter`. */
  otlp?: OtlpOptions;
  /** An exporter of the caller's (tests: an InMemorySpanExporter), which each span reaches as it ends. */
  exporter?: tracing.SpanExporter;
  /** More resource attributes, e.g. `service.instance.id` or `k8s.pod.name`. */
  resource: Readonly<Record<string, string>>;
  /** The share of new traces that is recorded, 0..1 (default 1); a continued trace keeps its caller's decision. */
  sampleRatio: number;
}

export const TRACING_DEFAULTS = {
  resource: {},
  sampleRatio: 1,
} as const satisfies Partial<TracingOptions>;

/** The SDK of a process, once started. */
export interface Tracing {
  /** Exports the spans still buffered, then stops recording. */
  shutdown(): Promise<void>;
}

/** W3C trace context, the one format every Troupe carrier (gRPC metadata, Kafka envelopes and headers) uses. */
export const traceContextPropagator = new W3CTraceContextPropagator();

const tracer = trace.getTracer('@troupe/operator');

function invalid(variable: string, problem: string): OperatorError {
  return new OperatorError(OperatorErrorCode.InvalidOptions, `${variable} ${problem}`);
}

function optional(env: Env, variable: string): string | undefined {
  const value = env[variable]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** `key=value` pairs separated by commas, values percent-encoded (the W3C Baggage form the OTEL_* lists use). */
function pairs(env: Env, variable: string): Record<string, string> {
  const text = optional(env, variable);
  const parsed: Record<string, string> = {};
  if (text === undefined) return parsed;
  for (const item of text.split(',')) {
    const at = item.indexOf('=');
    const key = item.slice(0, at).trim();
    // The values are not shown: headers carry credentials.
    if (at <= 0 || key === '') throw invalid(variable, 'must be a comma-separated list of key=value pairs');
    try {
      parsed[key] = decodeURIComponent(item.slice(at + 1).trim());
    } catch {
      throw invalid(variable, `has a value for ${JSON.stringify(key)} that is not valid percent-encoding`);
    }
  }
  return parsed;
}

function url(env: Env, variable: string): string | undefined {
  const value = optional(env, variable);
  // The value is not shown: a URL may carry a password.
  if (value !== undefined && !(URL.canParse(value) && ['http:', 'https:'].includes(new URL(value).protocol)))
    throw invalid(variable, 'must be an http:// or https:// URL');
  return value;
}

/** The sampler's ratio: OTEL_TRACES_SAMPLER may only be one of the parent-based samplers. */
function sampleRatio(env: Env): number {
  const sampler = optional(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (sampler === 'parentbased_always_on') return 1;
  if (sampler !== 'parentbased_traceidratio')
    throw invalid('OTEL_TRACES_SAMPLER', `must be parentbased_always_on or parentbased_traceidratio, got ${JSON.stringify(sampler)}`);
  const text = optional(env, 'OTEL_TRACES_SAMPLER_ARG') ?? '1';
  const ratio = Number(text);
  if (!(Number.isFinite(ratio) && ratio >= 0 && ratio <= 1))
    throw invalid('OTEL_TRACES_SAMPLER_ARG', `must be a ratio in 0..1, got ${JSON.stringify(text)}`);
  return ratio;
}

/**
 * A process's tracing from the standard OpenTelemetry variables, or undefined when tracing is off:
 * neither OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor OTEL_EXPORTER_OTLP_ENDPOINT is set,
 * OTEL_SDK_DISABLED is `true`, or OTEL_TRACES_EXPORTER is `none`. Also read: OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL
 * (`http/protobuf` by default, `grpc`, `http/json`), OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. A bad value is refused
 * with an error that names the variable. Only main.ts files call this, with `process.env`.
 *
 * @example
 * const config = tracingConfig(process.env, { serviceName: 'troupe-operator', resource: { 'service.instance.id': identity } });
 * const tracing = config === undefined ? undefined : await startTracing(config);
 */
export function tracingConfig(
  env: Env,
  defaults: { serviceName: string; resource?: Readonly<Record<string, string>> },
): TracingOptions | undefined {
  if (optional(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const exporter = optional(env, 'OTEL_TRACES_EXPORTER') ?? 'otlp';
  if (exporter === 'none') return undefined;
  if (exporter !== 'otlp') throw invalid('OTEL_TRACES_EXPORTER', `must be otlp or none, got ${JSON.stringify(exporter)}`);
  const protocolVariable =
    optional(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') === undefined
      ? 'OTEL_EXPORTER_OTLP_PROTOCOL'
      : 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL';
  const protocol = optional(env, protocolVariable) ?? 'http/protobuf';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol))
    throw invalid(protocolVariable, `must be one of ${OTLP_PROTOCOLS.join(', ')}, got ${JSON.stringify(protocol)}`);
  const tracesEndpoint = url(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const endpoint = url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (tracesEndpoint === undefined && endpoint === undefined) return undefined;
  // The signal's own endpoint is used as it is; the shared one is a base URL that HTTP exporters add the signal's path to.
  const target = tracesEndpoint ?? (protocol === 'grpc' ? endpoint! : `${endpoint!.replace(/\/+$/, '')}/v1/traces`);
  const headersVariable =
    optional(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS') === undefined ? 'OTEL_EXPORTER_OTLP_HEADERS' : 'OTEL_EXPORTER_OTLP_TRACES_HEADERS';
  return {
    serviceName: optional(env, 'OTEL_SERVICE_NAME') ?? defaults.serviceName,
    otlp: { url: target, protocol: protocol as OtlpProtocol, headers: pairs(env, headersVariable) },
    resource: { ...defaults.resource, ...pairs(env, 'OTEL_RESOURCE_ATTRIBUTES') },
    sampleRatio: sampleRatio(env),
  };
}

async function otlpExporter({ url: target, protocol, headers }: OtlpOptions): Promise<tracing.SpanExporter> {
  switch (protocol) {
    case 'grpc': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc');
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
      return new OTLPTraceExporter({ url: target, metadata });
    }
    case 'http/protobuf': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
      return new OTLPTraceExporter({ url: target, headers: { ...headers } });
    }
    case 'http/json': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({ url: target, headers: { ...headers } });
    }
  }
}

/**
 * Registers the OpenTelemetry SDK for this process: W3C trace context, async context that follows
 * promises, a parent-based sampler and the exporter. Traces only: metrics stay Prometheus's. Call
 * it once per process, before the work it should trace; the SDK is loaded only here.
 *
 * @example
 * const tracing = await startTracing({ serviceName: 'troupe-runtime', otlp: { url: 'http://collector:4318/v1/traces', protocol: 'http/protobuf', headers: {} } });
 * process.once('SIGTERM', () => void tracing.shutdown());
 */
export async function startTracing(options: Pick<TracingOptions, 'serviceName'> & Partial<TracingOptions>): Promise<Tracing> {
  const settings: TracingOptions = { ...TRACING_DEFAULTS, ...options };
  checkOption(
    typeof settings.serviceName === 'string' && settings.serviceName !== '',
    'startTracing',
    'serviceName',
    'must be a non-empty string',
    settings.serviceName,
  );
  checkOption(
    (settings.otlp === undefined) !== (settings.exporter === undefined),
    'startTracing',
    'otlp, exporter',
    'must give exactly one of the two',
  );
  checkOption(
    settings.sampleRatio >= 0 && settings.sampleRatio <= 1,
    'startTracing',
    'sampleRatio',
    'must be a ratio in 0..1',
    settings.sampleRatio,
  );
  if (settings.otlp !== undefined) {
    // The value is not shown: a URL may carry a password.
    checkOption(URL.canParse(settings.otlp.url), 'startTracing', 'otlp.url', 'must be a URL');
    checkOption(
      OTLP_PROTOCOLS.includes(settings.otlp.protocol),
      'startTracing',
      'otlp.protocol',
      `must be one of ${OTLP_PROTOCOLS.join(', ')}`,
      settings.otlp.protocol,
    );
  }
  const { NodeSDK, resources, tracing: sdk } = await import('@opentelemetry/sdk-node');
  const processor =
    settings.exporter === undefined
      ? new sdk.BatchSpanProcessor(await otlpExporter(settings.otlp!))
      : new sdk.SimpleSpanProcessor(settings.exporter);
  const node = new NodeSDK({
    // What a process is comes from its options, not from detectors reading the environment.
    autoDetectResources: false,
    resource: resources
      .defaultResource()
      .merge(resources.resourceFromAttributes({ ...settings.resource, 'service.name': settings.serviceName })),
    spanProcessors: [processor],
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(settings.sampleRatio) }),
    textMapPropagator: traceContextPropagator,
    instrumentations: [],
    // Without these the SDK would start OTLP metric and log exporters of its own.
    metricReaders: [],
    logRecordProcessors: [],
  });
  node.start();
  return { shutdown: () => node.shutdown() };
}

/** How `inSpan` starts a span, beyond OpenTelemetry's options. */
export interface InSpanOptions extends SpanOptions {
  /** The span's parent (default: the active span). */
  parent?: Context;
  /** Cleans the message and stack of a failure before the span keeps them, e.g. of credentials (default: kept as they are). */
  redact?: (text: string) => string;
}

/**
 * Runs `work` in a new span, active while it runs, and ends the span when `work` settles; a throw
 * is recorded on the span (its message and stack, and its `code` as `error.type`) and thrown on.
 *
 * @example
 * await inSpan(tracer, 'task implementation', { attributes: { 'troupe.task.id': id } }, async (span) => run());
 */
export function inSpan<T>(tracer: Tracer, name: string, options: InSpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  const { parent, redact = (text: string) => text, ...spanOptions } = options;
  return tracer.startActiveSpan(name, spanOptions, parent ?? context.active(), async (span) => {
    try {
      return await work(span);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      const code = (failure as { code?: unknown }).code;
      const message = redact(failure.message);
      span.recordException({ name: failure.name, message, ...(failure.stack === undefined ? {} : { stack: redact(failure.stack) }) });
      span.setAttribute('error.type', typeof code === 'string' ? code : failure.name);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs one reconcile in its span, `reconcile <controller>`: the root of a trace, which the
 * RuntimeService calls it makes continue into the runtime.
 */
export function traceReconcile(controller: string, key: ObjectKey, reconcile: () => Promise<ReconcileResult>): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const attributes = { 'troupe.controller': controller, 'k8s.namespace.name': namespace, 'troupe.object.name': name };
  return inSpan(tracer, `reconcile ${controller}`, { root: true, attributes }, async (span) => {
    const result = await reconcile();
    if (result.requeueAfterMs !== undefined) span.setAttribute('troupe.reconcile.requeue_after_ms', result.requeueAfterMs);
    return result;
  });
}

const metadataSetter = { set: (metadata: Metadata, key: string, value: string) => metadata.set(key, value) };

/**
 * A grpc-js client interceptor: each unary call gets a client span named by its method
 * (`troupe.v1.RuntimeService/SubmitProject`), a child of the active span, and carries that span's
 * W3C trace context in its metadata. Streaming calls, which may stay open for hours, go untraced.
 */
export const tracingInterceptor: Interceptor = (options, nextCall) => {
  const method = options.method_definition;
  if (method.requestStream || method.responseStream) return new InterceptingCall(nextCall(options));
  const path = method.path.replace(/^\//, '');
  const [service = '', name = ''] = path.split('/');
  const span = tracer.startSpan(path, {
    kind: SpanKind.CLIENT,
    attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': name },
  });
  return new InterceptingCall(nextCall(options), {
    start(metadata, _listener, next) {
      traceContextPropagator.inject(trace.setSpan(context.active(), span), metadata, metadataSetter);
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          span.setAttribute('rpc.grpc.status_code', status.code);
          if (status.code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
          span.end();
          nextStatus(status);
        },
      });
    },
  });
};
