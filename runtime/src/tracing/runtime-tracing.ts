/**
 * The runtime's OpenTelemetry spans, on the API alone: a process records them once its main.ts
 * started the SDK (`startTracing` of @troupe/operator/tracing); until then every span is a no-op.
 *
 * - `turn <actor type>`: each try of a durable actor's turn, a child of the span that sent its
 *   message. Every message carries the W3C trace context of the span it was sent in — in its
 *   envelope's `trace` and in the record's `traceparent` header — so a trace crosses Kafka and
 *   processes. The actor core knows no OpenTelemetry: `actorTracing` is the tracer it is handed.
 * - `<service>/<method>`: a RuntimeService call, continuing the caller's trace from its metadata.
 * - `task <phase>`: a task's run in its agent pool, a child of the turn that dispatched it.
 * - `chat <model>`: an LLM call, with its tokens, cost and where the answer came from.
 *
 * Attributes name actors, projects, tasks, models and codes; never prompts, answers, API keys or tokens.
 */
import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { inSpan, traceContextPropagator, type InSpanOptions } from '@troupe/operator/tracing';
import type { TraceContext } from '@troupe/proto';
import type { ActorSystemTracer } from '../actors/actor-system.js';
import { actorTopic } from '../actors/actor.js';
import type { ProjectMessage } from '../domain/project.types.js';
import type { TaskRun } from '../domain/task-runner.js';
import type { CallResult, LlmCall, LlmCaller } from '../llm/client.js';
import { redact } from '../security/redact.js';

const tracer = trace.getTracer('@troupe/runtime');

/** A span of the runtime's: failures are recorded without the secrets they may quote (a provider's error may echo its key). */
function traced<T>(name: string, options: InSpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  return inSpan(tracer, name, { ...options, redact }, work);
}

/** The W3C trace context of the active span, to travel with a message; undefined outside any recorded trace. */
export function currentTraceContext(): TraceContext | undefined {
  const active = context.active();
  if (trace.getSpanContext(active) === undefined) return undefined;
  const carrier: Record<string, string> = {};
  traceContextPropagator.inject(active, carrier, defaultTextMapSetter);
  return carrier.traceparent === undefined ? undefined : { traceparent: carrier.traceparent, tracestate: carrier.tracestate ?? '' };
}

/** The context a message's trace continues in: a new trace when it carries none. */
function contextOf(carried: TraceContext | undefined): Context {
  if (carried === undefined || carried.traceparent === '') return ROOT_CONTEXT;
  const carrier = { traceparent: carried.traceparent, ...(carried.tracestate === '' ? {} : { tracestate: carried.tracestate }) };
  return traceContextPropagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
}

/** The actor system's tracer: a span per turn, and the trace context on every message sent. */
export const actorTracing: ActorSystemTracer = {
  current: currentTraceContext,
  turn(actor, envelope, attempt, handle) {
    return traced(`turn ${actor.type}`, { kind: SpanKind.CONSUMER, parent: contextOf(envelope.trace) }, async (span) => {
      // Only for a recorded span: untraced, a turn costs a no-op span and nothing more.
      if (span.isRecording()) {
        span.setAttributes({
          'messaging.destination.name': actorTopic(actor.type),
          'messaging.message.id': envelope.id,
          'troupe.actor.type': actor.type,
          'troupe.actor.id': actor.id,
          'troupe.message.type': envelope.type,
          'troupe.turn.attempt': attempt,
        });
      }
      return handle();
    });
  },
};

const metadataGetter = {
  get: (metadata: Metadata, key: string) => metadata.get(key).map(String),
  keys: (metadata: Metadata) => Object.keys(metadata.getMap()),
};

/** Handles a unary RuntimeService call in its server span, a child of the caller's span when its metadata names one. */
export function traceServerCall<R>(
  call: Pick<ServerUnaryCall<unknown, unknown>, 'getPath' | 'metadata'>,
  handle: () => Promise<R>,
): Promise<R> {
  const path = call.getPath().replace(/^\//, '');
  const [service = '', method = ''] = path.split('/');
  return traced(
    path,
    {
      kind: SpanKind.SERVER,
      parent: traceContextPropagator.extract(ROOT_CONTEXT, call.metadata, metadataGetter),
      attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
    },
    handle,
  );
}

/**
 * Runs a task in its span, a child of the turn that dispatched it (the trace its run message
 * carries). `work` reports a failed task as its result, which the span records with its code.
 */
export function traceTask(run: TaskRun, work: () => Promise<ProjectMessage>): Promise<ProjectMessage> {
  const { task } = run;
  const attributes = {
    'k8s.namespace.name': run.namespace,
    'troupe.project': `${run.namespace}/${run.project}`,
    'troupe.task.id': task.id,
    'troupe.task.phase': task.phase,
    'troupe.task.role': task.role,
    'troupe.task.kind': task.kind,
    'troupe.task.step': task.step,
  };
  return traced(`task ${task.phase}`, { parent: contextOf(run.trace), attributes }, async (span) => {
    const outcome = await work();
    if (outcome.type === 'task-failed') {
      span.setAttribute('error.type', outcome.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.message });
    }
    return outcome;
  });
}

/**
 * The caller with a span per LLM call, `chat <model>`, a child of the active span (the task's).
 * Wrap the journaled caller: the journal's turns are the span's children, and `troupe.llm.source`
 * says whether the answer was bought, cached or replayed.
 */
export function traceLlm(caller: LlmCaller): LlmCaller {
  return {
    complete: (call: LlmCall) =>
      traced(
        `chat ${call.model}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'gen_ai.operation.name': 'chat',
            'gen_ai.provider.name': call.provider,
            'gen_ai.request.model': call.model,
            'gen_ai.request.max_tokens': call.maxOutputTokens,
            ...(call.temperature === undefined ? {} : { 'gen_ai.request.temperature': call.temperature }),
            'troupe.llm.call_id': call.callId,
            'troupe.project': call.account.project,
            'troupe.task.phase': call.account.phase,
            'troupe.task.role': call.account.role,
          },
        },
        async (span) => {
          const result: CallResult = await caller.complete(call);
          span.setAttributes({
            'gen_ai.usage.input_tokens': result.usage.inputTokens,
            'gen_ai.usage.output_tokens': result.usage.outputTokens,
            'gen_ai.response.finish_reasons': [result.finishReason],
            'troupe.llm.source': result.source,
            'troupe.llm.cost_usd': result.costUSD,
            'troupe.llm.attempts': result.attempts,
          });
          return result;
        },
      ),
  };
}
