/**
 * The Store contract: event-sourced actor state, durable timers, an outbox, idempotent inputs,
 * partition fencing, and the catalog of artefacts (what each project's deliverables hash to and
 * where their bytes are). `embedded` (SQLite) and `cassandra` implement it, and one conformance
 * suite runs against both.
 */
import { ActorError, RuntimeErrorCode } from '../errors.js';

/** The address of a virtual actor. */
export interface ActorRef {
  type: string;
  id: string;
}

export interface StoredEvent {
  /** 1 for an actor's first event, then +1 per event. */
  seq: number;
  data: Uint8Array;
  /** When the event was journaled, unix ms. */
  at: number;
}

export interface Snapshot {
  /** The seq of the last event folded into `state`. */
  seq: number;
  state: Uint8Array;
}

/** A message to send once the turn that produced it is durable. */
export interface OutboxMessage {
  /** Deterministic, derived from the input's id, so a re-send is recognised downstream. */
  id: string;
  topic: string;
  key: string;
  value: Uint8Array;
  headers: Readonly<Record<string, string>>;
}

/** A durable timer: at `dueAt` the runtime delivers `message` to `actor`. */
export interface Timer {
  actor: ActorRef;
  /** Unique per actor; setting a timer of the same name replaces it. */
  name: string;
  dueAt: number;
  /**
   * Which owner fires it: `<actor type>/<partition>`, so each runtime node reads only the
   * timers of partitions it owns.
   */
  shard: string;
  message: Uint8Array;
}

/** Who is writing: a partition owner and its epoch (see PartitionAssignment.epoch). */
export interface Fence {
  /** The owned unit, e.g. `troupe.actor.project/3`. */
  scope: string;
  epoch: number;
}

/** Everything one turn changes, written atomically or not at all. */
export interface TurnWrite {
  actor: ActorRef;
  /** The journal's last seq when the turn started; the write is refused unless it still is. */
  expectedSeq: number;
  /** New events, journaled as expectedSeq + 1, + 2, … */
  events: readonly Uint8Array[];
  /**
   * The input the turn applied. Stored so that redelivered or re-sent copies are skipped:
   * its id, and its offset in the actor's partition when it came from a transport.
   */
  input: { id: string; offset?: number };
  /** A snapshot to keep (its seq is at most expectedSeq + events.length). */
  snapshot?: Snapshot;
  /** Timers of this actor to set (each `timer.actor` is `actor`). */
  timersSet?: readonly Timer[];
  /** Names of this actor's timers to delete. */
  timersCancelled?: readonly string[];
  outbox?: readonly OutboxMessage[];
  /** When set, the write is refused with FENCED if the scope's stored epoch is newer. */
  fence?: Fence;
}

/** An actor's durable state, as needed to bring it back. */
export interface ActorRecord {
  /** The latest snapshot, if any. */
  snapshot?: Snapshot;
  /** Events after the snapshot, in seq order. */
  events: StoredEvent[];
  /** The journal's last seq (0 for a new actor). */
  seq: number;
  /** The highest transport offset among applied inputs, if any came from a transport. */
  lastInputOffset?: number;
  /** Outbox messages not yet acknowledged as sent, in the order they were written. */
  outbox: OutboxMessage[];
}

/** What the Store records of an artefact; its bytes live in a blob store, addressed by `sha256`. */
export interface ArtifactRecord {
  /** The project's namespace. */
  namespace: string;
  /** The project's name. */
  project: string;
  /** A relative path such as `src/cart.ts`, unique in the project. */
  name: string;
  /** The deliverable it belongs to: requirements, architecture, code, tests, docs or deployment. */
  kind: string;
  /** Of the bytes, lowercase hex: readers refuse bytes that hash otherwise. */
  sha256: string;
  bytes: number;
  /** `troupe://artifacts/<namespace>/<project>/<name>`, as the project's status lists it. */
  uri: string;
  /** When these bytes were stored, unix ms. */
  storedAt: number;
}

export interface Store {
  readonly kind: 'embedded' | 'cassandra';
  load(actor: ActorRef): Promise<ActorRecord>;
  /**
   * Writes a turn atomically. Refused with CONFLICT if the journal moved past `expectedSeq`,
   * with DUPLICATE_INPUT if the input id was already applied, and with FENCED if the fence is stale.
   */
  commitTurn(write: TurnWrite): Promise<void>;
  /**
   * Writes consecutive turns of one actor in order, each as `commitTurn` would (each expects the
   * seq the one before it leaves). Rejects with the error of the first refused; the turns before
   * it may be committed or not, so a caller reloads the actor to know.
   */
  commitTurns(writes: readonly TurnWrite[]): Promise<void>;
  /**
   * Which of the input ids were applied to the actor (ids are kept for at least the last 10,000
   * inputs): one read for a run of inputs, however many.
   */
  appliedInputs(actor: ActorRef, inputIds: readonly string[]): Promise<Set<string>>;
  /** Forgets outbox messages once the transport took them. */
  markSent(actor: ActorRef, ids: readonly string[]): Promise<void>;
  /** Timers of the given shards due at or before `now`, earliest first. */
  dueTimers(shards: readonly string[], now: number, limit: number): Promise<Timer[]>;
  /** The earliest dueAt among the shards' timers. */
  nextTimerDue(shards: readonly string[]): Promise<number | undefined>;
  /** Deletes a fired timer unless it was re-set meanwhile (its dueAt differs). */
  deleteTimer(actor: ActorRef, name: string, dueAt: number): Promise<void>;
  /**
   * Claims a scope for an epoch: stores it when newer than the stored one, and refuses
   * with FENCED when the stored epoch is newer.
   */
  claim(fence: Fence): Promise<void>;
  /**
   * Claims a scope for a new owner: atomically raises its epoch by one and returns it. Epochs
   * from here grow whatever the transport's generations do (a Kafka group that expired starts
   * again at 1), so the latest claimer always owns the scope.
   */
  claimNext(scope: string): Promise<number>;
  /** Records an artefact, replacing the project's record of the same name. */
  putArtifact(record: ArtifactRecord): Promise<void>;
  /** The record of a project's artefact, or undefined when it has none of that name. */
  getArtifact(namespace: string, project: string, name: string): Promise<ArtifactRecord | undefined>;
  /** The records of a project's artefacts, by name. */
  listArtifacts(namespace: string, project: string): Promise<ArtifactRecord[]>;
  close(): Promise<void>;
}

/** The actor a run of turns is for; refused with INVALID_ARGUMENT when it holds another actor's turn. */
export function actorOfRun(writes: readonly TurnWrite[]): ActorRef | undefined {
  if (writes.length === 0) return undefined;
  const { actor } = writes[0]!;
  const stranger = writes.find((write) => write.actor.type !== actor.type || write.actor.id !== actor.id);
  if (stranger !== undefined) {
    throw new ActorError(
      RuntimeErrorCode.InvalidArgument,
      actor,
      `a run of turns is one actor's; it also holds a turn of ${stranger.actor.type}/${stranger.actor.id}`,
    );
  }
  return actor;
}

/** A turn's refusals, worded once for every Store: a stale fence, a moved journal, an input applied before. */
export const turnRefused = {
  fenced: (write: TurnWrite, fence: Fence, stored: number): ActorError =>
    new ActorError(
      RuntimeErrorCode.Fenced,
      write.actor,
      `${fence.scope} is owned by epoch ${stored}; this write is from epoch ${fence.epoch}`,
    ),
  // Retriable: the turn can run again on the state as it now is.
  conflict: (write: TurnWrite, seq: number): ActorError =>
    new ActorError(RuntimeErrorCode.Conflict, write.actor, `expected seq ${write.expectedSeq} but the journal is at ${seq}`, {
      retriable: true,
    }),
  duplicateInput: (write: TurnWrite): ActorError =>
    new ActorError(RuntimeErrorCode.DuplicateInput, write.actor, `input ${write.input.id} was already applied`),
};
