/**
 * The stream worker: owns the WebSocket to the gateway so that decoding a busy stream never
 * blocks the page. It reconnects with jittered backoff, resumes each topic from the last
 * sequence it applied, asks for a fresh snapshot when it sees a gap, and hands the page one
 * batch per frame, with repeated upserts of the same item collapsed to the newest.
 */
import * as Comlink from 'comlink';
import type { BearerSubprotocolPrefix, ServerMessage, StreamCloseCodes, StreamSubprotocol, TopicKey } from '$protocol';
import type { StreamPage, StreamWorker, WorkerEvent } from './contract';

const SUBPROTOCOL: StreamSubprotocol = 'troupe.v1';
const BEARER: BearerSubprotocolPrefix = 'bearer.';
const TOKEN_EXPIRED: StreamCloseCodes['tokenExpired'] = 4401;
const FLUSH_MS = 16;
const BACKOFF_MS = { first: 250, max: 10_000 };

interface Followed {
  /** Where the topic stands, once a snapshot arrived; the resume point after a reconnect. */
  epoch: string | undefined;
  seq: number;
}

class Stream implements StreamWorker {
  private socket: WebSocket | undefined;
  private url = '';
  private token = '';
  private page: StreamPage | undefined;
  private readonly topics = new Map<TopicKey, Followed>();
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = true;
  private queue: WorkerEvent[] = [];
  /** Queue positions of upserts that a newer one of the same item may replace. */
  private latest = new Map<string, number>();
  private flushing: ReturnType<typeof setTimeout> | undefined;

  open(url: string, token: string, page: StreamPage): void {
    this.close();
    this.url = url;
    this.token = token;
    this.page = page;
    this.closed = false;
    this.attempt = 0;
    this.connect();
  }

  subscribe(topic: TopicKey): void {
    if (this.topics.has(topic)) return;
    this.topics.set(topic, { epoch: undefined, seq: 0 });
    this.send({ type: 'subscribe', topic });
  }

  unsubscribe(topic: TopicKey): void {
    if (this.topics.delete(topic)) this.send({ type: 'unsubscribe', topic });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.socket?.close(1000, 'page closed');
    this.socket = undefined;
  }

  private connect(): void {
    this.emit({ type: 'state', state: this.attempt === 0 ? 'connecting' : 'reconnecting' });
    const socket = new WebSocket(this.url, [SUBPROTOCOL, `${BEARER}${this.token}`]);
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.emit({ type: 'state', state: 'open' });
      for (const [topic, followed] of this.topics) {
        const resume = followed.epoch === undefined ? undefined : { epoch: followed.epoch, seq: followed.seq };
        this.send(resume === undefined ? { type: 'subscribe', topic } : { type: 'subscribe', topic, resume });
      }
    };
    // A frame carries one message per line: the gateway sends deltas published together in one frame.
    socket.onmessage = (message) => {
      for (const line of String(message.data).split('\n')) this.receive(JSON.parse(line) as ServerMessage);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket || this.closed) return;
      this.socket = undefined;
      if (event.code === TOKEN_EXPIRED) {
        this.stop('expired');
        return;
      }
      // A refused upgrade looks like any failed connection in a browser; the HTTP API says whether it was the token.
      if (!opened) void this.checkToken().then((valid) => (valid ? this.reconnectLater() : this.stop('unauthorized')));
      else this.reconnectLater();
    };
  }

  private receive(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.emit({ type: 'welcome', identity: message.identity });
        return;
      case 'snapshot': {
        const followed = this.topics.get(message.topic);
        if (followed === undefined) return;
        followed.epoch = message.epoch;
        followed.seq = message.seq;
        // Upserts queued before the snapshot must stay before it.
        this.latest.clear();
        this.emit({ type: 'snapshot', topic: message.topic, kind: message.kind, data: message.data } as WorkerEvent);
        return;
      }
      case 'resumed': {
        const followed = this.topics.get(message.topic);
        if (followed === undefined) return;
        followed.epoch = message.epoch;
        followed.seq = message.seq;
        return;
      }
      case 'delta': {
        const followed = this.topics.get(message.topic);
        if (followed === undefined || followed.epoch === undefined || message.seq <= followed.seq) return;
        if (message.seq !== followed.seq + 1) {
          // A gap: something was lost, so start the topic over from a snapshot.
          followed.epoch = undefined;
          this.send({ type: 'subscribe', topic: message.topic });
          return;
        }
        followed.seq = message.seq;
        this.emit({ type: 'delta', topic: message.topic, kind: message.kind, data: message.data } as WorkerEvent, upsertKey(message));
        return;
      }
      case 'error':
        this.emit({ type: 'error', topic: message.topic as TopicKey | undefined, code: message.code, message: message.message });
        return;
      case 'unsubscribed':
        return;
    }
  }

  private send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private reconnectLater(): void {
    this.attempt += 1;
    const delay = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** (this.attempt - 1)) * (0.5 + Math.random() / 2);
    this.emit({ type: 'state', state: 'reconnecting' });
    this.retry = setTimeout(() => {
      if (!this.closed) this.connect();
    }, delay);
  }

  private async checkToken(): Promise<boolean> {
    try {
      const response = await fetch(new URL('/api/me', this.url.replace(/^ws/, 'http')), {
        headers: { authorization: `Bearer ${this.token}` },
      });
      return response.status !== 401;
    } catch {
      return true;
    }
  }

  private stop(state: 'expired' | 'unauthorized'): void {
    this.closed = true;
    this.emit({ type: 'state', state });
  }

  /** Queues an event for the next batch; an upsert replaces a queued one of the same item. */
  private emit(event: WorkerEvent, key?: string): void {
    const queued = key === undefined ? undefined : this.latest.get(key);
    if (queued !== undefined) this.queue[queued] = event;
    else {
      if (key !== undefined) this.latest.set(key, this.queue.length);
      this.queue.push(event);
    }
    this.flushing ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.flushing = undefined;
    const batch = this.queue;
    this.queue = [];
    this.latest.clear();
    this.page?.deliver(batch);
  }
}

/** The item a delta upserts, when a newer delta of it makes this one redundant. */
function upsertKey(message: Extract<ServerMessage, { type: 'delta' }>): string | undefined {
  switch (message.kind) {
    case 'projects':
      return `${message.topic}|${message.data.card.namespace}/${message.data.card.name}`;
    case 'pools':
      return `${message.topic}|${message.data.pool.namespace}/${message.data.pool.name}`;
    case 'costs': {
      const { row } = message.data;
      return `${message.topic}|${row.namespace}/${row.project}/${row.role}/${row.model}`;
    }
    default:
      return undefined;
  }
}

Comlink.expose(new Stream());
