/**
 * The fan-out core of the stream: per topic a sequence number, a bounded replay buffer and a
 * cached snapshot. Each delta is serialised once; the deltas of a topic published within
 * `flushMs` go out together as one frame (newline-separated) through the transport's publish
 * (uWS's C++ topic tree). A subscriber's cost is then one socket write per topic per flush, not
 * one per delta: on loopback and on real networks alike the write and the reader's wake-up, not
 * the bytes, are what a busy stream pays for. A topic exists while someone follows it and for
 * `retainMs` after the last one leaves, so a client that reconnects within that window resumes
 * from the buffer instead of a snapshot.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { RuntimeError, RuntimeErrorCode } from '../errors.js';
import { withDefaults } from '../llm/options.js';
import type { Topic } from './access.js';
import type { DeltaMap, DeltaMessage, ResumedMessage, SnapshotMap, SnapshotMessage, TopicKey, TopicKind } from './protocol.js';

/** The current state of a topic, for its snapshot: `SnapshotMap[topic.kind]`. */
export type SnapshotSource = (topic: Topic) => SnapshotMap[TopicKind];

export interface TopicHubOptions {
  /** Sends a serialised message to every socket subscribed to `topic`. */
  publish: (topic: TopicKey, message: string) => void;
  snapshot: SnapshotSource;
  /** Deltas kept per topic for resuming clients. */
  replayMessages?: number;
  /** Bytes of deltas kept per topic; whichever of the two limits is reached first applies. */
  replayBytes?: number;
  /** How long a topic (and its replay buffer) outlives its last subscriber. */
  retainMs?: number;
  /** How long deltas gather before they are sent together; 0 sends what one turn of the event loop published. */
  flushMs?: number;
  /** A topic's gathered deltas are sent at once when they reach this size. */
  maxFrameBytes?: number;
  /** Unix ms with a fraction; stamps deltas. */
  now?: () => number;
}

export const TOPIC_HUB_DEFAULTS = {
  replayMessages: 1024,
  replayBytes: 1024 * 1024,
  retainMs: 60_000,
  flushMs: 5,
  maxFrameBytes: 64 * 1024,
  now: () => performance.timeOrigin + performance.now(),
} as const satisfies Partial<TopicHubOptions>;

/** How topics buffer and batch: what the gateway and the stream server let their callers tune. */
export type TopicTuning = Pick<TopicHubOptions, 'replayMessages' | 'replayBytes' | 'retainMs' | 'flushMs' | 'maxFrameBytes'>;

/** Where a subscriber resumes from: the epoch and sequence of the last message it applied. */
export interface ResumePoint {
  epoch: string;
  seq: number;
}

/** What a joining subscriber is sent first, in order, before it receives published deltas. */
export interface Joined {
  messages: string[];
  /** True when the client resumes from the replay buffer; false when it got a snapshot. */
  resumed: boolean;
}

interface TopicState {
  topic: Topic;
  epoch: string;
  seq: number;
  subscribers: number;
  /** Since when nobody follows it; undefined while someone does. */
  idleSince: number | undefined;
  replay: ReplayBuffer;
  snapshot: { seq: number; json: string } | undefined;
  /** Deltas published since the last flush, for the subscribers. */
  pending: string[];
  pendingBytes: number;
}

/**
 * Topics, their sequence numbers and replay buffers. Single-threaded by design: a join sends
 * its snapshot or replay and subscribes the socket in the same turn, so no delta can fall
 * between them.
 */
export class TopicHub {
  private readonly topics = new Map<TopicKey, TopicState>();
  private readonly options: Required<TopicHubOptions>;
  private readonly id = randomBytes(6).toString('base64url');
  private incarnations = 0;
  private readonly sweeper: NodeJS.Timeout;
  private readonly unflushed = new Set<TopicState>();
  private flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  constructor(options: TopicHubOptions) {
    this.options = withDefaults(TOPIC_HUB_DEFAULTS, options);
    for (const key of ['replayMessages', 'replayBytes', 'retainMs', 'flushMs', 'maxFrameBytes'] as const) {
      const value = this.options[key];
      if (!Number.isInteger(value) || value < 0) {
        throw new RuntimeError(RuntimeErrorCode.InvalidOptions, `TopicHub option ${key} must be a non-negative integer, got ${value}`);
      }
    }
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, this.options.retainMs / 2)).unref();
  }

  /**
   * Registers a subscriber of `topic` and returns what it must be sent first: the deltas after
   * `resume` when the buffer still holds all of them, else a snapshot. The caller subscribes
   * the socket to the topic in the same turn.
   */
  join(topic: Topic, resume?: ResumePoint): Joined {
    const existing = this.topics.get(topic.key);
    // What the others have not been sent yet is in the newcomer's snapshot already.
    if (existing !== undefined) this.flushTopic(existing);
    const state = existing ?? this.create(topic);
    let joined: Joined;
    try {
      joined = this.firstMessages(state, resume);
    } catch (error) {
      // A topic whose state cannot be read (a project nobody knows) is not kept for nobody.
      if (existing === undefined) this.topics.delete(topic.key);
      throw error;
    }
    state.subscribers += 1;
    state.idleSince = undefined;
    return joined;
  }

  /** Unregisters a subscriber of `key` (after the socket left the topic or closed). */
  leave(key: TopicKey): void {
    const state = this.topics.get(key);
    if (state === undefined) return;
    state.subscribers = Math.max(0, state.subscribers - 1);
    if (state.subscribers === 0) state.idleSince = this.options.now();
  }

  /** Publishes a change of `key` to its subscribers; a topic nobody follows costs a map lookup. */
  publish<K extends TopicKind>(kind: K, key: TopicKey, data: DeltaMap[K]): void {
    const state = this.topics.get(key);
    if (state === undefined) return;
    const at = this.options.now();
    if (state.idleSince !== undefined && at - state.idleSince > this.options.retainMs) {
      this.topics.delete(key);
      return;
    }
    state.seq += 1;
    const message = { type: 'delta', topic: key, kind, seq: state.seq, at, data } as DeltaMessage;
    const json = JSON.stringify(message);
    state.replay.push(state.seq, json);
    if (state.subscribers === 0) return;
    state.pending.push(json);
    state.pendingBytes += json.length;
    if (state.pendingBytes >= this.options.maxFrameBytes) {
      this.flushTopic(state);
      return;
    }
    this.unflushed.add(state);
    this.flushTimer ??=
      this.options.flushMs === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), this.options.flushMs);
  }

  /** Topics alive, subscribers over all of them, and bytes held by replay buffers. */
  stats(): { topics: number; subscribers: number; replayBytes: number } {
    let subscribers = 0;
    let replayBytes = 0;
    for (const state of this.topics.values()) {
      subscribers += state.subscribers;
      replayBytes += state.replay.bytes;
    }
    return { topics: this.topics.size, subscribers, replayBytes };
  }

  /** Stops the sweeper; topics are dropped. */
  close(): void {
    clearInterval(this.sweeper);
    clearTimeout(this.flushTimer as NodeJS.Timeout);
    clearImmediate(this.flushTimer as NodeJS.Immediate);
    this.topics.clear();
    this.unflushed.clear();
  }

  private flush(): void {
    this.flushTimer = undefined;
    for (const state of this.unflushed) this.flushTopic(state);
  }

  /** Sends a topic's gathered deltas as one frame, one message per line. */
  private flushTopic(state: TopicState): void {
    this.unflushed.delete(state);
    if (state.pending.length === 0) return;
    this.options.publish(state.topic.key, state.pending.join('\n'));
    state.pending = [];
    state.pendingBytes = 0;
  }

  private create(topic: Topic): TopicState {
    this.incarnations += 1;
    const state: TopicState = {
      topic,
      epoch: `${this.id}.${this.incarnations}`,
      seq: 0,
      subscribers: 0,
      idleSince: undefined,
      replay: new ReplayBuffer(this.options.replayMessages, this.options.replayBytes),
      snapshot: undefined,
      pending: [],
      pendingBytes: 0,
    };
    this.topics.set(topic.key, state);
    return state;
  }

  private firstMessages(state: TopicState, resume: ResumePoint | undefined): Joined {
    if (resume !== undefined && resume.epoch === state.epoch && resume.seq <= state.seq) {
      const deltas = state.replay.after(resume.seq);
      if (deltas !== undefined) {
        const resumed: ResumedMessage = { type: 'resumed', topic: state.topic.key, epoch: state.epoch, seq: resume.seq };
        return { messages: [JSON.stringify(resumed), ...deltas], resumed: true };
      }
    }
    return { messages: [this.snapshotOf(state)], resumed: false };
  }

  private snapshotOf(state: TopicState): string {
    if (state.snapshot?.seq !== state.seq) {
      const message = {
        type: 'snapshot',
        topic: state.topic.key,
        kind: state.topic.kind,
        epoch: state.epoch,
        seq: state.seq,
        data: this.options.snapshot(state.topic),
      } as SnapshotMessage;
      state.snapshot = { seq: state.seq, json: JSON.stringify(message) };
    }
    return state.snapshot.json;
  }

  private sweep(): void {
    const now = this.options.now();
    for (const [key, state] of this.topics) {
      if (state.idleSince !== undefined && now - state.idleSince > this.options.retainMs) this.topics.delete(key);
    }
  }
}

/** The newest deltas of a topic, bounded by count and bytes, contiguous in sequence. */
class ReplayBuffer {
  private readonly messages: string[] = [];
  /** Sequence number of messages[0]. */
  private first = 1;
  bytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  push(seq: number, json: string): void {
    if (this.messages.length === 0) this.first = seq;
    this.messages.push(json);
    this.bytes += json.length;
    while (this.messages.length > 0 && (this.messages.length > this.maxMessages || this.bytes > this.maxBytes)) {
      this.bytes -= this.messages.shift()!.length;
      this.first += 1;
    }
  }

  /** The messages after `seq`, or undefined when some of them are gone. */
  after(seq: number): string[] | undefined {
    const last = this.first + this.messages.length - 1;
    if (seq >= last) return [];
    if (seq < this.first - 1) return undefined;
    return this.messages.slice(seq - this.first + 1);
  }
}
