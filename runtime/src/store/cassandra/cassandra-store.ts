/**
 * The Cassandra Store (cassandra-driver): each actor's journal, latest snapshot, applied input
 * ids, outbox and timer index live in one partition, so a turn — or a run of an actor's turns —
 * is one conditional batch, written entirely or not at all, and only if no other write landed
 * on the actor since the run read it. Timers are mirrored into a per-shard queue, and partition
 * fences kept in their own table; the class comment explains how those other partitions stay
 * consistent with the actor's.
 * The artefact catalog is a table of its own, a partition per project.
 */
import cassandra from 'cassandra-driver';

import { ActorError, RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { actorOfRun, turnRefused } from '../store.js';
import type {
  ActorRecord,
  ActorRef,
  ArtifactRecord,
  Fence,
  OutboxMessage,
  Snapshot,
  Store,
  StoredEvent,
  Timer,
  TurnWrite,
} from '../store.js';
import { migrate } from './migrations.js';
import { toStoreError } from './store-error.js';

/** Options of {@link CassandraStore}. */
export interface CassandraStoreOptions {
  /** `host` or `host:port` of one or more nodes (required). */
  contactPoints: readonly string[];
  /** The data center this process is in; requests go to its nodes (required). */
  localDataCenter: string;
  /** Holds the store's tables; created when missing. Default `troupe`. */
  keyspace?: string;
  /** Replicas per row in `localDataCenter`, used only when the keyspace is created. Default 1. */
  replicationFactor?: number;
  /**
   * How many applied input ids to keep per actor to recognise redelivered inputs. Default
   * 10,000, which is also the least allowed: the Store contract promises that many.
   */
  keepInputIds?: number;
  /**
   * Consistency of reads and writes. Default `localQuorum`; `quorum` when partition owners may
   * sit in different data centers. Weaker levels are refused: a read must see every completed
   * write for the store's checks to hold.
   */
  consistency?: 'localQuorum' | 'quorum';
  /** Consistency of the Paxos rounds of conditional writes. Default `localSerial`; `serial` to span data centers. */
  serialConsistency?: 'localSerial' | 'serial';
  /**
   * How long a queued timer whose turn has not committed is left alone before that turn is
   * presumed dead (its writer crashed) and the timer dropped. Default 60 s, far beyond a
   * commit's round trips.
   */
  intentGraceMs?: number;
  /** Stamps journaled events (`StoredEvent.at`) and ages queued timers. Default `Date.now`. */
  clock?: () => number;
}

type ResolvedOptions = Required<CassandraStoreOptions>;

const DEFAULTS = {
  keyspace: 'troupe',
  replicationFactor: 1,
  keepInputIds: 10_000,
  consistency: 'localQuorum',
  serialConsistency: 'localSerial',
  intentGraceMs: 60_000,
  clock: Date.now,
} satisfies Required<Omit<CassandraStoreOptions, 'contactPoints' | 'localDataCenter'>>;

/** Most keys in one IN list of a read. */
const MAX_IN_KEYS = 100;

/** The Store contract's promise in `appliedInputs`. */
const MIN_KEEP_INPUT_IDS = 10_000;

/**
 * Tries of a run whose conditional write lost to a write that left the journal's seq alone
 * (a zero-event turn, a markSent): each retry re-reads and re-checks the actor first.
 */
const MAX_CAS_ATTEMPTS = 10;

/**
 * Most turns in one conditional batch. Far fewer than keepInputIds, so the input slots a run
 * fills are all distinct; a run of a few hundred turns is one Paxos round instead of hundreds.
 */
const MAX_RUN_TURNS = 500;

/**
 * Most payload bytes (events, snapshots, messages) in one conditional batch of several turns:
 * a Paxos round carries the whole batch, and Cassandra refuses a mutation over half a commit
 * log segment (16 MiB by default).
 */
const MAX_RUN_BYTES = 1024 * 1024;

type Row = cassandra.types.Row;
type Key = [type: string, id: string];
type Mode = 'read' | 'write' | 'cas';
interface BatchQuery {
  query: string;
  params: unknown[];
}

/** The actor as a run of its turns needs it to check and build their write. */
interface RunView {
  /** The head's version: undefined before the actor's first write. */
  version: number | undefined;
  seq: number;
  inputs: number;
  lastInputOffset: number | undefined;
  outboxOrd: number;
  /** The run's input ids that were applied before it. */
  applied: Set<string>;
  /** The stored timers among those the run sets or cancels. */
  timers: Map<string, { shard: string; dueAt: number }>;
  /** The stored epoch of each scope the run's fences name. */
  fences: Map<string, number>;
  /** The input id held by each slot the run's inputs take over. */
  slots: Map<number, string>;
}

/** What one conditional batch commits of a run: its turns up to the first refused. */
interface RunPlan {
  batch: BatchQuery[];
  /** Timers set by the committed turns, as they stand after them. */
  queued: Timer[];
  /** Stored timers the committed turns replaced or cancelled, to leave the queue once committed. */
  replaced: [name: string, stored: { shard: string; dueAt: number }][];
  /** Why the turn after the committed ones is refused, if one is. */
  refusal: ActorError | undefined;
}

function statements(ks: string) {
  const actors = `${ks}.actors`;
  const timers = `${ks}.timers`;
  const actor = 'actor_type = ? AND actor_id = ?';
  const queued = 'shard = ? AND due_at = ? AND actor_type = ? AND actor_id = ? AND name = ?';
  return {
    head: `SELECT DISTINCT actor_type, actor_id, seq, version, inputs, last_input_offset, outbox_ord, outbox_floor FROM ${actors} WHERE ${actor}`,
    headWithSnapshot: `SELECT DISTINCT actor_type, actor_id, seq, last_input_offset, outbox_ord, outbox_floor, snapshot_seq, snapshot_state FROM ${actors} WHERE ${actor}`,
    events: `SELECT pos, data, at FROM ${actors} WHERE ${actor} AND kind = 'event' AND pos > ? AND pos <= ?`,
    outbox: `SELECT pos, ref, topic, msg_key, data, headers FROM ${actors} WHERE ${actor} AND kind = 'outbox' AND pos >= ? AND pos <= ?`,
    inputs: `SELECT name FROM ${actors} WHERE ${actor} AND kind = 'input' AND pos = 0 AND name IN ?`,
    slots: `SELECT pos, ref FROM ${actors} WHERE ${actor} AND kind = 'slot' AND pos IN ?`,
    timerIndex: `SELECT name, shard, due_at, data FROM ${actors} WHERE ${actor} AND kind = 'timer' AND pos = 0 AND name IN ?`,

    commitHead: `UPDATE ${actors} SET seq = ?, version = ?, inputs = ?, last_input_offset = ?, outbox_ord = ?, snapshot_seq = ?, snapshot_state = ? WHERE ${actor} IF version = ?`,
    appendEvent: `INSERT INTO ${actors} (actor_type, actor_id, kind, pos, name, data, at) VALUES (?, ?, 'event', ?, '', ?, ?)`,
    recordInput: `INSERT INTO ${actors} (actor_type, actor_id, kind, pos, name, at) VALUES (?, ?, 'input', 0, ?, ?)`,
    forgetInput: `DELETE FROM ${actors} WHERE ${actor} AND kind = 'input' AND pos = 0 AND name = ?`,
    fillSlot: `INSERT INTO ${actors} (actor_type, actor_id, kind, pos, name, ref) VALUES (?, ?, 'slot', ?, '', ?)`,
    addOutbox: `INSERT INTO ${actors} (actor_type, actor_id, kind, pos, name, ref, topic, msg_key, data, headers) VALUES (?, ?, 'outbox', ?, '', ?, ?, ?, ?, ?)`,
    removeOutbox: `DELETE FROM ${actors} WHERE ${actor} AND kind = 'outbox' AND pos = ? AND name = ''`,
    moveOutboxFloor: `UPDATE ${actors} SET outbox_floor = ? WHERE ${actor} IF outbox_floor = ?`,
    indexTimer: `INSERT INTO ${actors} (actor_type, actor_id, kind, pos, name, shard, due_at, data) VALUES (?, ?, 'timer', 0, ?, ?, ?, ?)`,
    unindexTimer: `DELETE FROM ${actors} WHERE ${actor} AND kind = 'timer' AND pos = 0 AND name = ?`,
    unindexFiredTimer: `DELETE FROM ${actors} WHERE ${actor} AND kind = 'timer' AND pos = 0 AND name = ? IF due_at = ?`,
    abandonTurn: `UPDATE ${actors} SET version = ? WHERE ${actor} IF version = ?`,

    queueTimer: `INSERT INTO ${timers} (shard, due_at, actor_type, actor_id, name, turn, written_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    dequeueTimer: `DELETE FROM ${timers} WHERE ${queued}`,
    dequeueTimerWrite: `DELETE FROM ${timers} USING TIMESTAMP ? WHERE ${queued}`,
    queuedDue: `SELECT due_at, actor_type, actor_id, name, turn, written_at, WRITETIME(turn) AS written FROM ${timers} WHERE shard = ? AND due_at <= ?`,
    queuedAll: `SELECT due_at, actor_type, actor_id, name, turn, written_at, WRITETIME(turn) AS written FROM ${timers} WHERE shard = ?`,

    fence: `SELECT epoch FROM ${ks}.fences WHERE scope = ?`,
    raiseFence: `UPDATE ${ks}.fences SET epoch = ? WHERE scope = ? IF epoch <= ?`,
    createFence: `INSERT INTO ${ks}.fences (scope, epoch) VALUES (?, ?) IF NOT EXISTS`,

    putArtifact: `INSERT INTO ${ks}.artifacts (namespace, project, name, kind, sha256, bytes, uri, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    artifact: `SELECT namespace, project, name, kind, sha256, bytes, uri, stored_at FROM ${ks}.artifacts WHERE namespace = ? AND project = ? AND name = ?`,
    artifacts: `SELECT namespace, project, name, kind, sha256, bytes, uri, stored_at FROM ${ks}.artifacts WHERE namespace = ? AND project = ?`,
  };
}

/**
 * The Cassandra-backed Store of the distributed runtime.
 *
 * **A run of turns.** `commitTurns` reads the actor's head (at LOCAL_QUORUM by default), checks
 * each turn's fence, seq and input id against it and the turns before it, then writes the turns
 * up to the first refused one as one batch on the actor's partition conditioned
 * `IF version = <read>`: a run costs the round trips of a single turn, and `commitTurn` is a
 * run of one. Every write to that partition is a Paxos round that bumps or checks state there,
 * so what the read found still holds at the commit, and two writers of one actor are
 * serialised: the loser re-reads and is refused (CONFLICT when the seq moved, DUPLICATE_INPUT
 * when its input landed) or, when the winner left the seq alone, tries again. That is also why
 * `markSent` and `deleteTimer` use Paxos: plain writes carry the client's clock and Paxos
 * writes the coordinator's, and mixing them on one row can let a delete fall behind the insert
 * it deletes.
 *
 * **Fencing.** `claim` raises a scope's epoch with a conditional write. A run reads the epoch
 * (LOCAL_QUORUM sees every completed claim) *after* the actor's head, and is refused when the
 * epoch is newer than its own. The fence is another partition, so a stale owner that read it
 * just before a claim may still commit one run after the claim. That run is harmless: it
 * commits only if no write landed on the actor since its head read, which came before its
 * fence read, which came before the claim, after which alone the new owner writes. So it is
 * ordered before every write of the new owner to the actor, which reads it (its own commit
 * fails the version check, and it reloads); its input is applied once and no write is lost.
 * A SERIAL read of the fence would not close that window, only add a Paxos round on one hot
 * row to every turn.
 *
 * **Timers.** The actor's `timer` rows are the truth; `timers` is a queue per shard, by due
 * time, for the timer service. A run queues the timers it leaves set *before* its batch and
 * dequeues the ones it replaced or cancelled *after*. A crash between the two leaves extra
 * rows, never missing ones, so `dueTimers` and `nextTimerDue` confirm each queued row against
 * the actor's timer row: a row the actor no longer holds is skipped, and deleted once the
 * actor's version shows its run is over (committed and later changed, or lost to another
 * writer). A row whose run has not committed after `intentGraceMs` is presumed orphaned by a
 * crash: the store bumps the actor's version past that run, so it can no longer commit, and
 * deletes the row.
 *
 * @example
 * const store = await CassandraStore.open({ contactPoints: ['10.0.0.5:9042'], localDataCenter: 'dc1' });
 * await store.commitTurn({ actor, expectedSeq: 0, events: [bytes], input: { id: 'cmd-1' } });
 */
export class CassandraStore implements Store {
  readonly kind = 'cassandra';

  private readonly client: cassandra.Client;
  private readonly sql: ReturnType<typeof statements>;
  private readonly modes: Record<Mode, cassandra.QueryOptions>;
  private closed = false;

  /**
   * Connects, creates the keyspace and tables when missing and applies pending migrations.
   * Options are validated first; a bad one fails with INVALID_OPTIONS naming it.
   */
  static async open(options: CassandraStoreOptions): Promise<CassandraStore> {
    const resolved = resolveOptions(options);
    const store = new CassandraStore(resolved);
    try {
      await store.connect();
      await migrate({
        client: store.client,
        keyspace: resolved.keyspace,
        localDataCenter: resolved.localDataCenter,
        replicationFactor: resolved.replicationFactor,
        ...levels(resolved),
        clock: resolved.clock,
      });
    } catch (error) {
      await store.client.shutdown();
      throw error;
    }
    return store;
  }

  private constructor(private readonly options: ResolvedOptions) {
    this.client = new cassandra.Client({
      contactPoints: [...options.contactPoints],
      localDataCenter: options.localDataCenter,
    });
    this.sql = statements(options.keyspace);
    const { consistency, serialConsistency } = levels(options);
    this.modes = {
      // Idempotent, so the driver may retry them on another node after a timeout.
      read: { prepare: true, consistency, isIdempotent: true },
      write: { prepare: true, consistency, isIdempotent: true },
      // A Paxos round: LOCAL_SERIAL (or SERIAL) for the round, the chosen level for its commit.
      cas: { prepare: true, consistency, serialConsistency },
    };
  }

  async load(actor: ActorRef): Promise<ActorRecord> {
    this.ensureOpen();
    const key = keyOf(actor);
    const head = await this.first(this.sql.headWithSnapshot, key);
    if (head === undefined) return { events: [], seq: 0, outbox: [] };
    // The snapshot, seq and outbox bounds come from one row read, so the slices below cut the
    // journal and outbox exactly at that head even if another write lands meanwhile.
    const seq = long(head['seq']) ?? 0;
    const snapshotSeq = long(head['snapshot_seq']);
    const outboxFloor = long(head['outbox_floor']) ?? 1;
    const outboxOrd = long(head['outbox_ord']) ?? 0;
    const [events, outbox] = await Promise.all([
      seq > (snapshotSeq ?? 0) ? this.rows(this.sql.events, [...key, snapshotSeq ?? 0, seq]) : [],
      outboxOrd >= outboxFloor ? this.rows(this.sql.outbox, [...key, outboxFloor, outboxOrd]) : [],
    ]);
    const record: ActorRecord = {
      events: events.map((row): StoredEvent => ({ seq: long(row['pos'])!, data: bytes(row['data']), at: long(row['at'])! })),
      seq,
      outbox: outbox.map(toOutboxMessage),
    };
    if (snapshotSeq !== undefined) record.snapshot = { seq: snapshotSeq, state: bytes(head['snapshot_state']) };
    const lastInputOffset = long(head['last_input_offset']);
    if (lastInputOffset !== undefined) record.lastInputOffset = lastInputOffset;
    return record;
  }

  async commitTurn(write: TurnWrite): Promise<void> {
    return this.commitTurns([write]);
  }

  /**
   * One conditional batch per run of up to {@link MAX_RUN_TURNS} turns: every row a turn
   * writes but its queued timers lives in the actor's partition, so a run of them does too.
   */
  async commitTurns(writes: readonly TurnWrite[]): Promise<void> {
    this.ensureOpen();
    const actor = actorOfRun(writes);
    if (actor === undefined) return;
    for (const write of writes) {
      const foreign = write.timersSet?.find((timer) => timer.actor.type !== actor.type || timer.actor.id !== actor.id);
      if (foreign !== undefined) {
        throw new ActorError(
          RuntimeErrorCode.InvalidOptions,
          actor,
          `timer ${foreign.name} is for ${foreign.actor.type}/${foreign.actor.id}; a turn sets its own actor's timers only`,
        );
      }
    }
    for (const run of runsOf(writes)) await this.commitRun(actor, run);
  }

  async appliedInputs(actor: ActorRef, inputIds: readonly string[]): Promise<Set<string>> {
    this.ensureOpen();
    const rows = await this.rowsIn(this.sql.inputs, keyOf(actor), new Set(inputIds));
    return new Set(rows.map((row) => String(row['name'])));
  }

  async markSent(actor: ActorRef, ids: readonly string[]): Promise<void> {
    this.ensureOpen();
    if (ids.length === 0) return;
    const key = keyOf(actor);
    const wanted = new Set(ids);
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt += 1) {
      const head = await this.first(this.sql.head, key);
      const floor = long(head?.['outbox_floor']);
      const top = long(head?.['outbox_ord']) ?? 0;
      const rows = top >= (floor ?? 1) ? await this.rows(this.sql.outbox, [...key, floor ?? 1, top]) : [];
      const sent = rows.filter((row) => wanted.has(row['ref'] as string));
      if (sent.length === 0) return;
      // Ords are handed out in commit order, so every unsent message is at or above the lowest
      // one left here, or above all that were read. Loads start at the floor, and so never
      // walk the tombstones of messages sent long ago.
      const left = rows.find((row) => !wanted.has(row['ref'] as string));
      const nextFloor = left === undefined ? long(rows.at(-1)!['pos'])! + 1 : long(left['pos'])!;
      const batch: BatchQuery[] = [
        { query: this.sql.moveOutboxFloor, params: [nextFloor, ...key, floor ?? null] },
        ...sent.map((row) => ({ query: this.sql.removeOutbox, params: [...key, row['pos']] })),
      ];
      if ((await this.conditionalBatch(batch)).wasApplied()) return;
    }
    throw new ActorError(RuntimeErrorCode.Conflict, actor, `other markSent calls kept landing first, ${MAX_CAS_ATTEMPTS} times`, {
      retriable: true,
    });
  }

  async dueTimers(shards: readonly string[], now: number, limit: number): Promise<Timer[]> {
    this.ensureOpen();
    const count = Math.max(0, Math.floor(limit));
    if (count === 0) return [];
    const perShard = await Promise.all(shards.map((shard) => this.confirmedTimers(shard, now, count)));
    // Stable, so timers of one shard due in the same millisecond keep the queue's order.
    return perShard
      .flat()
      .sort((a, b) => a.dueAt - b.dueAt)
      .slice(0, count);
  }

  async nextTimerDue(shards: readonly string[]): Promise<number | undefined> {
    this.ensureOpen();
    const firsts = await Promise.all(shards.map((shard) => this.confirmedTimers(shard, undefined, 1)));
    const dues = firsts.flat().map((timer) => timer.dueAt);
    return dues.length === 0 ? undefined : Math.min(...dues);
  }

  async deleteTimer(actor: ActorRef, name: string, dueAt: number): Promise<void> {
    this.ensureOpen();
    const key = keyOf(actor);
    const held = (await this.rows(this.sql.timerIndex, [...key, [name]]))[0];
    if (held === undefined || long(held['due_at']) !== dueAt) return;
    const removed = await this.execute(this.sql.unindexFiredTimer, [...key, name, dueAt], 'cas');
    if (!removed.wasApplied()) return;
    await this.execute(this.sql.dequeueTimer, [held['shard'], dueAt, actor.type, actor.id, name], 'write');
  }

  async claim(fence: Fence): Promise<void> {
    this.ensureOpen();
    // Raising covers a known scope; creating, a new one. Two rounds suffice: once the row
    // exists, a raise either applies or meets a newer epoch.
    for (let round = 1; round <= 2; round += 1) {
      const raised = await this.execute(this.sql.raiseFence, [fence.epoch, fence.scope, fence.epoch], 'cas');
      if (raised.wasApplied()) return;
      const stored = long(raised.first()?.['epoch']);
      if (stored !== undefined) {
        throw new RuntimeError(RuntimeErrorCode.Fenced, `${fence.scope}: cannot claim epoch ${fence.epoch}, epoch ${stored} owns it`);
      }
      if ((await this.execute(this.sql.createFence, [fence.scope, fence.epoch], 'cas')).wasApplied()) return;
    }
    throw new RuntimeError(RuntimeErrorCode.Conflict, `${fence.scope}: the fence kept changing while epoch ${fence.epoch} claimed it`, {
      retriable: true,
    });
  }

  async claimNext(scope: string): Promise<number> {
    this.ensureOpen();
    // Create the scope at epoch 1, or learn its epoch and raise it by one; a raise that meets a
    // newer epoch lost to another claimer and tries again from there.
    for (let round = 1; round <= 20; round += 1) {
      const created = await this.execute(this.sql.createFence, [scope, 1], 'cas');
      if (created.wasApplied()) return 1;
      const stored = long(created.first()?.['epoch']) ?? 0;
      const raised = await this.execute(this.sql.raiseFence, [stored + 1, scope, stored], 'cas');
      if (raised.wasApplied()) return stored + 1;
    }
    throw new RuntimeError(RuntimeErrorCode.Conflict, `${scope}: the fence kept changing while a new owner claimed it`, {
      retriable: true,
    });
  }

  /** A plain upsert: of two writers of one name, the later write wins, as a rewritten file would. */
  async putArtifact(record: ArtifactRecord): Promise<void> {
    this.ensureOpen();
    const { namespace, project, name, kind, sha256, bytes, uri, storedAt } = record;
    await this.execute(this.sql.putArtifact, [namespace, project, name, kind, sha256, bytes, uri, storedAt], 'write');
  }

  async getArtifact(namespace: string, project: string, name: string): Promise<ArtifactRecord | undefined> {
    this.ensureOpen();
    const row = await this.first(this.sql.artifact, [namespace, project, name]);
    return row === undefined ? undefined : toArtifact(row);
  }

  async listArtifacts(namespace: string, project: string): Promise<ArtifactRecord[]> {
    this.ensureOpen();
    return (await this.rows(this.sql.artifacts, [namespace, project])).map(toArtifact);
  }

  /** Closes the connections; later calls fail with CLOSED. Closing again does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.shutdown();
  }

  private async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (error) {
      throw new RuntimeError(
        RuntimeErrorCode.Unavailable,
        `cannot reach Cassandra at ${this.options.contactPoints.join(', ')}: ${(error as Error).message}`,
        { retriable: true, cause: error },
      );
    }
  }

  /** Commits the run's turns up to the first refused one in one conditional batch, then throws that refusal. */
  private async commitRun(actor: ActorRef, writes: readonly TurnWrite[]): Promise<void> {
    const key = keyOf(actor);
    const at = this.options.clock();
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt += 1) {
      const view = await this.readForRun(actor, writes);
      const version = (view.version ?? 0) + 1;
      const plan = this.planRun(writes, view, version, at);
      if (plan.batch.length === 0) throw plan.refusal!;

      // Queued before the commit, so a crash right after it cannot lose a timer (see the class comment).
      await Promise.all(
        plan.queued.map((timer) => this.execute(this.sql.queueTimer, [timer.shard, timer.dueAt, ...key, timer.name, version, at], 'write')),
      );
      if (!(await this.conditionalBatch(plan.batch)).wasApplied()) continue;

      // The turns are committed whatever happens here, so a failed delete must not fail them:
      // the row left behind no longer matches the actor's timer row, and dueTimers drops it.
      await Promise.allSettled(
        plan.replaced.map(([name, stored]) => this.execute(this.sql.dequeueTimer, [stored.shard, stored.dueAt, ...key, name], 'write')),
      );
      if (plan.refusal) throw plan.refusal;
      return;
    }
    throw new ActorError(RuntimeErrorCode.Conflict, actor, `other writes kept landing first, ${MAX_CAS_ATTEMPTS} times`, {
      retriable: true,
    });
  }

  private async readForRun(actor: ActorRef, writes: readonly TurnWrite[]): Promise<RunView> {
    const key = keyOf(actor);
    const timerNames = new Set(
      writes.flatMap((write) => [...(write.timersSet ?? []).map((timer) => timer.name), ...(write.timersCancelled ?? [])]),
    );
    const [head, applied, timers] = await Promise.all([
      this.first(this.sql.head, key),
      this.rowsIn(this.sql.inputs, key, new Set(writes.map((write) => write.input.id))),
      this.rowsIn(this.sql.timerIndex, key, timerNames),
    ]);
    const inputs = long(head?.['inputs']) ?? 0;
    const keep = this.options.keepInputIds;
    // Input #n takes slot n % keep from input #(n - keep), the id to forget when it is applied.
    const slots = new Set(
      writes
        .map((_, index) => inputs + index + 1)
        .filter((n) => n > keep)
        .map((n) => n % keep),
    );
    const scopes = [...new Set(writes.flatMap((write) => (write.fence ? [write.fence.scope] : [])))];
    // Only after the head: the fencing argument in the class comment rests on that order.
    const [fences, held] = await Promise.all([
      Promise.all(scopes.map(async (scope) => [scope, long((await this.first(this.sql.fence, [scope]))?.['epoch'])] as const)),
      this.rowsIn(this.sql.slots, key, slots),
    ]);
    return {
      version: long(head?.['version']),
      seq: long(head?.['seq']) ?? 0,
      inputs,
      lastInputOffset: long(head?.['last_input_offset']),
      outboxOrd: long(head?.['outbox_ord']) ?? 0,
      applied: new Set(applied.map((row) => row['name'] as string)),
      timers: new Map(timers.map((row) => [row['name'] as string, { shard: row['shard'] as string, dueAt: long(row['due_at'])! }])),
      fences: new Map(fences.flatMap(([scope, epoch]) => (epoch === undefined ? [] : [[scope, epoch]]))),
      slots: new Map(held.map((row) => [long(row['pos'])!, row['ref'] as string])),
    };
  }

  /** The batch for the run's turns as `view` finds the actor, up to the first turn it refuses. */
  private planRun(writes: readonly TurnWrite[], view: RunView, version: number, at: number): RunPlan {
    const key = keyOf(writes[0]!.actor);
    const { sql } = this;
    const keep = this.options.keepInputIds;
    const rows: BatchQuery[] = [];
    const runInputs = new Set<string>();
    // Where each timer the run touches ends up: set, or undefined once cancelled.
    const timers = new Map<string, Timer | undefined>();
    let { seq, inputs, lastInputOffset, outboxOrd } = view;
    let snapshot: Snapshot | undefined;
    let refusal: ActorError | undefined;
    for (const write of writes) {
      refusal = refusalOf(write, view, seq, runInputs);
      if (refusal) break;
      for (const data of write.events) {
        seq += 1;
        rows.push({ query: sql.appendEvent, params: [...key, seq, buffer(data), at] });
      }
      inputs += 1;
      runInputs.add(write.input.id);
      rows.push({ query: sql.recordInput, params: [...key, write.input.id, at] });
      rows.push({ query: sql.fillSlot, params: [...key, inputs % keep, write.input.id] });
      const evicted = inputs > keep ? view.slots.get(inputs % keep) : undefined;
      if (evicted !== undefined) rows.push({ query: sql.forgetInput, params: [...key, evicted] });
      for (const message of write.outbox ?? []) {
        outboxOrd += 1;
        rows.push({
          query: sql.addOutbox,
          params: [...key, outboxOrd, message.id, message.topic, message.key, buffer(message.value), message.headers],
        });
      }
      // Cancels before sets, so a turn that cancels and re-sets a name ends with the new timer.
      for (const name of write.timersCancelled ?? []) timers.set(name, undefined);
      for (const timer of write.timersSet ?? []) timers.set(timer.name, timer);
      const { offset } = write.input;
      if (offset !== undefined) lastInputOffset = Math.max(offset, lastInputOffset ?? offset);
      snapshot = write.snapshot ?? snapshot;
    }
    if (rows.length === 0) return { batch: [], queued: [], replaced: [], refusal };

    // A batch's statements share one timestamp and a delete wins a tie, so each timer row gets
    // one statement: where the run leaves it.
    const queued: Timer[] = [];
    for (const [name, timer] of timers) {
      if (timer !== undefined) {
        queued.push(timer);
        rows.push({ query: sql.indexTimer, params: [...key, name, timer.shard, timer.dueAt, buffer(timer.message)] });
      } else if (view.timers.has(name)) {
        rows.push({ query: sql.unindexTimer, params: [...key, name] });
      }
    }
    const replaced = [...view.timers].filter(([name, stored]) => {
      if (!timers.has(name)) return false;
      const next = timers.get(name);
      return next === undefined || next.shard !== stored.shard || next.dueAt !== stored.dueAt;
    });
    // `undefined` binds as "unset": the column keeps its stored value.
    const head = [
      seq,
      version,
      inputs,
      lastInputOffset,
      outboxOrd > view.outboxOrd ? outboxOrd : undefined,
      snapshot?.seq,
      snapshot ? buffer(snapshot.state) : undefined,
    ];
    rows.unshift({ query: sql.commitHead, params: [...head, ...key, view.version ?? null] });
    return { batch: rows, queued, replaced, refusal };
  }

  /**
   * Up to `limit` queued timers of a shard due by `upTo` (any time when undefined), each
   * confirmed by its actor's timer row; rows that are not are skipped or cleaned up.
   */
  private async confirmedTimers(shard: string, upTo: number | undefined, limit: number): Promise<Timer[]> {
    const [cql, params] = upTo === undefined ? [this.sql.queuedAll, [shard]] : [this.sql.queuedDue, [shard, upTo]];
    const found: Timer[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.execute(cql, params, 'read', { fetchSize: limit, pageState });
      const confirmed = await Promise.all(page.rows.map((row) => this.confirmTimer(shard, row)));
      for (const timer of confirmed) {
        if (timer === undefined) continue;
        found.push(timer);
        if (found.length === limit) return found;
      }
      pageState = page.pageState ?? undefined;
    } while (pageState);
    return found;
  }

  private async confirmTimer(shard: string, queued: Row): Promise<Timer | undefined> {
    const actor: ActorRef = { type: queued['actor_type'] as string, id: queued['actor_id'] as string };
    const key = keyOf(actor);
    const name = queued['name'] as string;
    const dueAt = long(queued['due_at'])!;
    const heldTimer = async (): Promise<Timer | undefined> => {
      const held = (await this.rows(this.sql.timerIndex, [...key, [name]]))[0];
      if (held === undefined || held['shard'] !== shard || long(held['due_at']) !== dueAt) return undefined;
      return { actor, name, dueAt, shard, message: bytes(held['data']) };
    };
    const held = await heldTimer();
    if (held !== undefined) return held;

    const version = long((await this.first(this.sql.head, key))?.['version']);
    const turn = long(queued['turn'])!;
    if ((version ?? 0) < turn) {
      // Its turn has not committed: it may be on its way, so wait, unless it is too old to be.
      if (this.options.clock() - long(queued['written_at'])! < this.options.intentGraceMs) return undefined;
      const abandoned = await this.execute(this.sql.abandonTurn, [turn, ...key, version ?? null], 'cas');
      // Not applied: a write landed meanwhile, perhaps that very turn; look again next time.
      if (!abandoned.wasApplied()) return undefined;
    } else {
      // The turn committed, perhaps between the two reads above, and the timer row it wrote
      // came with the version in one batch: read after the version, it shows the turn's timer
      // unless a later turn replaced it.
      const committed = await heldTimer();
      if (committed !== undefined) return committed;
    }
    // At the write time read, so that a newer write of the same row (the timer set again) stays.
    await this.execute(this.sql.dequeueTimerWrite, [queued['written'], shard, dueAt, actor.type, actor.id, name], 'write');
    return undefined;
  }

  private ensureOpen(): void {
    if (this.closed) {
      throw new RuntimeError(RuntimeErrorCode.Closed, `cassandra store on keyspace ${this.options.keyspace} is closed`);
    }
  }

  private async execute(
    cql: string,
    params: unknown[],
    mode: Mode,
    paging: { fetchSize?: number; pageState?: string | undefined } = {},
  ): Promise<cassandra.types.ResultSet> {
    try {
      return await this.client.execute(cql, params, { ...this.modes[mode], ...paging });
    } catch (error) {
      throw toStoreError(error, cql, mode === 'cas');
    }
  }

  private async first(cql: string, params: unknown[]): Promise<Row | undefined> {
    return (await this.execute(cql, params, 'read')).first() ?? undefined;
  }

  /** Every row of a query, fetching page after page. */
  private async rows(cql: string, params: unknown[]): Promise<Row[]> {
    const all: Row[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.execute(cql, params, 'read', { pageState });
      all.push(...page.rows);
      pageState = page.pageState ?? undefined;
    } while (pageState);
    return all;
  }

  /**
   * The rows of an actor's query whose last marker takes an IN list, for all of `values`. An IN
   * list of a few dozen keys is one cheap read; Cassandra warns about long ones, so hundreds are
   * asked about in slices, side by side.
   */
  private async rowsIn(cql: string, key: Key, values: ReadonlySet<string | number>): Promise<Row[]> {
    const all = [...values];
    const slices = Array.from({ length: Math.ceil(all.length / MAX_IN_KEYS) }, (_, i) => all.slice(i * MAX_IN_KEYS, (i + 1) * MAX_IN_KEYS));
    return (await Promise.all(slices.map((slice) => this.rows(cql, [...key, slice])))).flat();
  }

  /** A batch on one actor's partition with a condition, as one Paxos round. */
  private async conditionalBatch(queries: BatchQuery[]): Promise<cassandra.types.ResultSet> {
    try {
      return await this.client.batch(queries, this.modes.cas);
    } catch (error) {
      throw toStoreError(error, [...new Set(queries.map((query) => query.query))].join('\n'), true);
    }
  }
}

/** Why a turn of a run is refused, if it is: fence, then seq, then input id, as the embedded store checks them. */
function refusalOf(write: TurnWrite, view: RunView, seq: number, runInputs: ReadonlySet<string>): ActorError | undefined {
  const { fence } = write;
  const epoch = fence ? view.fences.get(fence.scope) : undefined;
  if (fence && epoch !== undefined && epoch > fence.epoch) return turnRefused.fenced(write, fence, epoch);
  if (write.expectedSeq !== seq) return turnRefused.conflict(write, seq);
  if (view.applied.has(write.input.id) || runInputs.has(write.input.id)) return turnRefused.duplicateInput(write);
  return undefined;
}

/** Cuts turns into runs of at most MAX_RUN_TURNS turns and MAX_RUN_BYTES of payload; a larger turn is a run of its own. */
function runsOf(writes: readonly TurnWrite[]): TurnWrite[][] {
  const runs: TurnWrite[][] = [];
  let run: TurnWrite[] = [];
  let size = 0;
  for (const write of writes) {
    const bytes = payloadBytes(write);
    if (run.length === MAX_RUN_TURNS || (run.length > 0 && size + bytes > MAX_RUN_BYTES)) {
      runs.push(run);
      [run, size] = [[], 0];
    }
    run.push(write);
    size += bytes;
  }
  runs.push(run);
  return runs;
}

function payloadBytes(write: TurnWrite): number {
  let total = write.snapshot?.state.byteLength ?? 0;
  for (const data of write.events) total += data.byteLength;
  for (const message of write.outbox ?? []) total += message.value.byteLength;
  for (const timer of write.timersSet ?? []) total += timer.message.byteLength;
  return total;
}

function resolveOptions(options: CassandraStoreOptions): ResolvedOptions {
  // `??` rather than a spread, so a key given as undefined still gets its default.
  const resolved: ResolvedOptions = {
    contactPoints: options.contactPoints,
    localDataCenter: options.localDataCenter,
    keyspace: options.keyspace ?? DEFAULTS.keyspace,
    replicationFactor: options.replicationFactor ?? DEFAULTS.replicationFactor,
    keepInputIds: options.keepInputIds ?? DEFAULTS.keepInputIds,
    consistency: options.consistency ?? DEFAULTS.consistency,
    serialConsistency: options.serialConsistency ?? DEFAULTS.serialConsistency,
    intentGraceMs: options.intentGraceMs ?? DEFAULTS.intentGraceMs,
    clock: options.clock ?? DEFAULTS.clock,
  };
  const { contactPoints } = resolved;
  if (
    !Array.isArray(contactPoints) ||
    contactPoints.length === 0 ||
    !contactPoints.every((point) => typeof point === 'string' && point.trim() !== '')
  ) {
    throw invalidOption('contactPoints', 'must be a non-empty list of host or host:port strings', contactPoints);
  }
  if (typeof resolved.localDataCenter !== 'string' || resolved.localDataCenter.trim() === '') {
    throw invalidOption('localDataCenter', 'must name the data center, e.g. "datacenter1"', resolved.localDataCenter);
  }
  // Spliced into CQL (DDL takes no bind markers), so only an unquoted lowercase identifier.
  if (typeof resolved.keyspace !== 'string' || !/^[a-z][a-z0-9_]{0,47}$/.test(resolved.keyspace)) {
    throw invalidOption('keyspace', 'must be 1..48 of [a-z0-9_], starting with a letter', resolved.keyspace);
  }
  if (!Number.isSafeInteger(resolved.replicationFactor) || resolved.replicationFactor < 1) {
    throw invalidOption('replicationFactor', 'must be a positive integer', resolved.replicationFactor);
  }
  if (!Number.isSafeInteger(resolved.keepInputIds) || resolved.keepInputIds < MIN_KEEP_INPUT_IDS) {
    throw invalidOption('keepInputIds', `must be an integer of at least ${MIN_KEEP_INPUT_IDS}`, resolved.keepInputIds);
  }
  if (!['localQuorum', 'quorum'].includes(resolved.consistency)) {
    throw invalidOption('consistency', 'must be "localQuorum" or "quorum"', resolved.consistency);
  }
  if (!['localSerial', 'serial'].includes(resolved.serialConsistency)) {
    throw invalidOption('serialConsistency', 'must be "localSerial" or "serial"', resolved.serialConsistency);
  }
  if (!Number.isSafeInteger(resolved.intentGraceMs) || resolved.intentGraceMs < 0) {
    throw invalidOption('intentGraceMs', 'must be a non-negative integer of milliseconds', resolved.intentGraceMs);
  }
  if (typeof resolved.clock !== 'function') {
    throw invalidOption('clock', 'must be a function returning unix ms', resolved.clock);
  }
  return resolved;
}

function invalidOption(key: keyof CassandraStoreOptions, rule: string, value: unknown): RuntimeError {
  return new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `CassandraStore option "${key}" ${rule}, got ${typeof value === 'function' ? 'a function' : JSON.stringify(value)}`,
  );
}

function levels(options: ResolvedOptions): { consistency: number; serialConsistency: number } {
  const { consistencies } = cassandra.types;
  return { consistency: consistencies[options.consistency], serialConsistency: consistencies[options.serialConsistency] };
}

function keyOf(actor: ActorRef): Key {
  return [actor.type, actor.id];
}

/** bigint columns come back as the driver's Long; every value stored here is a safe integer. */
function long(value: unknown): number | undefined {
  return value == null ? undefined : (value as cassandra.types.Long).toNumber();
}

/** Copies a blob into a plain Uint8Array, so callers never share or see Node's Buffer. */
function bytes(value: unknown): Uint8Array {
  return new Uint8Array(value as Buffer);
}

/** The driver binds blobs from Buffers only; this one shares the caller's memory. */
function buffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function toArtifact(row: Row): ArtifactRecord {
  return {
    namespace: row['namespace'] as string,
    project: row['project'] as string,
    name: row['name'] as string,
    kind: row['kind'] as string,
    sha256: row['sha256'] as string,
    bytes: long(row['bytes'])!,
    uri: row['uri'] as string,
    storedAt: long(row['stored_at'])!,
  };
}

function toOutboxMessage(row: Row): OutboxMessage {
  return {
    id: row['ref'] as string,
    topic: row['topic'] as string,
    key: row['msg_key'] as string,
    value: bytes(row['data']),
    headers: (row['headers'] as Record<string, string> | null) ?? {},
  };
}
