/**
 * Sends messages to actors from anywhere — a runtime node, the gRPC API, a test — without
 * running actors: `tell` appends to the actor's topic; `ask` also waits for the reply.
 */
import { randomUUID } from 'node:crypto';
import { Envelope, encodeMessage, type TraceContext } from '@troupe/proto';
import { ActorError, RuntimeError, RuntimeErrorCode, toError } from '../errors.js';
import type { ActorRef } from '../store/store.js';
import type { ProducerRecord, Subscription, Transport } from '../transport/transport.js';
import { actorTopic, jsonCodec, type ActorType, type Codec } from './actor.js';
import { Packer } from './packing.js';

/**
 * The most bytes of one message as it travels (its envelope, or a published record's value). A
 * Kafka broker refuses a record over its `message.max.bytes` (1,048,588 by default) every time it
 * is sent, and a turn's outbox message that never goes out holds its actor's partition; so a
 * larger message is refused when it is made, on every transport. Large content belongs in the
 * artifact store, with a reference in the message.
 */
export const MAX_MESSAGE_BYTES = 900_000;

/** Throws TOO_LARGE when `bytes` of a message to `to` pass {@link MAX_MESSAGE_BYTES}. */
export function checkMessageSize(to: { type: string; id: string }, bytes: number): void {
  if (bytes > MAX_MESSAGE_BYTES)
    throw new ActorError(
      RuntimeErrorCode.TooLarge,
      to,
      `a message of ${bytes.toLocaleString('en-US')} bytes is over the limit of ${MAX_MESSAGE_BYTES.toLocaleString('en-US')}; put large content in the artifact store and send its reference`,
    );
}

/** Replies to asks; each client reads the ones keyed with its id. */
export const REPLY_TOPIC = 'troupe.replies';
const REPLY_PARTITIONS = 4;

/**
 * Carries trace context on the messages a client sends (OpenTelemetry's: tracing/runtime-tracing.ts);
 * the default carries none.
 */
export interface MessageTracing {
  /** The W3C trace context of the span active now, for a message sent now; undefined outside any recorded trace. */
  current(): TraceContext | undefined;
}

/** Carries no trace context. */
export const UNTRACED: MessageTracing = { current: () => undefined };

/** How a handler's turn ended, as sent back to the asker. */
export type AskOutcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };

export interface ActorClientOptions {
  /** Unique per process: replies are addressed to it (default: random). */
  clientId: string;
  /** Prefix of the reply consumer group (default `troupe.runtime`). */
  groupId: string;
  /** How long `ask` waits by default (default 30 s). */
  askTimeoutMs: number;
  clock: () => number;
  /** Stamps each message with the trace it is sent in, in its envelope and its `traceparent` header (default: none). */
  tracing: MessageTracing;
}

export const ACTOR_CLIENT_DEFAULTS = {
  groupId: 'troupe.runtime',
  askTimeoutMs: 30_000,
  clock: Date.now,
  tracing: UNTRACED,
} as const satisfies Partial<ActorClientOptions>;

interface PendingAsk {
  codec: Codec;
  settle(outcome: AskOutcome): void;
}

/** Identifies a message: the caller's id makes a send idempotent, and causation links it to its input. */
export interface MessageMeta {
  id: string;
  replyTo?: ActorRef;
  causationId?: string;
  correlationId?: string;
}

/**
 * @example
 * const client = new ActorClient(transport);
 * await client.tell(counter, 'c1', { add: 2 }, { id: 'order-17' });
 * const total = await client.ask(counter, 'c1', { get: true }, { timeoutMs: 5_000 });
 */
export class ActorClient {
  readonly options: ActorClientOptions;
  private readonly pending = new Map<string, PendingAsk>();
  private readonly packer: Packer;
  private replies: Promise<Subscription> | undefined;
  private closed = false;

  constructor(
    private readonly transport: Transport,
    options: Partial<ActorClientOptions> = {},
  ) {
    this.options = { ...ACTOR_CLIENT_DEFAULTS, clientId: randomUUID(), ...options };
    this.packer = new Packer(transport);
    if (!Number.isInteger(this.options.askTimeoutMs) || this.options.askTimeoutMs <= 0) {
      throw new RuntimeError(
        RuntimeErrorCode.InvalidOptions,
        `ActorClient option askTimeoutMs must be a positive integer, got ${this.options.askTimeoutMs}`,
      );
    }
  }

  /**
   * Sends a message; resolves once it is durable in the actor's topic. Pass `id` to make the
   * send idempotent: a second message with the same id is dropped by the actor.
   */
  tell<M>(type: ActorType<unknown, M, unknown, unknown>, id: string, message: M, options: { id?: string } = {}): Promise<void> {
    // Not async: a tell is the hot path, and the packer's promise serves as it is.
    try {
      this.ensureOpen();
      return this.packer.send([this.record(type, id, message, { id: options.id ?? randomUUID() })]);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends a message and waits for the value its handler returns; a dead-lettered message rejects. */
  async ask<M, R>(type: ActorType<unknown, M, unknown, R>, id: string, message: M, options: { timeoutMs?: number } = {}): Promise<R> {
    this.ensureOpen();
    await this.listenForReplies();
    const askId = randomUUID();
    const timeoutMs = options.timeoutMs ?? this.options.askTimeoutMs;
    const reply = new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(askId);
        reject(
          new ActorError(RuntimeErrorCode.AskTimeout, { type: type.type, id }, `no reply within ${timeoutMs} ms`, { retriable: true }),
        );
      }, timeoutMs);
      this.pending.set(askId, {
        codec: type.codec ?? jsonCodec,
        settle: (outcome) => {
          clearTimeout(timer);
          if (outcome.ok) resolve(outcome.value as R);
          else reject(new ActorError(outcome.code as RuntimeErrorCode, { type: type.type, id }, outcome.message));
        },
      });
    });
    try {
      await this.packer.send([this.record(type, id, message, { id: askId, replyTo: { type: 'client', id: this.options.clientId } })]);
    } catch (error) {
      this.settle(askId, { ok: false, code: RuntimeErrorCode.Closed, message: toError(error).message });
    }
    return reply;
  }

  /** Resolves the ask `askId` of this client; a no-op when it already timed out. */
  settle(askId: string, outcome: AskOutcome): void {
    const pending = this.pending.get(askId);
    if (pending === undefined) return;
    this.pending.delete(askId);
    pending.settle(outcome);
  }

  /** Sends records as tells are sent: those to actor topics in packs (see packing.ts). */
  send(records: readonly ProducerRecord[]): Promise<void> {
    return this.packer.send(records);
  }

  /** Sends an ask's outcome to the client that asked, wherever it runs. */
  async reply(envelope: Envelope, outcome: AskOutcome, codec: Codec): Promise<void> {
    const to = envelope.replyTo;
    if (to === undefined) return;
    if (to.id === this.options.clientId) {
      this.settle(envelope.id, outcome);
      return;
    }
    const value = encodeMessage(Envelope, {
      id: `${envelope.id}/reply`,
      type: 'reply',
      payload: asBuffer(codec.encode(outcome)),
      attempt: 1,
      causationId: envelope.id,
      correlationId: envelope.correlationId || envelope.id,
      createdAt: this.options.clock(),
    });
    await this.transport.createTopic(REPLY_TOPIC, REPLY_PARTITIONS);
    await this.transport.send([{ topic: REPLY_TOPIC, key: to.id, value }]);
  }

  /** The record that carries `message` to actor `(type, id)`. */
  record(
    type: ActorType<unknown, unknown, unknown, unknown>,
    id: string,
    message: unknown,
    meta: MessageMeta,
  ): ProducerRecord & { key: string } {
    const codec = type.codec ?? jsonCodec;
    const trace = this.options.tracing.current();
    const value = encodeMessage(Envelope, {
      id: meta.id,
      target: { type: type.type, id },
      type: messageKind(message),
      payload: asBuffer(codec.encode(message)),
      attempt: 1,
      causationId: meta.causationId ?? '',
      // A flow's first message leaves it empty rather than repeating its id on the wire.
      correlationId: meta.correlationId === meta.id ? '' : (meta.correlationId ?? ''),
      createdAt: this.options.clock(),
      replyTo: meta.replyTo,
      trace,
    });
    checkMessageSize({ type: type.type, id }, value.byteLength);
    const record: ProducerRecord & { key: string } = { topic: actorTopic(type.type), key: id, value };
    // Mirrored in the record's headers, where Kafka tools and other consumers look for it.
    if (trace !== undefined) {
      record.headers =
        trace.tracestate === '' ? { traceparent: trace.traceparent } : { traceparent: trace.traceparent, tracestate: trace.tracestate };
    }
    return record;
  }

  /** Stops reading replies; pending asks reject with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A subscription that never came has nothing to close; its failure was the asks' to report.
    await (await this.replies?.catch(() => undefined))?.close();
    for (const askId of [...this.pending.keys()])
      this.settle(askId, { ok: false, code: RuntimeErrorCode.Closed, message: 'the client closed before the reply came' });
  }

  /**
   * Replies from nodes elsewhere arrive on a shared topic; this client reads it from its end. A
   * subscription that failed (a broker away for a moment) fails the asks waiting for it, and the
   * next ask tries again.
   */
  private listenForReplies(): Promise<Subscription> {
    this.replies ??= this.subscribeToReplies().catch((error: unknown) => {
      this.replies = undefined;
      throw error;
    });
    return this.replies;
  }

  private subscribeToReplies(): Promise<Subscription> {
    return this.transport.createTopic(REPLY_TOPIC, REPLY_PARTITIONS).then(() =>
      this.transport.subscribe({
        groupId: `${this.options.groupId}.replies.${this.options.clientId}`,
        topics: [REPLY_TOPIC],
        start: 'latest',
        eachBatch: async (batch) => {
          for (const record of batch.records) {
            if (record.key === this.options.clientId) {
              const envelope = Envelope.decode(record.value);
              const pending = this.pending.get(envelope.causationId);
              if (pending) this.settle(envelope.causationId, pending.codec.decode(envelope.payload) as AskOutcome);
            }
            batch.resolveOffset(record.offset);
          }
        },
      }),
    );
  }

  private ensureOpen(): void {
    if (this.closed) throw new RuntimeError(RuntimeErrorCode.Closed, 'the actor client is closed');
  }
}

/** The bytes as a Buffer, as the envelope's `payload` is typed: a view, not a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function messageKind(message: unknown): string {
  return typeof message === 'object' && message !== null && 'type' in message && typeof message.type === 'string' ? message.type : '';
}
