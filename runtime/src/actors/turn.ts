/**
 * One try of a durable actor's turn: the ActorContext its handler gets, and what the handler
 * asked for (events, messages, timers), kept here until the actor system commits the turn.
 * A class rather than closures made per turn: a busy node runs tens of thousands a second.
 */
import type { Envelope } from '@troupe/proto';
import type { ActorRef, OutboxMessage, Timer } from '../store/store.js';
import { partitionFor } from '../transport/partitioner.js';
import type { ActorContext, ActorType, Codec, TimerDue } from './actor.js';
import { checkMessageSize, type ActorClient } from './actor-client.js';

// A node runs actor types of unrelated state and message types side by side.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyActorType = ActorType<any, any, any, any>;

/** A message to an actor that is not durable, delivered in memory once the turn commits. */
export type LocalTell = [type: AnyActorType, id: string, message: unknown];

/** The actor, and the system it runs in, as far as its turns need them. */
export interface TurnHost {
  type: AnyActorType;
  codec: Codec;
  client: ActorClient;
  /** Partitions of the actor topics, which name a timer's shard. */
  partitions: number;
}

export class Turn implements ActorContext<unknown, unknown, unknown> {
  readonly events: Uint8Array[] = [];
  /** Filled in only when the handler asks; most turns set no timer and send nothing. */
  outbox: OutboxMessage[] | undefined;
  localTells: LocalTell[] | undefined;
  timersSet: Timer[] | undefined;
  timersCancelled: string[] | undefined;
  #state: unknown;

  constructor(
    private readonly host: TurnHost,
    readonly self: ActorRef,
    state: unknown,
    private readonly envelope: Envelope,
    readonly attempt: number,
    readonly now: number,
  ) {
    this.#state = state;
  }

  get state(): unknown {
    return this.#state;
  }

  get messageId(): string {
    return this.envelope.id;
  }

  emit(event: unknown): void {
    this.events.push(this.host.codec.encode(event));
    this.#state = this.host.type.apply(this.#state, event);
  }

  tell(target: AnyActorType, id: string, message: unknown): void {
    if (target.durable === false) {
      (this.localTells ??= []).push([target, id, message]);
      return;
    }
    const outbox = (this.outbox ??= []);
    // Derived from the input's id, so a replayed turn re-emits the same message ids.
    const messageId = `${this.envelope.id}/${outbox.length}`;
    const record = this.host.client.record(target, id, message, {
      id: messageId,
      causationId: this.envelope.id,
      correlationId: this.envelope.correlationId || this.envelope.id,
    });
    outbox.push({ id: messageId, topic: record.topic, key: record.key, value: record.value, headers: record.headers ?? {} });
  }

  publish(topic: string, key: string, value: Uint8Array): void {
    checkMessageSize({ type: topic, id: key }, value.byteLength);
    const outbox = (this.outbox ??= []);
    outbox.push({ id: `${this.envelope.id}/${outbox.length}`, topic, key, value, headers: {} });
  }

  schedule(name: string, due: TimerDue, message: unknown): void {
    const encoded = this.host.codec.encode(message);
    // Its envelope, when it fires, adds little to the message.
    checkMessageSize(this.self, encoded.byteLength);
    (this.timersSet ??= []).push({
      actor: this.self,
      name,
      dueAt: 'at' in due ? due.at : this.now + due.delayMs,
      shard: shardOf(this.self.type, partitionFor(this.self.id, this.host.partitions)),
      message: encoded,
    });
  }

  cancelTimer(name: string): void {
    // Stores apply a turn's cancels before its sets, so a timer set earlier in this turn goes here.
    this.timersSet = this.timersSet?.filter((timer) => timer.name !== name);
    (this.timersCancelled ??= []).push(name);
  }
}

/** Which node fires an actor's timers: the owner of `<actor type>/<partition>`. */
export function shardOf(actorType: string, partition: number): string {
  return `${actorType}/${partition}`;
}
