/**
 * The Cassandra Store's schema and its migrations, run by `CassandraStore.open`. Every
 * statement is idempotent (IF NOT EXISTS), and each applied migration is recorded in
 * `schema_version` with a conditional insert, so processes may open the same keyspace at once.
 */
import cassandra from 'cassandra-driver';

import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import { toStoreError } from './store-error.js';

/**
 * One step of the schema: statements taking it from `version - 1` to `version`. Each must be
 * safe to run again (IF NOT EXISTS), as a process may die between a step's statements and its
 * record, and two processes may run the same step at once.
 */
export interface Migration {
  version: number;
  description: string;
  statements(keyspace: string): readonly string[];
}

/**
 * The schema, in order. Append new entries; never edit one that has shipped.
 *
 * `actors` holds everything a turn writes for one actor in ONE partition, because Cassandra
 * accepts a conditional (Paxos) batch only when all its statements hit one partition of one
 * table. The static columns are the actor's head (journal seq, the turn `version` every commit
 * compares and bumps, counters, latest snapshot); clustered rows, told apart by `kind`, are:
 *
 * | kind     | pos          | name     | payload                                  |
 * |----------|--------------|----------|------------------------------------------|
 * | `event`  | seq          | ''       | data, at                                 |
 * | `input`  | 0            | input id | at (an applied input, looked up by id)   |
 * | `slot`   | ord % keep   | ''       | ref = the input id applied as input #ord |
 * | `outbox` | ord          | ''       | ref = message id, topic, msg_key, data, headers |
 * | `timer`  | 0            | name     | shard, due_at, data = message            |
 *
 * `kind` leads the clustering key so each kind is one contiguous slice, and reading one kind
 * never walks another's tombstones (evicted input ids, sent outbox messages, fired timers).
 *
 * `timers` is the shard-ordered queue the timer service scans. It is derived from the `timer`
 * rows of `actors` and may briefly disagree with them (see CassandraStore), so a row there is a
 * pointer to be confirmed, never the timer itself. Its short gc_grace_seconds keeps the queue's
 * head free of old tombstones; a deleted row resurrected by a missed tombstone is harmless,
 * since the confirmation drops it again.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'actors, timers and fences',
    statements: (ks) => [
      `CREATE TABLE IF NOT EXISTS ${ks}.actors (
        actor_type text,
        actor_id text,
        kind text,
        pos bigint,
        name text,
        seq bigint STATIC,
        version bigint STATIC,
        inputs bigint STATIC,
        last_input_offset bigint STATIC,
        outbox_ord bigint STATIC,
        outbox_floor bigint STATIC,
        snapshot_seq bigint STATIC,
        snapshot_state blob STATIC,
        data blob,
        at bigint,
        ref text,
        topic text,
        msg_key text,
        headers frozen<map<text, text>>,
        shard text,
        due_at bigint,
        PRIMARY KEY ((actor_type, actor_id), kind, pos, name)
      )`,
      `CREATE TABLE IF NOT EXISTS ${ks}.timers (
        shard text,
        due_at bigint,
        actor_type text,
        actor_id text,
        name text,
        turn bigint,
        written_at bigint,
        PRIMARY KEY ((shard), due_at, actor_type, actor_id, name)
      ) WITH gc_grace_seconds = 3600`,
      `CREATE TABLE IF NOT EXISTS ${ks}.fences (
        scope text PRIMARY KEY,
        epoch bigint
      )`,
    ],
  },
  {
    version: 2,
    description: 'the artefact catalog',
    // One partition per project, its artefacts clustered by name: a project is listed in one read.
    statements: (ks) => [
      `CREATE TABLE IF NOT EXISTS ${ks}.artifacts (
        namespace text,
        project text,
        name text,
        kind text,
        sha256 text,
        bytes bigint,
        uri text,
        stored_at bigint,
        PRIMARY KEY ((namespace, project), name)
      )`,
    ],
  },
];

/** What `migrate` needs to reach and shape the keyspace. */
export interface MigrationTarget {
  client: cassandra.Client;
  /** Validated by the caller: DDL cannot take bind markers, so these are spliced into CQL. */
  keyspace: string;
  localDataCenter: string;
  replicationFactor: number;
  consistency: number;
  serialConsistency: number;
  clock: () => number;
}

/**
 * Creates the keyspace when missing and applies the migrations it has not recorded yet.
 * Refuses (CORRUPT) a keyspace recording a migration newer than this build knows.
 */
export async function migrate(target: MigrationTarget): Promise<void> {
  const { client, keyspace: ks } = target;
  const dc = target.localDataCenter.replaceAll("'", "''");
  // Replication is set only at creation; changing it later is an operator's ALTER KEYSPACE
  // followed by a repair, never something an opening process should do on its own.
  await ddl(
    client,
    `CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {'class': 'NetworkTopologyStrategy', '${dc}': ${target.replicationFactor}}`,
  );
  await ddl(client, `CREATE TABLE IF NOT EXISTS ${ks}.schema_version (version int PRIMARY KEY, description text, applied_at timestamp)`);

  const applied = new Set(
    (await run(client, `SELECT version FROM ${ks}.schema_version`, [], { consistency: target.consistency })).rows.map(
      (row) => row['version'] as number,
    ),
  );
  const newest = Math.max(0, ...applied);
  if (newest > MIGRATIONS.length) {
    throw new RuntimeError(
      RuntimeErrorCode.Corrupt,
      `keyspace ${ks}: schema version ${newest} is newer than this build's ${MIGRATIONS.length}; refusing to open it`,
    );
  }
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    for (const statement of migration.statements(ks)) await ddl(client, statement);
    // Conditional, so that of two processes migrating at once exactly one records the step.
    await run(
      client,
      `INSERT INTO ${ks}.schema_version (version, description, applied_at) VALUES (?, ?, ?) IF NOT EXISTS`,
      [migration.version, migration.description, new Date(target.clock())],
      { consistency: target.consistency, serialConsistency: target.serialConsistency },
    );
  }
}

/**
 * Runs a schema change. The driver waits for the cluster to agree on the schema before it
 * resolves. "Already exists" is what a concurrent creator can still cause on another
 * coordinator despite IF NOT EXISTS, and means the work is done.
 */
async function ddl(client: cassandra.Client, cql: string): Promise<void> {
  try {
    await client.execute(cql);
  } catch (error) {
    if (error instanceof cassandra.errors.ResponseError && error.code === cassandra.types.responseErrorCodes.alreadyExists) {
      return;
    }
    throw toStoreError(error, cql, false);
  }
}

async function run(
  client: cassandra.Client,
  cql: string,
  params: unknown[],
  options: cassandra.QueryOptions,
): Promise<cassandra.types.ResultSet> {
  try {
    return await client.execute(cql, params, { prepare: true, ...options });
  } catch (error) {
    throw toStoreError(error, cql, false);
  }
}
