/**
 * The contract between the page and the stream worker: two interfaces, one per side. The worker
 * owns the WebSocket (connect, resume, gap checks, JSON decoding, coalescing); the page folds
 * what it is sent into per-topic state.
 */
import type { DeltaMap, ErrorCode, Identity, SnapshotMap, TopicKey, TopicKind } from '$protocol';

/** Where the stream stands, as the connection badge shows it. */
export type ConnectionState =
  | 'idle'
  | 'connecting'
  | 'open'
  | 'reconnecting'
  /** The token was refused: sign in again. */
  | 'unauthorized'
  /** The token expired while connected: sign in again. */
  | 'expired';

/** One thing the worker reports; they arrive in batches, in stream order. */
export type WorkerEvent =
  | { type: 'state'; state: ConnectionState }
  | { type: 'welcome'; identity: Identity }
  | { [K in TopicKind]: { type: 'snapshot'; topic: TopicKey; kind: K; data: SnapshotMap[K] } }[TopicKind]
  | { [K in TopicKind]: { type: 'delta'; topic: TopicKey; kind: K; data: DeltaMap[K] } }[TopicKind]
  | { type: 'error'; topic: TopicKey | undefined; code: ErrorCode; message: string };

/** What the page calls on the worker (through comlink). */
export interface StreamWorker {
  /** Connects to `url` with `token`, reconnecting until closed; events go to `page`. */
  open(url: string, token: string, page: StreamPage): void;
  subscribe(topic: TopicKey): void;
  unsubscribe(topic: TopicKey): void;
  close(): void;
}

/** What the worker calls on the page (a comlink proxy). */
export interface StreamPage {
  deliver(events: WorkerEvent[]): void;
}
