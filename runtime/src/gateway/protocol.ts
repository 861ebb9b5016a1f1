/**
 * The gateway's wire contract, shared by the gateway and the dashboard: the JSON bodies of the
 * HTTP API and the messages of the `/api/stream` WebSocket. Types only — the dashboard imports
 * this module with `import type` and must never pull runtime code into the browser.
 *
 * Stream protocol (JSON text frames; a frame carries one or more messages, one per line):
 * - The client connects to `/api/stream` with its token, either as `Authorization: Bearer …`
 *   or, from a browser, as the subprotocol `bearer.<token>` beside `troupe.v1`. The server
 *   answers `welcome` with who the token says the client is.
 * - `subscribe` a topic: the server sends a `snapshot` (the topic's state and its sequence
 *   number), then a `delta` per change with the next sequence number. Sequence numbers count
 *   per topic incarnation (`epoch`), so every subscriber of a topic sees the same numbers and
 *   the gateway serialises each delta once for all of them. Deltas published within a few
 *   milliseconds of each other arrive in the same frame.
 * - To resume after a reconnect, `subscribe` with `resume: {epoch, seq}` of the last message
 *   applied: the server answers `resumed` and replays the deltas after `seq` from a bounded
 *   buffer, or sends a fresh `snapshot` when the buffer no longer reaches back that far (or
 *   the epoch changed: another replica, a restart). Either way nothing is missed.
 * - A client that reads too slowly is disconnected (its backpressure limit is reached) and
 *   resumes like any reconnecting client.
 */

/** The stream's subprotocol; a browser offers it together with `bearer.<token>`. */
export type StreamSubprotocol = 'troupe.v1';
/** Prefix of the subprotocol that carries the token. */
export type BearerSubprotocolPrefix = 'bearer.';

/** Close codes the server uses beyond the standard ones. */
export interface StreamCloseCodes {
  /** The token expired while connected: get a new one. */
  tokenExpired: 4401;
  /** The client broke the protocol (a message that is not JSON, an unknown type). */
  protocolError: 4400;
}

// ---------------------------------------------------------------------------------------
// Identity

/** Who the caller is, from their token, and what the dashboard should offer them. */
export interface Identity {
  sub: string;
  /** `client`: one tenant's namespace. `admin`: everything. `sre`: every namespace, read-only but for scaling. */
  role: 'client' | 'admin' | 'sre';
  /** The namespace of a `client`; null for platform roles. */
  tenant: string | null;
  can: { allNamespaces: boolean; approve: boolean; scale: boolean };
  /** When the token expires, unix ms. */
  expiresAt: number;
}

// ---------------------------------------------------------------------------------------
// Views: what the dashboard shows, converted at the gateway from the runtime's protobufs.

export type ProjectPhaseName = 'Pending' | 'Planning' | 'Running' | 'AwaitingApproval' | 'Paused' | 'Delivered' | 'Failed' | 'Unknown';
export type TaskStatusName = 'Pending' | 'Queued' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled' | 'Unknown';

export interface ProgressView {
  tasksTotal: number;
  tasksDone: number;
  tasksFailed: number;
  /** 0..100. */
  percent: number;
}

export interface CostView {
  usd: number;
  tokensIn: number;
  tokensOut: number;
  llmCalls: number;
}

/** A project as the overview lists it. */
export interface ProjectCard {
  namespace: string;
  name: string;
  /** The tenant the work is for. */
  client: string;
  priority: number;
  phase: ProjectPhaseName;
  /** The workflow phase under way, e.g. "implementation"; empty before planning. */
  currentPhase: string;
  /** The workflow phase waiting for a human to approve it, or null. */
  awaitingApproval: string | null;
  progress: ProgressView;
  cost: CostView;
  /** Why it failed, when it did. */
  failure: string | null;
  /** Unix ms, null until known. */
  startedAt: number | null;
  completedAt: number | null;
  /** When the gateway last saw it change, unix ms. */
  updatedAt: number;
}

export interface TaskView {
  id: string;
  title: string;
  /** The workflow phase it belongs to. */
  phase: string;
  role: string;
  pool: string;
  status: TaskStatusName;
  /** From 1. */
  attempt: number;
  error: string | null;
  updatedAt: number;
}

export interface ArtifactView {
  name: string;
  kind: string;
  sha256: string;
  bytes: number;
  /** Where the HTTP API serves its content (needs the same token). */
  href: string;
}

/** One workflow phase as the timeline shows it; a phase repeated by a loop appears once per iteration. */
export interface TimelineStep {
  phase: string;
  state: 'active' | 'awaiting' | 'done' | 'failed';
  startedAt: number;
  endedAt: number | null;
}

export interface ActivityItem {
  /** The runtime event's id. */
  id: string;
  at: number;
  kind: 'phase' | 'task' | 'artifact' | 'cost' | 'approval' | 'delivered' | 'failed';
  tone: 'info' | 'good' | 'warn' | 'bad';
  text: string;
}

/** The project's total spend at a moment, for the burn chart. */
export interface CostPoint {
  at: number;
  usd: number;
}

/**
 * A project in full. Tasks, activity and the cost series are what the gateway has seen since it
 * started (the runtime's API reports totals, not history); totals on the card are complete.
 */
export interface ProjectDetail {
  card: ProjectCard;
  timeline: TimelineStep[];
  tasks: TaskView[];
  artifacts: ArtifactView[];
  /** Newest last, bounded. */
  activity: ActivityItem[];
  /** Oldest first, bounded (thinned evenly when long). */
  costSeries: CostPoint[];
}

export interface PoolView {
  namespace: string;
  name: string;
  role: string;
  replicas: number;
  ready: number;
  /** Tasks being worked on across the replicas. */
  busy: number;
  /** Tasks waiting for a replica. */
  queueDepth: number;
  tokens: number;
  costUsd: number;
  updatedAt: number;
}

/** Spend of one (project, role, model) seen by the gateway since it started. */
export interface CostRow {
  namespace: string;
  client: string;
  project: string;
  role: string;
  /** Empty when the runtime did not say. */
  model: string;
  usd: number;
  tokensIn: number;
  tokensOut: number;
  llmCalls: number;
}

// ---------------------------------------------------------------------------------------
// Topics

/**
 * What a subscription follows. `*` as the namespace means every namespace (admin and sre only).
 * - `projects/<ns>`: the project cards of a tenant.
 * - `project/<ns>/<name>`: one project in full.
 * - `pools/<ns>`: the agent pools of a namespace.
 * - `costs/<ns>`: spend by project, role and model.
 */
export type TopicKey = `projects/${string}` | `project/${string}/${string}` | `pools/${string}` | `costs/${string}`;

export type TopicKind = 'projects' | 'project' | 'pools' | 'costs';

/** The state a `snapshot` carries, per topic kind. */
export interface SnapshotMap {
  projects: { projects: ProjectCard[] };
  project: ProjectDetail;
  pools: { pools: PoolView[] };
  costs: { rows: CostRow[] };
}

/** One change to a project: its card after the change and whatever else the change touched. */
export interface ProjectDelta {
  card: ProjectCard;
  activity: ActivityItem | null;
  task?: TaskView;
  artifact?: ArtifactView;
  costPoint?: CostPoint;
  /** The whole timeline, when it changed. */
  timeline?: TimelineStep[];
}

/** The change a `delta` carries, per topic kind: an upsert of one item (or a project's change). */
export interface DeltaMap {
  projects: { card: ProjectCard };
  project: ProjectDelta;
  /** `removed`: the pool is gone. */
  pools: { pool: PoolView; removed: boolean };
  costs: { row: CostRow };
}

// ---------------------------------------------------------------------------------------
// Stream messages

export type ClientMessage =
  | {
      type: 'subscribe';
      topic: TopicKey;
      /** Where the client stands: the epoch and sequence of the last message it applied. */
      resume?: { epoch: string; seq: number };
    }
  | { type: 'unsubscribe'; topic: TopicKey };

export interface WelcomeMessage {
  type: 'welcome';
  identity: Identity;
  /** The limits this connection runs under. */
  limits: { maxSubscriptions: number; maxMessageBytes: number };
}

export type SnapshotMessage = {
  [K in TopicKind]: { type: 'snapshot'; topic: TopicKey; kind: K; epoch: string; seq: number; data: SnapshotMap[K] };
}[TopicKind];

export type DeltaMessage = {
  [K in TopicKind]: {
    type: 'delta';
    topic: TopicKey;
    kind: K;
    seq: number;
    /** When the gateway published it: unix ms with a fraction, for lag measurements. */
    at: number;
    data: DeltaMap[K];
  };
}[TopicKind];

/** The deltas after `seq` follow; nothing before them was missed. */
export interface ResumedMessage {
  type: 'resumed';
  topic: TopicKey;
  epoch: string;
  seq: number;
}

export interface UnsubscribedMessage {
  type: 'unsubscribed';
  topic: TopicKey;
}

/** A refused request; the connection stays open unless the code says otherwise. */
export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The topic the failed request named, if any. */
  topic?: string;
}

export type ServerMessage = WelcomeMessage | SnapshotMessage | DeltaMessage | ResumedMessage | UnsubscribedMessage | ErrorMessage;

// ---------------------------------------------------------------------------------------
// HTTP API

/** Stable error codes of the HTTP API and the stream (the runtime's RuntimeErrorCode values). */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'INVALID_ARGUMENT'
  | 'TOO_LARGE'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | (string & {});

/** Every 4xx/5xx body. */
export interface ApiError {
  error: { code: ErrorCode; message: string };
}

/** `POST /api/projects/:ns/:name/approve`. */
export interface ApproveRequest {
  phase: string;
}

/** `POST /api/pools/:ns/:pool/scale`. */
export interface ScaleRequest {
  /** 0..1000. */
  replicas: number;
}

/** 202 answer of a command: it is queued under this id and takes effect asynchronously. */
export interface Accepted {
  commandId: string;
}

/** `GET /api/projects`. */
export interface ProjectsResponse {
  projects: ProjectCard[];
}

/** `GET /api/pools`. */
export interface PoolsResponse {
  pools: PoolView[];
}
