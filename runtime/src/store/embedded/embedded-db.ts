/**
 * The embedded store's SQLite database: its schema and migrations, the statements of both its
 * connections — the caller's, which reads, and the writer thread's (embedded-writer.worker.ts),
 * which writes — and how a write's failure crosses from one to the other.
 */
import Database from 'better-sqlite3';

import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { actorOfRun, turnRefused } from '../store.js';
import type { ActorRecord, ActorRef, ArtifactRecord, Fence, OutboxMessage, StoredEvent, Timer, TurnWrite } from '../store.js';

/**
 * Schema migrations: entry i takes a database from `PRAGMA user_version` i to i + 1. Append
 * new entries; never edit one that has shipped.
 *
 * Tables holding payloads (journal, snapshots, timers, outbox) keep their rowid because
 * WITHOUT ROWID tables degrade with rows larger than a small fraction of a page; the small
 * key-only tables are WITHOUT ROWID so their primary key is the table.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE journal (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (actor_type, actor_id, seq)
  ) STRICT;

  CREATE TABLE snapshots (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (actor_type, actor_id)
  ) STRICT;

  CREATE TABLE actors (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    last_input_offset INTEGER,
    PRIMARY KEY (actor_type, actor_id)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE applied_inputs (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    input_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    PRIMARY KEY (actor_type, actor_id, input_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX applied_inputs_by_ord ON applied_inputs (actor_type, actor_id, ord);

  CREATE TABLE timers (
    shard TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    name TEXT NOT NULL,
    message BLOB NOT NULL,
    PRIMARY KEY (actor_type, actor_id, name)
  ) STRICT;
  -- The key columns after due_at give timers due in the same millisecond a stable order
  -- without a sort step.
  CREATE INDEX timers_by_due ON timers (shard, due_at, actor_type, actor_id, name);

  CREATE TABLE outbox (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (actor_type, actor_id, ord)
  ) STRICT;
  CREATE INDEX outbox_by_id ON outbox (actor_type, actor_id, id);

  CREATE TABLE fences (
    scope TEXT NOT NULL PRIMARY KEY,
    epoch INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  `,
  // The number of the actor's last applied input, kept on its row: a turn reads that row anyway,
  // and no longer asks applied_inputs for its largest ord.
  `
  ALTER TABLE actors ADD COLUMN inputs INTEGER NOT NULL DEFAULT 0;
  UPDATE actors SET inputs = COALESCE(
    (SELECT MAX(ord) FROM applied_inputs WHERE applied_inputs.actor_type = actors.actor_type AND applied_inputs.actor_id = actors.actor_id),
    0
  );
  `,
  // The artefact catalog: one row per project and artefact name, read a project at a time.
  `
  CREATE TABLE artifacts (
    namespace TEXT NOT NULL,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    uri TEXT NOT NULL,
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, project, name)
  ) STRICT, WITHOUT ROWID;
  `,
  // Applied inputs are pruned once every keepInputIds inputs of an actor, by a scan of its rows,
  // rather than through an index on their order that every input paid to keep up.
  `
  DROP INDEX applied_inputs_by_ord;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

interface ActorRow {
  seq: number;
  last_input_offset: number | null;
  inputs: number;
}
interface SnapshotRow {
  seq: number;
  state: Buffer;
}
interface EventRow {
  seq: number;
  data: Buffer;
  at: number;
}
interface OutboxRow {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: string;
}
interface ArtifactRow {
  namespace: string;
  project: string;
  name: string;
  kind: string;
  sha256: string;
  bytes: number;
  uri: string;
  stored_at: number;
}
interface TimerRow {
  shard: string;
  due_at: number;
  actor_type: string;
  actor_id: string;
  name: string;
  message: Buffer;
}

type Key = [type: string, id: string];

const ARTIFACT_COLUMNS = 'namespace, project, name, kind, sha256, bytes, uri, stored_at';

export function prepareStatements(db: Database.Database) {
  return {
    actor: db.prepare<Key, ActorRow>('SELECT seq, last_input_offset, inputs FROM actors WHERE actor_type = ? AND actor_id = ?'),
    upsertActor: db.prepare<[...Key, seq: number, lastInputOffset: number | null, inputs: number]>(
      `INSERT INTO actors (actor_type, actor_id, seq, last_input_offset, inputs) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (actor_type, actor_id)
       DO UPDATE SET seq = excluded.seq, last_input_offset = excluded.last_input_offset, inputs = excluded.inputs`,
    ),
    snapshot: db.prepare<Key, SnapshotRow>('SELECT seq, state FROM snapshots WHERE actor_type = ? AND actor_id = ?'),
    upsertSnapshot: db.prepare<[...Key, seq: number, state: Uint8Array]>(
      `INSERT INTO snapshots (actor_type, actor_id, seq, state) VALUES (?, ?, ?, ?)
       ON CONFLICT (actor_type, actor_id) DO UPDATE SET seq = excluded.seq, state = excluded.state`,
    ),
    eventsAfter: db.prepare<[...Key, after: number], EventRow>(
      'SELECT seq, data, at FROM journal WHERE actor_type = ? AND actor_id = ? AND seq > ? ORDER BY seq',
    ),
    appendEvent: db.prepare<[...Key, seq: number, data: Uint8Array, at: number]>(
      'INSERT INTO journal (actor_type, actor_id, seq, data, at) VALUES (?, ?, ?, ?, ?)',
    ),
    // One statement for any number of ids: they come as a JSON array, each looked up by primary key.
    appliedAmong: db.prepare<[...Key, inputIds: string], { input_id: string }>(
      'SELECT input_id FROM applied_inputs WHERE actor_type = ? AND actor_id = ? AND input_id IN (SELECT value FROM json_each(?))',
    ),
    recordInput: db.prepare<[...Key, inputId: string, ord: number]>(
      'INSERT INTO applied_inputs (actor_type, actor_id, input_id, ord) VALUES (?, ?, ?, ?)',
    ),
    pruneInputs: db.prepare<[...Key, upTo: number]>('DELETE FROM applied_inputs WHERE actor_type = ? AND actor_id = ? AND ord <= ?'),
    setTimer: db.prepare<[shard: string, dueAt: number, ...Key, name: string, message: Uint8Array]>(
      `INSERT INTO timers (shard, due_at, actor_type, actor_id, name, message) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (actor_type, actor_id, name)
       DO UPDATE SET shard = excluded.shard, due_at = excluded.due_at, message = excluded.message`,
    ),
    cancelTimer: db.prepare<[...Key, name: string]>('DELETE FROM timers WHERE actor_type = ? AND actor_id = ? AND name = ?'),
    deleteTimer: db.prepare<[...Key, name: string, dueAt: number]>(
      'DELETE FROM timers WHERE actor_type = ? AND actor_id = ? AND name = ? AND due_at = ?',
    ),
    dueTimers: db.prepare<[shard: string, now: number, limit: number], TimerRow>(
      `SELECT shard, due_at, actor_type, actor_id, name, message FROM timers
       WHERE shard = ? AND due_at <= ? ORDER BY due_at, actor_type, actor_id, name LIMIT ?`,
    ),
    nextDue: db.prepare<[shard: string], { due_at: number | null }>('SELECT MIN(due_at) AS due_at FROM timers WHERE shard = ?'),
    outbox: db.prepare<Key, OutboxRow>(
      'SELECT id, topic, key, value, headers FROM outbox WHERE actor_type = ? AND actor_id = ? ORDER BY ord',
    ),
    lastOutboxOrd: db.prepare<Key, { ord: number | null }>('SELECT MAX(ord) AS ord FROM outbox WHERE actor_type = ? AND actor_id = ?'),
    addOutbox: db.prepare<[...Key, ord: number, id: string, topic: string, key: string, value: Uint8Array, headers: string]>(
      'INSERT INTO outbox (actor_type, actor_id, ord, id, topic, key, value, headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    markSent: db.prepare<[...Key, id: string]>('DELETE FROM outbox WHERE actor_type = ? AND actor_id = ? AND id = ?'),
    fenceEpoch: db.prepare<[scope: string], { epoch: number }>('SELECT epoch FROM fences WHERE scope = ?'),
    setFence: db.prepare<[scope: string, epoch: number]>(
      'INSERT INTO fences (scope, epoch) VALUES (?, ?) ON CONFLICT (scope) DO UPDATE SET epoch = excluded.epoch',
    ),
    putArtifact: db.prepare<ArtifactRow>(
      `INSERT INTO artifacts (namespace, project, name, kind, sha256, bytes, uri, stored_at)
       VALUES (@namespace, @project, @name, @kind, @sha256, @bytes, @uri, @stored_at)
       ON CONFLICT (namespace, project, name) DO UPDATE SET
         kind = excluded.kind, sha256 = excluded.sha256, bytes = excluded.bytes, uri = excluded.uri, stored_at = excluded.stored_at`,
    ),
    artifact: db.prepare<[namespace: string, project: string, name: string], ArtifactRow>(
      `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE namespace = ? AND project = ? AND name = ?`,
    ),
    artifacts: db.prepare<[namespace: string, project: string], ArtifactRow>(
      `SELECT ${ARTIFACT_COLUMNS} FROM artifacts WHERE namespace = ? AND project = ? ORDER BY name`,
    ),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/**
 * Opens a connection in WAL mode, so the reading connection never waits for the writing one.
 * The side that opens the file first passes `migrate`, which brings the schema up to date.
 */
export function openDatabase(path: string, options: { migrate: boolean }): Database.Database {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    if (options.migrate) migrate(db, path);
    return db;
  } catch (error) {
    db.close();
    throw normalise(error, path);
  }
}

/** An actor's durable state; the caller runs it in one read transaction, so the parts agree. */
export function readActor(sql: Statements, actor: ActorRef): ActorRecord {
  const key: Key = [actor.type, actor.id];
  const row = sql.actor.get(...key);
  const snapshot = sql.snapshot.get(...key);
  const events = sql.eventsAfter
    .all(...key, snapshot?.seq ?? 0)
    .map((event): StoredEvent => ({ seq: event.seq, data: bytes(event.data), at: event.at }));
  const outbox = sql.outbox.all(...key).map((message): OutboxMessage => ({
    id: message.id,
    topic: message.topic,
    key: message.key,
    value: bytes(message.value),
    headers: JSON.parse(message.headers) as Record<string, string>,
  }));
  const record: ActorRecord = { events, seq: row?.seq ?? 0, outbox };
  if (snapshot) record.snapshot = { seq: snapshot.seq, state: bytes(snapshot.state) };
  if (row?.last_input_offset != null) record.lastInputOffset = row.last_input_offset;
  return record;
}

/** One write of a group commit, as the caller queues it for the writer thread. */
export type WriteOp =
  | { kind: 'turns'; writes: readonly TurnWrite[] }
  | { kind: 'mark-sent'; actor: ActorRef; ids: readonly string[] }
  | { kind: 'delete-timer'; actor: ActorRef; name: string; dueAt: number }
  | { kind: 'put-artifact'; record: ArtifactRecord };

/** A failed write as it crosses threads: a RuntimeError keeps its code and whether a retry may help. */
export interface WriteFailure {
  code?: RuntimeErrorCode;
  message: string;
  retriable: boolean;
}

/** The failure to send back for an error thrown while writing. */
export function toFailure(error: unknown): WriteFailure {
  if (error instanceof RuntimeError) return { code: error.code, message: error.message, retriable: error.retriable };
  return { message: error instanceof Error ? error.message : String(error), retriable: false };
}

/** The error a sent-back failure rejects its write with. */
export function fromFailure(failure: WriteFailure): Error {
  return failure.code === undefined
    ? new Error(failure.message)
    : new RuntimeError(failure.code, failure.message, { retriable: failure.retriable });
}

/**
 * The writing side of the database: applies group commits, each write in a savepoint of the
 * group's transaction, and claims fences.
 */
export class SqliteWriter {
  private readonly sql: Statements;
  /** A run of one actor's turns, in a savepoint of its group commit. */
  private readonly turnsTx: Database.Transaction<(writes: readonly TurnWrite[], at: number) => void>;
  private readonly groupTx: Database.Transaction<(ops: readonly WriteOp[], at: number) => (WriteFailure | undefined)[]>;
  private readonly markSentTx: Database.Transaction<(actor: ActorRef, ids: readonly string[]) => void>;
  private readonly claimTx: Database.Transaction<(fence: Fence) => void>;
  private readonly claimNextTx: Database.Transaction<(scope: string) => number>;

  constructor(
    private readonly db: Database.Database,
    private readonly path: string,
    private readonly keepInputIds: number,
  ) {
    this.sql = prepareStatements(db);
    this.turnsTx = db.transaction((writes: readonly TurnWrite[], at: number) => this.applyTurns(writes, at));
    this.groupTx = db.transaction((ops: readonly WriteOp[], at: number) =>
      ops.map((op) => {
        // A nested transaction is a savepoint: a write that throws rolls back alone.
        try {
          this.apply(op, at);
          return undefined;
        } catch (error) {
          return toFailure(normalise(error, this.path));
        }
      }),
    );
    this.markSentTx = db.transaction((actor: ActorRef, ids: readonly string[]) => {
      for (const id of ids) this.sql.markSent.run(actor.type, actor.id, id);
    });
    this.claimTx = db.transaction((fence: Fence) => {
      const stored = this.sql.fenceEpoch.get(fence.scope)?.epoch;
      if (stored !== undefined && stored > fence.epoch) {
        throw new RuntimeError(RuntimeErrorCode.Fenced, `${fence.scope}: cannot claim epoch ${fence.epoch}, epoch ${stored} owns it`);
      }
      if (stored !== fence.epoch) this.sql.setFence.run(fence.scope, fence.epoch);
    });
    this.claimNextTx = db.transaction((scope: string) => {
      const next = (this.sql.fenceEpoch.get(scope)?.epoch ?? 0) + 1;
      this.sql.setFence.run(scope, next);
      return next;
    });
  }

  /**
   * Commits the writes in one transaction and says how each ended, in order (undefined: written).
   * `at` stamps the journaled events. IMMEDIATE takes the write lock up front: a deferred
   * transaction that reads and then writes can fail with SQLITE_BUSY instead of waiting.
   */
  commitGroup(ops: readonly WriteOp[], at: number): (WriteFailure | undefined)[] {
    return this.groupTx.immediate(ops, at);
  }

  claim(fence: Fence): void {
    this.claimTx.immediate(fence);
  }

  claimNext(scope: string): number {
    return this.claimNextTx.immediate(scope);
  }

  close(): void {
    this.db.close();
  }

  private apply(op: WriteOp, at: number): void {
    switch (op.kind) {
      case 'turns':
        this.turnsTx(op.writes, at);
        return;
      case 'mark-sent':
        this.markSentTx(op.actor, op.ids);
        return;
      case 'delete-timer':
        this.sql.deleteTimer.run(op.actor.type, op.actor.id, op.name, op.dueAt);
        return;
      case 'put-artifact': {
        const { namespace, project, name, kind, sha256, bytes, uri, storedAt } = op.record;
        this.sql.putArtifact.run({ namespace, project, name, kind, sha256, bytes, uri, stored_at: storedAt });
        return;
      }
    }
  }

  /**
   * Runs inside a commit transaction: a throw anywhere rolls back every turn of the run. The
   * actor's row is read once before the run and written once after it.
   */
  private applyTurns(writes: readonly TurnWrite[], at: number): void {
    const actor = actorOfRun(writes)!;
    const key: Key = [actor.type, actor.id];
    const row = this.sql.actor.get(...key);
    let seq = row?.seq ?? 0;
    let inputs = row?.inputs ?? 0;
    let lastInputOffset = row?.last_input_offset ?? undefined;
    let fenceChecked: Fence | undefined;
    for (const write of writes) {
      if (write.fence && (write.fence.scope !== fenceChecked?.scope || write.fence.epoch !== fenceChecked.epoch)) {
        const stored = this.sql.fenceEpoch.get(write.fence.scope)?.epoch;
        if (stored !== undefined && stored > write.fence.epoch) throw turnRefused.fenced(write, write.fence, stored);
        fenceChecked = write.fence;
      }
      if (write.expectedSeq !== seq) throw turnRefused.conflict(write, seq);
      inputs += 1;
      try {
        this.sql.recordInput.run(...key, write.input.id, inputs);
      } catch (error) {
        // The primary key is the check: an id recorded before is an input applied before.
        if (error instanceof Database.SqliteError && error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw turnRefused.duplicateInput(write);
        }
        throw error;
      }
      // Once every keepInputIds inputs, the ones before the last keepInputIds go: an actor holds
      // between keepInputIds and twice that many, and the scan that finds them costs each input little.
      if (inputs % this.keepInputIds === 0) this.sql.pruneInputs.run(...key, inputs - this.keepInputIds);

      write.events.forEach((data, index) => this.sql.appendEvent.run(...key, seq + index + 1, data, at));
      seq += write.events.length;
      if (write.input.offset != null) lastInputOffset = Math.max(write.input.offset, lastInputOffset ?? -1);

      // Cancels before sets, so a turn that cancels and re-sets a name ends with the new timer.
      for (const name of write.timersCancelled ?? []) this.sql.cancelTimer.run(...key, name);
      for (const timer of write.timersSet ?? []) {
        this.sql.setTimer.run(timer.shard, timer.dueAt, timer.actor.type, timer.actor.id, timer.name, timer.message);
      }

      const outbox = write.outbox ?? [];
      let outboxOrd = outbox.length > 0 ? (this.sql.lastOutboxOrd.get(...key)?.ord ?? 0) : 0;
      for (const message of outbox) {
        outboxOrd += 1;
        this.sql.addOutbox.run(...key, outboxOrd, message.id, message.topic, message.key, message.value, JSON.stringify(message.headers));
      }

      if (write.snapshot) this.sql.upsertSnapshot.run(...key, write.snapshot.seq, write.snapshot.state);
    }
    this.sql.upsertActor.run(...key, seq, lastInputOffset ?? null, inputs);
  }
}

function migrate(db: Database.Database, path: string): void {
  // IMMEDIATE and a re-read inside it, so two processes opening a new file do not both migrate.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new RuntimeError(
        RuntimeErrorCode.Corrupt,
        `${path}: schema version ${version} is newer than this build's ${SCHEMA_VERSION}; refusing to open it`,
      );
    }
    for (const migration of MIGRATIONS.slice(version)) db.exec(migration);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** Maps SQLite's corruption codes to CORRUPT; everything else is passed on as thrown. */
export function normalise(error: unknown, path: string): unknown {
  if (error instanceof Database.SqliteError && (error.code === 'SQLITE_NOTADB' || error.code.startsWith('SQLITE_CORRUPT'))) {
    return new RuntimeError(RuntimeErrorCode.Corrupt, `${path}: ${error.message}`, { cause: error });
  }
  return error;
}

export function toTimer(row: TimerRow): Timer {
  return {
    actor: { type: row.actor_type, id: row.actor_id },
    name: row.name,
    dueAt: row.due_at,
    shard: row.shard,
    message: bytes(row.message),
  };
}

export function toArtifact(row: ArtifactRow): ArtifactRecord {
  const { namespace, project, name, kind, sha256, bytes, uri, stored_at } = row;
  return { namespace, project, name, kind, sha256, bytes, uri, storedAt: stored_at };
}

/** Copies a row's Buffer into a plain Uint8Array, so callers never share or see Node's Buffer. */
function bytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer);
}
