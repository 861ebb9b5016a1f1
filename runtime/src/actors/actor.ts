/**
 * The actor API: an actor type is a plain definition — how to start, how to decide, how to
 * fold an event into state — and the runtime does activation, ordering, persistence, timers
 * and supervision around it.
 */
import type { ActorRef } from '../store/store.js';

/** How state, events and messages become bytes. */
export interface Codec {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** The default codec: UTF-8 JSON. Values must be JSON-serialisable. */
export const jsonCodec: Codec = {
  encode: (value) => Buffer.from(JSON.stringify(value)),
  decode: (bytes) => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as unknown,
};

/** When a durable timer fires: after a delay or at an instant (unix ms). */
export type TimerDue = { delayMs: number } | { at: number };

/** What a handler may do during its turn. Effects are durable only when the turn commits. */
export interface ActorContext<State, Message, Event> {
  readonly self: ActorRef;
  /** The state so far, including events emitted earlier in this turn. */
  readonly state: State;
  /** The turn's time (from the system's clock), stable through the turn. */
  readonly now: number;
  /** The id of the message being handled; deterministic ids derived from it survive replays. */
  readonly messageId: string;
  /** 1 on the first try of this message, then +1 per retry. */
  readonly attempt: number;
  /** Journals an event and folds it into `state` at once. */
  emit(event: Event): void;
  /** Sends a message to another actor once this turn is durable. */
  tell<M>(target: ActorType<unknown, M, unknown, unknown>, id: string, message: M): void;
  /**
   * Appends a record to a topic that is not an actor's (e.g. `troupe.events`) once this turn is
   * durable; a replayed turn appends the same record again, which readers drop by content.
   */
  publish(topic: string, key: string, value: Uint8Array): void;
  /** Delivers `message` to this actor at `due`, even across restarts; replaces a timer of the same name. */
  schedule(name: string, due: TimerDue, message: Message): void;
  cancelTimer(name: string): void;
}

/**
 * A type of virtual actor.
 *
 * @example
 * const counter = defineActor({
 *   type: 'counter',
 *   initialState: () => ({ total: 0 }),
 *   receive(ctx, message: { add: number } | { get: true }) {
 *     if ('add' in message) ctx.emit({ added: message.add });
 *     return ctx.state.total;
 *   },
 *   apply: (state, event: { added: number }) => ({ total: state.total + event.added }),
 * });
 */
export interface ActorType<State, Message, Event, Reply> {
  /** Names the actor's topic, `troupe.actor.<type>`: lowercase letters, digits, `-` and `.`. */
  readonly type: string;
  initialState(id: string): State;
  /** Handles one message at a time per actor; the returned value answers an `ask`. */
  receive(context: ActorContext<State, Message, Event>, message: Message): Reply | Promise<Reply>;
  /** Folds an event into state. Pure: it runs live and again on recovery. */
  apply(state: State, event: Event): State;
  /** Keep a snapshot every this many events (default 100). */
  readonly snapshotEvery?: number;
  /**
   * Whether messages and state are durable (default true). A non-durable actor lives on the
   * node that messages it, in memory only: its mailbox is a queue, not a topic, and nothing is
   * journaled — for per-request work whose loss a durable caller would notice and redo.
   */
  readonly durable?: boolean;
  /** Encoding of messages, events, state and replies (default JSON). */
  readonly codec?: Codec;
}

const TYPE_NAME = /^[a-z][a-z0-9.-]{0,62}$/;

/** Declares an actor type; checks its name once, here. */
export function defineActor<State, Message, Event, Reply>(
  definition: ActorType<State, Message, Event, Reply>,
): ActorType<State, Message, Event, Reply> {
  if (!TYPE_NAME.test(definition.type)) {
    throw new TypeError(`actor type "${definition.type}" must match ${TYPE_NAME} (it names a topic)`);
  }
  if (definition.snapshotEvery !== undefined && !(Number.isInteger(definition.snapshotEvery) && definition.snapshotEvery > 0)) {
    throw new TypeError(`actor type "${definition.type}": snapshotEvery must be a positive integer, got ${definition.snapshotEvery}`);
  }
  return definition;
}

/** The mailbox topic of an actor type. */
export function actorTopic(type: string): string {
  return `troupe.actor.${type}`;
}
