/**
 * The in-process PubSub: channels of local subscribers, delivered on later microtasks so that
 * a handler never runs inside `publish`, as with Redis. Also holds the argument rules and the
 * delivery rule both PubSubs share.
 */
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { PubSub, Unsubscribe } from '../services.js';
import { shown } from './rate-limiter.js';

/** One `subscribe` call; `active` turns false when it unsubscribes, even mid-delivery. */
export interface Subscriber {
  readonly onMessage: (message: Uint8Array) => void;
  active: boolean;
}

/** Refuses arguments neither PubSub can carry, naming the argument. */
export function checkPubSubArguments(method: 'publish' | 'subscribe', channel: string, payload: unknown): void {
  const refuse = (argument: string, rule: string, got: unknown) =>
    new RuntimeError(RuntimeErrorCode.InvalidArgument, `PubSub.${method}: \`${argument}\` ${rule}, got ${shown(got)}`);
  if (typeof channel !== 'string' || channel === '') throw refuse('channel', 'must be a non-empty string', channel);
  if (method === 'publish' && !(payload instanceof Uint8Array)) throw refuse('message', 'must be a Uint8Array', payload);
  if (method === 'subscribe' && typeof payload !== 'function') throw refuse('onMessage', 'must be a function', payload);
}

/**
 * Hands `message` to each subscriber still active, each on its own microtask: one handler's
 * throw surfaces as an uncaught error without keeping the message from the others, and
 * microtasks run in order, so each subscriber sees a publisher's messages in publish order.
 */
export function deliver(subscribers: Iterable<Subscriber>, message: Uint8Array): void {
  for (const subscriber of subscribers) {
    queueMicrotask(() => {
      if (subscriber.active) subscriber.onMessage(message);
    });
  }
}

/** Channels of one process. At most once: a message reaches those subscribed when it was published. */
export class EmbeddedPubSub implements PubSub {
  private readonly channels = new Map<string, Set<Subscriber>>();

  async publish(channel: string, message: Uint8Array): Promise<void> {
    checkPubSubArguments('publish', channel, message);
    const subscribers = this.channels.get(channel);
    // One copy for every subscriber, as Redis gives each connection one buffer: the publisher
    // may reuse its own as soon as publish returns.
    if (subscribers !== undefined) deliver([...subscribers], message.slice());
  }

  async subscribe(channel: string, onMessage: (message: Uint8Array) => void): Promise<Unsubscribe> {
    checkPubSubArguments('subscribe', channel, onMessage);
    const subscriber: Subscriber = { onMessage, active: true };
    let subscribers = this.channels.get(channel);
    if (subscribers === undefined) this.channels.set(channel, (subscribers = new Set()));
    subscribers.add(subscriber);
    return async () => {
      subscriber.active = false;
      subscribers.delete(subscriber);
      if (subscribers.size === 0 && this.channels.get(channel) === subscribers) this.channels.delete(channel);
    };
  }
}
