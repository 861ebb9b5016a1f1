/**
 * The Store conformance suite: the behaviour every Store implementation must show, registered
 * as vitest tests. Each implementation's test file calls `storeConformance` with a fixture.
 * Every test uses its own actor ids, shards and scopes, so the suite can run against a shared
 * live database next to other runs.
 */
import { randomUUID } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RuntimeErrorCode } from '../errors.js';
import type { ActorRef, ArtifactRecord, OutboxMessage, Store, Timer, TurnWrite } from './store.js';

/** How the suite reaches one implementation's storage. */
export interface StoreFixture {
  /** Opens a store on the fixture's data; called again after `close()` to simulate a restart. */
  open(): Promise<Store>;
  /** Removes what the fixture created; called once, after the last test. */
  cleanup(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const text = (data: Uint8Array): string => decoder.decode(data);

/** Later than any timer the suite sets. */
const FAR_FUTURE = 10_000_000;

/**
 * Registers the Store conformance tests for one implementation.
 *
 * @param name shown in the test names, e.g. `embedded`.
 * @param setup creates the fixture once, before the first test.
 * @example
 * storeConformance('embedded', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'store-'));
 *   return {
 *     open: () => openStore({ kind: 'embedded', path: join(dir, 'store.db') }),
 *     cleanup: () => rm(dir, { recursive: true, force: true }),
 *   };
 * });
 */
export function storeConformance(name: string, setup: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    const run = randomUUID().slice(0, 8);
    let fixture: StoreFixture | undefined;
    let store: Store;
    let inputCount = 0;

    const actorRef = (label: string): ActorRef => ({ type: 'conformance', id: `${label}-${run}` });
    const shardOf = (label: string): string => `conformance-${run}/${label}`;
    const scopeOf = (label: string): string => `troupe.actor.conformance-${run}.${label}/0`;

    /** A turn with a fresh input id unless `extra` names one. */
    const turn = (actor: ActorRef, expectedSeq: number, events: readonly string[], extra: Partial<TurnWrite> = {}) =>
      ({ actor, expectedSeq, events: events.map(bytes), input: { id: `input-${++inputCount}` }, ...extra }) satisfies TurnWrite;
    const commit = (...args: Parameters<typeof turn>) => store.commitTurn(turn(...args));

    const timer = (actor: ActorRef, name: string, dueAt: number, shard: string): Timer => ({
      actor,
      name,
      dueAt,
      shard,
      message: bytes(`${name}@${dueAt}`),
    });
    const message = (id: string): OutboxMessage => ({
      id,
      topic: 'troupe.events',
      key: id,
      value: bytes(`value of ${id}`),
      headers: { 'x-id': id },
    });

    const eventsOf = async (actor: ActorRef) =>
      (await store.load(actor)).events.map((event) => ({ seq: event.seq, data: text(event.data) }));
    const timerNames = (timers: readonly Timer[]) => timers.map((t) => `${t.actor.id}:${t.name}@${t.dueAt}`);

    const restart = async () => {
      await store.close();
      store = await fixture!.open();
    };

    beforeAll(async () => {
      fixture = await setup();
      store = await fixture.open();
    });

    afterAll(async () => {
      await store?.close();
      await fixture?.cleanup();
    });

    describe('journal', () => {
      it('appends events in seq order and loads them back', async () => {
        const actor = actorRef('journal');
        expect(await store.load(actor)).toEqual({ events: [], seq: 0, outbox: [] });

        await commit(actor, 0, ['e1', 'e2']);
        await commit(actor, 2, ['e3', 'e4', 'e5']);
        await commit(actor, 5, []);

        const record = await store.load(actor);
        expect(record.seq).toBe(5);
        expect(record.snapshot).toBeUndefined();
        expect(record.events.map((e) => [e.seq, text(e.data)])).toEqual([
          [1, 'e1'],
          [2, 'e2'],
          [3, 'e3'],
          [4, 'e4'],
          [5, 'e5'],
        ]);
        for (const event of record.events) expect(event.at).toEqual(expect.any(Number));
      });

      it('refuses a write with a stale expectedSeq with CONFLICT and changes nothing', async () => {
        const actor = actorRef('stale-seq');
        await commit(actor, 0, ['e1', 'e2']);
        const before = await store.load(actor);

        await expect(commit(actor, 1, ['late'], { input: { id: 'behind' } })).rejects.toMatchObject({
          code: RuntimeErrorCode.Conflict,
        });
        await expect(commit(actor, 3, ['early'], { input: { id: 'ahead' } })).rejects.toMatchObject({
          code: RuntimeErrorCode.Conflict,
        });

        expect(await store.load(actor)).toEqual(before);
        expect(await store.appliedInputs(actor, ['behind', 'ahead'])).toEqual(new Set());
      });

      it('lets exactly one of two racing writers with the same expectedSeq win', async () => {
        const actor = actorRef('race');
        const results = await Promise.allSettled([commit(actor, 0, ['first']), commit(actor, 0, ['second'])]);

        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const refused = results.find((r) => r.status === 'rejected');
        expect(refused?.reason).toMatchObject({ code: RuntimeErrorCode.Conflict });
        const events = await eventsOf(actor);
        expect(events).toHaveLength(1);
        expect(['first', 'second']).toContain(events[0]?.data);
      });
    });

    describe('runs of turns', () => {
      it('writes consecutive turns of an actor in order', async () => {
        const actor = actorRef('run');
        await store.commitTurns([
          turn(actor, 0, ['a1', 'a2'], { input: { id: 'run-1', offset: 10 } }),
          turn(actor, 2, [], { input: { id: 'run-2', offset: 11 } }),
          turn(actor, 2, ['a3'], { input: { id: 'run-3', offset: 12 }, outbox: [message('run-out')] }),
        ]);

        const record = await store.load(actor);
        expect(record.events.map((e) => [e.seq, text(e.data)])).toEqual([
          [1, 'a1'],
          [2, 'a2'],
          [3, 'a3'],
        ]);
        expect(record.lastInputOffset).toBe(12);
        expect(record.outbox.map((m) => m.id)).toEqual(['run-out']);
        expect(await store.appliedInputs(actor, ['run-1', 'run-2', 'run-3'])).toEqual(new Set(['run-1', 'run-2', 'run-3']));
      });

      it('rejects with the first refused turn and writes nothing after it', async () => {
        const actor = actorRef('run-refused');
        await commit(actor, 0, ['before'], { input: { id: 'applied-once' } });

        await expect(
          store.commitTurns([
            turn(actor, 1, ['fresh'], { input: { id: 'run-fresh' } }),
            turn(actor, 2, ['again'], { input: { id: 'applied-once' } }),
            turn(actor, 3, ['after'], { input: { id: 'run-after' } }),
          ]),
        ).rejects.toMatchObject({ code: RuntimeErrorCode.DuplicateInput });

        const data = (await eventsOf(actor)).map((event) => event.data);
        expect(data).not.toContain('again');
        expect(data).not.toContain('after');
        expect(await store.appliedInputs(actor, ['run-after'])).toEqual(new Set());
      });

      it('refuses an input id that comes twice in one run, and applies it at most once', async () => {
        const actor = actorRef('run-twice');

        await expect(
          store.commitTurns([
            turn(actor, 0, ['first'], { input: { id: 'twice' } }),
            turn(actor, 1, ['second'], { input: { id: 'twice' } }),
          ]),
        ).rejects.toMatchObject({ code: RuntimeErrorCode.DuplicateInput });

        // The turn before the refused one may be committed or not, but with its input or neither.
        const data = (await eventsOf(actor)).map((event) => event.data);
        const applied = await store.appliedInputs(actor, ['twice']);
        expect(data).toEqual(applied.has('twice') ? ['first'] : []);
      });

      it("refuses a run that holds another actor's turn, and writes none of it", async () => {
        const actor = actorRef('run-mixed');
        const other = actorRef('run-mixed-other');

        await expect(store.commitTurns([turn(actor, 0, ['mine']), turn(other, 0, ['theirs'])])).rejects.toMatchObject({
          code: RuntimeErrorCode.InvalidArgument,
        });

        expect(await store.load(actor)).toEqual({ events: [], seq: 0, outbox: [] });
        expect(await store.load(other)).toEqual({ events: [], seq: 0, outbox: [] });
      });

      it('leaves each timer where the last turn of the run put it', async () => {
        const actor = actorRef('run-timers');
        const shard = shardOf('run-timers');
        await commit(actor, 0, [], { timersSet: [timer(actor, 'stored', 400, shard), timer(actor, 'moved', 450, shard)] });

        await store.commitTurns([
          turn(actor, 0, [], { timersSet: [timer(actor, 'moved', 100, shard), timer(actor, 'brief', 200, shard)] }),
          turn(actor, 0, [], { timersSet: [timer(actor, 'moved', 300, shard)], timersCancelled: ['brief'] }),
          turn(actor, 0, [], { timersCancelled: ['stored', 'reset'], timersSet: [timer(actor, 'reset', 600, shard)] }),
        ]);

        expect(timerNames(await store.dueTimers([shard], FAR_FUTURE, 10))).toEqual([`${actor.id}:moved@300`, `${actor.id}:reset@600`]);
        expect(await store.nextTimerDue([shard])).toBe(300);
      });

      it('writes a run of 1,200 turns, with their inputs, offsets and outbox messages', async () => {
        const actor = actorRef('run-long');
        const writes = Array.from({ length: 1_200 }, (_, i) =>
          turn(actor, i, [`e${i + 1}`], {
            input: { id: `long-${i}`, offset: 5_000 + i },
            ...(i % 100 === 0 ? { outbox: [message(`long-out-${i}`)] } : {}),
          }),
        );

        await store.commitTurns(writes);

        const record = await store.load(actor);
        expect(record.seq).toBe(1_200);
        expect(record.events.map((event) => event.seq)).toEqual(Array.from({ length: 1_200 }, (_, i) => i + 1));
        expect(text(record.events.at(-1)!.data)).toBe('e1200');
        expect(record.lastInputOffset).toBe(6_199);
        expect(record.outbox.map((m) => m.id)).toEqual(Array.from({ length: 12 }, (_, i) => `long-out-${i * 100}`));
        const ids = writes.map((write) => write.input.id);
        expect((await store.appliedInputs(actor, ids)).size).toBe(1_200);
      });
    });

    describe('idempotent inputs', () => {
      it('refuses an input id applied before, so the state changes once', async () => {
        const actor = actorRef('idempotent');
        await commit(actor, 0, ['applied'], { input: { id: 'command-1', offset: 4 } });

        await expect(commit(actor, 1, ['applied again'], { input: { id: 'command-1', offset: 4 } })).rejects.toThrow(/already applied/);
        await expect(commit(actor, 1, ['applied again'], { input: { id: 'command-1', offset: 4 } })).rejects.toMatchObject({
          code: RuntimeErrorCode.DuplicateInput,
        });

        expect(await eventsOf(actor)).toEqual([{ seq: 1, data: 'applied' }]);
      });

      it('answers whether an input id was applied to an actor', async () => {
        const actor = actorRef('has-applied');
        const other = actorRef('has-applied-other');
        await commit(actor, 0, ['x'], { input: { id: 'command-1' } });

        expect(await store.appliedInputs(actor, ['command-1', 'command-2', 'command-1'])).toEqual(new Set(['command-1']));
        expect(await store.appliedInputs(other, ['command-1'])).toEqual(new Set());
        expect(await store.appliedInputs(actor, [])).toEqual(new Set());
      });

      it('answers for a run of hundreds of input ids at once', async () => {
        const actor = actorRef('applied-run');
        const applied = ['early', 'middle', 'late'];
        await store.commitTurns(applied.map((id) => turn(actor, 0, [], { input: { id } })));
        const asked = Array.from({ length: 300 }, (_, i) => `unseen-${i}`);
        asked.splice(0, 0, 'early');
        asked.splice(150, 0, 'middle');
        asked.push('late');

        expect(await store.appliedInputs(actor, asked)).toEqual(new Set(applied));
      });

      it('keeps the highest input offset seen', async () => {
        const actor = actorRef('offsets');
        expect((await store.load(actor)).lastInputOffset).toBeUndefined();

        await commit(actor, 0, ['a'], { input: { id: 'o5', offset: 5 } });
        expect((await store.load(actor)).lastInputOffset).toBe(5);
        await commit(actor, 1, ['b'], { input: { id: 'o3', offset: 3 } });
        expect((await store.load(actor)).lastInputOffset).toBe(5);
        await commit(actor, 2, ['c'], { input: { id: 'no-offset' } });
        expect((await store.load(actor)).lastInputOffset).toBe(5);
        await commit(actor, 3, ['d'], { input: { id: 'o9', offset: 9 } });
        expect((await store.load(actor)).lastInputOffset).toBe(9);

        const untracked = actorRef('offsets-none');
        await commit(untracked, 0, ['a']);
        expect((await store.load(untracked)).lastInputOffset).toBeUndefined();
      });
    });

    describe('snapshots', () => {
      it('recovers from the latest snapshot plus exactly the events after it', async () => {
        const actor = actorRef('snapshot');
        const tenEvents = (from: number) => Array.from({ length: 10 }, (_, i) => `e${from + i}`);
        for (let seq = 0; seq < 50; seq += 10) {
          const snapshot = seq + 10 === 20 || seq + 10 === 50 ? { seq: seq + 10, state: bytes(`state@${seq + 10}`) } : undefined;
          await commit(actor, seq, tenEvents(seq + 1), snapshot && { snapshot });
        }
        await commit(actor, 50, tenEvents(51));
        await commit(actor, 60, tenEvents(61));

        const record = await store.load(actor);
        expect(record.seq).toBe(70);
        expect(record.snapshot?.seq).toBe(50);
        expect(text(record.snapshot!.state)).toBe('state@50');
        expect(record.events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 51 + i));
        expect(record.events.map((e) => text(e.data))).toEqual([...tenEvents(51), ...tenEvents(61)]);
      });
    });

    describe('durability', () => {
      it('keeps journal, snapshot, input ids, timers, outbox and fences across a restart', async () => {
        const actor = actorRef('durable');
        const shard = shardOf('durable');
        const scope = scopeOf('durable');
        await store.claim({ scope, epoch: 7 });
        await commit(actor, 0, ['e1', 'e2'], {
          input: { id: 'before-restart', offset: 12 },
          snapshot: { seq: 1, state: bytes('state@1') },
          timersSet: [timer(actor, 'deadline', 500, shard)],
          outbox: [message(`m1-${run}`), message(`m2-${run}`)],
          fence: { scope, epoch: 7 },
        });
        const before = await store.load(actor);

        await restart();

        expect(await store.load(actor)).toEqual(before);
        expect(before).toMatchObject({ seq: 2, lastInputOffset: 12, snapshot: { seq: 1 } });
        expect(before.events.map((e) => text(e.data))).toEqual(['e2']);
        expect(before.outbox.map((m) => m.id)).toEqual([`m1-${run}`, `m2-${run}`]);
        expect(await store.appliedInputs(actor, ['before-restart'])).toEqual(new Set(['before-restart']));
        expect(await store.dueTimers([shard], FAR_FUTURE, 10)).toEqual([timer(actor, 'deadline', 500, shard)]);
        await expect(store.claim({ scope, epoch: 6 })).rejects.toMatchObject({ code: RuntimeErrorCode.Fenced });
        // The journal keeps going from where it was.
        await commit(actor, 2, ['e3']);
        expect((await store.load(actor)).seq).toBe(3);
      });
    });

    describe('timers', () => {
      it('sets timers, replaces one by name and cancels one', async () => {
        const actor = actorRef('timers');
        const shard = shardOf('timers');
        await commit(actor, 0, [], { timersSet: [timer(actor, 'a', 100, shard), timer(actor, 'b', 200, shard)] });
        expect(timerNames(await store.dueTimers([shard], FAR_FUTURE, 10))).toEqual([`${actor.id}:a@100`, `${actor.id}:b@200`]);

        await commit(actor, 0, [], { timersSet: [timer(actor, 'a', 300, shard)] });
        const replaced = await store.dueTimers([shard], FAR_FUTURE, 10);
        expect(timerNames(replaced)).toEqual([`${actor.id}:b@200`, `${actor.id}:a@300`]);
        expect(replaced[1]).toEqual(timer(actor, 'a', 300, shard));

        await commit(actor, 0, [], { timersCancelled: ['b'] });
        expect(timerNames(await store.dueTimers([shard], FAR_FUTURE, 10))).toEqual([`${actor.id}:a@300`]);
      });

      it('returns the due timers of the asked shards only, earliest first, up to the limit', async () => {
        const one = actorRef('due-1');
        const two = actorRef('due-2');
        const [shardA, shardB, shardC] = [shardOf('due-a'), shardOf('due-b'), shardOf('due-c')];
        await commit(one, 0, [], { timersSet: [timer(one, 'late', 300, shardA), timer(one, 'early', 100, shardA)] });
        await commit(two, 0, [], { timersSet: [timer(two, 'middle', 200, shardB), timer(two, 'other', 50, shardC)] });

        expect(timerNames(await store.dueTimers([shardA], 99, 10))).toEqual([]);
        expect(timerNames(await store.dueTimers([shardA], 100, 10))).toEqual([`${one.id}:early@100`]);
        expect(timerNames(await store.dueTimers([shardA], FAR_FUTURE, 10))).toEqual([`${one.id}:early@100`, `${one.id}:late@300`]);
        expect(timerNames(await store.dueTimers([shardA, shardB], FAR_FUTURE, 10))).toEqual([
          `${one.id}:early@100`,
          `${two.id}:middle@200`,
          `${one.id}:late@300`,
        ]);
        expect(timerNames(await store.dueTimers([shardA, shardB], FAR_FUTURE, 2))).toEqual([`${one.id}:early@100`, `${two.id}:middle@200`]);
        expect(timerNames(await store.dueTimers([shardA, shardB], 250, 1))).toEqual([`${one.id}:early@100`]);
        expect(await store.dueTimers([shardOf('due-empty')], FAR_FUTURE, 10)).toEqual([]);
        expect(await store.dueTimers([], FAR_FUTURE, 10)).toEqual([]);
      });

      it('tells when the next timer of the asked shards is due', async () => {
        const actor = actorRef('next-due');
        const [shardA, shardB] = [shardOf('next-a'), shardOf('next-b')];
        expect(await store.nextTimerDue([shardA, shardB])).toBeUndefined();

        await commit(actor, 0, [], { timersSet: [timer(actor, 'a', 700, shardA), timer(actor, 'b', 400, shardB)] });
        expect(await store.nextTimerDue([shardA])).toBe(700);
        expect(await store.nextTimerDue([shardA, shardB])).toBe(400);

        await commit(actor, 0, [], { timersCancelled: ['b'] });
        expect(await store.nextTimerDue([shardA, shardB])).toBe(700);
      });

      it('deleteTimer deletes a fired timer but not one re-set with another dueAt', async () => {
        const actor = actorRef('delete-timer');
        const shard = shardOf('delete-timer');
        await commit(actor, 0, [], { timersSet: [timer(actor, 'retry', 100, shard), timer(actor, 'fired', 150, shard)] });

        // `retry` fired at 100, but the actor re-set it to 900 before the runtime deleted it.
        await commit(actor, 0, [], { timersSet: [timer(actor, 'retry', 900, shard)] });
        await store.deleteTimer(actor, 'retry', 100);
        await store.deleteTimer(actor, 'fired', 150);

        expect(timerNames(await store.dueTimers([shard], FAR_FUTURE, 10))).toEqual([`${actor.id}:retry@900`]);
      });

      it('keeps timers across a restart', async () => {
        const actor = actorRef('timer-restart');
        const shard = shardOf('timer-restart');
        await commit(actor, 0, [], { timersSet: [timer(actor, 'a', 100, shard), timer(actor, 'b', 200, shard)] });

        await restart();

        expect(await store.dueTimers([shard], FAR_FUTURE, 10)).toEqual([timer(actor, 'a', 100, shard), timer(actor, 'b', 200, shard)]);
        expect(await store.nextTimerDue([shard])).toBe(100);
      });
    });

    describe('outbox', () => {
      it('returns unsent messages in write order until they are marked sent', async () => {
        const actor = actorRef('outbox');
        const [m1, m2, m3] = [message(`m1-${run}`), message(`m2-${run}`), message(`m3-${run}`)];
        await commit(actor, 0, ['e1'], { outbox: [m1, m2] });
        await commit(actor, 1, [], { outbox: [m3] });
        expect((await store.load(actor)).outbox).toEqual([m1, m2, m3]);

        await store.markSent(actor, [m1.id, m3.id, 'never-written']);
        expect((await store.load(actor)).outbox).toEqual([m2]);

        const m4 = message(`m4-${run}`);
        await commit(actor, 1, [], { outbox: [m4] });
        expect((await store.load(actor)).outbox).toEqual([m2, m4]);

        await store.markSent(actor, [m2.id, m4.id]);
        expect((await store.load(actor)).outbox).toEqual([]);
      });

      it('keeps each actor’s outbox to itself', async () => {
        const one = actorRef('outbox-1');
        const two = actorRef('outbox-2');
        await commit(one, 0, [], { outbox: [message('shared-id')] });
        await commit(two, 0, [], { outbox: [message('shared-id')] });

        await store.markSent(one, ['shared-id']);

        expect((await store.load(one)).outbox).toEqual([]);
        expect((await store.load(two)).outbox).toEqual([message('shared-id')]);
      });
    });

    describe('fencing', () => {
      it('claim raises the epoch and refuses an older one', async () => {
        const scope = scopeOf('claim');
        await store.claim({ scope, epoch: 1 });
        await store.claim({ scope, epoch: 3 });
        await store.claim({ scope, epoch: 3 });

        await expect(store.claim({ scope, epoch: 2 })).rejects.toMatchObject({
          code: RuntimeErrorCode.Fenced,
          retriable: false,
        });
        await store.claim({ scope, epoch: 4 });
        await expect(store.claim({ scope, epoch: 3 })).rejects.toMatchObject({ code: RuntimeErrorCode.Fenced });
      });

      it('claimNext gives each new owner an epoch above every earlier one, and the last owner wins', async () => {
        const scope = scopeOf('claim-next');
        expect(await store.claimNext(scope)).toBe(1);
        await store.claim({ scope, epoch: 5 });
        const epochs = await Promise.all([store.claimNext(scope), store.claimNext(scope), store.claimNext(scope)]);
        expect([...epochs].sort()).toEqual([6, 7, 8]);
        const actor = actorRef('claim-next');
        await expect(commit(actor, 0, ['from 7'], { fence: { scope, epoch: 7 } })).rejects.toMatchObject({ code: RuntimeErrorCode.Fenced });
        await commit(actor, 0, ['from 8'], { fence: { scope, epoch: 8 } });
        expect((await eventsOf(actor)).map((e) => e.data)).toEqual(['from 8']);
      });

      it('refuses a turn from an older epoch with FENCED and writes nothing', async () => {
        const actor = actorRef('fenced');
        const scope = scopeOf('fenced');
        await store.claim({ scope, epoch: 1 });
        await commit(actor, 0, ['from epoch 1'], { fence: { scope, epoch: 1 } });

        await store.claim({ scope, epoch: 2 });
        const before = await store.load(actor);
        await expect(commit(actor, 1, ['stale owner'], { input: { id: 'stale-owner' }, fence: { scope, epoch: 1 } })).rejects.toMatchObject(
          { code: RuntimeErrorCode.Fenced, retriable: false },
        );

        expect(await store.load(actor)).toEqual(before);
        expect(await store.appliedInputs(actor, ['stale-owner'])).toEqual(new Set());
        await commit(actor, 1, ['from epoch 2'], { fence: { scope, epoch: 2 } });
        expect((await eventsOf(actor)).map((e) => e.data)).toEqual(['from epoch 1', 'from epoch 2']);
      });
    });

    describe('atomicity', () => {
      const refusals = [
        { reason: 'a stale expectedSeq', code: RuntimeErrorCode.Conflict, expectedSeq: 1, inputId: 'fresh', epoch: 2 },
        { reason: 'an applied input id', code: RuntimeErrorCode.DuplicateInput, expectedSeq: 2, inputId: 'applied', epoch: 2 },
        { reason: 'a stale fence', code: RuntimeErrorCode.Fenced, expectedSeq: 2, inputId: 'fresh', epoch: 1 },
      ] as const;

      for (const refusal of refusals) {
        it(`leaves no events, snapshot, timers, outbox rows or input id of a turn refused for ${refusal.reason}`, async () => {
          const label = `atomic-${refusal.reason.replaceAll(' ', '-')}`;
          const actor = actorRef(label);
          const shard = shardOf(label);
          const scope = scopeOf(label);
          await store.claim({ scope, epoch: 2 });
          await commit(actor, 0, ['e1', 'e2'], {
            input: { id: 'applied', offset: 10 },
            snapshot: { seq: 2, state: bytes('state@2') },
            timersSet: [timer(actor, 'keep', 500, shard)],
            outbox: [message(`kept-${run}`)],
            fence: { scope, epoch: 2 },
          });
          const observe = async () => ({
            record: await store.load(actor),
            timers: await store.dueTimers([shard], FAR_FUTURE, 10),
            next: await store.nextTimerDue([shard]),
          });
          const before = await observe();

          await expect(
            commit(actor, refusal.expectedSeq, ['e3', 'e4'], {
              input: { id: refusal.inputId, offset: 99 },
              snapshot: { seq: 4, state: bytes('state@4') },
              timersSet: [timer(actor, 'new', 50, shard)],
              timersCancelled: ['keep'],
              outbox: [message(`refused-${run}`)],
              fence: { scope, epoch: refusal.epoch },
            }),
          ).rejects.toMatchObject({ code: refusal.code });

          expect(await observe()).toEqual(before);
          expect(await store.appliedInputs(actor, ['fresh'])).toEqual(new Set());
        });
      }
    });

    describe('artefact catalog', () => {
      const artifact = (project: string, name: string, sha: string, storedAt: number): ArtifactRecord => ({
        namespace: `conformance-${run}`,
        project,
        name,
        kind: name.startsWith('src/') ? 'code' : 'docs',
        sha256: sha.repeat(64),
        bytes: 100 + name.length,
        uri: `troupe://artifacts/conformance-${run}/${project}/${name}`,
        storedAt,
      });

      it('records artefacts and lists a project’s by name', async () => {
        const readme = artifact('shop', 'README.md', 'a', 1_000);
        const cart = artifact('shop', 'src/cart.ts', 'b', 1_001);
        const index = artifact('shop', 'src/index.ts', 'c', 1_002);
        for (const record of [index, readme, cart]) await store.putArtifact(record);

        expect(await store.getArtifact(readme.namespace, 'shop', 'src/cart.ts')).toEqual(cart);
        expect(await store.listArtifacts(readme.namespace, 'shop')).toEqual([readme, cart, index]);
        expect(await store.getArtifact(readme.namespace, 'shop', 'src/missing.ts')).toBeUndefined();
      });

      it('replaces the record of a name written again, and keeps each project’s to itself', async () => {
        const first = artifact('blog', 'src/post.ts', 'd', 2_000);
        const rewritten = { ...artifact('blog', 'src/post.ts', 'e', 2_500), bytes: 4_096 };
        const other = artifact('wiki', 'src/post.ts', 'f', 2_100);
        await store.putArtifact(first);
        await store.putArtifact(other);
        await store.putArtifact(rewritten);

        expect(await store.getArtifact(first.namespace, 'blog', 'src/post.ts')).toEqual(rewritten);
        expect(await store.listArtifacts(first.namespace, 'blog')).toEqual([rewritten]);
        expect(await store.listArtifacts(first.namespace, 'wiki')).toEqual([other]);
        expect(await store.listArtifacts(`conformance-${run}-elsewhere`, 'blog')).toEqual([]);
      });

      it('keeps the catalog across a restart', async () => {
        const record = artifact('kept', 'requirements.md', '0', 3_000);
        await store.putArtifact(record);

        await restart();

        expect(await store.listArtifacts(record.namespace, 'kept')).toEqual([record]);
      });
    });

    describe('many actors', () => {
      it('commits 1,000 actors × 10 events each and loads them back', async () => {
        const actors = Array.from({ length: 1_000 }, (_, i) => actorRef(`many-${i}`));
        const eventsOfActor = (i: number, from: number) => Array.from({ length: 5 }, (_, n) => `actor ${i} event ${from + n}`);
        // Bounded parallelism: enough to overlap round trips on a networked store.
        const inBatches = async (work: (actor: ActorRef, i: number) => Promise<void>) => {
          for (let start = 0; start < actors.length; start += 100) {
            await Promise.all(actors.slice(start, start + 100).map((actor, k) => work(actor, start + k)));
          }
        };

        await inBatches((actor, i) => commit(actor, 0, eventsOfActor(i, 1)));
        await inBatches((actor, i) => commit(actor, 5, eventsOfActor(i, 6)));

        await inBatches(async (actor, i) => {
          const record = await store.load(actor);
          expect(record.seq).toBe(10);
          expect(record.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
          expect(record.events.map((e) => text(e.data))).toEqual([...eventsOfActor(i, 1), ...eventsOfActor(i, 6)]);
        });
      });
    });
  });
}
