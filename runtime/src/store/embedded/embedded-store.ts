/**
 * The embedded Store: one SQLite file (better-sqlite3) holding every actor's journal, latest
 * snapshot, applied input ids, timers, outbox, the partition fences and the artefact catalog,
 * for one process.
 * Each turn is applied in its own savepoint, so a turn is on disk entirely or not at all; the
 * turns and outbox acknowledgements requested in one turn of the event loop share a transaction
 * (group commit), so a busy node pays for one WAL commit per batch rather than per turn.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import { ActorError, RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ActorRecord, ActorRef, ArtifactRecord, Fence, OutboxMessage, Store, StoredEvent, Timer, TurnWrite } from '../store.js';

/** Options of {@link EmbeddedStore}. */
export interface EmbeddedStoreOptions {
  /** The database file (required). Its directory is created when missing. */
  path: string;
  /**
   * How many applied input ids to keep per actor to recognise redelivered inputs; older ids
   * are pruned as new ones are recorded. Default 10,000, which is also the least allowed:
   * the Store contract promises that many.
   */
  keepInputIds?: number;
  /** Stamps journaled events (`StoredEvent.at`). Default `Date.now`. */
  clock?: () => number;
}

const DEFAULTS = {
  keepInputIds: 10_000,
  clock: Date.now,
} satisfies Required<Omit<EmbeddedStoreOptions, 'path'>>;

/** The Store contract's promise in `appliedInputs`. */
const MIN_KEEP_INPUT_IDS = 10_000;

/** Applied input ids beyond `keepInputIds` are deleted once every this many inputs of an actor. */
const PRUNE_EVERY = 100;

/**
 * Schema migrations: entry i takes a database from `PRAGMA user_version` i to i + 1. Append
 * new entries; never edit one that has shipped.
 *
 * Tables holding payloads (journal, snapshots, timers, outbox) keep their rowid because
 * WITHOUT ROWID tables degrade with rows larger than a small fraction of a page; the small
 * key-only tables are WITHOUT ROWID so their primary key is the table.
 */
const MIGRATIONS: readonly string[] = [
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
];

const SCHEMA_VERSION = MIGRATIONS.length;

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

/** A write waiting for a group commit, and how it ended once the transaction has run. */
interface GroupedWrite {
  apply(): void;
  resolve(): void;
  reject(error: unknown): void;
  failure?: unknown;
}

const ARTIFACT_COLUMNS = 'namespace, project, name, kind, sha256, bytes, uri, stored_at';

function prepareStatements(db: Database.Database) {
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
    isApplied: db.prepare<[...Key, inputId: string], { found: 1 }>(
      'SELECT 1 AS found FROM applied_inputs WHERE actor_type = ? AND actor_id = ? AND input_id = ?',
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

/**
 * The SQLite-backed Store of embedded mode.
 *
 * Durability: WAL with `synchronous = NORMAL`. A commit is written to the WAL before
 * `commitTurn` resolves, so it survives the process being killed (even with SIGKILL); the WAL
 * is fsynced only at checkpoints, so a power loss or kernel crash may drop the last commits
 * (never corrupt the file). Embedded mode accepts that trade for commits without an fsync each.
 *
 * The store is synchronous underneath; its methods return promises to honour the Store
 * contract, and run to completion one at a time on the calling thread.
 *
 * @example
 * const store = new EmbeddedStore({ path: join(dataDir, 'store.db') });
 * await store.commitTurn({ actor, expectedSeq: 0, events: [bytes], input: { id: 'cmd-1' } });
 */
export class EmbeddedStore implements Store {
  readonly kind = 'embedded';

  private readonly options: Required<EmbeddedStoreOptions>;
  private readonly db: Database.Database;
  private readonly sql: ReturnType<typeof prepareStatements>;
  /** A run of one actor's turns, in a savepoint of its group commit. */
  private readonly commitTx: Database.Transaction<(writes: readonly TurnWrite[]) => void>;
  private readonly groupTx: Database.Transaction<(writes: readonly GroupedWrite[]) => void>;
  /** Writes waiting for the next group commit, which is scheduled when the first one arrives. */
  private grouped: GroupedWrite[] = [];
  private readonly loadTx: Database.Transaction<(actor: ActorRef) => ActorRecord>;
  private readonly markSentTx: Database.Transaction<(actor: ActorRef, ids: readonly string[]) => void>;
  private readonly claimTx: Database.Transaction<(fence: Fence) => void>;
  private readonly claimNextTx: Database.Transaction<(scope: string) => number>;
  private closed = false;

  /** Opens (creating or migrating when needed) the database at `options.path`. */
  constructor(options: EmbeddedStoreOptions) {
    this.options = resolveOptions(options);
    mkdirSync(dirname(this.options.path), { recursive: true });
    this.db = new Database(this.options.path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      migrate(this.db, this.options.path);
      this.sql = prepareStatements(this.db);
    } catch (error) {
      this.db.close();
      throw normalise(error, this.options.path);
    }
    this.commitTx = this.db.transaction((writes: readonly TurnWrite[]) => this.applyTurns(writes));
    this.groupTx = this.db.transaction((writes: readonly GroupedWrite[]) => {
      for (const write of writes) {
        // A nested transaction is a savepoint: a write that throws rolls back alone.
        try {
          write.apply();
        } catch (error) {
          write.failure = error;
        }
      }
    });
    this.loadTx = this.db.transaction((actor: ActorRef) => this.readActor(actor));
    this.markSentTx = this.db.transaction((actor: ActorRef, ids: readonly string[]) => {
      for (const id of ids) this.sql.markSent.run(actor.type, actor.id, id);
    });
    this.claimTx = this.db.transaction((fence: Fence) => {
      const stored = this.sql.fenceEpoch.get(fence.scope)?.epoch;
      if (stored !== undefined && stored > fence.epoch) {
        throw new RuntimeError(RuntimeErrorCode.Fenced, `${fence.scope}: cannot claim epoch ${fence.epoch}, epoch ${stored} owns it`);
      }
      if (stored !== fence.epoch) this.sql.setFence.run(fence.scope, fence.epoch);
    });
    this.claimNextTx = this.db.transaction((scope: string) => {
      const next = (this.sql.fenceEpoch.get(scope)?.epoch ?? 0) + 1;
      this.sql.setFence.run(scope, next);
      return next;
    });
  }

  async load(actor: ActorRef): Promise<ActorRecord> {
    return this.use(() => this.loadTx(actor));
  }

  async commitTurn(write: TurnWrite): Promise<void> {
    return this.group(() => this.commitTx([write]));
  }

  /** All or nothing: the turns share one savepoint. */
  async commitTurns(writes: readonly TurnWrite[]): Promise<void> {
    if (writes.length === 0) return;
    return this.group(() => this.commitTx(writes));
  }

  async appliedInputs(actor: ActorRef, inputIds: readonly string[]): Promise<Set<string>> {
    if (inputIds.length === 0) return new Set();
    return this.use(() => new Set(this.sql.appliedAmong.all(actor.type, actor.id, JSON.stringify(inputIds)).map((row) => row.input_id)));
  }

  async markSent(actor: ActorRef, ids: readonly string[]): Promise<void> {
    return this.group(() => this.markSentTx(actor, ids));
  }

  async dueTimers(shards: readonly string[], now: number, limit: number): Promise<Timer[]> {
    return this.use(() => {
      const count = Math.max(0, Math.floor(limit));
      // One query per shard walks the (shard, due_at) index in order and stops at the limit;
      // a single IN query would have to sort every due timer of all shards first.
      // The sort is stable, so timers of one shard due in the same millisecond keep the index's order.
      const rows = shards.flatMap((shard) => this.sql.dueTimers.all(shard, now, count));
      rows.sort((a, b) => a.due_at - b.due_at);
      return rows.slice(0, count).map(toTimer);
    });
  }

  async nextTimerDue(shards: readonly string[]): Promise<number | undefined> {
    return this.use(() => {
      let earliest: number | undefined;
      for (const shard of shards) {
        const due = this.sql.nextDue.get(shard)?.due_at ?? undefined;
        if (due !== undefined && (earliest === undefined || due < earliest)) earliest = due;
      }
      return earliest;
    });
  }

  async deleteTimer(actor: ActorRef, name: string, dueAt: number): Promise<void> {
    this.use(() => this.sql.deleteTimer.run(actor.type, actor.id, name, dueAt));
  }

  async claim(fence: Fence): Promise<void> {
    this.use(() => this.claimTx.immediate(fence));
  }

  async claimNext(scope: string): Promise<number> {
    return this.use(() => this.claimNextTx.immediate(scope));
  }

  async putArtifact(record: ArtifactRecord): Promise<void> {
    const { namespace, project, name, kind, sha256, bytes, uri, storedAt } = record;
    return this.group(() => this.sql.putArtifact.run({ namespace, project, name, kind, sha256, bytes, uri, stored_at: storedAt }));
  }

  async getArtifact(namespace: string, project: string, name: string): Promise<ArtifactRecord | undefined> {
    return this.use(() => {
      const row = this.sql.artifact.get(namespace, project, name);
      return row === undefined ? undefined : toArtifact(row);
    });
  }

  async listArtifacts(namespace: string, project: string): Promise<ArtifactRecord[]> {
    return this.use(() => this.sql.artifacts.all(namespace, project).map(toArtifact));
  }

  /** Closes the database once the writes already asked for are committed; later calls fail with CLOSED. Closing again does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.commitGrouped();
    this.closed = true;
    this.db.close();
  }

  /**
   * Queues `apply` for the next group commit and resolves once it is committed. The commit runs
   * in the check phase of the event loop, after every turn that the current I/O woke has
   * reached its own commit.
   */
  private group(apply: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new RuntimeError(RuntimeErrorCode.Closed, `embedded store ${this.options.path} is closed`));
    return new Promise((resolve, reject) => {
      if (this.grouped.length === 0) setImmediate(() => this.commitGrouped());
      this.grouped.push({ apply, resolve, reject });
    });
  }

  private commitGrouped(): void {
    const writes = this.grouped;
    if (writes.length === 0) return;
    this.grouped = [];
    try {
      // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
      // writes can fail with SQLITE_BUSY instead of waiting if another connection wrote meanwhile.
      this.use(() => this.groupTx.immediate(writes));
    } catch (error) {
      for (const write of writes) write.reject(error);
      return;
    }
    for (const write of writes) {
      if (write.failure === undefined) write.resolve();
      else write.reject(normalise(write.failure, this.options.path));
    }
  }

  private use<T>(work: () => T): T {
    if (this.closed) throw new RuntimeError(RuntimeErrorCode.Closed, `embedded store ${this.options.path} is closed`);
    try {
      return work();
    } catch (error) {
      throw normalise(error, this.options.path);
    }
  }

  private readActor(actor: ActorRef): ActorRecord {
    const key: Key = [actor.type, actor.id];
    const row = this.sql.actor.get(...key);
    const snapshot = this.sql.snapshot.get(...key);
    const events = this.sql.eventsAfter
      .all(...key, snapshot?.seq ?? 0)
      .map((event): StoredEvent => ({ seq: event.seq, data: bytes(event.data), at: event.at }));
    const outbox = this.sql.outbox.all(...key).map((message): OutboxMessage => ({
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

  /**
   * Runs inside a commit transaction: a throw anywhere rolls back every turn of the run. The
   * actor's row is read once before the run and written once after it.
   */
  private applyTurns(writes: readonly TurnWrite[]): void {
    const actor = writes[0]!.actor;
    const key: Key = [actor.type, actor.id];
    const row = this.sql.actor.get(...key);
    let seq = row?.seq ?? 0;
    let inputs = row?.inputs ?? 0;
    let lastInputOffset = row?.last_input_offset ?? undefined;
    let fenceChecked: Fence | undefined;
    const at = this.options.clock();
    for (const write of writes) {
      if (write.actor.type !== actor.type || write.actor.id !== actor.id) {
        throw new ActorError(
          RuntimeErrorCode.InvalidArgument,
          actor,
          `a run of turns is one actor's; it also holds a turn of ${write.actor.type}/${write.actor.id}`,
        );
      }
      if (write.fence && (write.fence.scope !== fenceChecked?.scope || write.fence.epoch !== fenceChecked.epoch)) {
        const stored = this.sql.fenceEpoch.get(write.fence.scope)?.epoch;
        if (stored !== undefined && stored > write.fence.epoch) {
          throw new ActorError(
            RuntimeErrorCode.Fenced,
            actor,
            `${write.fence.scope} is owned by epoch ${stored}; this write is from epoch ${write.fence.epoch}`,
          );
        }
        fenceChecked = write.fence;
      }
      if (write.expectedSeq !== seq) {
        // Retriable: the turn can run again on the state as it now is.
        throw new ActorError(RuntimeErrorCode.Conflict, actor, `expected seq ${write.expectedSeq} but the journal is at ${seq}`, {
          retriable: true,
        });
      }
      if (this.sql.isApplied.get(...key, write.input.id)) {
        throw new ActorError(RuntimeErrorCode.DuplicateInput, actor, `input ${write.input.id} was already applied`);
      }

      write.events.forEach((data, index) => this.sql.appendEvent.run(...key, seq + index + 1, data, at));
      seq += write.events.length;
      if (write.input.offset != null) lastInputOffset = Math.max(write.input.offset, lastInputOffset ?? -1);
      inputs += 1;
      this.sql.recordInput.run(...key, write.input.id, inputs);
      // Pruned now and then rather than every turn: the store keeps at least keepInputIds either way.
      if (inputs % PRUNE_EVERY === 0) this.sql.pruneInputs.run(...key, inputs - this.options.keepInputIds);

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

function resolveOptions(options: EmbeddedStoreOptions): Required<EmbeddedStoreOptions> {
  // `??` rather than a spread, so a key given as undefined still gets its default.
  const resolved = {
    path: options.path,
    keepInputIds: options.keepInputIds ?? DEFAULTS.keepInputIds,
    clock: options.clock ?? DEFAULTS.clock,
  };
  if (typeof resolved.path !== 'string' || resolved.path.trim() === '') {
    throw invalidOption('path', 'must be a non-empty file path', resolved.path);
  }
  if (!Number.isSafeInteger(resolved.keepInputIds) || resolved.keepInputIds < MIN_KEEP_INPUT_IDS) {
    throw invalidOption('keepInputIds', `must be an integer of at least ${MIN_KEEP_INPUT_IDS}`, resolved.keepInputIds);
  }
  if (typeof resolved.clock !== 'function') {
    throw invalidOption('clock', 'must be a function returning unix ms', resolved.clock);
  }
  return resolved;
}

function invalidOption(key: keyof EmbeddedStoreOptions, rule: string, value: unknown): RuntimeError {
  return new RuntimeError(
    RuntimeErrorCode.InvalidOptions,
    `EmbeddedStore option "${key}" ${rule}, got ${typeof value === 'function' ? 'a function' : JSON.stringify(value)}`,
  );
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
function normalise(error: unknown, path: string): unknown {
  if (error instanceof Database.SqliteError && (error.code === 'SQLITE_NOTADB' || error.code.startsWith('SQLITE_CORRUPT'))) {
    return new RuntimeError(RuntimeErrorCode.Corrupt, `${path}: ${error.message}`, { cause: error });
  }
  return error;
}

function toTimer(row: TimerRow): Timer {
  return {
    actor: { type: row.actor_type, id: row.actor_id },
    name: row.name,
    dueAt: row.due_at,
    shard: row.shard,
    message: bytes(row.message),
  };
}

function toArtifact(row: ArtifactRow): ArtifactRecord {
  const { namespace, project, name, kind, sha256, bytes, uri, stored_at } = row;
  return { namespace, project, name, kind, sha256, bytes, uri, storedAt: stored_at };
}

/** Copies a row's Buffer into a plain Uint8Array, so callers never share or see Node's Buffer. */
function bytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer);
}
