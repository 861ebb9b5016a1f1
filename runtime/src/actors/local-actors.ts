/**
 * Non-durable actors (`durable: false`): in-memory mailboxes on this node, with the same
 * turn-based, per-actor ordering as durable ones but no log, journal or serialisation.
 * This is the hot in-process path, so a message handled synchronously costs a queue push, a
 * microtask and a call: no allocation per message beyond what the caller sends.
 */
import { ActorError, RuntimeErrorCode, toError } from '../errors.js';
import type { ActorRef } from '../store/store.js';
import type { ActorContext, ActorType } from './actor.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyActorType = ActorType<any, any, any, any>;

interface Settle {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** How local turns reach the durable world; supplied by the actor system. Sends are not awaited. */
export interface DurableSends {
  tell(type: AnyActorType, id: string, message: unknown): void;
  publish(topic: string, key: string, value: Uint8Array): void;
}

/**
 * One non-durable actor: its state, its mailbox (messages, and for asks the promise to settle,
 * in two parallel arrays) and the context its turns see, reused from turn to turn.
 */
class Mailbox implements ActorContext<unknown, unknown, unknown> {
  state: unknown;
  readonly messages: unknown[] = [];
  readonly settles: (Settle | undefined)[] = [];
  head = 0;
  draining = false;
  /** The sweep generation in which the actor last worked, for passivation. */
  generation = 0;
  /** Number of the message in its turn, from which `messageId` is derived when asked for. */
  turn = 0;
  private turnNow: number | undefined;
  /** Bound once: scheduling a drain then allocates nothing. */
  readonly drainSoon = (): void => this.drain();

  constructor(
    readonly self: ActorRef,
    readonly type: AnyActorType,
    private readonly actors: LocalActors,
  ) {
    this.state = type.initialState(self.id);
  }

  get now(): number {
    this.turnNow ??= this.actors.clock();
    return this.turnNow;
  }

  get messageId(): string {
    return `${this.self.type}/${this.self.id}#${this.turn}`;
  }

  get attempt(): number {
    return 1;
  }

  emit(event: unknown): void {
    this.state = this.type.apply(this.state, event);
  }

  tell<M>(target: ActorType<unknown, M, unknown, unknown>, id: string, message: M): void {
    this.actors.deliver(target, id, message, undefined);
  }

  schedule(): void {
    throw new ActorError(RuntimeErrorCode.InvalidOptions, this.self, 'a non-durable actor cannot schedule durable timers');
  }

  cancelTimer(): void {
    throw new ActorError(RuntimeErrorCode.InvalidOptions, this.self, 'a non-durable actor has no durable timers');
  }

  publish(topic: string, key: string, value: Uint8Array): void {
    this.actors.durable.publish(topic, key, value);
  }

  /** Runs queued messages in order; suspends only at a handler that returns a promise. */
  drain(): void {
    while (this.head < this.messages.length) {
      const index = this.head;
      const message = this.messages[index];
      const settle = this.settles[index];
      this.messages[index] = undefined;
      this.settles[index] = undefined;
      this.head += 1;
      this.turn += 1;
      this.turnNow = undefined;
      let reply: unknown;
      try {
        reply = this.type.receive(this, message);
      } catch (thrown) {
        this.fail(settle, thrown);
        continue;
      }
      if (reply instanceof Promise) {
        reply.then(
          (value: unknown) => {
            settle?.resolve(value);
            this.drain();
          },
          (thrown: unknown) => {
            this.fail(settle, thrown);
            this.drain();
          },
        );
        return;
      }
      settle?.resolve(reply);
    }
    this.messages.length = 0;
    this.settles.length = 0;
    this.head = 0;
    this.draining = false;
    this.generation = this.actors.generation;
  }

  private fail(settle: Settle | undefined, thrown: unknown): void {
    const error = new ActorError(RuntimeErrorCode.TurnFailed, this.self, toError(thrown).message, { cause: thrown });
    if (settle) settle.reject(error);
    else this.actors.onError(error);
  }
}

export class LocalActors {
  /** Mailboxes by actor type, then id: two lookups instead of building a key per message. */
  private readonly mailboxes = new Map<AnyActorType, Map<string, Mailbox>>();
  private count = 0;
  /** Advanced by each passivation sweep; cheaper than reading the clock after every turn. */
  generation = 0;

  constructor(
    readonly clock: () => number,
    readonly durable: DurableSends,
    readonly onError: (error: Error) => void,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Enqueues a message for a non-durable actor; durable targets go to `tellDurable`. */
  deliver(type: AnyActorType, id: string, message: unknown, settle: Settle | undefined): void {
    if (type.durable !== false) {
      this.durable.tell(type, id, message);
      return;
    }
    let byId = this.mailboxes.get(type);
    if (byId === undefined) {
      byId = new Map();
      this.mailboxes.set(type, byId);
    }
    let mailbox = byId.get(id);
    if (mailbox === undefined) {
      mailbox = new Mailbox({ type: type.type, id }, type, this);
      byId.set(id, mailbox);
      this.count += 1;
    }
    mailbox.messages.push(message);
    mailbox.settles.push(settle);
    if (!mailbox.draining) {
      mailbox.draining = true;
      queueMicrotask(mailbox.drainSoon);
    }
  }

  ask<R>(type: AnyActorType, id: string, message: unknown): Promise<R> {
    return new Promise<R>((resolve, reject) => this.deliver(type, id, message, { resolve: resolve as (value: unknown) => void, reject }));
  }

  /**
   * Drops mailboxes that did no work for two sweep intervals (the system sweeps twice per
   * passivation period); their state is gone, as a non-durable actor's may be at any time.
   */
  sweep(): void {
    const current = this.generation;
    this.generation += 1;
    for (const byId of this.mailboxes.values()) {
      for (const [id, mailbox] of byId) {
        if (!mailbox.draining && mailbox.generation < current - 1) {
          byId.delete(id);
          this.count -= 1;
        }
      }
    }
  }

  clear(): void {
    this.mailboxes.clear();
    this.count = 0;
  }
}
