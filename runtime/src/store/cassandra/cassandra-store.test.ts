/**
 * The Cassandra Store against the real Cassandra of the test harness: the shared conformance
 * suite, then what only this store promises: idempotent concurrent migrations, option
 * validation, CQL failures wrapped with their statement, serialised writers, input id eviction
 * and the repair of the timer queue after a crash between a turn's partitions.
 */
import { randomUUID } from 'node:crypto';

import { infra } from '@troupe/harness';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../../errors.js';
import { storeConformance } from '../conformance.js';
import { openStore } from '../open.js';
import type { ActorRef, Store, Timer } from '../store.js';
import { CassandraStore, type CassandraStoreOptions } from './cassandra-store.js';
import { MIGRATIONS } from './migrations.js';
import { StoreError } from './store-error.js';

const run = randomUUID().slice(0, 8);
const created: string[] = [];
/** A keyspace of its own for this run; dropped when the tests end. */
const freshKeyspace = (): string => {
  const keyspace = `troupe_test_${run}_${created.length + 1}`;
  created.push(keyspace);
  return keyspace;
};

async function dropKeyspaces(keyspaces: readonly string[]): Promise<void> {
  const admin = new cassandra.Client(infra().cassandra);
  try {
    for (const keyspace of keyspaces) await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  } finally {
    await admin.shutdown();
  }
}

storeConformance('cassandra', async () => {
  const keyspace = freshKeyspace();
  return {
    open: () => openStore({ kind: 'cassandra', ...infra().cassandra, keyspace }),
    cleanup: () => dropKeyspaces([keyspace]),
  };
});

describe('CassandraStore', () => {
  const encoder = new TextEncoder();
  const bytes = (text: string) => encoder.encode(text);
  let admin: cassandra.Client;
  const open = (options: Partial<CassandraStoreOptions> = {}) => CassandraStore.open({ ...infra().cassandra, ...options });
  const cql = (query: string, params: unknown[] = []) => admin.execute(query, params, { prepare: true });

  beforeAll(async () => {
    admin = new cassandra.Client(infra().cassandra);
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.shutdown();
    await dropKeyspaces(created);
  });

  it('migrates once, also when two processes open a new keyspace at the same time', async () => {
    const keyspace = freshKeyspace();
    const opened = await Promise.all([open({ keyspace }), open({ keyspace })]);
    await Promise.all(opened.map((store) => store.close()));
    const again = await open({ keyspace });
    const actor: ActorRef = { type: 'project', id: 'p1' };
    await again.commitTurn({ actor, expectedSeq: 0, events: [bytes('e1')], input: { id: 'i1' } });
    expect((await again.load(actor)).seq).toBe(1);
    await again.close();

    const versions = (await cql(`SELECT version FROM ${keyspace}.schema_version`)).rows.map((row) => row['version']);
    expect(versions).toEqual(MIGRATIONS.map((migration) => migration.version));
    const tables = (await cql('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [keyspace])).rows;
    expect(tables.map((row) => row['table_name']).sort()).toEqual(['actors', 'artifacts', 'fences', 'schema_version', 'timers']);
  });

  it('refuses a keyspace written by a newer schema version', async () => {
    const keyspace = freshKeyspace();
    await (await open({ keyspace })).close();
    await cql(`INSERT INTO ${keyspace}.schema_version (version, description) VALUES (99, 'from the future')`);

    const refused = open({ keyspace });
    await expect(refused).rejects.toMatchObject({ code: RuntimeErrorCode.Corrupt });
    await expect(refused).rejects.toThrow(/schema version 99/);
  });

  it.each([
    ['contactPoints', { contactPoints: [] }],
    ['localDataCenter', { localDataCenter: ' ' }],
    ['keyspace', { keyspace: 'Troupe-Prod' }],
    ['replicationFactor', { replicationFactor: 0 }],
    ['keepInputIds', { keepInputIds: 5 }],
    ['consistency', { consistency: 'one' as 'quorum' }],
    ['serialConsistency', { serialConsistency: 'quorum' as 'serial' }],
    ['intentGraceMs', { intentGraceMs: -1 }],
    ['clock', { clock: 'now' as unknown as () => number }],
  ] satisfies [string, Partial<CassandraStoreOptions>][])('refuses an invalid %s option, naming it', async (key, options) => {
    const error: unknown = await open(options).catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ code: RuntimeErrorCode.InvalidOptions });
    expect((error as Error).message).toContain(`"${key}"`);
  });

  it('wraps a failed CQL request in a StoreError that carries the statement', async () => {
    const keyspace = freshKeyspace();
    const store = await open({ keyspace });
    await cql(`DROP TABLE ${keyspace}.timers`);

    const error: unknown = await store.dueTimers(['project/0'], 100, 10).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: RuntimeErrorCode.Unavailable, retriable: false });
    expect((error as StoreError).cql).toContain(`FROM ${keyspace}.timers WHERE shard = ?`);
    await store.close();
  });

  it('reports an unavailable cluster as a retriable StoreError', async () => {
    // Three replicas wanted, one node running: no quorum for any read or write.
    const error: unknown = await open({ keyspace: freshKeyspace(), replicationFactor: 3 }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ retriable: true });
    expect((error as StoreError).cql).toContain('schema_version');
  });

  describe('on one keyspace', () => {
    const keyspace = freshKeyspace();
    let now = 1_000;
    let store: CassandraStore;
    const actorRef = (label: string): ActorRef => ({ type: 'project', id: `${label}-${run}` });

    beforeAll(async () => {
      store = await open({ keyspace, clock: () => now });
    });

    afterAll(async () => {
      await store?.close();
    });

    it('fails every call after close with CLOSED, and closing again is harmless', async () => {
      const closing = await open({ keyspace });
      await closing.close();
      await closing.close();

      const actor = actorRef('closed');
      const closed = { code: RuntimeErrorCode.Closed };
      const calls: ((s: Store) => Promise<unknown>)[] = [
        (s) => s.load(actor),
        (s) => s.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: 'after-close' } }),
        (s) => s.appliedInputs(actor, ['x']),
        (s) => s.markSent(actor, ['x']),
        (s) => s.dueTimers(['s'], 0, 1),
        (s) => s.nextTimerDue(['s']),
        (s) => s.deleteTimer(actor, 'x', 0),
        (s) => s.claim({ scope: 's', epoch: 1 }),
      ];
      for (const call of calls) await expect(call(closing)).rejects.toMatchObject(closed);
    });

    it('serialises racing turns that leave the seq alone, and keeps both', async () => {
      const actor = actorRef('zero-event-race');
      const message = (id: string) => ({ id, topic: 'troupe.events', key: id, value: bytes(id), headers: {} });
      await Promise.all(
        ['a', 'b', 'c'].map((id) =>
          store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id, offset: 7 }, outbox: [message(id)] }),
        ),
      );

      const record = await store.load(actor);
      expect(record.outbox.map((m) => m.id).sort()).toEqual(['a', 'b', 'c']);
      expect(record.lastInputOffset).toBe(7);
      expect(await store.appliedInputs(actor, ['a', 'b', 'c'])).toEqual(new Set(['a', 'b', 'c']));
    });

    it('commits a turn of a megabyte in one batch', async () => {
      const actor = actorRef('large');
      const events = Array.from({ length: 100 }, (_, i) => new Uint8Array(10_000).fill(i));
      await store.commitTurn({ actor, expectedSeq: 0, events, input: { id: 'large' } });

      const record = await store.load(actor);
      expect(record.seq).toBe(100);
      expect(record.events.map((e) => e.data)).toEqual(events);
    });

    it('commits a run of turns as one conditional write', async () => {
      const actor = actorRef('run-one-round');
      const turns = Array.from({ length: 40 }, (_, i) => ({
        actor,
        expectedSeq: i,
        events: [bytes(`e${i + 1}`)],
        input: { id: `run-${i}` },
      }));

      await store.commitTurns(turns);

      // Each conditional write bumps the head's version by one.
      const head = await cql(`SELECT version, seq FROM ${keyspace}.actors WHERE actor_type = ? AND actor_id = ? LIMIT 1`, [
        actor.type,
        actor.id,
      ]);
      expect([Number(head.first()['version']), Number(head.first()['seq'])]).toEqual([1, 40]);
    });

    it('keeps the most recent keepInputIds input ids per actor and forgets older ones', async () => {
      const actor = actorRef('evict');
      const keep = 10_000;
      // 10,000 real turns would take a minute of Paxos rounds, so the rows those turns leave
      // are written directly: input #n in slot n % keep, and the head's count of inputs.
      for (let start = 1; start <= keep; start += 500) {
        const queries = Array.from({ length: 500 }, (_, k) => [
          {
            query: `INSERT INTO ${keyspace}.actors (actor_type, actor_id, kind, pos, name) VALUES (?, ?, 'input', 0, ?)`,
            params: [actor.type, actor.id, `input-${start + k}`],
          },
          {
            query: `INSERT INTO ${keyspace}.actors (actor_type, actor_id, kind, pos, name, ref) VALUES (?, ?, 'slot', ?, '', ?)`,
            params: [actor.type, actor.id, (start + k) % keep, `input-${start + k}`],
          },
        ]).flat();
        await admin.batch(queries, { prepare: true, logged: false });
      }
      await cql(`UPDATE ${keyspace}.actors SET inputs = ?, version = ? WHERE actor_type = ? AND actor_id = ?`, [
        keep,
        keep,
        actor.type,
        actor.id,
      ]);

      // Two turns alone, then three in one run.
      for (let n = keep + 1; n <= keep + 2; n += 1) {
        await store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: `input-${n}` } });
      }
      await store.commitTurns([3, 4, 5].map((k) => ({ actor, expectedSeq: 0, events: [], input: { id: `input-${keep + k}` } })));
      const ids = (...ns: number[]) => ns.map((n) => `input-${n}`);
      expect(await store.appliedInputs(actor, ids(1, 2, 3, 4, 5, 6, keep, keep + 1, keep + 5))).toEqual(
        new Set(ids(6, keep, keep + 1, keep + 5)),
      );
      await expect(store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: `input-${keep + 5}` } })).rejects.toMatchObject({
        code: RuntimeErrorCode.DuplicateInput,
      });
    });

    it('never fires a queued timer its actor does not hold, and clears it once its turn is over', async () => {
      const actor = actorRef('timer-repair');
      const shard = `project-${run}/0`;
      const real: Timer = { actor, name: 'deadline', dueAt: 300, shard, message: bytes('deadline') };
      await store.commitTurn({ actor, expectedSeq: 0, events: [bytes('e1')], input: { id: 'i1' }, timersSet: [real] });
      const queue = async () =>
        (await cql(`SELECT name, due_at FROM ${keyspace}.timers WHERE shard = ?`, [shard])).rows.map(
          (row) => `${row['name']}@${row['due_at']}`,
        );
      const queueRow = (name: string, dueAt: number, turn: number) =>
        cql(`INSERT INTO ${keyspace}.timers (shard, due_at, actor_type, actor_id, name, turn, written_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
          shard,
          dueAt,
          actor.type,
          actor.id,
          name,
          turn,
          now,
        ]);
      // As if a later turn had moved `deadline` from 100 to 300, then crashed before dequeuing the old row.
      await queueRow('deadline', 100, 1);
      // As if turn 2 had queued its timer, then crashed before its batch.
      await queueRow('ghost', 200, 2);

      expect(await store.dueTimers([shard], 10_000, 10)).toEqual([real]);
      expect(await store.nextTimerDue([shard])).toBe(300);
      expect(await queue()).toEqual(['ghost@200', 'deadline@300']);

      now += 60_000;
      expect(await store.dueTimers([shard], 10_000, 10)).toEqual([real]);
      expect(await queue()).toEqual(['deadline@300']);
      // The actor goes on past the abandoned turn.
      await store.commitTurn({ actor, expectedSeq: 1, events: [bytes('e2')], input: { id: 'i2' } });
      expect((await store.load(actor)).seq).toBe(2);
    });

    it('keeps the timer a turn sets while the timer service fires the one before', async () => {
      // As the timer service runs: it fires a timer, deletes it and looks for the next, while the
      // turn the fired timer started sets the next one. A reader that saw that turn's queued row
      // before its commit, and the actor's version after it, once took the row for a leftover.
      const actor = actorRef('timer-race');
      const shard = `project-${run}/1`;
      const tick = (dueAt: number): Timer => ({ actor, name: 'tick', dueAt, shard, message: bytes('tick') });
      await store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: 'set-0' }, timersSet: [tick(100)] });
      for (let turn = 1; turn <= 30; turn += 1) {
        const [fired, dueAt] = [99 + turn, 100 + turn];
        const service = async (delayMs: number) => {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          await store.deleteTimer(actor, 'tick', fired);
          return store.nextTimerDue([shard]);
        };
        await Promise.all([
          store.commitTurn({ actor, expectedSeq: 0, events: [], input: { id: `set-${turn}` }, timersSet: [tick(dueAt)] }),
          ...Array.from({ length: 10 }, (_, i) => service(i)),
        ]);
        expect(await store.nextTimerDue([shard]), `after turn ${turn}`).toBe(dueAt);
      }
    });
  });
});
