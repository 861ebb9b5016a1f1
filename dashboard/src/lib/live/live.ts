/**
 * The dashboard's one connection to the gateway's stream. The socket lives in a web worker
 * (stream.worker.ts, behind comlink); this module folds what it reports into per-topic state
 * and exposes it through a typed event map and two stores: the connection's state and who the
 * token says we are. Components call `on(topic, 'state', …)` in onMount and return what it
 * returns, which unsubscribes.
 */
import * as Comlink from 'comlink';
import { writable, type Readable } from 'svelte/store';
import type { DeltaMap, ErrorCode, Identity, SnapshotMap, TopicKey, TopicKind } from '$protocol';
import type { ConnectionState, StreamPage, StreamWorker, WorkerEvent } from './contract';
import { fold } from './fold';

export type { ConnectionState } from './contract';

/** The kind of a topic key, e.g. `project` for `project/acme/shop`. */
export type KindOf<T extends TopicKey> = T extends `projects/${string}`
  ? 'projects'
  : T extends `project/${string}`
    ? 'project'
    : T extends `pools/${string}`
      ? 'pools'
      : 'costs';

/** A refusal of the stream about a topic (no access, no such project). */
export interface TopicError {
  code: ErrorCode;
  message: string;
}

/** What a topic reports, by event name. */
export interface TopicEvents<K extends TopicKind> {
  /** The topic's whole state: after its snapshot and after every change. */
  state: SnapshotMap[K];
  /** One change, after it was folded into `state`. */
  delta: DeltaMap[K];
  error: TopicError;
}

type Listener = (payload: never) => void;

interface TopicEntry {
  kind: TopicKind;
  state: SnapshotMap[TopicKind] | undefined;
  listeners: { [E in keyof TopicEvents<TopicKind>]: Set<Listener> };
  /** Pending unsubscription: a page that comes straight back keeps the topic warm. */
  release: ReturnType<typeof setTimeout> | undefined;
}

/** How long a topic nobody listens to stays subscribed, so navigating back is instant. */
const KEEP_WARM_MS = 10_000;

const connectionStore = writable<ConnectionState>('idle');
const identityStore = writable<Identity | null>(null);

/** Where the stream stands. */
export const connection: Readable<ConnectionState> = { subscribe: connectionStore.subscribe };
/** Who the gateway says the token belongs to, once connected. */
export const identity: Readable<Identity | null> = { subscribe: identityStore.subscribe };

const topics = new Map<TopicKey, TopicEntry>();
let worker: Comlink.Remote<StreamWorker> | undefined;
let connectedWith: string | undefined;

const page: StreamPage = {
  deliver(events: WorkerEvent[]) {
    for (const event of events) handle(event);
  },
};

/** Opens the stream with `token`, unless it is open with it already; topics already followed carry over. */
export function connect(token: string): void {
  if (token === connectedWith) return;
  connectedWith = token;
  worker ??= Comlink.wrap<StreamWorker>(new Worker(new URL('./stream.worker.ts', import.meta.url), { type: 'module' }));
  const url = new URL('/api/stream', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  void worker.open(url.href, token, Comlink.proxy(page));
  for (const topic of topics.keys()) void worker.subscribe(topic);
}

/** Closes the stream and forgets every topic (signing out). */
export function disconnect(): void {
  connectedWith = undefined;
  void worker?.close();
  for (const entry of topics.values()) clearTimeout(entry.release);
  topics.clear();
  connectionStore.set('idle');
  identityStore.set(null);
}

/**
 * Listens to one event of a topic, subscribing to the topic on first use. A `state` listener
 * is called at once when the state is already known. Returns the unsubscribe.
 *
 * @example
 * onMount(() => on(`projects/${namespace}`, 'state', (state) => (projects = state.projects)));
 */
export function on<T extends TopicKey, E extends keyof TopicEvents<KindOf<T>>>(
  topic: T,
  event: E,
  listener: (payload: TopicEvents<KindOf<T>>[E]) => void,
): () => void {
  let entry = topics.get(topic);
  if (entry === undefined) {
    entry = {
      kind: kindOf(topic),
      state: undefined,
      listeners: { state: new Set(), delta: new Set(), error: new Set() },
      release: undefined,
    };
    topics.set(topic, entry);
    void worker?.subscribe(topic);
  }
  clearTimeout(entry.release);
  entry.release = undefined;
  const listeners = entry.listeners[event as keyof TopicEvents<TopicKind>];
  listeners.add(listener as Listener);
  if (event === 'state' && entry.state !== undefined) listener(entry.state as TopicEvents<KindOf<T>>[E]);
  const subscribed = entry;
  return () => {
    listeners.delete(listener as Listener);
    const { state, delta, error } = subscribed.listeners;
    if (state.size + delta.size + error.size > 0) return;
    subscribed.release = setTimeout(() => {
      topics.delete(topic);
      void worker?.unsubscribe(topic);
    }, KEEP_WARM_MS);
  };
}

function handle(event: WorkerEvent): void {
  switch (event.type) {
    case 'state':
      connectionStore.set(event.state);
      return;
    case 'welcome':
      identityStore.set(event.identity);
      return;
    case 'snapshot': {
      const entry = topics.get(event.topic);
      if (entry === undefined) return;
      entry.state = event.data;
      notify(entry, 'state', entry.state);
      return;
    }
    case 'delta': {
      const entry = topics.get(event.topic);
      if (entry?.state === undefined) return;
      entry.state = fold(event.kind, entry.state as SnapshotMap[typeof event.kind], event.data as DeltaMap[typeof event.kind]);
      notify(entry, 'delta', event.data);
      notify(entry, 'state', entry.state);
      return;
    }
    case 'error': {
      const entry = event.topic === undefined ? undefined : topics.get(event.topic);
      if (entry !== undefined) notify(entry, 'error', { code: event.code, message: event.message });
      else console.warn(`troupe stream: ${event.code}: ${event.message}`);
      return;
    }
  }
}

function notify<E extends keyof TopicEvents<TopicKind>>(entry: TopicEntry, event: E, payload: TopicEvents<TopicKind>[E]): void {
  for (const listener of entry.listeners[event]) (listener as (payload: TopicEvents<TopicKind>[E]) => void)(payload);
}

function kindOf(topic: TopicKey): TopicKind {
  return topic.slice(0, topic.indexOf('/')) as TopicKind;
}
