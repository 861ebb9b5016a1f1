/**
 * Traces across the harness's real Kafka, collected in this process: a tell from a client's span
 * reaches an actor on one node, whose turn is that span's child (the message's envelope carries
 * its W3C trace context, and the record's `traceparent` header mirrors it); the tell from that
 * turn reaches an actor on a second node, whose turn is the first turn's child — one trace id
 * throughout. A message sent outside any trace starts a new trace at its turn, and a client
 * given no tracer stamps nothing. An LLM call that fails is recorded with its error, without the
 * API key the provider's answer echoed.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { tracing as sdk } from '@opentelemetry/sdk-node';
import { infra } from '@troupe/harness';
import { startTracing, type Tracing } from '@troupe/operator/tracing';
import { Envelope } from '@troupe/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient } from '../actors/actor-client.js';
import { ActorSystem } from '../actors/actor-system.js';
import { actorTopic, defineActor } from '../actors/actor.js';
import { Budgets } from '../llm/budget.js';
import { LlmClient } from '../llm/client.js';
import { CostLedger } from '../llm/ledger.js';
import { createProvider } from '../llm/providers/create-provider.js';
import { SimulatedServer } from '../llm/simulated-server.js';
import { openStore } from '../store/open.js';
import { eventually } from '../testing/eventually.js';
import { openTransport } from '../transport/open.js';
import type { ConsumedRecord, Transport } from '../transport/transport.js';
import { actorTracing, traceLlm } from './runtime-tracing.js';

/** Actor types of this run only: their topics are new, so nothing of earlier runs is read. */
const RUN = randomUUID().slice(0, 8);

const sink = defineActor<string[], { note: string }, { noted: string }, void>({
  type: `trace-sink-${RUN}`,
  initialState: () => [],
  receive(ctx, message) {
    ctx.emit({ noted: message.note });
  },
  apply: (notes, event) => [...notes, event.noted],
});

const relay = defineActor<null, { note: string }, never, void>({
  type: `trace-relay-${RUN}`,
  initialState: () => null,
  receive(ctx, message) {
    ctx.tell(sink, ctx.self.id, { note: `relayed ${message.note}` });
  },
  apply: (state) => state,
});

const exporter = new sdk.InMemorySpanExporter();
let tracing: Tracing;
beforeAll(async () => {
  tracing = await startTracing({ serviceName: 'troupe-tracing-test', exporter });
});
afterAll(() => tracing.shutdown());

describe('traces across Kafka', () => {
  const cleanups: (() => Promise<void>)[] = [];
  /** Every record of the two actor topics, as a Kafka consumer of its own reads them. */
  const records: ConsumedRecord[] = [];
  let dir = '';
  let client: ActorClient;
  let clientTransport: Transport;

  const kafka = (name: string) => openTransport({ kind: 'kafka', brokers: infra().kafka.brokers, clientId: `tracing-${name}-${RUN}` });

  /** A runtime node running `actors`, with a store of its own. */
  async function node(name: string, actors: [typeof relay] | [typeof sink]): Promise<void> {
    const transport = await kafka(name);
    const store = await openStore({ kind: 'embedded', path: join(dir, `${name}.db`) });
    const system = await ActorSystem.start({
      transport,
      store,
      actors,
      partitions: 2,
      groupId: `troupe.tracing-test.${RUN}.${name}`,
      nodeId: `${name}-${RUN}`,
      tracer: actorTracing,
    });
    cleanups.push(async () => {
      await system.stop();
      await transport.close();
      await store.close();
    });
  }

  /** The finished turn span of the actor of `type` with id `id`; fails until there is exactly one. */
  function turn(type: string, id: string): sdk.ReadableSpan {
    const turns = exporter.getFinishedSpans().filter((span) => span.name === `turn ${type}` && span.attributes['troupe.actor.id'] === id);
    expect(turns).toHaveLength(1);
    return turns[0]!;
  }

  function recordOf(type: string, key: string): ConsumedRecord {
    const found = records.filter((record) => record.topic === actorTopic(type) && record.key === key);
    expect(found).toHaveLength(1);
    return found[0]!;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'troupe-tracing-'));
    await node('node-a', [relay]);
    await node('node-b', [sink]);
    clientTransport = await kafka('client');
    client = new ActorClient(clientTransport, { tracing: actorTracing });
    const reader = await clientTransport.subscribe({
      groupId: `troupe.tracing-test.${RUN}.reader`,
      topics: [actorTopic(relay.type), actorTopic(sink.type)],
      eachBatch: async (batch) => {
        for (const record of batch.records) {
          records.push(record);
          batch.resolveOffset(record.offset);
        }
      },
    });
    cleanups.push(async () => {
      await reader.close();
      await client.close();
      await clientTransport.close();
    });
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("makes the turn a tell reaches the child of the sender's span, on every node it passes", async () => {
    const tracer = trace.getTracer('tracing-test');
    const request: Span = await tracer.startActiveSpan('client request', async (span) => {
      await client.tell(relay, 'traced', { note: 'hello' });
      span.end();
      return span;
    });
    const { traceId, spanId } = request.spanContext();

    await eventually(async () => void turn(sink.type, 'traced'), 60_000, 100);
    const first = turn(relay.type, 'traced');
    const second = turn(sink.type, 'traced');
    expect(first.spanContext().traceId).toBe(traceId);
    expect(first.parentSpanContext).toMatchObject({ traceId, spanId, isRemote: true });
    expect(first.kind).toBe(SpanKind.CONSUMER);
    expect(first.attributes).toMatchObject({
      'troupe.actor.type': relay.type,
      'troupe.actor.id': 'traced',
      'troupe.turn.attempt': 1,
      'messaging.destination.name': actorTopic(relay.type),
    });
    expect(second.spanContext().traceId).toBe(traceId);
    expect(second.parentSpanContext).toMatchObject({ traceId, spanId: first.spanContext().spanId, isRemote: true });

    // What each message carried on Kafka: the span it was sent in, in its envelope and its header.
    await eventually(async () => void recordOf(sink.type, 'traced'), 30_000, 100);
    const told = recordOf(relay.type, 'traced');
    expect(told.headers.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(Envelope.decode(told.value).trace).toEqual({ traceparent: told.headers.traceparent, tracestate: '' });
    const relayed = recordOf(sink.type, 'traced');
    expect(relayed.headers.traceparent).toBe(`00-${traceId}-${first.spanContext().spanId}-01`);
    expect(Envelope.decode(relayed.value).trace?.traceparent).toBe(relayed.headers.traceparent);
  });

  it('starts a new trace at the turn of a message sent outside any trace', async () => {
    await client.tell(relay, 'untraced', { note: 'hello' });

    await eventually(async () => void turn(sink.type, 'untraced'), 60_000, 100);
    const first = turn(relay.type, 'untraced');
    const second = turn(sink.type, 'untraced');
    expect(first.parentSpanContext).toBeUndefined();
    expect(second.spanContext().traceId).toBe(first.spanContext().traceId);
    expect(second.parentSpanContext?.spanId).toBe(first.spanContext().spanId);
    await eventually(async () => void recordOf(relay.type, 'untraced'), 30_000, 100);
    const told = recordOf(relay.type, 'untraced');
    expect(told.headers.traceparent).toBeUndefined();
    expect(Envelope.decode(told.value).trace).toBeUndefined();
  });

  it('stamps nothing on the messages of a client given no tracer, even inside a span', async () => {
    const untraced = new ActorClient(clientTransport);
    const record = await trace.getTracer('tracing-test').startActiveSpan('client request', async (span) => {
      const made = untraced.record(relay, 'quiet', { note: 'hello' }, { id: 'quiet-1' });
      span.end();
      return made;
    });
    expect(record.headers).toBeUndefined();
    expect(Envelope.decode(record.value).trace).toBeUndefined();
  });
});

describe('LLM call spans', () => {
  it('records a failed call with its error, never the API key the provider echoed', async () => {
    const server = await SimulatedServer.start({ apiKey: `sk-right-${randomUUID()}` });
    const wrongKey = `sk-wrong-${randomUUID()}`;
    try {
      const provider = createProvider('simulated', { type: 'simulated', baseURL: server.openaiBaseURL }, { apiKey: wrongKey });
      const llm = traceLlm(new LlmClient({ providers: [provider], budgets: new Budgets(), ledger: new CostLedger() }));
      const callId = `acme/shop/requirements/${RUN}`;
      await expect(
        llm.complete({
          callId,
          provider: 'simulated',
          model: 'sim-small',
          messages: [{ role: 'user', content: 'Write the requirements.' }],
          maxOutputTokens: 64,
          account: { client: 'acme', project: 'acme/shop', role: 'pm', phase: 'requirements' },
        }),
      ).rejects.toThrow(/Incorrect API key provided/);

      const chat = exporter.getFinishedSpans().find((span) => span.attributes['troupe.llm.call_id'] === callId);
      expect(chat?.name).toBe('chat sim-small');
      expect(chat?.status).toEqual({
        code: SpanStatusCode.ERROR,
        message: expect.stringContaining('Incorrect API key provided: [redacted]'),
      });
      expect(chat?.attributes['error.type']).toBe('PROVIDER_FAILED');
      expect(chat?.events.map((event) => event.name)).toEqual(['exception']);
      expect(chat?.events[0]?.attributes?.['exception.message']).toContain('[redacted]');
      expect(JSON.stringify({ attributes: chat?.attributes, events: chat?.events, status: chat?.status })).not.toContain(wrongKey);
    } finally {
      await server.close();
    }
  });
});
