/**
 * The Redis PubSub: PUBLISH on the shared connection, and one dedicated subscriber connection
 * per node on which every local subscriber of a channel shares a single SUBSCRIBE, counted
 * locally. Messages stay bytes end to end.
 */
import type { Redis } from 'ioredis';

import { checkPubSubArguments, deliver, type Subscriber } from '../embedded/pub-sub.js';
import type { PubSub, Unsubscribe } from '../services.js';

/** The local side of one Redis channel. */
interface Channel {
  readonly subscribers: Set<Subscriber>;
  /** Whether the connection is subscribed, as of the last change that finished. */
  subscribed: boolean;
  /** The tail of this channel's SUBSCRIBE/UNSUBSCRIBE changes, which run one at a time. */
  changes: Promise<void>;
}

/**
 * Channels in Redis as `<keyPrefix>pubsub:<channel>`. Redis pub/sub is at most once: a node
 * that is disconnected misses what is published meanwhile (ioredis re-subscribes on reconnect).
 */
export class RedisPubSub implements PubSub {
  private readonly channels = new Map<string, Channel>();

  /**
   * @param publisher any connection; PUBLISH goes out on it.
   * @param subscriber a connection for this PubSub alone: once subscribed Redis allows it no
   *   other commands.
   */
  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly keyPrefix: string,
  ) {
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const local = this.channels.get(channel.toString());
      if (local !== undefined) deliver([...local.subscribers], message);
    });
  }

  async publish(channel: string, message: Uint8Array): Promise<void> {
    checkPubSubArguments('publish', channel, message);
    // A copy: while disconnected ioredis queues the command, and the caller may reuse its buffer meanwhile.
    await this.publisher.publish(this.redisChannel(channel), Buffer.from(message));
  }

  async subscribe(channel: string, onMessage: (message: Uint8Array) => void): Promise<Unsubscribe> {
    checkPubSubArguments('subscribe', channel, onMessage);
    const name = this.redisChannel(channel);
    let local = this.channels.get(name);
    if (local === undefined) {
      local = { subscribers: new Set(), subscribed: false, changes: Promise.resolve() };
      this.channels.set(name, local);
    }
    const subscriber: Subscriber = { onMessage, active: true };
    local.subscribers.add(subscriber);
    const leave = (): void => {
      subscriber.active = false;
      local.subscribers.delete(subscriber);
    };
    try {
      await this.reconcile(name, local);
    } catch (error) {
      leave();
      this.forgetIfIdle(name, local);
      throw error;
    }
    let unsubscribed: Promise<void> | undefined;
    return () =>
      (unsubscribed ??= (async () => {
        leave();
        await this.reconcile(name, local);
      })());
  }

  /** Stops every delivery at once; the caller then closes the connections. */
  close(): void {
    for (const local of this.channels.values()) for (const subscriber of local.subscribers) subscriber.active = false;
    this.channels.clear();
  }

  private redisChannel(channel: string): string {
    return `${this.keyPrefix}pubsub:${channel}`;
  }

  /**
   * Subscribes the connection to `name` if anyone listens locally, else unsubscribes it.
   * Changes queue per channel, so a subscribe that resolves has seen its SUBSCRIBE confirmed even
   * when another local subscriber's is still in flight, and an UNSUBSCRIBE never overtakes one.
   */
  private reconcile(name: string, local: Channel): Promise<void> {
    const change = local.changes.then(async () => {
      const wanted = local.subscribers.size > 0;
      if (wanted !== local.subscribed) {
        await (wanted ? this.subscriber.subscribe(name) : this.subscriber.unsubscribe(name));
        local.subscribed = wanted;
      }
      this.forgetIfIdle(name, local);
    });
    // A failed change must not stall the ones queued after it; its own caller gets the error.
    local.changes = change.catch(() => undefined);
    return change;
  }

  private forgetIfIdle(name: string, local: Channel): void {
    if (local.subscribers.size === 0 && !local.subscribed && this.channels.get(name) === local) this.channels.delete(name);
  }
}
