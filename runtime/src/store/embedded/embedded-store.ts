/**
 * The embedded Store: one SQLite file (better-sqlite3) holding every actor's journal, latest
 * snapshot, applied input ids, timers, outbox, the partition fences and the artefact catalog,
 * for one process.
 *
 * Two connections share the file. Reads run on the caller's thread, through its own connection.
 * Writes run on the process's writer thread (writer-thread.ts), through a connection of their
 * own there: the writes asked for in one turn of the event loop go there together and share a
 * transaction (group commit), each in its own savepoint, so a busy node pays for one WAL commit
 * per batch rather than per turn, and its event loop does not stop while SQLite writes.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { serialize } from 'node:v8';

import type Database from 'better-sqlite3';

import { RuntimeError, RuntimeErrorCode, toError } from '../../errors.js';
import type { ActorRecord, ActorRef, ArtifactRecord, Fence, Store, Timer, TurnWrite } from '../store.js';
import {
  fromFailure,
  normalise,
  openDatabase,
  prepareStatements,
  readActor,
  toArtifact,
  toTimer,
  type Statements,
  type WriteFailure,
  type WriteOp,
} from './embedded-db.js';
import { WriterThread, type Without, type WriterAnswer, type WriterCall } from './writer-thread.js';

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

/** A write waiting for its group commit. */
interface GroupedWrite {
  op: Uint8Array;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * The SQLite-backed Store of embedded mode.
 *
 * Durability: WAL with `synchronous = NORMAL`. A commit is written to the WAL before
 * `commitTurn` resolves, so it survives the process being killed (even with SIGKILL); the WAL
 * is fsynced only at checkpoints, so a power loss or kernel crash may drop the last commits
 * (never corrupt the file). Embedded mode accepts that trade for commits without an fsync each.
 *
 * @example
 * const store = await EmbeddedStore.open({ path: join(dataDir, 'store.db') });
 * await store.commitTurn({ actor, expectedSeq: 0, events: [bytes], input: { id: 'cmd-1' } });
 */
export class EmbeddedStore implements Store {
  readonly kind = 'embedded';

  private readonly sql: Statements;
  private readonly loadTx: Database.Transaction<(actor: ActorRef) => ActorRecord>;
  /** Writes waiting for the next group commit, which is scheduled when the first one arrives. */
  private grouped: GroupedWrite[] = [];
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly options: Required<EmbeddedStoreOptions>,
    private readonly db: Database.Database,
    private readonly writer: WriterThread,
    /** This store's database on the writer thread. */
    private readonly writerDb: number,
  ) {
    this.sql = prepareStatements(db);
    this.loadTx = db.transaction((actor: ActorRef) => readActor(this.sql, actor));
  }

  /** Opens (creating or migrating when needed) the database at `options.path`, and its writing connection on the writer thread. */
  static async open(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const resolved = resolveOptions(options);
    mkdirSync(dirname(resolved.path), { recursive: true });
    const db = openDatabase(resolved.path, { migrate: true });
    const writer = WriterThread.shared();
    const writerDb = writer.newDatabase();
    try {
      await writer.request({ type: 'open', db: writerDb, path: resolved.path, keepInputIds: resolved.keepInputIds });
    } catch (error) {
      db.close();
      throw error;
    }
    return new EmbeddedStore(resolved, db, writer, writerDb);
  }

  async load(actor: ActorRef): Promise<ActorRecord> {
    return this.read(() => this.loadTx(actor));
  }

  async commitTurn(write: TurnWrite): Promise<void> {
    return this.group({ kind: 'turns', writes: [write] });
  }

  /** All or nothing: the turns share one savepoint. */
  async commitTurns(writes: readonly TurnWrite[]): Promise<void> {
    if (writes.length === 0) return;
    return this.group({ kind: 'turns', writes });
  }

  async appliedInputs(actor: ActorRef, inputIds: readonly string[]): Promise<Set<string>> {
    if (inputIds.length === 0) return new Set();
    return this.read(() => new Set(this.sql.appliedAmong.all(actor.type, actor.id, JSON.stringify(inputIds)).map((row) => row.input_id)));
  }

  async markSent(actor: ActorRef, ids: readonly string[]): Promise<void> {
    return this.group({ kind: 'mark-sent', actor, ids });
  }

  async dueTimers(shards: readonly string[], now: number, limit: number): Promise<Timer[]> {
    return this.read(() => {
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
    return this.read(() => {
      let earliest: number | undefined;
      for (const shard of shards) {
        const due = this.sql.nextDue.get(shard)?.due_at ?? undefined;
        if (due !== undefined && (earliest === undefined || due < earliest)) earliest = due;
      }
      return earliest;
    });
  }

  async deleteTimer(actor: ActorRef, name: string, dueAt: number): Promise<void> {
    return this.group({ kind: 'delete-timer', actor, name, dueAt });
  }

  async claim(fence: Fence): Promise<void> {
    this.ensureOpen();
    await this.request({ type: 'claim', fence });
  }

  async claimNext(scope: string): Promise<number> {
    this.ensureOpen();
    return (await this.request({ type: 'claim-next', scope })).value as number;
  }

  async putArtifact(record: ArtifactRecord): Promise<void> {
    return this.group({ kind: 'put-artifact', record });
  }

  async getArtifact(namespace: string, project: string, name: string): Promise<ArtifactRecord | undefined> {
    return this.read(() => {
      const row = this.sql.artifact.get(namespace, project, name);
      return row === undefined ? undefined : toArtifact(row);
    });
  }

  async listArtifacts(namespace: string, project: string): Promise<ArtifactRecord[]> {
    return this.read(() => this.sql.artifacts.all(namespace, project).map(toArtifact));
  }

  /**
   * Closes the database once the writes already asked for are committed; later calls fail with
   * CLOSED. Closing again waits for the same close.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.commitGrouped();
    try {
      await this.request({ type: 'close' });
    } finally {
      this.db.close();
    }
  }

  /**
   * Queues `op` for the next group commit and resolves once it is committed. The commit is sent
   * in the check phase of the event loop, after every turn that the current I/O woke has
   * reached its own commit. An op that cannot be serialized (a value that is not data) is
   * refused here, alone.
   */
  private group(op: WriteOp): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    let bytes: Uint8Array;
    try {
      bytes = serialize(op);
    } catch (error) {
      const problem = `embedded store ${this.options.path}: cannot store a ${op.kind} write: ${toError(error).message}`;
      return Promise.reject(new RuntimeError(RuntimeErrorCode.InvalidArgument, problem, { cause: error }));
    }
    return new Promise((resolve, reject) => {
      if (this.grouped.length === 0) setImmediate(() => this.commitGrouped());
      this.grouped.push({ op: bytes, resolve, reject });
    });
  }

  private commitGrouped(): void {
    const writes = this.grouped;
    if (writes.length === 0) return;
    this.grouped = [];
    this.request({ type: 'group', ops: writes.map((write) => write.op), at: this.options.clock() }).then(
      (reply) => {
        const failures = reply.value as (WriteFailure | undefined)[];
        writes.forEach((write, i) => {
          const failure = failures[i];
          if (failure === undefined) write.resolve();
          else write.reject(fromFailure(failure));
        });
      },
      (error: Error) => {
        for (const write of writes) write.reject(error);
      },
    );
  }

  /** Sends a request about this store's database to the writer thread. */
  private request(call: Without<WriterCall, 'db'>): Promise<WriterAnswer> {
    return this.writer.request({ ...call, db: this.writerDb } as WriterCall);
  }

  private read<T>(work: () => T): T {
    this.ensureOpen();
    try {
      return work();
    } catch (error) {
      throw normalise(error, this.options.path);
    }
  }

  private ensureOpen(): void {
    if (this.closing) throw this.closedError();
  }

  private closedError(): RuntimeError {
    return new RuntimeError(RuntimeErrorCode.Closed, `embedded store ${this.options.path} is closed`);
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
